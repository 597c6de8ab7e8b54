/** The call journal in PostgreSQL: written by the call workflow's activities, read by the API. */
import type { CallEvent, CallSnapshot } from '../shared/calls.js';
import type { Db } from './pool.js';
import { withTransaction } from './pool.js';
import { notifyChange } from './changes.js';
import { recordingInfo } from './recordings.js';

/**
 * Appends the new events (duplicates collapse on the event id) and upserts the call row, in one
 * transaction. The row only changes when the snapshot is newer than what is stored.
 */
export async function recordCall(db: Db, snapshot: CallSnapshot, events: CallEvent[]): Promise<{ applied: boolean }> {
  return withTransaction(db, async (client) => {
    for (const event of events) {
      await client.query(
        `INSERT INTO call_events (tenant_id, call_id, event_id, type, occurred_at, payload)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`,
        [snapshot.tenantId, snapshot.callId, event.eventId, event.type, event.occurredAt, JSON.stringify(event)],
      );
    }
    const s = snapshot;
    const upsert = await client.query(
      `INSERT INTO calls (
         tenant_id, call_id, provider, provider_call_id, workflow_id, version, status, direction, customer_phone, line_phone,
         agent_id, started_at, answered_at, ended_at, wait_seconds, duration_seconds, disposition, end_reason,
         enrichment_state, enrichment, crm_sync_state, crm, recording, transcript, summary, variables, analytics, result,
         actions, satisfaction, resolved, completed_at, snapshot)
       VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22,$23,$24,$25,$26,$27,$28,$29,$30,$31,$32,$33)
       ON CONFLICT (tenant_id, call_id) DO UPDATE SET
         version = EXCLUDED.version, status = EXCLUDED.status, direction = EXCLUDED.direction,
         customer_phone = EXCLUDED.customer_phone, line_phone = EXCLUDED.line_phone, agent_id = EXCLUDED.agent_id,
         started_at = EXCLUDED.started_at, answered_at = EXCLUDED.answered_at, ended_at = EXCLUDED.ended_at,
         wait_seconds = EXCLUDED.wait_seconds, duration_seconds = EXCLUDED.duration_seconds, disposition = EXCLUDED.disposition,
         end_reason = EXCLUDED.end_reason, enrichment_state = EXCLUDED.enrichment_state, enrichment = EXCLUDED.enrichment,
         crm_sync_state = EXCLUDED.crm_sync_state, crm = EXCLUDED.crm, recording = EXCLUDED.recording,
         transcript = EXCLUDED.transcript, summary = EXCLUDED.summary, variables = EXCLUDED.variables,
         analytics = EXCLUDED.analytics, result = EXCLUDED.result, actions = EXCLUDED.actions,
         satisfaction = EXCLUDED.satisfaction, resolved = EXCLUDED.resolved, completed_at = EXCLUDED.completed_at,
         snapshot = EXCLUDED.snapshot, updated_at = now()
       WHERE calls.version < EXCLUDED.version`,
      [
        s.tenantId, s.callId, s.provider, s.providerCallId, s.workflowId, s.version, s.status, s.direction ?? null,
        // Never null, so paging and time filters see every call (a call known only from a result form sorts by arrival).
        s.customerPhone ?? null, s.linePhone ?? null, s.agentId ?? null, s.startedAt ?? s.answeredAt ?? s.endedAt ?? new Date().toISOString(), s.answeredAt ?? null,
        s.endedAt ?? null, s.waitSeconds ?? null, s.durationSeconds ?? null, s.disposition ?? null, s.endReason ?? null,
        s.enrichmentState, json(s.enrichment), s.crmSyncState, JSON.stringify(s.crm), json(s.recording), json(s.transcript),
        s.summary ?? null, json(s.variables), json(s.analytics), json(s.result), JSON.stringify(s.actions),
        s.analytics?.satisfaction ?? null, resolvedOf(s), s.completedAt ?? null, JSON.stringify(s),
      ],
    );
    if (upsert.rowCount === 1) await notifyChange(client, { tenant: s.tenantId, kind: 'call', id: s.callId, status: s.status, version: s.version });
    return { applied: upsert.rowCount === 1 };
  });
}

const json = (value: unknown): string | null => (value === undefined ? null : JSON.stringify(value));

function resolvedOf(snapshot: CallSnapshot): boolean | null {
  if (snapshot.analytics?.resolved !== undefined) return snapshot.analytics.resolved;
  if (snapshot.result?.outcome === 'resolved') return true;
  if (snapshot.result?.outcome === 'unresolved') return false;
  return null;
}

export async function loadCall(db: Db, tenantId: string, callId: string): Promise<CallSnapshot | undefined> {
  const result = await db.query<{ snapshot: CallSnapshot }>('SELECT snapshot FROM calls WHERE tenant_id = $1 AND call_id = $2', [tenantId, callId]);
  return result.rows[0]?.snapshot;
}

