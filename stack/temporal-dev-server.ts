import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import proto from '@temporalio/proto';
import type { DevTemporalConfig, SearchAttributeTypeName } from '../config/schema.js';
import { spawnManaged, waitForPort, waitUntil } from './processes.js';
import type { ManagedProcess } from './processes.js';

const IndexedValueType = proto.temporal.api.enums.v1.IndexedValueType;

const indexedValueTypes: Record<SearchAttributeTypeName, proto.temporal.api.enums.v1.IndexedValueType> = {
  Text: IndexedValueType.INDEXED_VALUE_TYPE_TEXT,
  Keyword: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
  Int: IndexedValueType.INDEXED_VALUE_TYPE_INT,
  Double: IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
  Bool: IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
  Datetime: IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
  KeywordList: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
};

export interface DevServerOptions {
  headless?: boolean;
  /** The codec server the Web UI calls to decode payloads: `<api publicUrl>/codec`. */
  codecEndpoint?: string;
  /** Its scheduling priority (nice value), from its first thread on. */
  niceness?: number;
}

/** `temporal server start-dev` arguments for the settings in temporal-dev.yaml. */
export function devServerArgs(settings: DevTemporalConfig, options: DevServerOptions = {}): string[] {
  const args = [
    'server', 'start-dev',
    '--db-filename', settings.dbFilename,
    '--namespace', settings.namespace,
    '--ip', settings.ip,
    '--port', String(settings.frontendPort),
    '--http-port', String(settings.httpPort),
    '--metrics-port', String(settings.metricsPort),
    '--log-level', 'error',
  ];
  args.push(...(options.headless ? ['--headless'] : ['--ui-port', String(settings.uiPort)]));
  // The UI decodes encrypted payloads through our API's codec server (api/routes/codec.ts).
  if (!options.headless && options.codecEndpoint) args.push('--ui-codec-endpoint', options.codecEndpoint);
  for (const [pragma, value] of Object.entries(settings.sqlitePragmas)) args.push('--sqlite-pragma', `${pragma}=${value}`);
  args.push(...dynamicConfigArgs(settings.dynamicConfig));
  // Registers them on a fresh database; ensureSearchAttributes() adds any that a later
  // version of temporal-dev.yaml introduced to an existing one.
  for (const [name, type] of Object.entries(settings.searchAttributes)) args.push('--search-attribute', `${name}=${type}`);
  return args;
}

/** `--dynamic-config-value key=<JSON value>` pairs. */
export function dynamicConfigArgs(values: DevTemporalConfig['dynamicConfig']): string[] {
  return Object.entries(values).flatMap(([key, value]) => ['--dynamic-config-value', `${key}=${JSON.stringify(value)}`]);
}

/** Registers search attributes without listing first (Temporal's Java test server cannot list them). */
export async function addSearchAttributes(connection: Connection, namespace: string, wanted: Record<string, SearchAttributeTypeName>): Promise<void> {
  await connection.operatorService.addSearchAttributes({
    namespace,
    searchAttributes: Object.fromEntries(Object.entries(wanted).map(([name, type]) => [name, indexedValueTypes[type]])),
  });
}

/** Adds the configured custom search attributes that the namespace does not have yet. */
export async function ensureSearchAttributes(
  connection: Connection,
  namespace: string,
  wanted: Record<string, SearchAttributeTypeName>,
): Promise<string[]> {
  const existing = await connection.operatorService.listSearchAttributes({ namespace });
  const present = new Set(Object.keys(existing.customAttributes ?? {}));
  const missing = Object.entries(wanted).filter(([name]) => !present.has(name));
  if (missing.length === 0) return [];
  await connection.operatorService.addSearchAttributes({
    namespace,
    searchAttributes: Object.fromEntries(missing.map(([name, type]) => [name, indexedValueTypes[type]])),
  });
  return missing.map(([name]) => name);
}

export interface RunningDevServer {
  process: ManagedProcess;
  address: string;
  uiUrl: string;
}

/** Starts the dev server with its Web UI and waits until the namespace and search attributes are ready. */
export async function startDevServer(cli: string, settings: DevTemporalConfig, log: (line: string) => void, options: DevServerOptions = {}): Promise<RunningDevServer> {
  await mkdir(path.dirname(settings.dbFilename), { recursive: true });
  const server = spawnManaged('temporal', cli, devServerArgs(settings, options), { onOutput: (line) => log(line), niceness: options.niceness ?? 0 });
  const address = `${settings.ip}:${settings.frontendPort}`;
  const exitedEarly = server.exited.then((code) => {
    throw new Error(`the Temporal dev server exited during start-up (${code}); is port ${settings.frontendPort} or ${settings.uiPort} in use?`);
  });
  exitedEarly.catch(() => undefined); // only the race below cares about an early exit
  const ready = (async () => {
    await waitForPort(settings.ip, settings.frontendPort, 60_000);
    const connection = await Connection.connect({ address });
    try {
      await waitUntil(
        async () => {
          await connection.workflowService.describeNamespace({ namespace: settings.namespace });
          return true;
        },
        30_000,
        `namespace ${settings.namespace} did not become available`,
      );
      await ensureSearchAttributes(connection, settings.namespace, settings.searchAttributes);
    } finally {
      await connection.close();
    }
    await waitForPort(settings.ip, settings.uiPort, 30_000);
  })();
  try {
    await Promise.race([ready, exitedEarly]);
  } catch (error) {
    await server.stop(5_000);
    throw error;
  }
  return { process: server, address, uiUrl: `http://${settings.ip === '0.0.0.0' ? 'localhost' : settings.ip}:${settings.uiPort}` };
}
