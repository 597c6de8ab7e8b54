/**
 * Twilio Messaging webhooks, apart from HTTP: status callbacks of the SMS fallback (ledger and
 * timeline, deduplicated per message and status) and inbound messages (a reply, or an opt-out
 * keyword that suppresses the number and opts the lead out). Every failure is a Rejection.
 */
import { appendTimeline, findLeadIdByPhone, suppress } from '../db/leads.js';
import { recordSmsStatus } from '../db/sms.js';
import type { LeadEvent, TimelineEntry } from '../shared/leads.js';
import type { HandOffResult } from './intake.js';
import type { IngestDeps, IngestOptions } from './ingest.js';
import { leadDelivery } from './lead-delivery.js';
import { authenticateTwilioSms, isSmsOptOut, parseTwilioInbound, parseTwilioMessageStatus } from './providers/twilio-sms.js';
import { readForm } from './providers/twilio.js';
import type { ProviderRequest } from './providers/types.js';
import { refuseUnstorable } from './rejections.js';

/** Which statuses show on the timeline: the send itself is the workflow's own `sent` entry. */
const smsTimelineKind: Partial<Record<string, TimelineEntry['kind']>> = { delivered: 'delivered', read: 'read', undelivered: 'failed', failed: 'failed' };

export interface SmsStatusResult {
  duplicate: boolean;
  /** Whether the message is one of ours (sent under a ledger key). */
  matched: boolean;
}

const leadOfKey = (effectKey: string): string | undefined => /^wa:([^:]+):/.exec(effectKey)?.[1];

export async function ingestSmsStatus(deps: IngestDeps, request: ProviderRequest, query: URLSearchParams, options: IngestOptions = {}): Promise<SmsStatusResult> {
  const form = options.skipAuthentication ? readForm(request) : authenticateTwilioSms(request);
  const { callback, effectKey } = parseTwilioMessageStatus(form, query);
  refuseUnstorable(callback);
  const tenantId = request.tenantId;
  const errorCode = callback.ErrorCode === undefined ? undefined : Number(callback.ErrorCode);
  const leadId = effectKey ? leadOfKey(effectKey) : undefined;
  const recorded = await recordSmsStatus(deps.db, {
    tenantId,
    sid: callback.MessageSid,
    status: callback.MessageStatus,
    ...(effectKey ? { effectKey } : {}),
    ...(leadId ? { leadId } : {}),
    ...(errorCode !== undefined ? { errorCode } : {}),
  });
  const kind = smsTimelineKind[callback.MessageStatus];
  if (recorded.fresh && recorded.leadId && kind) {
    const step = recorded.effectKey?.replace(/^wa:[^:]*:/, '');
    // Twilio's callbacks carry no time of their own: the status happened no later than it arrived.
    await appendTimeline(
      deps.db,
      tenantId,
      recorded.leadId,
      [
        {
          entryKey: `status:${callback.MessageSid}:${callback.MessageStatus}`,
          at: request.receivedAt,
          kind,
          cause: `SMS status ${callback.MessageStatus}${errorCode !== undefined ? ` (error ${errorCode})` : ''}`,
          detail: { messageId: callback.MessageSid, channel: 'sms', ...(step ? { key: step } : {}), ...(errorCode !== undefined ? { errorCode } : {}) },
        },
      ],
      true,
    );
  }
  return { duplicate: !recorded.fresh, matched: recorded.effectKey !== undefined };
}

export interface SmsInboundResult {
  /** The lead the message is from, if a lead has the number. */
  leadId?: string;
  optedOut: boolean;
  handedOff?: HandOffResult;
}

export async function ingestSmsInbound(deps: IngestDeps, request: ProviderRequest, options: IngestOptions = {}): Promise<SmsInboundResult> {
  const form = options.skipAuthentication ? readForm(request) : authenticateTwilioSms(request);
  const { message, from } = parseTwilioInbound(form, request);
  refuseUnstorable(message);
  const tenantId = request.tenantId;
  const optedOut = isSmsOptOut(message);
  // Suppressed at once, lead or not: the send activities check it themselves before every message.
  if (optedOut) await suppress(deps.db, tenantId, from, 'replied STOP by SMS');
  const leadId = await findLeadIdByPhone(deps.db, tenantId, from);
  if (!leadId) return { optedOut };
  const occurredAt = request.receivedAt;
  // One event per Twilio message: a redelivered webhook is the same event (the inbox and the workflow drop it).
  const event: LeadEvent = optedOut
    ? { eventId: `sms:${message.MessageSid}`, type: 'lead.opted_out', occurredAt, reason: 'replied STOP by SMS' }
    : { eventId: `sms:${message.MessageSid}`, type: 'sms.reply', occurredAt, messageId: message.MessageSid };
  const handedOff = await deps.handOff(leadDelivery(deps.config, tenantId, leadId, [event], 'sms'));
  return { leadId, optedOut, handedOff };
}
