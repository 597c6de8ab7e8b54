/**
 * Twilio Messaging webhooks: message status callbacks and inbound messages. Both are form-encoded
 * and signed with X-Twilio-Signature over the full URL (our status URL carries the step's effect
 * key in its query) and the sorted POST parameters, with the account's auth token. Twilio adds
 * parameters without notice, so unknown ones are accepted (and signed over like the rest).
 */
import { z } from 'zod';
import { acceptedSecrets } from '../../security/secrets.js';
import { verifyTwilioSignature } from '../../security/signatures.js';
import { Rejection } from '../rejections.js';
import type { ProviderRequest } from './types.js';
import { header, phone, validate } from './types.js';
import { readForm } from './twilio.js';

/** Message statuses (api/v2010 message `status`). */
export const twilioMessageStatuses = ['accepted', 'scheduled', 'queued', 'sending', 'sent', 'delivered', 'undelivered', 'failed', 'read', 'canceled', 'partially_delivered', 'receiving', 'received'] as const;

const messageSid = z.string().regex(/^(SM|MM)[0-9a-fA-F]{32}$/, 'must be a Twilio message SID: SM or MM and 32 hex digits');
const accountSid = z.string().regex(/^AC[0-9a-fA-F]{32}$/, 'must be a Twilio Account SID');

export const twilioMessageStatusSchema = z.looseObject({
  MessageSid: messageSid,
  MessageStatus: z.enum(twilioMessageStatuses),
  AccountSid: accountSid,
  SmsSid: z.string().max(64).optional(),
  SmsStatus: z.string().max(32).optional(),
  From: z.string().max(64).optional(),
  To: z.string().max(64).optional(),
  MessagingServiceSid: z.string().max(64).optional(),
  ApiVersion: z.string().max(16).optional(),
  ErrorCode: z.string().regex(/^\d{1,6}$/, 'must be a Twilio error code').optional(),
});

export const twilioInboundMessageSchema = z.looseObject({
  MessageSid: messageSid,
  AccountSid: accountSid,
  From: z.string().min(1).max(64),
  To: z.string().max(64).optional(),
  Body: z.string().max(1_600),
  NumMedia: z.string().regex(/^\d{1,2}$/).optional(),
  MessagingServiceSid: z.string().max(64).optional(),
  /** Set by Advanced Opt-Out when the body was an opt-out, opt-in or help keyword. */
  OptOutType: z.enum(['STOP', 'START', 'HELP']).optional(),
});

/** The step key our status URL names: `wa:<lead>:<flow>:<step>[:<meeting>]#sms`. */
export const smsEffectKeySchema = z.string().max(400).regex(/^wa:[^:]+:.+#sms$/, 'must be the SMS ledger key Switchboard put in the status callback URL');

export type TwilioMessageStatusCallback = z.infer<typeof twilioMessageStatusSchema>;
export type TwilioInboundMessage = z.infer<typeof twilioInboundMessageSchema>;

/** Twilio's default opt-out keywords: a message that is exactly one of them (any case) unsubscribes the sender. */
export const smsOptOutKeywords = ['STOP', 'STOPALL', 'UNSUBSCRIBE', 'CANCEL', 'END', 'QUIT'] as const;

export function isSmsOptOut(message: Pick<TwilioInboundMessage, 'Body' | 'OptOutType'>): boolean {
  return message.OptOutType === 'STOP' || (smsOptOutKeywords as readonly string[]).includes(message.Body.trim().toUpperCase());
}

export function authenticateTwilioSms(request: ProviderRequest): URLSearchParams {
  const form = readForm(request);
  const authTokens = acceptedSecrets(request.tenant.secrets.twilioAuthToken);
  if (!request.tenant.sms || authTokens.length === 0) throw new Rejection('not_configured', 'this tenant has no Twilio Messaging account (sms) configured');
  const check = verifyTwilioSignature({ authTokens, signature: header(request.headers, 'x-twilio-signature'), urls: request.signedUrls, params: form });
  if (!check.ok) throw new Rejection(check.reason, 'the request signature could not be verified');
  return form;
}

/** A status callback's fields; the effect key from the signed URL's query, when it names one. */
export function parseTwilioMessageStatus(form: URLSearchParams, query: URLSearchParams): { callback: TwilioMessageStatusCallback; effectKey?: string } {
  const callback = validate(twilioMessageStatusSchema, Object.fromEntries(form.entries()));
  const keys = query.getAll('key');
  if (keys.length > 1) throw new Rejection('invalid_payload', 'the payload does not match the schema', { fields: { key: 'must be given once' } });
  const effectKey = keys[0] === undefined ? undefined : validate(z.object({ key: smsEffectKeySchema }), { key: keys[0] }).key;
  return { callback, ...(effectKey !== undefined ? { effectKey } : {}) };
}

/** An inbound message's fields, with the sender's number in E.164. */
export function parseTwilioInbound(form: URLSearchParams, request: ProviderRequest): { message: TwilioInboundMessage; from: string } {
  const message = validate(twilioInboundMessageSchema, Object.fromEntries(form.entries()));
  const from = phone(message.From, request, 'From');
  if (!from) throw new Rejection('invalid_phone_number', 'From is not a phone number', { field: 'From' });
  return { message, from };
}