export interface CallFilters {
  phone?: string;
  status?: string;
  direction?: string;
  agent?: string;
  disposition?: string;
  from?: string;
  to?: string;
}

export interface CallPageCursor {
  startedAt: string;
  callId: string;
}

export interface CallListItem {
  callId: string;
  provider: string;
  status: string;
  direction: string | null;
  customerPhone: string | null;
  agentId: string | null;
  startedAt: string;
  answeredAt: string | null;
  endedAt: string | null;
  durationSeconds: number | null;
  disposition: string | null;
  enrichmentState: string;
  crmSyncState: string;
}

export interface CallListRow {
  call_id: string;
  provider: string;
  status: string;
  direction: string | null;
  customer_phone: string | null;
  agent_id: string | null;
  started_at: Date;
  answered_at: Date | null;
  ended_at: Date | null;
  duration_seconds: number | null;
  disposition: string | null;
  enrichment_state: string;
  crm_sync_state: string;
}

/** The columns of a call in lists (search, the dashboard), read with toListItem. */
export const listColumns = `call_id, provider, status, direction, customer_phone, agent_id, started_at, answered_at, ended_at,
  duration_seconds, disposition, enrichment_state, crm_sync_state`;

export function toListItem(row: CallListRow): CallListItem {
  return {
    callId: row.call_id,
    provider: row.provider,
    status: row.status,
    direction: row.direction,
    customerPhone: row.customer_phone,
    agentId: row.agent_id,
    startedAt: row.started_at.toISOString(),
    answeredAt: row.answered_at?.toISOString() ?? null,
    endedAt: row.ended_at?.toISOString() ?? null,
    durationSeconds: row.duration_seconds,
    disposition: row.disposition,
    enrichmentState: row.enrichment_state,
    crmSyncState: row.crm_sync_state,
  };
}

/** Newest first, keyset-paged on (started_at, call_id) so pages stay stable while calls arrive. */
export async function listCalls(
  db: Db,
  tenantId: string,
  filters: CallFilters,
  page: { limit: number; after?: CallPageCursor },
): Promise<{ calls: CallListItem[]; next?: CallPageCursor }> {
  const where = ['tenant_id = $1'];
  const values: unknown[] = [tenantId];
  const add = (clause: string, value: unknown): void => {
    values.push(value);
    where.push(clause.replace('?', `$${values.length}`));
  };
  if (filters.phone) add('customer_phone = ?', filters.phone);
  if (filters.status) add('status = ?', filters.status);
  if (filters.direction) add('direction = ?', filters.direction);
  if (filters.agent) add('agent_id = ?', filters.agent);
  if (filters.disposition) add('disposition = ?', filters.disposition);
  if (filters.from) add('started_at >= ?', filters.from);
  if (filters.to) add('started_at < ?', filters.to);
  if (page.after) {
    values.push(page.after.startedAt, page.after.callId);
    where.push(`(started_at, call_id) < ($${values.length - 1}, $${values.length})`);
  }
  values.push(page.limit + 1);
  const result = await db.query<CallListRow>(
    `SELECT ${listColumns} FROM calls WHERE ${where.join(' AND ')} ORDER BY started_at DESC, call_id DESC LIMIT $${values.length}`,
    values,
  );
  const rows = result.rows.slice(0, page.limit).map(toListItem);
  const last = rows[rows.length - 1];
  return { calls: rows, ...(result.rows.length > page.limit && last ? { next: { startedAt: last.startedAt, callId: last.callId } } : {}) };
}

export interface CallDetail {
  call: CallSnapshot & { journal: { version: number; updatedAt: string } };
  events: Array<{ eventId: string; type: string; occurredAt: string; recordedAt: string; payload: unknown }>;
  recording?: { contentType: string; sizeBytes: number };
}

export async function getCallDetail(db: Db, tenantId: string, callId: string): Promise<CallDetail | undefined> {
  const row = await db.query<{ snapshot: CallSnapshot; version: number; updated_at: Date }>(
    'SELECT snapshot, version, updated_at FROM calls WHERE tenant_id = $1 AND call_id = $2',
    [tenantId, callId],
  );
  const found = row.rows[0];
  if (!found) return undefined;
  const events = await db.query<{ event_id: string; type: string; occurred_at: Date; recorded_at: Date; payload: unknown }>(
    'SELECT event_id, type, occurred_at, recorded_at, payload FROM call_events WHERE tenant_id = $1 AND call_id = $2 ORDER BY occurred_at, recorded_at',
    [tenantId, callId],
  );
  const stored = await recordingInfo(db, tenantId, callId);
  return {
    call: { ...found.snapshot, journal: { version: found.version, updatedAt: found.updated_at.toISOString() } },
    events: events.rows.map((event) => ({
      eventId: event.event_id,
      type: event.type,
      occurredAt: event.occurred_at.toISOString(),
      recordedAt: event.recorded_at.toISOString(),
      payload: event.payload,
    })),
    ...(stored ? { recording: stored } : {}),
  };
}
