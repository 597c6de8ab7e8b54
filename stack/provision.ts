/**
 * Offline provisioning of Temporal's binaries, cached outside the repository so that every
 * clone on the machine reuses them:
 * - the `temporal` CLI (dev server + Web UI), built with `go install` through the Go module proxy;
 * - the Java time-skipping test server, assembled from Maven Central jars behind a small wrapper.
 * Both fall back to the SDK's own download on machines with internet access.
 */
import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, open, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { EphemeralServerExecutable } from '@temporalio/testing';
import { isProcessAlive } from './processes.js';

export type Progress = (message: string) => void;

export const cacheRoot = (env: NodeJS.ProcessEnv = process.env): string =>
  env.SWITCHBOARD_CACHE_DIR ?? path.join(env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'switchboard');

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function onPath(command: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, command);
    if (dir !== '' && isExecutable(candidate)) return candidate;
  }
  return undefined;
}

/** Runs a command, forwarding a heartbeat so a long first build is visibly alive. */
async function run(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; progress: Progress; label: string }): Promise<void> {
  const started = Date.now();
  const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const collect = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-8_000);
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const heartbeat = setInterval(() => {
    options.progress(`  ${options.label}: still working (${Math.round((Date.now() - started) / 1000)} s)`);
  }, 15_000);
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', resolve);
    });
    if (code !== 0) throw new Error(`${options.label} failed (exit ${code}):\n${output.trim()}`);
  } finally {
    clearInterval(heartbeat);
  }
}

/** A cross-process lock file, so a test run and `npm start` never build into the same folder at once. */
async function withLock<T>(dir: string, progress: Progress, work: () => Promise<T>): Promise<T> {
  await mkdir(dir, { recursive: true });
  const lockFile = path.join(dir, '.lock');
  const deadline = Date.now() + 20 * 60_000;
  let announced = false;
  for (;;) {
    try {
      const handle = await open(lockFile, 'wx');
      await handle.writeFile(String(process.pid));
      await handle.close();
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      let holder: number;
      try {
        holder = Number.parseInt(readFileSync(lockFile, 'utf8'), 10);
      } catch {
        continue; // released between open() and read
      }
      if (!Number.isInteger(holder) || !isProcessAlive(holder)) {
        await rm(lockFile, { force: true });
        continue;
      }
      if (!announced) progress(`  waiting for another process (pid ${holder}) that is provisioning ${dir}`);
      announced = true;
      if (Date.now() > deadline) throw new Error(`timed out waiting for the provisioning lock ${lockFile}`, { cause: error });
      await delay(1_000);
    }
  }
  try {
    return await work();
  } finally {
    await rm(lockFile, { force: true });
  }
}

export interface TemporalCliOptions {
  version: string;
  env?: NodeJS.ProcessEnv;
  progress?: Progress;
}

/**
 * Returns the path of a `temporal` CLI: $TEMPORAL_CLI, then `temporal` on PATH, then the cached
 * build, then a fresh `go install` into the cache. Returns undefined when none of these is
 * possible, so callers can fall back to the SDK's download.
 */
export async function ensureTemporalCli(options: TemporalCliOptions): Promise<string | undefined> {
  const env = options.env ?? process.env;
  const progress = options.progress ?? (() => undefined);
  if (env.TEMPORAL_CLI) {
    if (!isExecutable(env.TEMPORAL_CLI)) throw new Error(`TEMPORAL_CLI points at ${env.TEMPORAL_CLI}, which is not an executable file`);
    return env.TEMPORAL_CLI;
  }
  const fromPath = onPath('temporal');
  if (fromPath) return fromPath;

  const dir = path.join(cacheRoot(env), 'temporal-cli', options.version);
  const binary = path.join(dir, 'temporal');
  if (isExecutable(binary)) return binary;
  return withLock(dir, progress, async () => {
    if (isExecutable(binary)) return binary;
    if (!onPath('go')) return downloadTemporalCli(options.version, dir, binary, progress);
    const staging = path.join(dir, `.staging-${process.pid}`);
    progress(`Temporal CLI ${options.version}: building with go install (first run on this machine only; takes a few minutes)`);
    await run('go', ['install', `github.com/temporalio/cli/cmd/temporal@${options.version}`], {
      // GOTOOLCHAIN=auto lets an older Go fetch the toolchain the CLI needs through the proxy.
      env: { ...env, GOBIN: staging, GOTOOLCHAIN: env.GOTOOLCHAIN ?? 'auto' },
      progress,
      label: 'go install temporal',
    });
    await rename(path.join(staging, 'temporal'), binary);
    await rm(staging, { recursive: true, force: true });
    progress(`Temporal CLI ${options.version}: cached at ${binary}`);
    return binary;
  });
}

