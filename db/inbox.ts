/**
 * The event inbox: every accepted webhook event is committed here before the answer, and the
 * forwarder moves it into Temporal. One row per event, unique per tenant, workflow and event id.
 */
import type { Db } from './pool.js';

/** LISTEN/NOTIFY channel that wakes forwarders in other processes. */
export const inboxChannel = 'switchboard_inbox';

export interface NewInboxEvent {
  tenantId: string;
  source: string;
  workflowId: string;
  eventId: string;
  workflowType: string;
  signalName: string;
  taskQueue: string;
  /** The delivery with this one event, as JSON. */
  payload: string;
}

/** The key a row is unique by: one event of one workflow of one tenant. */
export const inboxKeyOf = (event: Pick<NewInboxEvent, 'tenantId' | 'workflowId' | 'eventId'>): string => `${event.tenantId}\u0000${event.workflowId}\u0000${event.eventId}`;

/**
 * One statement, so one short transaction, whatever the number of rows. Returns the keys of the
 * rows that were new (`inboxKeyOf`; the rest were already waiting: a duplicate delivery) and the
 * transaction that wrote them, so a reading of the backlog can tell whether it saw them. Rows are
 * numbered in the order given, which is the order the forwarder sends each workflow's events in.
 */
export async function insertInboxEvents(
  db: Pick<Db, 'query'>,
  events: readonly NewInboxEvent[],
  options: { notify?: boolean } = {},
): Promise<{ insertedKeys: Set<string>; transactionId: string }> {
  // With `notify`, the forwarders' wake-up rides in the same statement (sent when it commits, and
  // only if a row went in): one round trip fewer on the answer's path than a NOTIFY of its own.
  const result = await db.query<{ tenant_id: string; workflow_id: string; event_id: string; transaction_id: string }>(
    `WITH inserted AS (
       INSERT INTO event_inbox (tenant_id, source, workflow_id, event_id, workflow_type, signal_name, task_queue, payload)
       SELECT t, s, w, e, wt, sn, tq, p
         FROM ROWS FROM (jsonb_to_recordset($1::jsonb) AS (t text, s text, w text, e text, wt text, sn text, tq text, p jsonb)) WITH ORDINALITY AS given(t, s, w, e, wt, sn, tq, p, n)
        ORDER BY n
       ON CONFLICT (tenant_id, workflow_id, event_id) DO NOTHING
       RETURNING tenant_id, workflow_id, event_id
     )
     SELECT tenant_id, workflow_id, event_id, pg_current_xact_id()::text AS transaction_id,
            (SELECT count(*) FROM (SELECT pg_notify('${inboxChannel}', '') WHERE $2::boolean) AS woken) AS notified
       FROM inserted`,
    [inboxRowsAsJson(events), options.notify === true],
  );
  return {
    insertedKeys: new Set(result.rows.map((row) => inboxKeyOf({ tenantId: row.tenant_id, workflowId: row.workflow_id, eventId: row.event_id }))),
    transactionId: result.rows[0]?.transaction_id ?? '0',
  };
}

/**
 * The rows as one JSON array, each payload spliced in as the JSON it already is. (Eight array
 * parameters made pg escape every payload character by character, on the answer's path.)
 */
function inboxRowsAsJson(events: readonly NewInboxEvent[]): string {
  const text = JSON.stringify;
  return `[${events.map((event) => `{"t":${text(event.tenantId)},"s":${text(event.source)},"w":${text(event.workflowId)},"e":${text(event.eventId)},"wt":${text(event.workflowType)},"sn":${text(event.signalName)},"tq":${text(event.taskQueue)},"p":${event.payload}}`).join(',')}]`;
}

export async function notifyInbox(db: Db): Promise<void> {
  await db.query(`SELECT pg_notify('${inboxChannel}', '')`);
}

export interface InboxBacklog {
  pending: number;
  oldestAgeSeconds: number;
  deadLetters: number;
}

export interface InboxCount extends InboxBacklog {
  /** The snapshot the count was taken in (`pg_current_snapshot()`): which commits it saw. */
  snapshot: string;
}

/** The backlog as operators see it (dashboard, readiness). */
export async function inboxBacklog(db: Db, tenantId?: string): Promise<InboxBacklog> {
  const { pending, oldestAgeSeconds, deadLetters } = await countInbox(db, tenantId);
  return { pending, oldestAgeSeconds, deadLetters };
}

/** The backlog with the snapshot it was counted in (for the admission bound). */
export async function countInbox(db: Db, tenantId?: string): Promise<InboxCount> {
  const result = await db.query<{ pending: number; oldest: number; dead: number; snapshot: string }>(
    `SELECT pg_current_snapshot()::text AS snapshot,
            count(*) FILTER (WHERE dead_at IS NULL)::int AS pending,
            COALESCE(EXTRACT(EPOCH FROM now() - min(received_at) FILTER (WHERE dead_at IS NULL)), 0)::float AS oldest,
            count(*) FILTER (WHERE dead_at IS NOT NULL)::int AS dead
       FROM event_inbox ${tenantId === undefined ? '' : 'WHERE tenant_id = $1'}`,
    tenantId === undefined ? [] : [tenantId],
  );
  const row = result.rows[0];
  return { pending: row?.pending ?? 0, snapshot: row?.snapshot ?? '0:0:', oldestAgeSeconds: Math.max(0, row?.oldest ?? 0), deadLetters: row?.dead ?? 0 };
}

