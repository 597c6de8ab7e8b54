import { Router } from 'express';
import type { Connection } from '@temporalio/client';
import { migrationStatus } from '../../db/migrate.js';
import type { ListenState } from '../../db/listen.js';
import type { Db } from '../../db/pool.js';
import type { BacklogLimits, BacklogMonitor } from '../../ingestion/backlog.js';
import { scrubText } from '../../observability/logger.js';

interface CheckResult {
  ok: boolean;
  latencyMs: number;
  error?: string;
  [detail: string]: unknown;
}

const checkTimeoutMs = 2_000;

async function timed(check: () => Promise<Record<string, unknown> | void>): Promise<CheckResult> {
  const started = performance.now();
  try {
    const detail = await Promise.race([
      check(),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no answer within ${checkTimeoutMs} ms`)), checkTimeoutMs).unref()),
    ]);
    return { ok: true, latencyMs: Math.round(performance.now() - started), ...(detail ?? {}) };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return { ok: false, latencyMs: Math.round(performance.now() - started), error: scrubText(message.split('\n')[0] ?? message) };
  }
}

export interface HealthDeps {
  db: Db;
  temporal: { connection: Connection; namespace: string };
  backlog: BacklogMonitor;
  limits: BacklogLimits;
  /** The dashboards' LISTEN connection, when this process serves them. */
  liveFeed?: { state(): ListenState };
}

/** Forwarding counts as behind (degraded, and shown on the dashboard) past this age. */
export const catchingUpAfterSeconds = 5;

/** The live feed's connection as a check: while it is down, events are accepted but dashboards miss live changes. */
function liveFeedCheck(state: ListenState): CheckResult {
  if (state.connected) return { ok: true, latencyMs: 0, state: 'connected', since: state.since.toISOString() };
  return {
    ok: false,
    latencyMs: 0,
    state: 'reconnecting',
    since: state.since.toISOString(),
    failedAttempts: state.failedAttempts,
    ...(state.lastError ? { lastError: state.lastError } : {}),
    error: `no LISTEN connection${state.lastError ? ` (${state.lastError})` : ''}: dashboards get no live changes until it is back`,
  };
}

/**
 * /healthz: the process is alive. /readyz: whether it accepts events. Either store alone is enough
 * (the inbox waits for Temporal; Temporal takes events directly while PostgreSQL is away), so one
 * being down, or forwarding being behind, is `degraded` and still 200. Not ready (503): both
 * stores down, the schema not applied, or the backlog past its bound (webhooks get 503 then).
 * The live feed reconnecting is `degraded` too: it only serves the dashboards.
 */
export function createHealthRouter({ db, temporal, backlog, limits, liveFeed }: HealthDeps): Router {
  const router = Router();
  router.get('/healthz', (_req, res) => {
    res.json({ status: 'alive', uptimeSeconds: Math.round(process.uptime()) });
  });
  router.get('/readyz', async (_req, res) => {
    const [temporalCheck, postgres, migrations] = await Promise.all([
      timed(async () => {
        await temporal.connection.withDeadline(Date.now() + checkTimeoutMs, () =>
          temporal.connection.workflowService.describeNamespace({ namespace: temporal.namespace }),
        );
        return { namespace: temporal.namespace };
      }),
      timed(async () => {
        await db.query('SELECT 1');
      }),
      timed(async () => {
        const status = await migrationStatus(db);
        if (status.pending.length > 0) throw new Error(`pending migrations: ${status.pending.join(', ')}`);
        return { applied: status.applied };
      }),
    ]);
    const view = backlog.current();
    const admission = backlog.admit();
    const inbox: CheckResult = {
      ok: admission.admitted,
      latencyMs: 0,
      pending: view.pending,
      oldestAgeSeconds: Math.round(view.oldestAgeSeconds * 10) / 10,
      deadLetters: view.deadLetters,
      catchingUp: view.oldestAgeSeconds > catchingUpAfterSeconds,
      ...(admission.admitted ? {} : { error: `backlog past its bound (${admission.reason === 'events' ? `${limits.maxEvents} events` : `${limits.maxAgeSeconds} s`}): webhooks are answered 503` }),
    };
    const checks = { temporal: temporalCheck, postgres, migrations, inbox, ...(liveFeed ? { liveFeed: liveFeedCheck(liveFeed.state()) } : {}) };
    const accepting = (postgres.ok || temporalCheck.ok) && (!postgres.ok || migrations.ok) && inbox.ok;
    const healthy = Object.values(checks).every((check) => check.ok) && inbox.catchingUp !== true;
    const status = !accepting ? 'not_ready' : healthy ? 'ready' : 'degraded';
    res.status(accepting ? 200 : 503).json({ status, checks });
  });
  return router;
}
