/**
 * Adopts leads from a legacy tracking export (CSV or JSON) at their current stage: each becomes a
 * `lead.imported` event for the lead's workflow, carrying the steps the old system already sent
 * so they are never sent again. Status spellings are normalized ("No Show", "no_show", …).
 */
import { createHash } from 'node:crypto';
import { parse as parseCsv } from 'csv-parse/sync';
import type { TenantConfig } from '../config/schema.js';
import type { LeadEvent, LeadStage, Meeting } from '../shared/leads.js';
import { leadLanguagePattern, leadTimeZoneSchema, normalizeLegacyStatus } from '../shared/leads.js';
import { canonicalLanguage } from '../shared/templates.js';
import { countryOfPhone, normalizePhone } from '../shared/phone.js';

export type LegacyRecord = Record<string, unknown>;

export interface ImportedLead {
  row: number;
  leadId: string;
  stage: LeadStage;
  event: Extract<LeadEvent, { type: 'lead.imported' }>;
}

export interface ImportProblem {
  row: number;
  leadId?: string;
  reason: string;
}

/** Reads a legacy export; the format follows the file name unless given. */
export function readLegacyExport(text: string, format: 'csv' | 'json'): LegacyRecord[] {
  if (format === 'json') {
    const parsed = JSON.parse(text) as unknown;
    const records = Array.isArray(parsed) ? parsed : (parsed as { leads?: unknown }).leads;
    if (!Array.isArray(records)) throw new Error('the JSON export must be an array of leads (or {"leads": [...]})');
    return records as LegacyRecord[];
  }
  return parseCsv<LegacyRecord>(text, { columns: true, skip_empty_lines: true, trim: true, bom: true });
}

/** The first present value among several legacy column spellings. */
function field(record: LegacyRecord, ...names: string[]): string | undefined {
  const lowered = new Map(Object.entries(record).map(([key, value]) => [key.trim().toLowerCase().replace(/[\s-]+/g, '_'), value]));
  for (const name of names) {
    const value = lowered.get(name);
    if (typeof value === 'string' && value.trim() !== '') return value.trim();
    if (typeof value === 'number' || typeof value === 'boolean') return String(value);
    if (Array.isArray(value)) return value.map(String).join(';');
  }
  return undefined;
}

/** Legacy step names → our step keys (meeting-bound steps need the meeting). */
export function legacyStepKey(raw: string, meeting: Meeting | undefined): string | undefined {
  const step = raw.trim().toLowerCase().replace(/[\s-]+/g, '_').replace(/_sent$/, '');
  const numbered = /^(?:follow_?up|fu)_?(\d)$/.exec(step);
  if (numbered) return `follow_up:${numbered[1]}`;
  if (step === 'welcome' || step === 'intro') return 'welcome:message';
  const version = meeting ? `${meeting.id}@${meeting.startsAt}` : undefined;
  if (meeting && (step === 'booking_confirmation' || step === 'confirmation')) return `booking_confirmation:message:${meeting.id}`;
  const reminder = /^reminder_?(\d+)h$/.exec(step);
  if (reminder && version) return `reminder:${reminder[1]}h:${version}`;
  const noShow = /^no_?show_?(\d)$/.exec(step);
  if (noShow && meeting) return `no_show:rebook-${noShow[1]}:${meeting.id}`;
  const rewarm = /^rewarm_?(\d)$/.exec(step);
  if (rewarm) return `rewarm:${rewarm[1]}`;
  return undefined;
}

