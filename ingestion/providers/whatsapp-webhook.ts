/** WhatsApp Cloud API webhooks: delivery statuses and inbound messages, signed with X-Hub-Signature-256. */
import { z } from 'zod';
import { acceptedSecrets } from '../../security/secrets.js';
import { verifyMetaSignature } from '../../security/signatures.js';
import type { LeadEvent } from '../../shared/leads.js';
import { senderByPhoneNumberId } from '../../config/senders.js';
import { Rejection } from '../rejections.js';
import type { ProviderRequest } from './types.js';
import { header, readJson, validate } from './types.js';

/** Meta's error object, in `statuses[].errors` and in `value.errors` (errors messages webhook reference). */
const errorSchema = z.object({
  code: z.number().int(),
  title: z.string().optional(),
  message: z.string().optional(),
  error_data: z.object({ details: z.string().optional() }).partial().optional(),
});

// `played`: a voice message was played (status messages webhook reference); we send none, but a
// refused delivery would be redelivered for days, so it is accepted and ignored.
const statusSchema = z.object({
  id: z.string().min(1),
  status: z.enum(['sent', 'delivered', 'read', 'played', 'failed', 'deleted', 'warning']),
  timestamp: z.string().regex(/^\d{1,12}$/, 'must be unix seconds'),
  recipient_id: z.string().optional(),
  biz_opaque_callback_data: z.string().max(512).optional(),
  errors: z.array(errorSchema).optional(),
});

const inboundSchema = z.object({
  from: z.string().regex(/^\d{6,15}$/, 'must be the sender\'s number in digits'),
  id: z.string().min(1),
  timestamp: z.string().regex(/^\d{1,12}$/, 'must be unix seconds'),
  type: z.string(),
  text: z.object({ body: z.string().max(4_096) }).optional(),
  button: z.object({ text: z.string().max(1_000) }).optional(),
  interactive: z.unknown().optional(),
});

export const whatsappWebhookSchema = z.object({
  object: z.literal('whatsapp_business_account'),
  entry: z
    .array(
      z.object({
        id: z.string(),
        changes: z.array(
          z.object({
            field: z.string(),
            value: z.object({
              messaging_product: z.literal('whatsapp').optional(),
              metadata: z.object({ phone_number_id: z.string() }).partial().optional(),
              statuses: z.array(statusSchema).optional(),
              messages: z.array(inboundSchema).optional(),
              // System-, app- or account-level problems, tied to no message (e.g. 130429).
              errors: z.array(errorSchema).optional(),
            }),
          }),
        ),
      }),
    )
    .min(1),
});

export type WhatsAppStatusPayload = z.infer<typeof statusSchema>;
export type WhatsAppInboundPayload = z.infer<typeof inboundSchema>;
export type WhatsAppErrorPayload = z.infer<typeof errorSchema>;

export function authenticateWhatsApp(request: ProviderRequest): void {
  const appSecrets = acceptedSecrets(request.tenant.secrets.whatsappAppSecret);
  if (appSecrets.length === 0) throw new Rejection('not_configured', 'this tenant has no WhatsApp app secret configured');
  const check = verifyMetaSignature({ appSecrets, signature: header(request.headers, 'x-hub-signature-256'), rawBody: request.rawBody });
  if (!check.ok) throw new Rejection(check.reason, 'the request signature could not be verified');
}

/** A status or inbound message with the tenant's number it came for (its `metadata.phone_number_id`), by name. */
export interface ForNumber<T> {
  payload: T;
  sender: string;
}

/**
 * The `messages` changes of a delivery. Each names the business number it is for: one the tenant
 * does not have (another account's, or one taken out of its configuration) is refused, as is a
 * change that names none.
 */
export function parseWhatsAppWebhook(request: ProviderRequest): { statuses: ForNumber<WhatsAppStatusPayload>[]; messages: ForNumber<WhatsAppInboundPayload>[]; errors: WhatsAppErrorPayload[] } {
  const body = validate(whatsappWebhookSchema, readJson(request));
  const values = body.entry.flatMap((entry, entryIndex) =>
    entry.changes.flatMap((change, changeIndex) => {
      if (change.field !== 'messages') return [];
      const phoneNumberId = change.value.metadata?.phone_number_id;
      if (phoneNumberId === undefined || phoneNumberId === '') {
        throw new Rejection('invalid_payload', 'a messages change must name the business number (metadata.phone_number_id)', { fields: { [`entry.${entryIndex}.changes.${changeIndex}.value.metadata.phone_number_id`]: 'required' } });
      }
      const sender = senderByPhoneNumberId(request.tenant.whatsapp, phoneNumberId);
      if (!sender) throw new Rejection('unknown_phone_number_id', "the webhook is for a WhatsApp number this tenant does not have (metadata.phone_number_id is neither whatsapp.phoneNumberId nor one of whatsapp.senders)");
      return [{ value: change.value, sender: sender.name }];
    }),
  );
  return {
    statuses: values.flatMap(({ value, sender }) => (value.statuses ?? []).map((payload) => ({ payload, sender }))),
    messages: values.flatMap(({ value, sender }) => (value.messages ?? []).map((payload) => ({ payload, sender }))),
    errors: values.flatMap(({ value }) => value.errors ?? []),
  };
}

/**
 * The lead event for a message WhatsApp failed, whether it refused the send at once or reported it
 * in a status webhook. One id per effect key (one message per key): a failure reported both ways
 * is applied once.
 */
export function whatsappFailedEvent(failure: { effectKey: string; messageId: string; errorCode: number; errorTitle?: string; occurredAt: string }): LeadEvent {
  return {
    eventId: `wa-failed:${failure.effectKey}`,
    type: 'whatsapp.failed',
    occurredAt: failure.occurredAt,
    messageId: failure.messageId,
    effectKey: failure.effectKey,
    errorCode: failure.errorCode,
    ...(failure.errorTitle ? { errorTitle: failure.errorTitle.slice(0, 500) } : {}),
  };
}

/** The text of an inbound message, whatever its kind. */
export function inboundText(message: WhatsAppInboundPayload): string {
  return message.text?.body ?? message.button?.text ?? `[${message.type}]`;
}
