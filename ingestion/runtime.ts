/**
 * The ingestion layer as a process runs it: the intake (commit, then answer), the backlog view that
 * bounds it, and, unless another process does it, a forwarder draining the inbox into Temporal.
 * Pools and clients are the caller's.
 */
import type { Client, Connection } from '@temporalio/client';
import type { AppConfig } from '../config/load.js';
import type { Db } from '../db/pool.js';
import type { Logger } from '../observability/logger.js';
import { startBacklogMonitor } from './backlog.js';
import type { BacklogMonitor } from './backlog.js';
import { startForwarder } from './forwarder.js';
import type { Forwarder, ForwarderObserver } from './forwarder.js';
import { createIntake } from './intake.js';
import type { HandOff, IntakeObserver } from './intake.js';

export interface Ingestion {
  handOff: HandOff;
  backlog: BacklogMonitor;
  forwarder: Forwarder | undefined;
  stop(): Promise<void>;
}

export interface IngestionDeps {
  config: AppConfig;
  /** For the forwarder and the backlog readings. */
  db: Db;
  /** For the commits on the answer's path; defaults to `db`. */
  intakeDb?: Db;
  temporal: Client;
  connection: Connection;
  logger: Logger;
  /** Run a forwarder in this process (default: the INGEST_FORWARDER setting). */
  forward?: boolean;
  observer?: ForwarderObserver;
  /** Counts the answers that went around the inbox (PostgreSQL slow or stalled). */
  intakeObserver?: IntakeObserver;
  pollIntervalMs?: number;
  /** false: the forwarder only runs when asked (`forwarder.drainOnce()`), as in the CLI. */
  runForwarderLoop?: boolean;
  /** Overrides INGEST_COMMIT_DEADLINE_MS (the CLI can wait for its commits). */
  commitDeadlineMs?: number;
}

export function startIngestion(deps: IngestionDeps): Ingestion {
  const { env } = deps.config;
  const backlog = startBacklogMonitor({
    db: deps.db,
    logger: deps.logger,
    limits: { maxEvents: env.INGEST_MAX_BACKLOG_EVENTS, maxAgeSeconds: env.INGEST_MAX_BACKLOG_AGE_SECONDS },
  });
  const forwarder =
    (deps.forward ?? env.INGEST_FORWARDER)
      ? startForwarder({
          db: deps.db,
          temporal: deps.temporal,
          connection: deps.connection,
          logger: deps.logger,
          databaseUrl: deps.config.database.url,
          concurrency: env.INGEST_FORWARD_CONCURRENCY,
          maxRefusals: env.INGEST_MAX_REFUSALS,
          ...(deps.observer ? { observer: deps.observer } : {}),
          ...(deps.pollIntervalMs ? { pollIntervalMs: deps.pollIntervalMs } : {}),
          autoStart: deps.runForwarderLoop !== false,
        })
      : undefined;
  const handOff = createIntake({
    db: deps.intakeDb ?? deps.db,
    temporal: deps.temporal,
    connection: deps.connection,
    logger: deps.logger,
    backlog,
    commitDeadlineMs: deps.commitDeadlineMs ?? env.INGEST_COMMIT_DEADLINE_MS,
    temporalTimeoutMs: env.TEMPORAL_HANDOFF_TIMEOUT_MS,
    ...(forwarder ? { wakeForwarder: () => forwarder.wake() } : {}),
    ...(deps.intakeObserver ? { observer: deps.intakeObserver } : {}),
  });
  return {
    handOff,
    backlog,
    forwarder,
    async stop() {
      backlog.stop();
      await forwarder?.stop();
    },
  };
}
