/**
 * A forwarder on its own: `npm run forwarder`. Drains the inbox into Temporal beside (or instead of)
 * the API processes' own forwarders, e.g. with INGEST_FORWARDER=0 on the API so that it only commits
 * and answers. Any number of them can share one inbox.
 */
import { createApiTemporalClient } from './temporal-client.js';
import { loadConfigOrExit } from '../config/load.js';
import { createPool } from '../db/pool.js';
import { startIngestion } from '../ingestion/runtime.js';
import { createLogger } from '../observability/logger.js';
import { startTracingFromEnv } from '../observability/tracing.js';
import { exitWithError, onShutdownSignal, prepareDatabase } from '../stack/lifecycle.js';

const config = loadConfigOrExit();
const logger = createLogger({ name: 'switchboard-forwarder', level: config.env.LOG_LEVEL, format: config.env.LOG_FORMAT });
const tracing = await startTracingFromEnv(config.env, 'switchboard-forwarder', logger);

try {
  await prepareDatabase(config.database.url);
} catch (error) {
  exitWithError('forwarder', error);
}
const db = createPool(config.database.url, { max: 10, applicationName: 'switchboard-forwarder' });
const { connection, client: temporal } = createApiTemporalClient(config.temporal, tracing?.clientInterceptors);
const ingestion = startIngestion({ config, db, temporal, connection, logger, forward: true });
logger.info({ namespace: config.temporal.namespace, concurrency: config.env.INGEST_FORWARD_CONCURRENCY, tracing: tracing !== undefined }, 'forwarder running');

onShutdownSignal(async (reason) => {
  logger.info({ reason }, 'forwarder shutting down');
  await ingestion.stop();
  await Promise.allSettled([db.end(), connection.close()]);
  await tracing?.shutdown(); // sends the last spans
});
