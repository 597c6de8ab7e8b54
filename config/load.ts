import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadClientConnectConfig } from '@temporalio/envconfig';
import type { NativeConnectionOptions } from '@temporalio/worker';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { configFileSchema, envSchema } from './schema.js';
import type { ConfigFile, DemoConfig, DevTemporalConfig, EmbeddedPostgresConfig, PayloadEncryptionConfig, StorageConfig, SwitchboardEnv, TenantConfig } from './schema.js';

export const repoRoot = fileURLToPath(new URL('..', import.meta.url));
export const defaultConfigPath = path.join(repoRoot, 'temporal-dev.yaml');

/** A configuration problem, worded as one line that names the bad setting and never echoes its value. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export interface AppConfig {
  configPath: string;
  /** Folder of the config file: relative paths in it are resolved from here. */
  baseDir: string;
  env: SwitchboardEnv;
  database: {
    url: string;
    /** True when no DATABASE_URL was given and the embedded server is used. */
    embedded: boolean;
  };
  temporal: {
    address: string;
    namespace: string;
    connection: NativeConnectionOptions;
    /** True when TEMPORAL_ADDRESS or a Temporal profile points somewhere else than the dev server. */
    external: boolean;
    taskQueues: DevTemporalConfig['taskQueues'];
    messagingRatePerSecond: number;
    /** Keys of the payload codec every client and worker uses (security/payload-codec.ts). */
    payloadEncryption: PayloadEncryptionConfig;
    /** Temporal Web UI base URL, for links from the dashboard. */
    webUiUrl: string;
  };
  api: {
    host: string;
    port: number;
    publicUrl: string;
    /** Browser origins (the Temporal Web UI's) allowed to call the codec server at /codec. */
    codecAllowedOrigins: string[];
  };
  tenants: Record<string, TenantConfig>;
  /** Bounds on what refused requests and dead letters may keep (tenants' own bounds are in `tenants.<id>.storage`). */
  storage: StorageConfig;
  demo: DemoConfig;
  /** The development stack's settings (dev server, embedded PostgreSQL). */
  devStack: { temporal: DevTemporalConfig; postgres: EmbeddedPostgresConfig };
  shutdownGraceMs: number;
}

function describeIssue(issue: z.core.$ZodIssue, prefix: string): string {
  const where = issue.path.length > 0 ? issue.path.join('.') : '(top level)';
  return `${prefix}${where}: ${issue.message}`;
}

const interpolationPattern = /\$\{([A-Z_][A-Z0-9_]*)(?::-([^}]*))?\}/g;

/** Replaces `${NAME}` / `${NAME:-default}` in every string of the parsed YAML. */
function interpolate(value: unknown, env: NodeJS.ProcessEnv, where: string[]): unknown {
  if (typeof value === 'string') {
    return value.replace(interpolationPattern, (_match, name: string, fallback: string | undefined) => {
      const resolved = env[name] ?? fallback;
      if (resolved === undefined) {
        throw new ConfigError(`invalid configuration: ${where.join('.')}: environment variable ${name} is not set`);
      }
      return resolved;
    });
  }
  if (Array.isArray(value)) return value.map((item, index) => interpolate(item, env, [...where, String(index)]));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [key, interpolate(item, env, [...where, key])]),
    );
  }
  return value;
}

export function readConfigFile(configPath: string, env: NodeJS.ProcessEnv = process.env): ConfigFile {
  const fileName = path.basename(configPath);
  let text: string;
  try {
    text = readFileSync(configPath, 'utf8');
  } catch {
    throw new ConfigError(`invalid configuration: SWITCHBOARD_CONFIG: cannot read ${configPath}`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (error) {
    const firstLine = (error instanceof Error ? error.message : String(error)).split('\n')[0];
    throw new ConfigError(`invalid configuration: ${fileName} is not valid YAML: ${firstLine}`);
  }
  const parsed = configFileSchema.safeParse(interpolate(raw ?? {}, env, []));
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw new ConfigError(`invalid configuration: ${first ? describeIssue(first, `${fileName}: `) : fileName}`);
  }
  return parsed.data;
}

function embeddedDatabaseUrl(postgres: EmbeddedPostgresConfig): string {
  const user = encodeURIComponent(postgres.user);
  const password = encodeURIComponent(postgres.password);
  return `postgres://${user}:${password}@127.0.0.1:${postgres.port}/${encodeURIComponent(postgres.database)}`;
}

function loadTemporalConnection(
  env: NodeJS.ProcessEnv,
  temporal: DevTemporalConfig,
): Pick<AppConfig['temporal'], 'address' | 'namespace' | 'connection' | 'external'> {
  let loaded: ReturnType<typeof loadClientConnectConfig>;
  try {
    loaded = loadClientConnectConfig({
      overrideEnvVars: Object.fromEntries(
        Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined),
      ),
    });
  } catch (error) {
    const reason = (error instanceof Error ? error.message : String(error)).split('\n')[0];
    throw new ConfigError(`invalid configuration: Temporal client settings (TEMPORAL_* / TEMPORAL_CONFIG_FILE): ${reason}`);
  }
  const devAddress = `${temporal.ip}:${temporal.frontendPort}`;
  const address = loaded.connectionOptions.address ?? devAddress;
  if (!/^[^\s:/]+:\d{1,5}$/.test(address)) {
    throw new ConfigError('invalid configuration: TEMPORAL_ADDRESS: must be host:port, for example localhost:7233');
  }
  return {
    address,
    namespace: loaded.namespace ?? temporal.namespace,
    connection: { ...loaded.connectionOptions, address },
    external: loaded.connectionOptions.address !== undefined && address !== devAddress,
  };
}

