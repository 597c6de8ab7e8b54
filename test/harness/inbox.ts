/**
 * Inbox rows a test puts in place by hand to show a backlog: they wait (available only in an hour,
 * so no forwarder picks them up during the run) or are dead letters, and are removed by id.
 */
import type { Db } from '../../db/pool.js';
import { waitUntil } from '../../stack/processes.js';
import { uniqueId } from './resources.js';

export interface ParkedRows {
  ids: number[];
  remove(): Promise<void>;
}

export async function parkInboxRows(db: Db, tenantId: string, options: { count: number; ageSeconds: number; dead?: boolean }): Promise<ParkedRows> {
  const callId = uniqueId('backlog');
  const result = await db.query<{ id: number }>(
    `INSERT INTO event_inbox (tenant_id, source, workflow_id, event_id, workflow_type, signal_name, task_queue, payload, received_at, available_at, attempts, last_error, dead_at)
     SELECT $1, 'pbx', 'call:' || $1 || ':pbx:' || $2, $2 || '-' || n, 'callWorkflow', 'callEvents', 'calls-backlog-test', '{}'::jsonb,
            now() - make_interval(secs => $3), now() + interval '1 hour', $5, CASE WHEN $4 THEN 'refused (test)' END, CASE WHEN $4 THEN now() END
       FROM generate_series(1, $6::int) AS n
     RETURNING id`,
    [tenantId, callId, options.ageSeconds, options.dead === true, options.dead === true ? 5 : 0, options.count],
  );
  const ids = result.rows.map((row) => row.id);
  return {
    ids,
    async remove() {
      await db.query('DELETE FROM event_inbox WHERE id = ANY($1::bigint[])', [ids]);
    },
  };
}

/** The tenant's rows in the inbox, waiting or dead (a test waits for its own webhooks' rows to be forwarded). */
export async function inboxRowsOf(db: Db, tenantId: string): Promise<number> {
  const result = await db.query<{ count: number }>('SELECT count(*)::int AS count FROM event_inbox WHERE tenant_id = $1', [tenantId]);
  return result.rows[0]?.count ?? 0;
}

/** Waits until nothing waits in the inbox (the tenant's, or anyone's): acknowledged events have reached Temporal. */
export async function waitForEmptyInbox(db: Db, tenantId?: string, timeoutMs = 60_000): Promise<void> {
  const query = tenantId === undefined ? 'SELECT 1 FROM event_inbox WHERE dead_at IS NULL LIMIT 1' : 'SELECT 1 FROM event_inbox WHERE tenant_id = $1 AND dead_at IS NULL LIMIT 1';
  const params = tenantId === undefined ? [] : [tenantId];
  await waitUntil(async () => ((await db.query(query, params)).rowCount ?? 0) === 0, timeoutMs, 'the inbox did not drain');
}
