/**
 * What each kind of inbound event means, apart from HTTP: authenticate, validate, normalize, hand
 * off. The routes call these with live requests; the ops CLI replays stored rejections with them.
 * Every failure is a Rejection (a 4xx with a reason).
 */
import { createHash } from 'node:crypto';
import type { AppConfig } from '../config/load.js';
import { appendTimeline, findLeadIdByPhone, suppress } from '../db/leads.js';
import type { Db } from '../db/pool.js';
import { effectHasLiveMessage, recordStatus } from '../db/whatsapp.js';
import type { Logger } from '../observability/logger.js';
import { isOptOutText } from '../shared/lead-plan.js';
import type { LeadEvent } from '../shared/leads.js';
import { decideWhatsAppError } from '../shared/whatsapp-errors.js';
import type { WhatsAppErrorDecision } from '../shared/whatsapp-errors.js';
import { callEventSchema, callIdOf, callProviders, callResultSchema, parseCallId } from '../shared/calls.js';
import type { CallEvent, CallProvider } from '../shared/calls.js';
import { callDelivery } from './call-delivery.js';
import type { HandOff, HandOffResult } from './intake.js';
import { leadDelivery } from './lead-delivery.js';
import { parseCrmEvent } from './providers/crm-events.js';
import { callProviderAdapters } from './providers/index.js';
import { authenticateSwitchboardSignature } from './providers/pbx.js';
import type { ProviderRequest } from './providers/types.js';
import { authenticateWhatsApp, inboundText, parseWhatsAppWebhook, whatsappFailedEvent } from './providers/whatsapp-webhook.js';
import { Rejection, fieldErrors, refuseUnstorable } from './rejections.js';

export interface IngestDeps {
  config: AppConfig;
  db: Db;
  logger: Logger;
  handOff: HandOff;
}

export interface IngestOptions {
  /** Replays an operator vouches for skip the signature check. */
  skipAuthentication?: boolean;
}

export async function ingestCallWebhook(
  deps: IngestDeps,
  providerName: string,
  request: ProviderRequest,
  options: IngestOptions = {},
): Promise<{ callId: string; events: number; handedOff?: HandOffResult }> {
  if (!(callProviders as readonly string[]).includes(providerName)) {
    throw new Rejection('unknown_provider', `no webhook "${providerName.slice(0, 50)}"`, { known: callProviders });
  }
  const provider = providerName as CallProvider;
  const adapter = callProviderAdapters[provider];
  if (!options.skipAuthentication) adapter.authenticate(request);
  const delivery = adapter.parse(request);
  // The adapter's output must be a valid canonical event (e.g. transcript limits).
  for (const event of delivery.events) {
    const check = callEventSchema.safeParse(event);
    if (!check.success) throw new Rejection('invalid_payload', 'the event exceeds what Switchboard accepts', { fields: fieldErrors(check.error.issues) });
  }
  refuseUnstorable(delivery);
  const callId = callIdOf(provider, delivery.providerCallId);
  if (delivery.events.length === 0) return { callId, events: 0 };
  const handedOff = await deps.handOff(callDelivery(deps.config, request.tenantId, provider, delivery.providerCallId, delivery.events));
  return { callId, events: delivery.events.length, handedOff };
}

export async function ingestCallResult(
  deps: IngestDeps,
  tenantId: string,
  callIdParam: string,
  rawBody: Buffer,
  idempotencyKey: string | undefined,
  /** Who submitted it, from their credential (a stored request replayed later keeps what it said). */
  submittedBy?: string,
): Promise<{ callId: string; handedOff: HandOffResult }> {
  const call = parseCallId(callIdParam);
  if (!call) throw new Rejection('invalid_call_id', 'callId must be <provider>:<provider call id>, e.g. pbx:abc123', { providers: callProviders });
  let body: unknown;
  try {
    body = JSON.parse(rawBody.toString('utf8'));
  } catch {
    throw new Rejection('malformed_json', 'the body is not valid JSON');
  }
  const parsed = callResultSchema.safeParse(body);
  if (!parsed.success) throw new Rejection('invalid_payload', 'the call result does not match the schema', { fields: fieldErrors(parsed.error.issues) });
  refuseUnstorable(parsed.data);
  // Re-posting the same form (or a retry with the same Idempotency-Key) is one event.
  const event: CallEvent = {
    eventId: `result:${idempotencyKey ?? createHash('sha256').update(rawBody).digest('hex').slice(0, 32)}`,
    type: 'call.result',
    occurredAt: new Date().toISOString(),
    result: submittedBy === undefined ? parsed.data : { ...parsed.data, submittedBy },
  };
  const handedOff = await deps.handOff(callDelivery(deps.config, tenantId, call.provider, call.providerCallId, [event], 'call-result'));
  return { callId: callIdParam, handedOff };
}

export async function ingestCrmEvent(deps: IngestDeps, request: ProviderRequest, options: IngestOptions = {}): Promise<{ leadId: string; handedOff: HandOffResult }> {
  if (!options.skipAuthentication) authenticateSwitchboardSignature(request, 'crm');
  const { leadId, event } = parseCrmEvent(request);
  refuseUnstorable({ leadId, event });
  const handedOff = await deps.handOff(leadDelivery(deps.config, request.tenantId, leadId, [event], 'crm'));
  return { leadId, handedOff };
}

