/** Stored refusals: every request the webhook API refused or could not process, for inspection and replay. */
import type { Db } from './pool.js';

export interface NewRejectedEvent {
  tenantId: string;
  source: string;
  reason: string;
  detail: unknown;
  httpStatus: number;
  method: string;
  path: string;
  headers: Record<string, unknown>;
  contentType: string | null;
  rawBody: Buffer;
  /** Size of the body as received (`rawBody` of a sample is cut short). */
  bodyBytes: number;
  /** A sample of a request for a tenant that is not configured: never listed for replay. */
  sampled: boolean;
}

export async function insertRejectedEvent(db: Db, event: NewRejectedEvent): Promise<void> {
  await db.query(
    `INSERT INTO rejected_events (tenant_id, source, reason, detail, http_status, method, path, headers, content_type, raw_body, body_bytes, sampled)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
    [event.tenantId, event.source, event.reason, JSON.stringify(event.detail), event.httpStatus, event.method, event.path, JSON.stringify(event.headers), event.contentType, event.rawBody, event.bodyBytes, event.sampled],
  );
}

export interface RejectedRow {
  id: number;
  tenant_id: string;
  source: string;
  reason: string;
  http_status: number;
  path: string;
  headers: Record<string, string | string[]>;
  raw_body: Buffer;
  received_at: Date;
  replayed_at: Date | null;
  replay_result: string | null;
}

export async function listRejected(db: Db, filter: { tenantId: string; reason?: string; id?: number; since?: string; includeReplayed?: boolean; limit?: number }): Promise<RejectedRow[]> {
  // Samples (unknown tenants) are truncated: never offered for replay.
  const where = ['tenant_id = $1', 'NOT sampled'];
  const values: unknown[] = [filter.tenantId];
  const add = (clause: string, value: unknown): void => {
    values.push(value);
    where.push(clause.replace('?', `$${values.length}`));
  };
  if (filter.id !== undefined) add('id = ?', filter.id);
  if (filter.reason) add('reason = ?', filter.reason);
  if (filter.since) add('received_at >= ?', filter.since);
  if (!filter.includeReplayed && filter.id === undefined) where.push('replayed_at IS NULL');
  values.push(filter.limit ?? 500);
  const result = await db.query<RejectedRow>(
    `SELECT id, tenant_id, source, reason, http_status, path, headers, raw_body, received_at, replayed_at, replay_result
       FROM rejected_events WHERE ${where.join(' AND ')} ORDER BY id LIMIT $${values.length}`,
    values,
  );
  return result.rows;
}

export async function markReplayed(db: Db, id: number, outcome: string): Promise<void> {
  await db.query('UPDATE rejected_events SET replayed_at = now(), replay_result = $2 WHERE id = $1', [id, outcome]);
}
