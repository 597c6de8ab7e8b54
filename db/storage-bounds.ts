/**
 * The SQL that keeps stored refusals and dead letters within their bounds: the oldest rows past a
 * quota, and rows past their retention period, are deleted. Each statement deletes at most `batch`
 * rows and returns how many it deleted, so the caller loops in short transactions and counts what
 * went. Concurrent runs in several processes are harmless: a row is deleted, and counted, once.
 */
import type { Db } from './pool.js';

/** Whose rows: one configured tenant's, or everything that belongs to no configured tenant. */
export type StorageScope = { tenantId: string } | { unclaimedBy: readonly string[] };

// A configured tenant's refusals; samples (unknown tenants) and rows of tenants no longer
// configured fall under the unknown-tenant bounds instead.
function rejectionScope(scope: StorageScope): { where: string; value: unknown } {
  return 'tenantId' in scope ? { where: 'tenant_id = $1 AND NOT sampled', value: scope.tenantId } : { where: '(sampled OR tenant_id <> ALL($1::text[]))', value: scope.unclaimedBy };
}

function deadLetterScope(scope: StorageScope): { where: string; value: unknown } {
  return 'tenantId' in scope ? { where: 'tenant_id = $1', value: scope.tenantId } : { where: 'tenant_id <> ALL($1::text[])', value: scope.unclaimedBy };
}

async function countDeleted(db: Db, sql: string, values: unknown[]): Promise<number> {
  const result = await db.query<{ deleted: number }>(sql, values);
  return result.rows[0]?.deleted ?? 0;
}

/** Deletes the oldest refusals past `maxRows` rows or `maxBytes` of stored body (the newest are kept). */
export async function trimRejections(db: Db, scope: StorageScope, quota: { maxRows: number; maxBytes: number }, batch: number): Promise<number> {
  const { where, value } = rejectionScope(scope);
  return countDeleted(
    db,
    `WITH ranked AS (
       SELECT id, row_number() OVER newest AS n, sum(octet_length(raw_body)) OVER newest AS bytes
         FROM rejected_events WHERE ${where}
       WINDOW newest AS (ORDER BY id DESC)),
     gone AS (
       DELETE FROM rejected_events WHERE id IN (SELECT id FROM ranked WHERE n > $2 OR bytes > $3 LIMIT $4) RETURNING 1)
     SELECT count(*)::int AS deleted FROM gone`,
    [value, quota.maxRows, quota.maxBytes, batch],
  );
}

/** Deletes refusals received before `before`. */
export async function expireRejections(db: Db, scope: StorageScope, before: Date, batch: number): Promise<number> {
  const { where, value } = rejectionScope(scope);
  return countDeleted(
    db,
    `WITH gone AS (
       DELETE FROM rejected_events WHERE id IN (SELECT id FROM rejected_events WHERE ${where} AND received_at < $2 LIMIT $3) RETURNING 1)
     SELECT count(*)::int AS deleted FROM gone`,
    [value, before, batch],
  );
}

/** Deletes the oldest dead letters past `maxRows` (by when they became dead letters). */
export async function trimDeadLetters(db: Db, scope: StorageScope, maxRows: number, batch: number): Promise<number> {
  const { where, value } = deadLetterScope(scope);
  return countDeleted(
    db,
    `WITH ranked AS (
       SELECT id, row_number() OVER (ORDER BY dead_at DESC, id DESC) AS n
         FROM event_inbox WHERE ${where} AND dead_at IS NOT NULL),
     gone AS (
       DELETE FROM event_inbox WHERE id IN (SELECT id FROM ranked WHERE n > $2 LIMIT $3) AND dead_at IS NOT NULL RETURNING 1)
     SELECT count(*)::int AS deleted FROM gone`,
    [value, maxRows, batch],
  );
}

/** Deletes dead letters that became dead letters before `before` (a requeued row is no longer one). */
export async function expireDeadLetters(db: Db, scope: StorageScope, before: Date, batch: number): Promise<number> {
  const { where, value } = deadLetterScope(scope);
  return countDeleted(
    db,
    `WITH gone AS (
       DELETE FROM event_inbox WHERE id IN (SELECT id FROM event_inbox WHERE ${where} AND dead_at < $2 LIMIT $3) AND dead_at IS NOT NULL RETURNING 1)
     SELECT count(*)::int AS deleted FROM gone`,
    [value, before, batch],
  );
}