export interface ClaimedHead {
  id: number;
  workflowId: string;
}

/**
 * Leases the oldest waiting row of up to `limit` workflows whose head no one holds. Only a
 * workflow's head can be claimed, so two forwarders never send one workflow's events side by side
 * or out of order; SKIP LOCKED lets concurrent claims pass each other; the statement is its own
 * short transaction (no xmin held while Temporal is called).
 */
export async function claimInboxHeads(db: Db, options: { limit: number; leaseSeconds: number; owner: string }): Promise<ClaimedHead[]> {
  const result = await db.query<{ id: number; workflow_id: string }>(
    `WITH heads AS (
       SELECT id FROM event_inbox candidate
        WHERE dead_at IS NULL AND available_at <= now() AND (lease_until IS NULL OR lease_until < now())
          AND NOT EXISTS (SELECT 1 FROM event_inbox earlier
                           WHERE earlier.workflow_id = candidate.workflow_id AND earlier.id < candidate.id AND earlier.dead_at IS NULL)
        ORDER BY id
        LIMIT $1
        FOR UPDATE SKIP LOCKED)
     UPDATE event_inbox SET lease_until = now() + make_interval(secs => $2), lease_owner = $3, attempts = attempts + 1
      WHERE id IN (SELECT id FROM heads)
     RETURNING id, workflow_id`,
    [options.limit, options.leaseSeconds, options.owner],
  );
  return result.rows.map((row) => ({ id: row.id, workflowId: row.workflow_id })).sort((a, b) => a.id - b.id);
}

export interface InboxRow<Payload> {
  id: number;
  payload: Payload;
  refusals: number;
  receivedAt: Date;
}

/** A claimed workflow's waiting rows, its head first. */
export async function waitingRowsOf<Payload>(db: Db, workflowId: string, fromId: number, limit: number): Promise<Array<InboxRow<Payload>>> {
  const result = await db.query<{ id: number; payload: Payload; refusals: number; received_at: Date }>(
    `SELECT id, payload, refusals, received_at FROM event_inbox
      WHERE workflow_id = $1 AND id >= $2 AND dead_at IS NULL ORDER BY id LIMIT $3`,
    [workflowId, fromId, limit],
  );
  return result.rows.map((row) => ({ id: row.id, payload: row.payload, refusals: row.refusals, receivedAt: row.received_at }));
}

export async function deleteInboxRows(db: Db, ids: readonly number[]): Promise<void> {
  await db.query('DELETE FROM event_inbox WHERE id = ANY($1::bigint[])', [ids]);
}

/** Gives the head back for a later try: its workflow's events wait behind it, in order. */
export async function postponeInboxRow(db: Db, id: number, options: { delayMs: number; error: string; refused: boolean }): Promise<{ refusals: number }> {
  const result = await db.query<{ refusals: number }>(
    `UPDATE event_inbox SET lease_until = NULL, lease_owner = NULL, last_error = $2,
            available_at = now() + make_interval(secs => $3 / 1000.0), refusals = refusals + $4
      WHERE id = $1 RETURNING refusals`,
    [id, options.error, options.delayMs, options.refused ? 1 : 0],
  );
  return { refusals: result.rows[0]?.refusals ?? 0 };
}

/** Temporal refused it for good: set aside, so the events behind it flow. */
export async function deadLetterInboxRow(db: Db, id: number, reason: string): Promise<void> {
  await db.query('UPDATE event_inbox SET dead_at = now(), lease_until = NULL, lease_owner = NULL, last_error = $2 WHERE id = $1', [id, reason]);
}

export interface DeadLetter {
  id: number;
  source: string;
  workflowId: string;
  eventId: string;
  attempts: number;
  reason: string;
  receivedAt: Date;
  deadAt: Date;
}

export async function listDeadLetters(db: Db, tenantId: string, limit = 100): Promise<DeadLetter[]> {
  const result = await db.query<{ id: number; source: string; workflow_id: string; event_id: string; attempts: number; last_error: string | null; received_at: Date; dead_at: Date }>(
    `SELECT id, source, workflow_id, event_id, attempts, last_error, received_at, dead_at FROM event_inbox
      WHERE tenant_id = $1 AND dead_at IS NOT NULL ORDER BY id LIMIT $2`,
    [tenantId, limit],
  );
  return result.rows.map((row) => ({
    id: row.id,
    source: row.source,
    workflowId: row.workflow_id,
    eventId: row.event_id,
    attempts: row.attempts,
    reason: row.last_error ?? '',
    receivedAt: row.received_at,
    deadAt: row.dead_at,
  }));
}

/** Puts dead letters back in line (after the cause was fixed). Returns how many. */
export async function requeueDeadLetters(db: Db, tenantId: string, ids: readonly number[] | 'all'): Promise<number> {
  const result = await db.query(
    `UPDATE event_inbox SET dead_at = NULL, refusals = 0, available_at = now(), lease_until = NULL, lease_owner = NULL
      WHERE tenant_id = $1 AND dead_at IS NOT NULL ${ids === 'all' ? '' : 'AND id = ANY($2::bigint[])'}`,
    ids === 'all' ? [tenantId] : [tenantId, ids],
  );
  return result.rowCount ?? 0;
}
