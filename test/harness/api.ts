import { once as onceEvent } from 'node:events';
import type { AddressInfo } from 'node:net';
import { Client } from '@temporalio/client';
import type { Connection } from '@temporalio/client';
import { createApp } from '../../api/app.js';
import { createHandOff } from '../../ingestion/handoff.js';
import { startInboxRelay } from '../../ingestion/inbox-relay.js';
import { startLiveFeed } from '../../api/live-feed.js';
import type { HandOff } from '../../ingestion/handoff.js';
import { loadConfig } from '../../config/load.js';
import type { AppConfig } from '../../config/load.js';
import type { Db } from '../../db/pool.js';
import { createLogger } from '../../observability/logger.js';
import { uniqueId } from './resources.js';

/** The development configuration with task queues of its own, so tests never share a queue. */
export function testConfig(overrides: { databaseUrl?: string; namespace?: string; address?: string } = {}): AppConfig {
  const base = loadConfig({});
  const suffix = uniqueId('q');
  return {
    ...base,
    database: { url: overrides.databaseUrl ?? base.database.url, embedded: false },
    temporal: {
      ...base.temporal,
      address: overrides.address ?? base.temporal.address,
      namespace: overrides.namespace ?? base.temporal.namespace,
      connection: { ...base.temporal.connection, address: overrides.address ?? base.temporal.address },
      taskQueues: {
        calls: `calls-${suffix}`,
        leads: `leads-${suffix}`,
        messaging: `messaging-${suffix}`,
        integrations: `integrations-${suffix}`,
      },
    },
    shutdownGraceMs: 1_000,
  };
}

export interface RunningApi {
  baseUrl: string;
  /** Every route the app serves, as "METHOD /path" (for tests that must cover them all). */
  routes: string[];
  close(): Promise<void>;
}

interface RouteLayer {
  route?: { path: string; methods: Record<string, boolean> };
  handle?: { stack?: RouteLayer[] };
}

function routesOf(stack: RouteLayer[], out: string[] = []): string[] {
  for (const layer of stack) {
    if (layer.route) for (const method of Object.keys(layer.route.methods)) out.push(`${method.toUpperCase()} ${layer.route.path}`);
    else if (layer.handle?.stack) routesOf(layer.handle.stack, out);
  }
  return out;
}

/** Serves the real Express app on an ephemeral port, for tests over real HTTP. */
export async function startApi(deps: { config: AppConfig; db: Db; connection: Connection; handOff?: HandOff; port?: number; relay?: boolean; liveFeed?: boolean }): Promise<RunningApi> {
  const temporal = new Client({ connection: deps.connection, namespace: deps.config.temporal.namespace });
  const logger = createLogger({ name: 'switchboard-api-test', level: 'silent' });
  const liveFeed = deps.liveFeed ? await startLiveFeed({ databaseUrl: deps.config.database.url, logger }) : undefined;
  const app = createApp({
    ...(liveFeed ? { liveFeed } : {}),
    config: deps.config,
    db: deps.db,
    temporal,
    temporalConnection: deps.connection,
    handOff: deps.handOff ?? createHandOff({ temporal, connection: deps.connection, db: deps.db, logger, timeoutMs: 5_000 }),
    logger,
  });
  const server = app.listen(deps.port ?? 0, '127.0.0.1');
  await onceEvent(server, 'listening');
  const { port } = server.address() as AddressInfo;
  // As in production, the API forwards whatever had to wait in the inbox.
  const relay = deps.handOff || deps.relay === false ? undefined : startInboxRelay({ db: deps.db, temporal, connection: deps.connection, logger, intervalMs: 200 });
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    routes: routesOf((app as unknown as { router: { stack: RouteLayer[] } }).router.stack),
    close: async () => {
      await relay?.stop();
      await liveFeed?.stop();
      await new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
    },
  };
}
