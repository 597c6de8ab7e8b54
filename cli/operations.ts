/**
 * What the ops CLI does, apart from argument parsing: list stuck work, re-drive a call's CRM sync,
 * and read a lead's timeline. (Replays go through the ingestion layer: ingestion/replay.ts.)
 */
import { inboxBacklog } from '../db/inbox.js';
import type { InboxBacklog } from '../db/inbox.js';
import { callDelivery } from '../ingestion/call-delivery.js';
import type { HandOff } from '../ingestion/intake.js';
import type { AppConfig } from '../config/load.js';
import { leadTimeline } from '../db/leads.js';
import type { TimelineRow } from '../db/leads.js';
import type { Db } from '../db/pool.js';
import { parseCallId } from '../shared/calls.js';

export interface StuckWork {
  enrichmentPending: Array<{ callId: string; since: string }>;
  crmSyncFailed: Array<{ callId: string; state: string; since: string; error?: string }>;
  sendsFailed: Array<{ leadId: string | null; messageId: string; errorCode: number | null; at: string }>;
  inbox: InboxBacklog;
}

/** Calls whose enrichment is pending longer than `olderThanMinutes`, failed or stuck CRM syncs, failed sends. */
export async function stuckWork(db: Db, tenantId: string, olderThanMinutes: number): Promise<StuckWork> {
  const cutoff = `${olderThanMinutes} minutes`;
  const [enrichment, crm, sends, inbox] = await Promise.all([
    db.query<{ call_id: string; updated_at: Date }>(
      `SELECT call_id, updated_at FROM calls WHERE tenant_id = $1 AND enrichment_state = 'pending' AND created_at < now() - $2::interval ORDER BY created_at`,
      [tenantId, cutoff],
    ),
    db.query<{ call_id: string; crm_sync_state: string; updated_at: Date; error: string | null }>(
      `SELECT call_id, crm_sync_state, updated_at, crm ->> 'error' AS error FROM calls
        WHERE tenant_id = $1 AND (crm_sync_state = 'failed' OR (crm_sync_state = 'pending' AND updated_at < now() - $2::interval)) ORDER BY updated_at`,
      [tenantId, cutoff],
    ),
    db.query<{ lead_id: string | null; wamid: string; error_code: number | null; updated_at: Date }>(
      `SELECT lead_id, wamid, error_code, updated_at FROM whatsapp_messages WHERE tenant_id = $1 AND status = 'failed' ORDER BY updated_at DESC LIMIT 200`,
      [tenantId],
    ),
    inboxBacklog(db, tenantId),
  ]);
  return {
    enrichmentPending: enrichment.rows.map((row) => ({ callId: row.call_id, since: row.updated_at.toISOString() })),
    crmSyncFailed: crm.rows.map((row) => ({ callId: row.call_id, state: row.crm_sync_state, since: row.updated_at.toISOString(), ...(row.error ? { error: row.error } : {}) })),
    sendsFailed: sends.rows.map((row) => ({ leadId: row.lead_id, messageId: row.wamid, errorCode: row.error_code, at: row.updated_at.toISOString() })),
    inbox: { ...inbox, oldestAgeSeconds: Math.round(inbox.oldestAgeSeconds) },
  };
}

/** Asks a call's workflow (restarting it from the journal if it ended) to run its CRM sync again. */
export async function redriveCrmSync(deps: { config: AppConfig; handOff: HandOff }, tenantId: string, callId: string, operator: string): Promise<void> {
  const call = parseCallId(callId);
  if (!call) throw new Error('the call id must be <provider>:<provider call id>');
  await deps.handOff(
    callDelivery(deps.config, tenantId, call.provider, call.providerCallId, [
      { eventId: `redrive-crm:${Date.now()}`, type: 'call.redrive_crm', occurredAt: new Date().toISOString(), operator },
    ], 'cli'),
  );
}

export async function timelineOf(db: Db, tenantId: string, leadId: string): Promise<TimelineRow[]> {
  return leadTimeline(db, tenantId, leadId);
}

/** A plain-text table for the terminal. */
export function table(rows: string[][]): string {
  const widths = rows.reduce<number[]>((acc, row) => row.map((cell, index) => Math.max(acc[index] ?? 0, cell.length)), []);
  return rows.map((row) => row.map((cell, index) => cell.padEnd(widths[index] ?? 0)).join('  ').trimEnd()).join('\n');
}
