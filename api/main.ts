/** The API process: `npm run api`, or started by `npm start`. */
import { once } from 'node:events';
import { loadConfigOrExit } from '../config/load.js';
import { createPool } from '../db/pool.js';
import { createLogger } from '../observability/logger.js';
import { exitWithError, onShutdownSignal, prepareDatabase } from '../stack/lifecycle.js';
import { createApp } from './app.js';
import { createHandOff } from '../ingestion/handoff.js';
import { startInboxRelay } from '../ingestion/inbox-relay.js';
import { startLiveFeed } from './live-feed.js';
import { createApiTemporalClient } from './temporal-client.js';

const config = loadConfigOrExit();
const logger = createLogger({ name: 'switchboard-api', level: config.env.LOG_LEVEL });

try {
  await prepareDatabase(config.database.url);
} catch (error) {
  exitWithError('api', error);
}
const db = createPool(config.database.url, { max: 20, applicationName: 'switchboard-api' });
const { connection, client: temporal } = createApiTemporalClient(config.temporal);

const handOff = createHandOff({ temporal, connection, db, logger, timeoutMs: config.env.TEMPORAL_HANDOFF_TIMEOUT_MS });
const relay = startInboxRelay({ db, temporal, connection, logger });
const liveFeed = await startLiveFeed({ databaseUrl: config.database.url, logger });
const app = createApp({ config, db, temporal, temporalConnection: connection, handOff, logger, liveFeed });
const server = app.listen(config.api.port, config.api.host);
server.keepAliveTimeout = 65_000;
try {
  await once(server, 'listening');
} catch (error) {
  exitWithError('api', new Error(`cannot listen on ${config.api.host}:${config.api.port}: ${(error as Error).message}`));
}
logger.info({ port: config.api.port, namespace: config.temporal.namespace }, 'API listening');

onShutdownSignal(async (reason) => {
  logger.info({ reason }, 'API shutting down');
  await liveFeed.stop(); // ends the dashboard streams, which would otherwise hold the server open
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const forceClose = setTimeout(() => server.closeAllConnections(), config.shutdownGraceMs).unref();
  await closed;
  clearTimeout(forceClose);
  await relay.stop();
  await Promise.allSettled([db.end(), connection.close()]);
});