export function planImport(records: LegacyRecord[], tenant: TenantConfig, now: Date): { leads: ImportedLead[]; problems: ImportProblem[] } {
  const leads: ImportedLead[] = [];
  const problems: ImportProblem[] = [];
  const seen = new Set<string>();
  records.forEach((record, index) => {
    const row = index + 1;
    const leadId = field(record, 'lead_id', 'id', 'crm_id', 'leadid');
    if (!leadId) return void problems.push({ row, reason: 'no lead id' });
    if (seen.has(leadId)) return void problems.push({ row, leadId, reason: 'duplicate lead id in the file' });
    seen.add(leadId);
    const rawStatus = field(record, 'status', 'stage', 'state');
    const stage = rawStatus ? normalizeLegacyStatus(rawStatus) : undefined;
    if (!stage) return void problems.push({ row, leadId, reason: `unknown status "${rawStatus ?? ''}"` });
    const phone = normalizePhone(field(record, 'phone', 'mobile', 'whatsapp', 'phone_number'), tenant.defaultRegion);
    if (!phone.ok) return void problems.push({ row, leadId, reason: 'the phone number is not one' });
    const timeZone = field(record, 'time_zone', 'timezone', 'tz');
    if (timeZone && !leadTimeZoneSchema.safeParse(timeZone).success) return void problems.push({ row, leadId, reason: `unknown time zone "${timeZone}"` });
    // Exports spell it `es`, `es-MX` or `ES`; the lead's templates are picked by it (shared/templates.ts).
    const rawLanguage = field(record, 'language', 'lang', 'locale', 'preferred_language');
    const language = rawLanguage === undefined ? undefined : canonicalLanguage(rawLanguage);
    if (language !== undefined && !leadLanguagePattern.test(language)) return void problems.push({ row, leadId, reason: `unknown language "${rawLanguage ?? ''}"` });
    const meetingAt = field(record, 'meeting_at', 'meeting_start', 'meeting_starts_at', 'appointment');
    const meetingStart = meetingAt ? Date.parse(meetingAt) : Number.NaN;
    if (meetingAt && Number.isNaN(meetingStart)) return void problems.push({ row, leadId, reason: `meeting time "${meetingAt}" is not a date` });
    const meeting: Meeting | undefined = meetingAt ? { id: field(record, 'meeting_id', 'appointment_id') ?? `legacy-${leadId}`, startsAt: new Date(meetingStart).toISOString() } : undefined;
    const rawSteps = (field(record, 'steps_done', 'steps_sent', 'completed_steps', 'sent_steps', 'steps') ?? '').split(/[;,|]/).filter((step) => step.trim() !== '');
    const completedSteps: string[] = [];
    for (const raw of rawSteps) {
      const key = legacyStepKey(raw, meeting);
      if (key) completedSteps.push(key);
      else problems.push({ row, leadId, reason: `unknown step "${raw.trim()}" ignored` });
    }
    const lastContact = field(record, 'last_contact_at', 'last_contact', 'last_message_at');
    const name = field(record, 'name', 'full_name', 'contact_name');
    const email = field(record, 'email');
    const team = field(record, 'team', 'sales_team');
    const owner = field(record, 'owner', 'owner_email', 'responsible');
    const country = phone.e164 ? countryOfPhone(phone.e164) : undefined;
    // The same row imported twice is one event: the id hashes its content.
    const digest = createHash('sha256').update(JSON.stringify(record)).digest('hex').slice(0, 16);
    leads.push({
      row,
      leadId,
      stage,
      event: {
        eventId: `import:${leadId}:${digest}`,
        type: 'lead.imported',
        occurredAt: now.toISOString(),
        profile: {
          ...(name ? { name } : {}),
          ...(phone.e164 ? { phone: phone.e164 } : {}),
          ...(country ? { country } : {}),
          ...(team && team.length <= 200 ? { team } : {}),
          ...(owner && owner.length <= 200 ? { owner } : {}),
          ...(email && /^[^@\s]+@[^@\s]+$/.test(email) ? { email } : {}),
          ...(timeZone ? { timeZone } : {}),
          ...(language ? { language } : {}),
        },
        stage,
        completedSteps,
        ...(meeting ? { meeting } : {}),
        ...(lastContact && !Number.isNaN(Date.parse(lastContact)) ? { lastContactAt: new Date(Date.parse(lastContact)).toISOString() } : {}),
      },
    });
  });
  return { leads, problems };
}