/**
 * Parses the environment and the config file once, at start-up. Every process calls this
 * first, so bad configuration stops it before it touches anything.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): AppConfig {
  const parsedEnv = envSchema.safeParse(env);
  if (!parsedEnv.success) {
    const first = parsedEnv.error.issues[0];
    throw new ConfigError(`invalid configuration: ${first ? describeIssue(first, '') : 'environment'}`);
  }
  const configPath = path.resolve(parsedEnv.data.SWITCHBOARD_CONFIG ?? defaultConfigPath);
  const file = readConfigFile(configPath, env);
  if (file.demo.enabled && !file.tenants[file.demo.tenant]) {
    throw new ConfigError(`invalid configuration: ${path.basename(configPath)}: demo.tenant: no tenant "${file.demo.tenant}" is configured`);
  }
  const baseDir = path.dirname(configPath);
  const temporal = file.temporal;
  const webUiUrl = (parsedEnv.data.TEMPORAL_WEB_UI_URL ?? `http://localhost:${temporal.uiPort}`).replace(/\/$/, '');
  const api = {
    host: parsedEnv.data.API_HOST ?? file.api.host,
    port: parsedEnv.data.API_PORT ?? file.api.port,
  };
  return {
    configPath,
    baseDir,
    env: parsedEnv.data,
    database: {
      url: parsedEnv.data.DATABASE_URL ?? embeddedDatabaseUrl(file.postgres.embedded),
      embedded: parsedEnv.data.DATABASE_URL === undefined,
    },
    temporal: {
      ...loadTemporalConnection(env, temporal),
      taskQueues: temporal.taskQueues,
      messagingRatePerSecond: temporal.messagingRatePerSecond,
      payloadEncryption: temporal.payloadEncryption,
      webUiUrl,
    },
    api: {
      ...api,
      publicUrl: parsedEnv.data.PUBLIC_URL ?? file.api.publicUrl ?? `http://localhost:${api.port}`,
      // The dev server's UI answers on both names of the loopback address.
      codecAllowedOrigins: (file.api.codecAllowedOrigins ?? [`http://localhost:${temporal.uiPort}`, `http://127.0.0.1:${temporal.uiPort}`, new URL(webUiUrl).origin]).map((origin) => new URL(origin).origin).filter((origin, index, all) => all.indexOf(origin) === index),
    },
    tenants: file.tenants,
    storage: file.storage,
    demo: {
      ...file.demo,
      enabled: parsedEnv.data.SWITCHBOARD_DEMO === undefined ? file.demo.enabled : ['1', 'true'].includes(parsedEnv.data.SWITCHBOARD_DEMO),
    },
    devStack: {
      temporal: { ...temporal, dbFilename: path.resolve(baseDir, temporal.dbFilename) },
      postgres: { ...file.postgres.embedded, dataDir: path.resolve(baseDir, file.postgres.embedded.dataDir) },
    },
    shutdownGraceMs: parsedEnv.data.SHUTDOWN_GRACE_SECONDS * 1000,
  };
}

/**
 * Entry points call this: a ConfigError becomes one line on stderr and exit code 78
 * (EX_CONFIG) instead of a stack trace.
 */
export function loadConfigOrExit(env: NodeJS.ProcessEnv = process.env): AppConfig {
  try {
    return loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`switchboard: ${error.message}\n`);
      process.exit(78);
    }
    throw error;
  }
}
