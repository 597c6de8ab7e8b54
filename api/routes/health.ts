import { Router } from 'express';
import type { Connection } from '@temporalio/client';
import { migrationStatus } from '../../db/migrate.js';
import type { Db } from '../../db/pool.js';
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
}

/** /healthz: the process is alive. /readyz: Temporal, PostgreSQL and the schema are usable. */
export function createHealthRouter({ db, temporal }: HealthDeps): Router {
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
    const checks = { temporal: temporalCheck, postgres, migrations };
    const ready = Object.values(checks).every((check) => check.ok);
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not_ready', checks });
  });
  return router;
}
