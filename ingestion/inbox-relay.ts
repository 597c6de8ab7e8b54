/**
 * Forwards events that waited in the PostgreSQL inbox to Temporal, oldest first within each
 * workflow, several workflows at once. One relay at a time across all API processes (an advisory
 * lock), so the order holds; a failure stops that workflow's events and ends the pass, and the
 * relay tries again later, so nothing is skipped or sent out of order.
 */
import type { Client, Connection } from '@temporalio/client';
import type { Db } from '../db/pool.js';
import type { Logger } from '../observability/logger.js';
import { scrubText } from '../observability/logger.js';
import { signalWithStart } from './handoff.js';
import type { WorkflowDelivery } from './handoff.js';

const relayLockId = 0x5b1a_0001;

export interface InboxRelay {
  /** Forwards what is pending now; returns how many were forwarded. */
  drainOnce(): Promise<number>;
  stop(): Promise<void>;
}

export function startInboxRelay(deps: {
  db: Db;
  temporal: Client;
  connection: Connection;
  logger: Logger;
  intervalMs?: number;
  batchSize?: number;
  /** How many workflows' events are forwarded at once (each workflow's own stay in order). */
  parallelWorkflows?: number;
  /** Start the polling loop (the API does; tests may drive drainOnce themselves). */
  autoStart?: boolean;
}): InboxRelay {
  const { db, logger } = deps;
  const batchSize = deps.batchSize ?? 200;
  const parallelWorkflows = deps.parallelWorkflows ?? 32;
  let stopped = false;
  let running: Promise<number> | undefined;

  const drain = async (): Promise<number> => {
    const client = await db.connect();
    let forwarded = 0;
    try {
      const lock = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [relayLockId]);
      if (!lock.rows[0]?.locked) return 0;
      try {
        for (;;) {
          const batch = await client.query<{ id: number; payload: WorkflowDelivery }>(
            'SELECT id, payload FROM event_inbox WHERE forwarded_at IS NULL ORDER BY id LIMIT $1',
            [batchSize],
          );
          if (batch.rows.length === 0) return forwarded;
          // Each workflow's events in order, different workflows side by side: after a burst that
          // outran Temporal, a one-at-a-time relay was what kept calls waiting (BENCHMARKS.md).
          const byWorkflow = new Map<string, Array<{ id: number; payload: WorkflowDelivery }>>();
          for (const row of batch.rows) {
            const queue = byWorkflow.get(row.payload.workflowId) ?? [];
            queue.push(row);
            byWorkflow.set(row.payload.workflowId, queue);
          }
          let failed = false;
          const forwardInOrder = async (rows: Array<{ id: number; payload: WorkflowDelivery }>): Promise<void> => {
            for (const row of rows) {
              try {
                await deps.connection.withDeadline(Date.now() + 5_000, () => signalWithStart(deps.temporal, row.payload));
              } catch (error) {
                failed = true;
                // The rest of this workflow's events wait behind this one for the next pass.
                await db.query('UPDATE event_inbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1', [row.id, scrubText((error as Error).message).slice(0, 500)]);
                return;
              }
              await db.query('UPDATE event_inbox SET forwarded_at = now(), attempts = attempts + 1 WHERE id = $1', [row.id]);
              forwarded++;
            }
          };
          const queues = [...byWorkflow.values()];
          await Promise.all(
            Array.from({ length: Math.min(parallelWorkflows, queues.length) }, async () => {
              for (let next = queues.shift(); next; next = queues.shift()) await forwardInOrder(next);
            }),
          );
          if (failed) return forwarded;
        }
      } finally {
        await client.query('SELECT pg_advisory_unlock($1)', [relayLockId]);
      }
    } finally {
      client.release();
    }
  };

  const drainOnce = (): Promise<number> => {
    running ??= drain().finally(() => {
      running = undefined;
    });
    return running;
  };

  let timer: NodeJS.Timeout | undefined;
  const loop = (): void => {
    if (stopped) return;
    drainOnce()
      .then((count) => {
        if (count > 0) logger.info({ forwarded: count }, 'inbox relay forwarded queued events');
      })
      .catch((error: unknown) => logger.warn({ err: error }, 'inbox relay pass failed'))
      .finally(() => {
        if (!stopped) timer = setTimeout(loop, deps.intervalMs ?? 1_000);
      });
  };
  if (deps.autoStart !== false) loop();

  return {
    drainOnce,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running?.catch(() => undefined);
    },
  };
}

/** Events waiting in the inbox, and the age of the oldest (relay lag). */
export async function inboxDepth(db: Db): Promise<{ pending: number; oldestAgeSeconds: number }> {
  const result = await db.query<{ pending: number; oldest: number | null }>(
    `SELECT count(*)::int AS pending, EXTRACT(EPOCH FROM now() - min(received_at))::float AS oldest FROM event_inbox WHERE forwarded_at IS NULL`,
  );
  return { pending: result.rows[0]?.pending ?? 0, oldestAgeSeconds: result.rows[0]?.oldest ?? 0 };
}