const statusTimelineKind = { sent: undefined, delivered: 'delivered', read: 'read', failed: 'failed' } as const;

export interface WhatsAppIngestResult {
  statuses: number;
  duplicates: number;
  messages: number;
  /** Inbound messages from numbers no lead has. */
  unmatched: Array<{ messageId: string }>;
  /** Errors tied to no message (`value.errors`), with what the error table says of each code. */
  errors: Array<{ code: number; action: WhatsAppErrorDecision['action'] }>;
}

/**
 * Statuses: recorded once per message and status (any order; a `read` may come without the
 * `delivered` it implies), into the ledger and the lead's timeline; failures go to the lead's
 * workflow as the same event a refused send makes, unless a throttling failure was superseded by
 * another message under the same effect key. Replies go to the lead's workflow; STOP suppresses
 * the number at once. Errors tied to no message are logged by code.
 */
export async function ingestWhatsApp(deps: IngestDeps, request: ProviderRequest, options: IngestOptions = {}): Promise<WhatsAppIngestResult> {
  if (!options.skipAuthentication) authenticateWhatsApp(request);
  const { statuses, messages, errors } = parseWhatsAppWebhook(request);
  refuseUnstorable({ statuses, messages, errors });
  const { db, config } = deps;
  const tenantId = request.tenantId;
  const accountErrors = errors.map((error) => ({ code: error.code, action: decideWhatsAppError(error.code).action }));
  for (const [index, error] of errors.entries()) {
    // Codes and Meta's titles only: they name conditions (rate limits, account state), not people.
    deps.logger.warn({ tenantId, code: error.code, title: error.title?.slice(0, 200), decision: accountErrors[index]?.action }, 'WhatsApp reported an error tied to no message');
  }
  let duplicates = 0;
  for (const { payload: status, sender } of statuses) {
    if (status.status !== 'sent' && status.status !== 'delivered' && status.status !== 'read' && status.status !== 'failed') continue;
    const error = status.errors?.[0];
    const occurredAt = new Date(Number(status.timestamp) * 1000).toISOString();
    const recorded = await recordStatus(db, {
      tenantId,
      wamid: status.id,
      status: status.status,
      occurredAt,
      sender,
      ...(status.biz_opaque_callback_data ? { effectKey: status.biz_opaque_callback_data } : {}),
      ...(error ? { errorCode: error.code, ...(error.title ? { errorTitle: error.title } : {}) } : {}),
      payload: status,
    });
    if (!recorded.fresh) {
      duplicates++;
      continue;
    }
    const kind = statusTimelineKind[status.status];
    if (!recorded.leadId || !kind) continue;
    const step = recorded.effectKey?.replace(/^wa:[^:]*:/, '');
    // A throttled attempt whose retry already went out: on the timeline, but no news for the workflow.
    const superseded =
      status.status === 'failed' &&
      recorded.effectKey !== undefined &&
      error !== undefined &&
      decideWhatsAppError(error.code).action === 'retry' &&
      (await effectHasLiveMessage(db, tenantId, recorded.effectKey, status.id));
    await appendTimeline(
      db,
      tenantId,
      recorded.leadId,
      [
        {
          entryKey: `status:${status.id}:${status.status}`,
          at: occurredAt,
          kind,
          cause: `WhatsApp status ${status.status}${error ? ` (error ${error.code})` : ''}`,
          detail: { messageId: status.id, ...(step ? { key: step } : {}), ...(error ? { errorCode: error.code } : {}), ...(superseded ? { superseded: true } : {}) },
        },
      ],
      true,
    );
    if (status.status === 'failed' && recorded.effectKey && !superseded) {
      const failed = whatsappFailedEvent({
        effectKey: recorded.effectKey,
        messageId: status.id,
        errorCode: error?.code ?? 0,
        ...(error?.title ? { errorTitle: error.title } : {}),
        occurredAt,
      });
      await deps.handOff(leadDelivery(config, tenantId, recorded.leadId, [failed], 'whatsapp'));
    }
  }
  const unmatched: WhatsAppIngestResult['unmatched'] = [];
  for (const { payload: message, sender } of messages) {
    const from = `+${message.from}`;
    const leadId = await findLeadIdByPhone(db, tenantId, from);
    const text = inboundText(message);
    if (isOptOutText(text)) await suppress(db, tenantId, from, 'replied STOP');
    if (!leadId) {
      unmatched.push({ messageId: message.id });
      continue;
    }
    const reply: LeadEvent = { eventId: `wa:${message.id}`, type: 'whatsapp.reply', occurredAt: new Date(Number(message.timestamp) * 1000).toISOString(), messageId: message.id, text, receivedOn: sender };
    await deps.handOff(leadDelivery(config, tenantId, leadId, [reply], 'whatsapp'));
  }
  return { statuses: statuses.length, duplicates, messages: messages.length, unmatched, errors: accountErrors };
}
