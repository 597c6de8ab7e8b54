/**
 * Leads: the canonical lead event every source (CRM webhooks, WhatsApp, calls, the legacy import)
 * maps onto, the per-tenant messaging policy, and the lead's state. Shared by the API and the lead
 * workflow, so free of Node built-ins and I/O.
 */
import { z } from 'zod';
import { canonicalLanguage, isLanguageTag, templateValueNames } from './templates.js';
import type { TemplateVersion } from './templates.js';
import { flowNames, isTimeZone, leadStages } from './vocabulary.js';

export { flowNames, leadStages, leadWorkflowId } from './vocabulary.js';

const isoTimestamp = z.iso.datetime({ offset: true });
export const leadTimeZoneSchema = z.string().min(1).max(64).refine(isTimeZone, 'must be an IANA time zone such as Europe/Berlin');

export const meetingSchema = z.object({
  id: z.string().min(1).max(200),
  startsAt: isoTimestamp,
  endsAt: isoTimestamp.optional(),
});
export type Meeting = z.infer<typeof meetingSchema>;

/** A lead's language as WhatsApp spells template languages: `es`, `pt_BR`. */
export const leadLanguagePattern = /^[a-z]{2}(_[A-Z]{2})?$/;

export const leadProfileSchema = z.object({
  name: z.string().max(200).optional(),
  phone: z.string().regex(/^\+[1-9]\d{6,14}$/, 'must be an E.164 phone number').optional(),
  email: z.email().optional(),
  timeZone: leadTimeZoneSchema.optional(),
  language: z.string().regex(leadLanguagePattern).optional(),
  /** ISO 3166 region of the phone number (worked out at ingest; the workflow bundle has no phone metadata). */
  country: z.string().regex(/^[A-Z]{2}$/).optional(),
  /** The CRM's sales team and owner: they choose the WhatsApp sender number (shared/senders.ts). */
  team: z.string().min(1).max(200).optional(),
  owner: z.string().min(1).max(200).optional(),
});
export type LeadProfile = z.infer<typeof leadProfileSchema>;

export const leadStageSchema = z.enum(leadStages);
export type LeadStage = z.infer<typeof leadStageSchema>;

export const flowNameSchema = z.enum(flowNames);
export type FlowName = z.infer<typeof flowNameSchema>;

/** Legacy stage names and the many spellings they come in ("No Show", "no_show", "NO-SHOW", …). */
export function normalizeLegacyStatus(raw: string): LeadStage | undefined {
  const key = raw.trim().toLowerCase().replace(/[\s_-]+/g, '');
  const aliases: Record<string, LeadStage> = {
    new: 'new', fresh: 'new', open: 'new', created: 'new',
    contacted: 'contacted', welcomed: 'contacted', followup: 'contacted', followedup: 'contacted', followingup: 'contacted', messaged: 'contacted', nurturing: 'contacted',
    engaged: 'engaged', replied: 'engaged', responded: 'engaged', interested: 'engaged', qualified: 'engaged',
    booked: 'booked', scheduled: 'booked', meetingbooked: 'booked', appointmentset: 'booked', demobooked: 'booked',
    attended: 'attended', showed: 'attended', showedup: 'attended', met: 'attended', meetingdone: 'attended',
    noshow: 'no_show', noshowed: 'no_show', missed: 'no_show', didnotattend: 'no_show', dna: 'no_show',
    won: 'won', closedwon: 'won', customer: 'won', converted: 'won',
    lost: 'lost', closedlost: 'lost', dead: 'lost', disqualified: 'lost',
    optedout: 'opted_out', optout: 'opted_out', unsubscribed: 'opted_out', stop: 'opted_out', donotcontact: 'opted_out', dnc: 'opted_out',
    dormant: 'dormant', cold: 'dormant', stale: 'dormant',
  };
  return aliases[key];
}

const leadEventBase = {
  /** Stable id of this occurrence: duplicates carry the same id. */
  eventId: z.string().min(1).max(300),
  occurredAt: isoTimestamp,
};

