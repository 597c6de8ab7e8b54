/** The worker process: `npm run worker`, or started by `npm start`. Scale out by running more of them. */
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import type { LogLevel } from '@temporalio/worker';
import { setTimeout as delay } from 'node:timers/promises';
import { loadConfigOrExit } from '../config/load.js';
import { createPool } from '../db/pool.js';
import { createLogger, scrubText } from '../observability/logger.js';
import { startTracingFromEnv } from '../observability/tracing.js';
import { exitWithError, prepareDatabase } from '../stack/lifecycle.js';
import { createWorkers } from './create-workers.js';
import { createIntegrations } from './integrations.js';

const config = loadConfigOrExit();
const logger = createLogger({ name: 'switchboard-worker', level: config.env.LOG_LEVEL, format: config.env.LOG_FORMAT });

const sdkLevels: Record<string, LogLevel> = { trace: 'TRACE', debug: 'DEBUG', info: 'INFO', warn: 'WARN', error: 'ERROR', fatal: 'ERROR', silent: 'ERROR' };
try {
  Runtime.install({
    logger: new DefaultLogger(sdkLevels[config.env.LOG_LEVEL] ?? 'INFO', (entry) => {
      const level = entry.level === 'TRACE' ? 'trace' : (entry.level.toLowerCase() as 'debug' | 'info' | 'warn' | 'error');
      logger[level]({ ...entry.meta, sdk: true }, scrubText(entry.message));
    }),
    // The Runtime shuts the workers down gracefully on these signals.
    shutdownSignals: ['SIGINT', 'SIGTERM', 'SIGQUIT'],
    // The SDK's worker metrics (and workflows' own counters) for Prometheus, at <address>/metrics.
    ...(config.env.WORKER_METRICS_ADDRESS
      ? { telemetryOptions: { metrics: { prometheus: { bindAddress: config.env.WORKER_METRICS_ADDRESS, countersTotalSuffix: true, useSecondsForDurations: true } } } }
      : {}),
  });
} catch (error) {
  exitWithError('worker', new Error(`cannot start the Temporal runtime (is WORKER_METRICS_ADDRESS ${config.env.WORKER_METRICS_ADDRESS} in use?): ${(error as Error).message}`));
}
// A graceful shutdown that cannot finish (Temporal went away at the same moment, say) must not
// leave the process behind: after the grace time plus a margin, exit anyway.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    setTimeout(() => {
      logger.warn({ graceMs: config.shutdownGraceMs }, 'graceful shutdown did not finish in time; exiting');
      process.exit(1);
    }, config.shutdownGraceMs + 5_000).unref();
  });
}
// Started by the launcher and the launcher went away: stop like on SIGTERM.
if (process.channel) {
  process.channel.unref();
  process.once('disconnect', () => process.kill(process.pid, 'SIGTERM'));
}

async function connectToTemporal(timeoutMs = 60_000): Promise<NativeConnection> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await NativeConnection.connect(config.temporal.connection);
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`Temporal at ${config.temporal.address} is unreachable: ${(error as Error).message}`, { cause: error });
      await delay(1_000);
    }
  }
}

try {
  await prepareDatabase(config.database.url);
} catch (error) {
  exitWithError('worker', error);
}
const db = createPool(config.database.url, { max: 20, applicationName: 'switchboard-worker' });
let connection: NativeConnection;
try {
  connection = await connectToTemporal();
} catch (error) {
  exitWithError('worker', error);
}
const integrations = createIntegrations(config, { db });
// Off unless an OTLP endpoint is configured; then the bundle carries the workflow interceptors too.
const tracing = await startTracingFromEnv(config.env, 'switchboard-worker', logger);
const workers = await createWorkers({ config, connection, db, logger, integrations, ...(tracing ? { tracing } : {}) });
logger.info({ taskQueues: workers.map((worker) => worker.options.taskQueue), namespace: config.temporal.namespace, tracing: tracing !== undefined }, 'workers running');
try {
  await Promise.all(workers.map((worker) => worker.run()));
} finally {
  integrations.close();
  await Promise.allSettled([db.end(), connection.close(), tracing?.shutdown()]);
  logger.info('workers stopped');
}
process.exit(0);
