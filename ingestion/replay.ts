/** Replays a stored refusal through the same ingestion a live request takes (the ops CLI's replay-rejected). */
import { markReplayed } from '../db/rejections.js';
import type { RejectedRow } from '../db/rejections.js';
import { ingestCallResult, ingestCallWebhook, ingestCrmEvent, ingestWhatsApp } from './ingest.js';
import type { IngestDeps } from './ingest.js';
import { Rejection } from './rejections.js';
import { ingestSmsInbound, ingestSmsStatus } from './sms.js';

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
      outcome = `accepted: lead ${result.leadId}`;
    } else if (row.source === 'whatsapp') {
      const result = await ingestWhatsApp(deps, request, ingestOptions);
      outcome = `accepted: ${result.statuses} status(es), ${result.messages} message(s), ${result.unmatched.length} unmatched`;
    } else if (row.source === 'sms-status') {
      const result = await ingestSmsStatus(deps, request, new URL(row.path, 'http://switchboard.invalid').searchParams, ingestOptions);
      outcome = `accepted: ${result.duplicate ? 'duplicate ' : ''}status${result.matched ? '' : ' of no message of ours'}`;
    } else if (row.source === 'sms') {
      const result = await ingestSmsInbound(deps, request, ingestOptions);
      outcome = result.leadId ? `accepted: lead ${result.leadId}${result.optedOut ? ' (opted out)' : ''}` : `accepted: unmatched${result.optedOut ? ' (suppressed)' : ''}`;
    } else if (row.source === 'call-result') {
      if (!options.skipAuthentication) throw new Rejection('missing_token', 'the operator token of a call-result form is never stored: replay it with --skip-signature');
      const callId = decodeURIComponent(/\/calls\/([^/]+)\/result/.exec(row.path)?.[1] ?? '');
      const key = row.headers['idempotency-key'];
      const result = await ingestCallResult(deps, row.tenant_id, callId, row.raw_body, typeof key === 'string' ? key : undefined);
      outcome = `accepted: ${result.callId}`;
    } else {
      const result = await ingestCallWebhook(deps, row.source, request, ingestOptions);
      outcome = `accepted: ${result.callId}, ${result.events} event(s)`;
    }
  } catch (error) {
    if (!(error instanceof Rejection)) throw error;
    outcome = `rejected again: ${error.reason}`;
  }
  await markReplayed(deps.db, row.id, outcome);
  return outcome;
}

