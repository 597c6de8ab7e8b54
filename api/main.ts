/** The API process: `npm run api`, or started by `npm start`. */
import { once } from 'node:events';
import { createServer } from 'node:http';
import { loadConfigOrExit } from '../config/load.js';
import { createPool } from '../db/pool.js';
import { crmBacklog } from '../db/dashboard.js';
import { createLogger } from '../observability/logger.js';
import { traceHttpRequests } from '../observability/trace-context.js';
import { startTracingFromEnv } from '../observability/tracing.js';
import { exitWithError, onShutdownSignal, prepareDatabase } from '../stack/lifecycle.js';
import { startIngestion } from '../ingestion/runtime.js';
import { startStorageCleanup } from '../ingestion/storage-bounds.js';
import { createApp } from './app.js';
import { startLiveFeed } from './live-feed.js';
import { createApiMetrics } from './metrics.js';
import { createApiTemporalClient } from '../workers/temporal-client.js';

const config = loadConfigOrExit();
const logger = createLogger({ name: 'switchboard-api', level: config.env.LOG_LEVEL, format: config.env.LOG_FORMAT });
// Off unless an OTLP endpoint is configured: then a span per request, continued by the forwarders and workers.
const tracing = await startTracingFromEnv(config.env, 'switchboard-api', logger);

try {
  await prepareDatabase(config.database.url);
} catch (error) {
  exitWithError('api', error);
}
const db = createPool(config.database.url, { max: 20, applicationName: 'switchboard-api' });
// The commits on the answer's path have connections of their own: a slow report never delays an ack.
const intakeDb = createPool(config.database.url, { max: 10, applicationName: 'switchboard-intake', queryTimeoutMs: 15_000 });
const { connection, client: temporal } = createApiTemporalClient(config.temporal, tracing?.clientInterceptors);

const liveFeed = await startLiveFeed({ databaseUrl: config.database.url, logger });
const metrics = createApiMetrics({ liveFeed, crmBacklog: () => crmBacklog(db) });
const ingestion = startIngestion({ config, db, intakeDb, temporal, connection, logger, observer: metrics.forwarder, intakeObserver: metrics.intake });
const app = createApp({ config, db, temporal, temporalConnection: connection, handOff: ingestion.handOff, backlog: ingestion.backlog, metrics, logger, liveFeed });
// Retention and quotas of stored refusals and dead letters (drops are counted in this process's metrics).
const storageCleanup = startStorageCleanup({ config, db, logger, observer: metrics.storage });
const server = createServer(tracing ? traceHttpRequests(app) : app).listen(config.api.port, config.api.host);
server.keepAliveTimeout = 65_000;
try {
  await once(server, 'listening');
} catch (error) {
  exitWithError('api', new Error(`cannot listen on ${config.api.host}:${config.api.port}: ${(error as Error).message}`));
}
logger.info({ port: config.api.port, namespace: config.temporal.namespace, forwarder: ingestion.forwarder !== undefined, tracing: tracing !== undefined }, 'API listening');

onShutdownSignal(async (reason) => {
  logger.info({ reason }, 'API shutting down');
  await liveFeed.stop(); // ends the dashboard streams, which would otherwise hold the server open
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const forceClose = setTimeout(() => server.closeAllConnections(), config.shutdownGraceMs).unref();
  await closed;
  clearTimeout(forceClose);
  // Accepted events are already committed; whatever the forwarder has not sent waits for the next process.
  await ingestion.stop();
  await storageCleanup.stop();
  await Promise.allSettled([db.end(), intakeDb.end(), connection.close()]);
  await tracing?.shutdown(); // sends the last spans
});