/** Everything that can happen to a lead, from any source. */
export const leadEventSchema = z.discriminatedUnion('type', [
  z.object({ ...leadEventBase, type: z.literal('lead.created'), profile: leadProfileSchema }),
  z.object({ ...leadEventBase, type: z.literal('lead.updated'), profile: leadProfileSchema }),
  z.object({ ...leadEventBase, type: z.literal('meeting.booked'), meeting: meetingSchema }),
  z.object({ ...leadEventBase, type: z.literal('meeting.rescheduled'), meeting: meetingSchema }),
  z.object({ ...leadEventBase, type: z.literal('meeting.canceled'), meetingId: z.string().min(1).max(200) }),
  z.object({ ...leadEventBase, type: z.literal('meeting.attended'), meetingId: z.string().min(1).max(200) }),
  z.object({ ...leadEventBase, type: z.literal('meeting.no_show'), meetingId: z.string().min(1).max(200) }),
  z.object({ ...leadEventBase, type: z.literal('lead.status_changed'), status: z.enum(['won', 'lost']) }),
  z.object({ ...leadEventBase, type: z.literal('lead.opted_out'), reason: z.string().max(200).optional() }),
  z.object({ ...leadEventBase, type: z.literal('whatsapp.reply'), messageId: z.string().min(1), text: z.string().max(4_096), /** The sender number (its name) the lead wrote to. */ receivedOn: z.string().min(1).max(100).optional() }),
  z.object({
    ...leadEventBase,
    type: z.literal('whatsapp.failed'),
    messageId: z.string().min(1),
    effectKey: z.string().min(1),
    errorCode: z.number().int(),
    errorTitle: z.string().max(500).optional(),
  }),
  /** A text message (SMS) from the lead, through Twilio; an opt-out keyword arrives as `lead.opted_out` instead. */
  z.object({ ...leadEventBase, type: z.literal('sms.reply'), messageId: z.string().min(1) }),
  z.object({ ...leadEventBase, type: z.literal('call.missed'), callId: z.string().min(1) }),
  z.object({ ...leadEventBase, type: z.literal('call.completed'), callId: z.string().min(1) }),
  z.object({
    ...leadEventBase,
    type: z.literal('lead.imported'),
    profile: leadProfileSchema,
    stage: leadStageSchema,
    /** Steps the legacy system already sent: never sent again. */
    completedSteps: z.array(z.string().min(1).max(200)).max(200),
    meeting: meetingSchema.optional(),
    lastContactAt: isoTimestamp.optional(),
  }),
]);
export type LeadEvent = z.infer<typeof leadEventSchema>;
export type LeadEventType = LeadEvent['type'];

const languageTagSchema = z.string().refine(isLanguageTag, 'must be a language code as WhatsApp spells it, such as en, es or pt_BR (es-MX is read as es_MX)');

/** One language version of a template as registered with Meta: its body placeholders, and free text in that language. */
const templateVersionSchema = z.object({
  /**
   * The version's body placeholders {{1}} … {{n}}: how many (filled from the flow's `params`, in
   * order), or their names in order (each one of the flow's `params`: a translation may order them
   * its own way).
   */
  placeholders: z.union([z.number().int().min(0).max(50), z.array(z.string().min(1)).max(50)]),
  text: z.string().min(1).optional(),
});

export const messageTemplateSchema = z
  .object({
    name: z.string().min(1),
    /** The default version (sent when no other language matches). With `languages`, one of them (default: the first). */
    language: languageTagSchema.optional(),
    category: z.enum(['MARKETING', 'UTILITY', 'AUTHENTICATION']).default('UTILITY'),
    /** Body parameters, filled from the lead: {{name}}, {{meeting_time}}, {{company}}, {{booking_url}}. */
    params: z.array(z.string()).default([]),
    /** The template's versions per language; without it the template has the one version `language`, with `params` as its placeholders. */
    languages: z.record(z.string(), templateVersionSchema).optional(),
  })
  .superRefine((template, context) => {
    const problem = (path: Array<string | number>, message: string): void => context.addIssue({ code: 'custom', path, message });
    template.params.forEach((param, index) => {
      if (!(templateValueNames as readonly string[]).includes(param)) problem(['params', index], `"${param}" is not a value the flows fill (${templateValueNames.join(', ')})`);
    });
    if (!template.languages) return;
    const seen = new Map<string, string>();
    for (const [tag, version] of Object.entries(template.languages)) {
      if (!isLanguageTag(tag)) {
        problem(['languages', tag], 'must be keyed by a language code as WhatsApp spells it, such as en, es or pt_BR');
        continue;
      }
      const canonical = canonicalLanguage(tag);
      const twin = seen.get(canonical);
      if (twin !== undefined) problem(['languages', tag], `is the same language as "${twin}"`);
      seen.set(canonical, tag);
      const params = `the flow's params fill ${template.params.length} (${template.params.join(', ') || 'none'})`;
      if (typeof version.placeholders === 'number') {
        if (version.placeholders !== template.params.length) problem(['languages', tag, 'placeholders'], `declares ${version.placeholders} placeholder(s) but ${params}`);
      } else {
        version.placeholders.forEach((name, index) => {
          if (!template.params.includes(name)) problem(['languages', tag, 'placeholders', index], `"${name}" is not one of the flow's params (${template.params.join(', ') || 'none'})`);
        });
      }
    }
    if (template.language !== undefined && !seen.has(canonicalLanguage(template.language))) {
      problem(['language'], `the default version "${template.language}" is not among the template's languages (${[...seen.values()].join(', ')})`);
    }
  })
  .transform(({ languages, language, ...template }): Omit<typeof template, never> & { language: string; languages?: Record<string, TemplateVersion> } => {
    if (!languages) return { ...template, language: language === undefined ? 'en' : canonicalLanguage(language) };
    // Keyed as Meta spells the code, placeholders as the names of the values that fill them.
    const versions: Record<string, TemplateVersion> = {};
    for (const [tag, version] of Object.entries(languages)) {
      versions[canonicalLanguage(tag)] = { placeholders: typeof version.placeholders === 'number' ? template.params : version.placeholders, ...(version.text !== undefined ? { text: version.text } : {}) };
    }
    const first = Object.keys(versions)[0] ?? 'en';
    return { ...template, language: language === undefined ? first : canonicalLanguage(language), languages: versions };
  });
