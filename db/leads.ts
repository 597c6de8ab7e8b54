/** The lead projection and timeline in PostgreSQL: written by the lead workflow, read by the API. */
import type { LeadState, TimelineEntry } from '../shared/leads.js';
import { inCausalOrder } from '../shared/lead-timeline.js';
import type { CausalEntry } from '../shared/lead-timeline.js';
import type { Db } from './pool.js';
import { withTransaction } from './pool.js';
import { notifyChange } from './changes.js';

const iso = (ms: number | undefined): string | null => (ms === undefined ? null : new Date(ms).toISOString());

export async function recordLead(db: Db, state: LeadState, timeline: TimelineEntry[]): Promise<void> {
  await withTransaction(db, async (client) => {
    const next = state.paused ? undefined : state.planned[0];
    await client.query(
      `INSERT INTO leads (tenant_id, lead_id, workflow_id, version, stage, phone, time_zone, paused, opted_out, next_action_at, next_action,
         last_inbound_at, last_sent_at, meeting, state)
       VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15)
       ON CONFLICT (tenant_id, lead_id) DO UPDATE SET
         workflow_id = EXCLUDED.workflow_id, version = EXCLUDED.version, stage = EXCLUDED.stage, phone = EXCLUDED.phone,
         time_zone = EXCLUDED.time_zone, paused = EXCLUDED.paused, opted_out = EXCLUDED.opted_out,
         next_action_at = EXCLUDED.next_action_at, next_action = EXCLUDED.next_action, last_inbound_at = EXCLUDED.last_inbound_at,
         last_sent_at = EXCLUDED.last_sent_at, meeting = EXCLUDED.meeting, state = EXCLUDED.state, updated_at = now()
       WHERE leads.version < EXCLUDED.version`,
      [
        state.tenantId, state.leadId, state.workflowId, state.version, state.stage, state.profile.phone ?? null, state.timeZone,
        state.paused, state.optedOut, iso(next?.dueAt), next?.key ?? null, iso(state.lastInboundAt), iso(state.lastSentAt),
        state.meeting ? JSON.stringify(state.meeting) : null, JSON.stringify(state),
      ],
    );
    await appendTimeline(client, state.tenantId, state.leadId, timeline);
    await notifyChange(client, { tenant: state.tenantId, kind: 'lead', id: state.leadId, status: state.stage, version: state.version });
    if (state.optedOut && state.profile.phone) {
      await client.query(`INSERT INTO suppressions (tenant_id, phone, reason) VALUES ($1, $2, 'opted_out') ON CONFLICT DO NOTHING`, [state.tenantId, state.profile.phone]);
    }
  });
}

/** Appends timeline entries; an entry key already there is left alone (at-least-once callers). */
export async function appendTimeline(db: Pick<Db, 'query'>, tenantId: string, leadId: string, entries: TimelineEntry[], notify = false): Promise<void> {
  if (notify && entries.length > 0) await notifyChange(db, { tenant: tenantId, kind: 'lead', id: leadId, status: entries[entries.length - 1]?.kind ?? 'timeline' });
  for (const entry of entries) {
    await db.query(
      `INSERT INTO lead_timeline (tenant_id, lead_id, entry_key, at, kind, flow, step, cause, detail)
       VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) ON CONFLICT (tenant_id, lead_id, entry_key) DO NOTHING`,
      [tenantId, leadId, entry.entryKey, entry.at, entry.kind, entry.flow ?? null, entry.step ?? null, entry.cause, JSON.stringify(entry.detail ?? {})],
    );
  }
}

export async function loadLead(db: Db, tenantId: string, leadId: string): Promise<LeadState | undefined> {
  const result = await db.query<{ state: LeadState }>('SELECT state FROM leads WHERE tenant_id = $1 AND lead_id = $2', [tenantId, leadId]);
  return result.rows[0]?.state;
}

export async function findLeadIdByPhone(db: Db, tenantId: string, phone: string): Promise<string | undefined> {
  const result = await db.query<{ lead_id: string }>(
    `SELECT lead_id FROM leads WHERE tenant_id = $1 AND phone = $2 ORDER BY (stage IN ('won', 'lost', 'opted_out')), updated_at DESC LIMIT 1`,
    [tenantId, phone],
  );
  return result.rows[0]?.lead_id;
}

export interface TimelineRow extends TimelineEntry {
  id: number;
  recordedAt: string;
}

/**
 * The lead's timeline in causal order (shared/lead-timeline.ts): a status WhatsApp timed before the
 * send it is about (its times are whole seconds) is shown after it, with its own time as `reportedAt`.
 */
export async function leadTimeline(db: Db, tenantId: string, leadId: string): Promise<Array<CausalEntry<TimelineRow>>> {
  const result = await db.query<{ id: number; entry_key: string; at: Date; kind: TimelineEntry['kind']; flow: TimelineEntry['flow'] | null; step: string | null; cause: string; detail: Record<string, unknown>; recorded_at: Date }>(
    'SELECT id, entry_key, at, kind, flow, step, cause, detail, recorded_at FROM lead_timeline WHERE tenant_id = $1 AND lead_id = $2 ORDER BY at, id',
    [tenantId, leadId],
  );
  const stored = result.rows.map((row) => ({
    id: row.id,
    entryKey: row.entry_key,
    at: row.at.toISOString(),
    kind: row.kind,
    ...(row.flow ? { flow: row.flow } : {}),
    ...(row.step ? { step: row.step } : {}),
    cause: row.cause,
    detail: row.detail,
    recordedAt: row.recorded_at.toISOString(),
  }));
  return inCausalOrder(stored);
}

export async function isSuppressed(db: Db, tenantId: string, phone: string): Promise<boolean> {
  const result = await db.query('SELECT 1 FROM suppressions WHERE tenant_id = $1 AND phone = $2', [tenantId, phone]);
  return (result.rowCount ?? 0) > 0;
}

export async function suppress(db: Db, tenantId: string, phone: string, reason: string): Promise<void> {
  await db.query('INSERT INTO suppressions (tenant_id, phone, reason) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [tenantId, phone, reason]);
}
