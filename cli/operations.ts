/**
 * What the ops CLI does, apart from argument parsing: replay stored rejections and the inbox, list
 * stuck work, re-drive a call's CRM sync, and read a lead's timeline.
 */
import { callDelivery } from '../ingestion/call-delivery.js';
import type { HandOff } from '../ingestion/handoff.js';
import { ingestCallResult, ingestCallWebhook, ingestCrmEvent, ingestWhatsApp } from '../ingestion/ingest.js';
import type { IngestDeps } from '../ingestion/ingest.js';
import { Rejection } from '../ingestion/rejections.js';
import type { AppConfig } from '../config/load.js';
import { leadTimeline } from '../db/leads.js';
import type { TimelineRow } from '../db/leads.js';
import type { Db } from '../db/pool.js';
import { parseCallId } from '../shared/calls.js';

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
  const where = ['tenant_id = $1'];
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

/**
 * Processes a stored rejection again, exactly as the route would have: same body, same headers.
 * The signature is checked against the time the request arrived (not now), unless the operator
 * vouches for it with `skipAuthentication` (needed, e.g., after a secret was rotated, or for the
 * call-result form whose operator token is never stored).
 */
export async function replayRejected(deps: IngestDeps, row: RejectedRow, options: { skipAuthentication: boolean }): Promise<string> {
  const tenant = deps.config.tenants[row.tenant_id];
  let outcome: string;
  try {
    if (!tenant) throw new Rejection('unknown_tenant', `no tenant "${row.tenant_id}"`);
    const request = {
      tenantId: row.tenant_id,
      tenant,
      rawBody: row.raw_body,
      headers: row.headers,
      signedUrls: [`${deps.config.api.publicUrl.replace(/\/$/, '')}${row.path}`],
      nowSeconds: Math.floor(row.received_at.getTime() / 1000),
      receivedAt: row.received_at.toISOString(),
    };
    const ingestOptions = { skipAuthentication: options.skipAuthentication };
    if (row.source === 'crm') {
      const result = await ingestCrmEvent(deps, request, ingestOptions);
      outcome = `accepted: lead ${result.leadId}${result.handedOff.via === 'inbox' ? ' (queued)' : ''}`;
    } else if (row.source === 'whatsapp') {
      const result = await ingestWhatsApp(deps, request, ingestOptions);
      outcome = `accepted: ${result.statuses} status(es), ${result.messages} message(s), ${result.unmatched.length} unmatched`;
    } else if (row.source === 'call-result') {
      if (!options.skipAuthentication) throw new Rejection('missing_token', 'the operator token of a call-result form is never stored: replay it with --skip-signature');
      const callId = decodeURIComponent(/\/calls\/([^/]+)\/result/.exec(row.path)?.[1] ?? '');
      const key = row.headers['idempotency-key'];
      const result = await ingestCallResult(deps, row.tenant_id, callId, row.raw_body, typeof key === 'string' ? key : undefined);
      outcome = `accepted: ${result.callId}`;
    } else {
      const result = await ingestCallWebhook(deps, row.source, request, ingestOptions);
      outcome = `accepted: ${result.callId}, ${result.events} event(s)${result.handedOff?.via === 'inbox' ? ' (queued)' : ''}`;
    }
  } catch (error) {
    if (!(error instanceof Rejection)) throw error;
    outcome = `rejected again: ${error.reason}`;
  }
  await deps.db.query('UPDATE rejected_events SET replayed_at = now(), replay_result = $2 WHERE id = $1', [row.id, outcome]);
  return outcome;
}

export interface StuckWork {
  enrichmentPending: Array<{ callId: string; since: string }>;
  crmSyncFailed: Array<{ callId: string; state: string; since: string; error?: string }>;
  sendsFailed: Array<{ leadId: string | null; messageId: string; errorCode: number | null; at: string }>;
  inbox: { pending: number; oldestAgeSeconds: number };
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
    db.query<{ pending: number; oldest: number | null }>(
      `SELECT count(*)::int AS pending, EXTRACT(EPOCH FROM now() - min(received_at))::float AS oldest FROM event_inbox WHERE tenant_id = $1 AND forwarded_at IS NULL`,
      [tenantId],
    ),
  ]);
  return {
    enrichmentPending: enrichment.rows.map((row) => ({ callId: row.call_id, since: row.updated_at.toISOString() })),
    crmSyncFailed: crm.rows.map((row) => ({ callId: row.call_id, state: row.crm_sync_state, since: row.updated_at.toISOString(), ...(row.error ? { error: row.error } : {}) })),
    sendsFailed: sends.rows.map((row) => ({ leadId: row.lead_id, messageId: row.wamid, errorCode: row.error_code, at: row.updated_at.toISOString() })),
    inbox: { pending: inbox.rows[0]?.pending ?? 0, oldestAgeSeconds: Math.round(inbox.rows[0]?.oldest ?? 0) },
  };
}

/** Asks a call's workflow (restarting it from the journal if it ended) to run its CRM sync again. */
export async function redriveCrmSync(deps: { config: AppConfig; handOff: HandOff }, tenantId: string, callId: string, operator: string): Promise<void> {
  const call = parseCallId(callId);
  if (!call) throw new Error('the call id must be <provider>:<provider call id>');
  await deps.handOff(
    callDelivery(deps.config, tenantId, call.provider, call.providerCallId, [
      { eventId: `redrive-crm:${Date.now()}`, type: 'call.redrive_crm', occurredAt: new Date().toISOString(), operator },
    ]),
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