/** Last resort, for machines with internet but no Go: the archive the SDK itself downloads. */
async function downloadTemporalCli(version: string, dir: string, binary: string, progress: Progress): Promise<string | undefined> {
  const platform = process.platform === 'darwin' ? 'darwin' : 'linux';
  const arch = process.arch === 'arm64' ? 'arm64' : 'amd64';
  const url = `https://temporal.download/cli/archive/${version}?platform=${platform}&arch=${arch}`;
  progress(`Temporal CLI ${version}: no Go toolchain, downloading ${url}`);
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(120_000) });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const archive = path.join(dir, `.download-${process.pid}.tar.gz`);
    await writeFile(archive, Buffer.from(await response.arrayBuffer()));
    await run('tar', ['-xzf', archive, '-C', dir, 'temporal'], { progress, label: 'tar' });
    await rm(archive, { force: true });
    return isExecutable(binary) ? binary : undefined;
  } catch (error) {
    progress(`Temporal CLI: download failed (${(error as Error).message})`);
    return undefined;
  }
}

const testServerPom = (version: string): string => `<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.switchboard</groupId>
  <artifactId>temporal-test-server-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>io.temporal</groupId>
      <artifactId>temporal-test-server</artifactId>
      <version>${version}</version>
    </dependency>
    <!-- Silences SLF4J's "no binding" warning on every start. -->
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-nop</artifactId>
      <version>1.7.36</version>
    </dependency>
  </dependencies>
</project>
`;

// The SDK waits only ~5 s for the port, so the JVM starts lean: serial GC, C1 only, small stacks.
const testServerWrapper = `#!/bin/sh
# Generated by Switchboard's stack/provision.ts: runs Temporal's time-skipping test server.
dir=$(cd "$(dirname "$0")" && pwd)
java_bin=java
[ -n "$JAVA_HOME" ] && [ -x "$JAVA_HOME/bin/java" ] && java_bin="$JAVA_HOME/bin/java"
exec "$java_bin" -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xss512k -Xshare:auto \\
  -cp "$dir/lib/*" io.temporal.testserver.TestServer "$@"
`;

/** Bump when the pom or wrapper changes, so cached copies are rebuilt. */
const testServerRecipe = 'recipe-2';

export interface TestServerOptions {
  version: string;
  env?: NodeJS.ProcessEnv;
  progress?: Progress;
}

/**
 * Returns the time-skipping test server as the SDK's `executable` option: $TEMPORAL_TEST_SERVER,
 * the cached Maven build, a fresh Maven build, or else the SDK's own download.
 */
export async function ensureTestServer(options: TestServerOptions): Promise<EphemeralServerExecutable> {
  const env = options.env ?? process.env;
  const progress = options.progress ?? (() => undefined);
  if (env.TEMPORAL_TEST_SERVER) {
    if (!isExecutable(env.TEMPORAL_TEST_SERVER)) {
      throw new Error(`TEMPORAL_TEST_SERVER points at ${env.TEMPORAL_TEST_SERVER}, which is not an executable file`);
    }
    return { type: 'existing-path', path: env.TEMPORAL_TEST_SERVER };
  }
  const dir = path.join(cacheRoot(env), 'temporal-test-server', options.version);
  const wrapper = path.join(dir, 'temporal-test-server');
  const complete = path.join(dir, '.complete');
  const isComplete = (): boolean => existsSync(complete) && readFileSync(complete, 'utf8') === testServerRecipe && isExecutable(wrapper);
  if (isComplete()) return { type: 'existing-path', path: wrapper };
  if (!onPath('mvn') || !onPath('java')) {
    progress('Temporal test server: Maven or Java missing, falling back to the SDK download');
    return { type: 'cached-download' };
  }
  return withLock(dir, progress, async () => {
    if (isComplete()) return { type: 'existing-path', path: wrapper };
    progress(`Temporal test server ${options.version}: fetching io.temporal:temporal-test-server from Maven Central`);
    await rm(path.join(dir, 'lib'), { recursive: true, force: true });
    await writeFile(path.join(dir, 'pom.xml'), testServerPom(options.version));
    await run('mvn', ['-B', '-q', 'dependency:copy-dependencies', '-DoutputDirectory=lib', '-DincludeScope=runtime'], {
      cwd: dir,
      env,
      progress,
      label: 'mvn dependency:copy-dependencies',
    });
    await writeFile(wrapper, testServerWrapper);
    await chmod(wrapper, 0o755);
    await writeFile(complete, testServerRecipe);
    progress(`Temporal test server ${options.version}: cached at ${wrapper}`);
    return { type: 'existing-path', path: wrapper };
  });
}