export type MessageTemplate = z.infer<typeof messageTemplateSchema>;

const flowMessageSchema = z.object({
  /** Sent as free text inside the 24 h window. */
  text: z.string().min(1),
  /** Sent outside the window (WhatsApp only allows approved templates there). */
  template: messageTemplateSchema,
});
export type FlowMessage = z.infer<typeof flowMessageSchema>;

const message = (text: string, name: string, params: string[], category: 'MARKETING' | 'UTILITY' = 'UTILITY') =>
  flowMessageSchema.prefault({ text, template: { name, params, category } });

/** Per-tenant timings, windows, caps and messages of the lead flows, with sensible defaults. */
export const leadPolicySchema = z.object({
  sendWindow: z
    .object({
      /** ISO weekdays on which messages may be sent (1 = Monday … 7 = Sunday). */
      days: z.array(z.number().int().min(1).max(7)).min(1).default([1, 2, 3, 4, 5]),
      /** Local time the window opens and closes; outside it are quiet hours. */
      start: z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/).default('09:00'),
      end: z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/).default('19:00'),
    })
    .prefault({}),
  followUpDays: z.array(z.number().positive()).default([1, 3, 7]),
  reminderHoursBefore: z.array(z.number().positive()).default([24, 1]),
  noShow: z
    .object({
      /** How long after a meeting ends its attendance may still be recorded before it counts as a no-show. */
      graceMinutes: z.number().nonnegative().default(60),
      attemptDays: z.array(z.number().nonnegative()).default([0, 1, 3]),
    })
    .prefault({}),
  postMeetingFollowUpHours: z.array(z.number().positive()).default([24]),
  rewarm: z
    .object({
      idleDays: z.number().positive().default(14),
      maxAttempts: z.number().int().nonnegative().default(2),
    })
    .prefault({}),
  /**
   * CRM webhooks arrive out of order: events are held until none has arrived for this long (at
   * most three times this long), then applied in the order they happened.
   */
  reorderWindowSeconds: z.number().nonnegative().default(10),
  /** How long one send attempt may take before Temporal retries it (on another worker if this one died). */
  sendTimeoutSeconds: z.number().int().min(1).default(30),
  /** Minimum spacing between two messages to one person (WhatsApp's pair limit is ~6 s). */
  recipientSpacingSeconds: z.number().nonnegative().default(6),
  /** After this many events the workflow continues as new, keeping its history small. */
  continueAsNewAfterEvents: z.number().int().min(50).default(2_000),
  bookingUrl: z.url().default('https://example.com/book'),
  /**
   * Languages to try, in order, when a template has no version in the lead's language (or the lead
   * has none), before the template's default version. Optional in the type: runs started before it
   * carry policies without it.
   */
  languageFallback: z
    .array(languageTagSchema)
    .max(20)
    .transform((tags) => tags.map(canonicalLanguage))
    .optional(),
  /**
   * A step WhatsApp cannot deliver (the number has no WhatsApp account: 131026) goes out once as
   * SMS through Twilio (the tenant's `sms`), with the flow's free text, inside the send window.
   */
  smsFallback: z
    .object({
      enabled: z.boolean().default(false),
      /** The flows that fall back; default every flow. */
      flows: z.array(z.enum(flowNames)).optional(),
      /** The WhatsApp error codes that mean "this number cannot get WhatsApp messages". */
      whatsappErrorCodes: z.array(z.number().int()).min(1).default([131026]),
    })
    .prefault({}),
  messages: z
    .object({
      welcome: message('Hi {{name}}, thanks for your interest in {{company}}! Reply here any time.', 'welcome', ['name', 'company'], 'MARKETING'),
      follow_up: message('Hi {{name}}, just checking in. Would you like to book a call? {{booking_url}}', 'follow_up', ['name', 'booking_url'], 'MARKETING'),
      booking_confirmation: message('Thanks {{name}}, your meeting is booked for {{meeting_time}}.', 'booking_confirmation', ['name', 'meeting_time']),
      reminder: message('Reminder: your meeting with {{company}} is at {{meeting_time}}.', 'meeting_reminder', ['company', 'meeting_time']),
      reschedule: message('Your meeting has moved to {{meeting_time}}. See you then!', 'meeting_rescheduled', ['meeting_time']),
      cancellation: message('Your meeting was canceled. Book a new time here: {{booking_url}}', 'meeting_canceled', ['booking_url']),
      no_show: message('Sorry we missed you, {{name}}. Pick a new time here: {{booking_url}}', 'no_show_rebook', ['name', 'booking_url']),
      post_meeting: message('Thanks for meeting with {{company}}, {{name}}. Any questions?', 'post_meeting', ['company', 'name'], 'MARKETING'),
      rewarm: message('Hi {{name}}, still interested? We have news: {{booking_url}}', 'rewarm', ['name', 'booking_url'], 'MARKETING'),
      missed_call: message('Sorry we missed your call, {{name}}. When is a good time to call you back?', 'missed_call', ['name']),
    })
    .prefault({}),
});
export type LeadPolicy = z.infer<typeof leadPolicySchema>;

