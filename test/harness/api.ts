import { once as onceEvent } from 'node:events';
import type { AddressInfo } from 'node:net';
import { Client } from '@temporalio/client';
import type { Connection } from '@temporalio/client';
import { createApp } from '../../api/app.js';
import { startLiveFeed } from '../../api/live-feed.js';
import type { LiveFeed } from '../../api/live-feed.js';
import { startIngestion } from '../../ingestion/runtime.js';
import type { IntakeObserver } from '../../ingestion/intake.js';
import type { Ingestion } from '../../ingestion/runtime.js';
import { loadConfig } from '../../config/load.js';
import type { AppConfig } from '../../config/load.js';
import type { Db } from '../../db/pool.js';
import { createLogger } from '../../observability/logger.js';
import { temporalDataConverter } from '../../security/payload-codec.js';
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
  /** The API's intake, backlog view and (unless turned off) forwarder. */
  ingestion: Ingestion;
  /** Every route the app serves, as "METHOD /path" (for tests that must cover them all). */
  routes: string[];
  /** The dashboards' feed, when started with `liveFeed: true`. */
  liveFeed: LiveFeed | undefined;
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

/**
 * Serves the real Express app on an ephemeral port, for tests over real HTTP. As in production
 * the API forwards its inbox to Temporal; `forward: false` leaves that to the test.
 */
export async function startApi(deps: { config: AppConfig; db: Db; connection: Connection; port?: number; forward?: boolean; liveFeed?: boolean; intakeObserver?: IntakeObserver }): Promise<RunningApi> {
  const temporal = new Client({ connection: deps.connection, namespace: deps.config.temporal.namespace, dataConverter: temporalDataConverter(deps.config.temporal.payloadEncryption) });
  const logger = createLogger({ name: 'switchboard-api-test', level: 'silent' });
  const liveFeed = deps.liveFeed ? await startLiveFeed({ databaseUrl: deps.config.database.url, logger }) : undefined;
  const ingestion = startIngestion({ config: deps.config, db: deps.db, temporal, connection: deps.connection, logger, forward: deps.forward !== false, pollIntervalMs: 200, ...(deps.intakeObserver ? { intakeObserver: deps.intakeObserver } : {}) });
  const app = createApp({
    ...(liveFeed ? { liveFeed } : {}),
    config: deps.config,
    db: deps.db,
    temporal,
    temporalConnection: deps.connection,
    handOff: ingestion.handOff,
    backlog: ingestion.backlog,
    logger,
  });
  const server = app.listen(deps.port ?? 0, '127.0.0.1');
  await onceEvent(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    ingestion,
    routes: routesOf((app as unknown as { router: { stack: RouteLayer[] } }).router.stack),
    liveFeed,
    close: async () => {
      await ingestion.stop();
      await liveFeed?.stop();
      await new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
    },
  };
}