const prometheusClientVersion = '0.26.0';

/**
 * The official Prometheus Python client, whose strict text-format parser the tests scrape our
 * /metrics with (no maintained parser exists on npm). Installed from PyPI into the cache.
 */
export async function ensurePrometheusParser(progress: Progress = () => undefined): Promise<string | undefined> {
  const dir = path.join(cacheRoot(), 'python', `prometheus-client-${prometheusClientVersion}`);
  if (existsSync(path.join(dir, 'prometheus_client', 'parser.py'))) return dir;
  if (!onPath('python3')) {
    progress('Prometheus parser: python3 is missing');
    return undefined;
  }
  return withLock(dir, progress, async () => {
    if (existsSync(path.join(dir, 'prometheus_client', 'parser.py'))) return dir;
    progress(`Prometheus parser: pip install prometheus-client==${prometheusClientVersion}`);
    await run('python3', ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--no-deps', '--target', dir, `prometheus-client==${prometheusClientVersion}`], { progress, label: 'pip install prometheus-client' });
    return dir;
  });
}

export const schemathesisVersion = '4.32.5';
/** Bump when the install recipe changes, so cached copies are rebuilt. */
const schemathesisRecipe = `schemathesis-${schemathesisVersion}-recipe-1`;

/**
 * Schemathesis, the property-based API fuzzer the contract test drives from /openapi.json (no
 * maintained equivalent exists on npm). Installed from PyPI into its own virtual environment in the
 * cache (about half a minute, once per machine); returns the `st` executable.
 */
export async function ensureSchemathesis(progress: Progress = () => undefined): Promise<string | undefined> {
  const dir = path.join(cacheRoot(), 'python', `schemathesis-${schemathesisVersion}`);
  const executable = path.join(dir, 'bin', 'st');
  const complete = path.join(dir, '.complete');
  const isComplete = (): boolean => existsSync(complete) && readFileSync(complete, 'utf8') === schemathesisRecipe && isExecutable(executable);
  if (isComplete()) return executable;
  if (!onPath('python3')) {
    progress('Schemathesis: python3 is missing');
    return undefined;
  }
  return withLock(dir, progress, async () => {
    if (isComplete()) return executable;
    progress(`Schemathesis: pip install schemathesis==${schemathesisVersion} into ${dir}`);
    await rm(path.join(dir, 'bin'), { recursive: true, force: true });
    await rm(path.join(dir, 'lib'), { recursive: true, force: true });
    await run('python3', ['-m', 'venv', '--clear', dir], { progress, label: 'python3 -m venv' });
    await run(path.join(dir, 'bin', 'python'), ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--no-input', `schemathesis==${schemathesisVersion}`], { progress, label: 'pip install schemathesis' });
    if (!isExecutable(executable)) throw new Error(`pip install schemathesis left no ${executable}`);
    await writeFile(complete, schemathesisRecipe);
    progress(`Schemathesis ${schemathesisVersion}: cached at ${executable}`);
    return executable;
  });
}

export const chromiumPath = '/usr/bin/chromium';

/**
 * Debian's Chromium for the browser test (playwright-core drives it; test tools' own browser
 * downloads do not work here). Installed with apt-get when missing and we are root.
 */
export async function ensureChromium(progress: Progress = () => undefined): Promise<string | undefined> {
  const existing = process.env.CHROMIUM_PATH ?? (isExecutable(chromiumPath) ? chromiumPath : onPath('chromium'));
  if (existing) return existing;
  if (process.platform !== 'linux' || process.getuid?.() !== 0 || !onPath('apt-get')) {
    progress('Chromium: missing; install the Debian package "chromium" (or set CHROMIUM_PATH) for the browser test');
    return undefined;
  }
  progress('Chromium: installing the Debian package (first run on this machine only)');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  await run('apt-get', ['update', '-qq'], { env, progress, label: 'apt-get update' });
  await run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'chromium'], { env, progress, label: 'apt-get install chromium' });
  return isExecutable(chromiumPath) ? chromiumPath : onPath('chromium');
}

/** `temporal --version`, for diagnostics. */
export function temporalCliVersion(binary: string): string {
  const result = spawnSync(binary, ['--version'], { encoding: 'utf8' });
  return result.stdout.trim();
}
