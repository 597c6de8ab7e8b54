/**
 * A tenant's WhatsApp sender numbers, read from its `whatsapp` block: the default number
 * (`phoneNumberId`) and the named ones (`senders`). The API routes webhooks by them, the worker
 * builds one adapter (and one throughput budget) per number, and lead workflows get the routes.
 */
import type { WhatsAppConfig } from './schema.js';
import { defaultSenderName } from '../shared/senders.js';
import type { SenderQuality, SenderRoute } from '../shared/senders.js';

export interface SenderNumber {
  name: string;
  phoneNumberId: string;
  messagesPerSecond: number;
  qualityRating: SenderQuality;
  messagingLimitTier?: string;
}

/** Every number, the default first. */
export function senderNumbers(whatsapp: WhatsAppConfig): SenderNumber[] {
  const main: SenderNumber = {
    name: defaultSenderName,
    phoneNumberId: whatsapp.phoneNumberId,
    messagesPerSecond: whatsapp.messagesPerSecond,
    qualityRating: whatsapp.qualityRating,
    ...(whatsapp.messagingLimitTier ? { messagingLimitTier: whatsapp.messagingLimitTier } : {}),
  };
  const named = Object.entries(whatsapp.senders).map(([name, sender]): SenderNumber => ({
    name,
    phoneNumberId: sender.phoneNumberId,
    messagesPerSecond: sender.messagesPerSecond,
    qualityRating: sender.qualityRating,
    ...(sender.messagingLimitTier ? { messagingLimitTier: sender.messagingLimitTier } : {}),
  }));
  return [main, ...named];
}

/** The named numbers' rules, for the lead workflow's input (no ids or credentials). */
export function senderRoutes(whatsapp: WhatsAppConfig): SenderRoute[] {
  return Object.entries(whatsapp.senders).map(([name, sender]) => ({
    name,
    ...(sender.countries.length > 0 ? { countries: sender.countries } : {}),
    ...(sender.teams.length > 0 ? { teams: sender.teams } : {}),
    ...(sender.owners.length > 0 ? { owners: sender.owners } : {}),
    ...(sender.qualityRating !== 'UNKNOWN' ? { quality: sender.qualityRating } : {}),
  }));
}

/** The number a webhook's `metadata.phone_number_id` names, if the tenant has it. */
export function senderByPhoneNumberId(whatsapp: WhatsAppConfig | undefined, phoneNumberId: string): SenderNumber | undefined {
  return whatsapp ? senderNumbers(whatsapp).find((sender) => sender.phoneNumberId === phoneNumberId) : undefined;
}