/** A message the workflow has armed: when, why, and under which idempotency key. */
export interface PlannedStep {
  /** `<flow>:<step>[:<meeting id>]`: with the lead, the ledger's idempotency key. */
  key: string;
  flow: FlowName;
  step: string;
  meetingId?: string;
  /** The rule's raw target instant, e.g. meeting start − 24 h (kept so a time-zone change can re-plan). */
  baseAt: number;
  /** The instant it will be sent: `baseAt` moved into the send window. Computed once, kept in state. */
  dueAt: number;
  /** Never send after this (a reminder after the meeting has started is pointless). */
  notAfter?: number;
  cause: string;
  /** Arming order: steps due at the same instant go out in the order they were planned. */
  sequence?: number;
  /** Set when a free-text send failed outside the 24 h window: send the template instead. */
  forceTemplate?: boolean;
  /** `sms`: the SMS fallback of a step WhatsApp could not deliver (absent: WhatsApp). */
  channel?: 'sms';
  attempt: number;
}

export interface LeadState {
  tenantId: string;
  leadId: string;
  workflowId: string;
  version: number;
  stage: LeadStage;
  profile: LeadProfile;
  /** The lead's own time zone, else the tenant's. */
  timeZone: string;
  paused: boolean;
  optedOut: boolean;
  meeting?: Meeting & { status: 'booked' | 'attended' | 'no_show' | 'canceled' };
  lastInboundAt?: number;
  lastSentAt?: number;
  lastActivityAt: number;
  /** Keys of steps already sent (or adopted from the legacy system): never sent twice. */
  doneSteps: string[];
  /** The WhatsApp message id each sent step went out as: a failure under another id is about an attempt the send got past. */
  sentMessageIds?: Record<string, string>;
  /** The WhatsApp number (shared/senders.ts) the lead is written from: chosen at its first send or reply, then kept so the conversation stays in one thread. */
  sender?: string;
  planned: PlannedStep[];
  rewarmAttempts: number;
  /** Counter behind PlannedStep.sequence. */
  armed?: number;
  /** Event ids already applied (bounded; carried across continue-as-new). */
  seenEventIds: string[];
}

/** Why a planned or due message was not sent: every `skipped` timeline entry names one in `detail.reason`. */
export type SkipReason =
  | 'too_close'
  | 'quiet_hours'
  /** Something that happened made it moot (a reply, a booking, a close, …): the entry's cause says what. */
  | 'canceled'
  /** An operator skipped it or canceled its flow (`detail.operator` names them when known). */
  | 'operator'
  | 'opted_out'
  | 'no_phone'
  | 'too_late'
  /** The tenant has no WhatsApp number (or, for an SMS, no Twilio account) to send from. */
  | 'no_sender'
  /** Twilio refused the SMS: the number cannot get text messages (21211, 21614, …). */
  | 'invalid_number'
  /** Refused by the send (recorded before the send named its reason). */
  | 'not_sent'
  | 'superseded'
  | 'throttled'
  | 'closed';

export interface TimelineEntry {
  entryKey: string;
  /** When it happened (ISO 8601). Read back from the timeline (db/leads.ts), in causal order: see shared/lead-timeline.ts. */
  at: string;
  kind: 'event' | 'scheduled' | 'sent' | 'skipped' | 'failed' | 'delivered' | 'read' | 'replied' | 'operator' | 'stage' | 'sender';
  flow?: FlowName;
  step?: string;
  cause: string;
  detail?: Record<string, unknown>;
}
