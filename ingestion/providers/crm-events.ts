/**
 * CRM events for leads (POST /webhooks/{tenant}/crm), signed like /pbx. Each becomes a canonical
 * lead event for the lead's workflow.
 */
import { z } from 'zod';
import { leadTimeZoneSchema } from '../../shared/leads.js';
import { countryOfPhone } from '../../shared/phone.js';
import type { LeadEvent } from '../../shared/leads.js';
import { rejectUnknownEvent } from './pbx.js';
import type { ProviderRequest } from './types.js';
import { isoTime, phone, readJson, validate } from './types.js';

export const crmEventNames = [
  'lead.created',
  'lead.updated',
  'meeting.booked',
  'meeting.rescheduled',
  'meeting.canceled',
  'meeting.attended',
  'meeting.no_show',
  'lead.status_changed',
  'lead.opted_out',
] as const;

const timestamp = z.union([z.number().positive(), z.iso.datetime({ offset: true })]);

export const crmEventSchema = z
  .object({
    event_id: z.string().min(1).max(200),
    event: z.enum(crmEventNames),
    lead_id: z.string().min(1).max(200),
    occurred_at: timestamp.optional(),
    lead: z
      .object({
        name: z.string().max(200).optional(),
        phone: z.string().max(64).optional(),
        email: z.email().optional(),
        time_zone: leadTimeZoneSchema.optional(),
        language: z.string().regex(/^[a-z]{2}(_[A-Z]{2})?$/).optional(),
        /** The sales team and the owner (a CRM user id or e-mail): they choose the WhatsApp number the lead is written from. */
        team: z.string().min(1).max(200).optional(),
        owner: z.string().min(1).max(200).optional(),
      })
      .optional(),
    meeting: z.object({ id: z.string().min(1).max(200), starts_at: timestamp.optional(), ends_at: timestamp.optional() }).optional(),
    status: z.enum(['won', 'lost']).optional(),
    reason: z.string().max(200).optional(),
  })
  .superRefine((event, context) => {
    const require = (ok: boolean, path: string[], message: string): void => {
      if (!ok) context.addIssue({ code: 'custom', path, message });
    };
    if (event.event === 'lead.created') require(event.lead !== undefined, ['lead'], 'lead is required for lead.created');
    if (event.event === 'meeting.booked' || event.event === 'meeting.rescheduled') require(event.meeting?.starts_at !== undefined, ['meeting', 'starts_at'], `meeting.starts_at is required for ${event.event}`);
    if (event.event.startsWith('meeting.')) require(event.meeting !== undefined, ['meeting'], `meeting is required for ${event.event}`);
    if (event.event === 'lead.status_changed') require(event.status !== undefined, ['status'], 'status (won or lost) is required');
  });

export function parseCrmEvent(request: ProviderRequest): { leadId: string; event: LeadEvent } {
  const body = readJson(request);
  rejectUnknownEvent(body, crmEventNames);
  const event = validate(crmEventSchema, body);
  const base = { eventId: `crm:${event.event_id}`, occurredAt: isoTime(event.occurred_at, request.receivedAt) };
  const profile = () => {
    const lead = event.lead ?? {};
    const normalized = phone(lead.phone, request, 'lead.phone');
    const country = normalized ? countryOfPhone(normalized) : undefined;
    return {
      ...(lead.name ? { name: lead.name } : {}),
      ...(normalized ? { phone: normalized } : {}),
      ...(country ? { country } : {}),
      ...(lead.team ? { team: lead.team } : {}),
      ...(lead.owner ? { owner: lead.owner } : {}),
      ...(lead.email ? { email: lead.email } : {}),
      ...(lead.time_zone ? { timeZone: lead.time_zone } : {}),
      ...(lead.language ? { language: lead.language } : {}),
    };
  };
  const meeting = () => ({
    id: event.meeting?.id ?? '',
    startsAt: isoTime(event.meeting?.starts_at, request.receivedAt),
    ...(event.meeting?.ends_at !== undefined ? { endsAt: isoTime(event.meeting.ends_at, request.receivedAt) } : {}),
  });
  const meetingId = event.meeting?.id ?? '';
  let canonical: LeadEvent;
  switch (event.event) {
    case 'lead.created':
    case 'lead.updated':
      canonical = { ...base, type: event.event, profile: profile() };
      break;
    case 'meeting.booked':
    case 'meeting.rescheduled':
      canonical = { ...base, type: event.event, meeting: meeting() };
      break;
    case 'meeting.canceled':
    case 'meeting.attended':
    case 'meeting.no_show':
      canonical = { ...base, type: event.event, meetingId };
      break;
    case 'lead.status_changed':
      canonical = { ...base, type: 'lead.status_changed', status: event.status ?? 'lost' };
      break;
    case 'lead.opted_out':
      canonical = { ...base, type: 'lead.opted_out', ...(event.reason ? { reason: event.reason } : {}) };
      break;
  }
  return { leadId: event.lead_id, event: canonical };
}
