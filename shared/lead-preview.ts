/**
 * Flow preview (dry run): every send the lead flows would make from a lead's state, found by
 * running the workflow's own planning code (lead-plan.ts) forward on a simulated clock. Nothing is
 * sent or stored. It assumes nothing else happens: no reply, no attendance, no CRM event, no
 * operator action. A booked meeting therefore ends as a no-show. Free of Node built-ins and I/O,
 * like the rest of the domain.
 */
import { Changes, afterSent, applyLeadEvent, cancel, dueStep, initialLeadState, nextWakeAt, planStepMessage, runNoShowCheck, sendDecision, smsText } from './lead-plan.js';
import { chooseSender } from './senders.js';
import type { SenderRoute, SenderRule } from './senders.js';
import type { StepLanguage, StepMessage } from './lead-plan.js';
import type { FlowName, LeadPolicy, LeadProfile, LeadStage, LeadState, Meeting, SkipReason } from './leads.js';
import { z } from 'zod';
import { leadStages } from './leads.js';
import { formatLocal, isAllowed } from './send-window.js';

/** What moved a send, or chose its form. */
export type PreviewGuard =
  | { guard: 'send_window'; detail: string; from: string }
  | { guard: 'recipient_spacing'; detail: string; from: string }
  | { guard: 'outside_24h_window'; detail: string };

export interface PreviewSend {
  key: string;
  flow: FlowName;
  step: string;
  /** When it would go out (UTC), and the same moment on the lead's clock. */
  at: string;
  local: string;
  message: StepMessage;
  /** The language it goes in: the lead's (`match: lead`), the tenant's fallback chain's, or the template's default; `requested` is the lead's when that did not go. */
  language: StepLanguage;
  /** WhatsApp, or SMS for the fallback of a step WhatsApp could not deliver. */
  channel: 'whatsapp' | 'sms';
  /** The WhatsApp number it goes from and what chose it (`kept`: the lead already has it); absent for an SMS. */
  sender?: { name: string; rule: SenderRule | 'kept' };
  cause: string;
  guards: PreviewGuard[];
}

export interface PreviewSkip {
  key: string;
  flow: FlowName;
  step: string;
  at: string;
  local: string;
  reason: SkipReason;
  cause: string;
}

export interface LeadPreview {
  leadId: string;
  timeZone: string;
  stage: LeadStage;
  /** A paused lead sends nothing until an operator resumes it. */
  paused: boolean;
  from: string;
  until: string;
  sends: PreviewSend[];
  skips: PreviewSkip[];
  /** Whether steps are still planned after the horizon (a paused lead has none due: see `paused`). */
  truncated: boolean;
  assumptions: string[];
}

export const previewAssumptions = [
  'nothing else happens: no reply, no attendance, no CRM event, no operator action (a booked meeting ends as a no-show)',
  "every send succeeds; the tenant's sending rate can still delay a send by seconds",
];

/** A lead that does not exist, described by what shapes its flows. */
export interface HypotheticalLead {
  timeZone: string;
  stage?: LeadStage;
  name?: string;
  language?: string;
  /** What chooses the WhatsApp number (shared/senders.ts): the phone number's region, the CRM team and owner. */
  country?: string;
  team?: string;
  owner?: string;
  meeting?: Pick<Meeting, 'startsAt' | 'endsAt'> & { id?: string };
  /** The lead's last WhatsApp message to us (opens the 24 h window for free text). */
  lastInboundAt?: number;
  /** Steps already sent (flow keys such as `welcome:message`). */
  completedSteps?: string[];
}

const isoInstant = z.iso.datetime({ offset: true });

/** How far ahead a preview looks unless told otherwise. */
export const defaultPreviewDays = 30;

/** The preview's window: `days` from `from` (an ISO instant; now if not given). */
export function previewWindow(days: number, from?: string): { from: number; until: number } {
  const start = from === undefined ? Date.now() : Date.parse(from);
  return { from: start, until: start + days * 24 * 60 * 60 * 1000 };
}

/** How far ahead, and from when: the same bounds at the API and the CLI. */
export const previewQueryFields = () => ({
  days: z.number().int().min(1).max(90).describe('How far ahead to look, in days (1 to 90)'),
  from: isoInstant.optional().describe('The moment the preview starts from (default: now)'),
});

/**
 * A preview request for a hypothetical lead, strict: an unknown field is refused, not dropped. The
 * caller gives its time-zone schema (the API's is an enum OpenAPI can state).
 */
export function previewRequestSchema(timeZone: z.ZodType<string>) {
  const { days, from } = previewQueryFields();
  const lead = z.strictObject({
    timeZone,
    stage: z.enum(leadStages).optional().describe('`new` (the default): a lead just created, which books `meeting` if given; any other stage: a lead brought in at that stage, as an import does'),
    name: z.string().max(200).optional(),
    language: z.string().regex(/^[a-z]{2}(_[A-Z]{2})?$/).optional().describe("The lead's language, e.g. `es` or `pt_BR`: picks each template's version (then the base language, another region of it, the tenant's `languageFallback`, the template's default)"),
    country: z.string().regex(/^[A-Z]{2}$/).optional().describe("The region of the lead's phone number (ISO 3166, e.g. `ES`): with `team` and `owner` it chooses the WhatsApp number"),
    team: z.string().min(1).max(200).optional().describe("The lead's sales team in the CRM"),
    owner: z.string().min(1).max(200).optional().describe("The lead's owner in the CRM (user id or e-mail)"),
    meeting: z.strictObject({ id: z.string().min(1).max(200).optional(), startsAt: isoInstant, endsAt: isoInstant.optional() }).optional(),
    lastInboundAt: isoInstant.optional().describe("The lead's last WhatsApp message to us: free text may go for 24 h after it"),
    completedSteps: z.array(z.string().min(1).max(200)).max(200).optional().describe('Steps already sent, e.g. `welcome:message`'),
  });
  return z.strictObject({ lead, days: days.default(defaultPreviewDays), from });
}

/** A parsed request's lead, as hypotheticalLeadState takes it. */
export function hypotheticalLeadOf(lead: z.infer<ReturnType<typeof previewRequestSchema>>['lead']): HypotheticalLead {
  const { lastInboundAt, ...rest } = lead;
  return { ...rest, ...(lastInboundAt ? { lastInboundAt: Date.parse(lastInboundAt) } : {}) };
}

const maxSimulatedSteps = 500;
const previewLeadId = 'preview';
/** A placeholder number: the preview never sends, and a lead without one would be all skips. */
const placeholderPhone = '+15550100000';

/**
 * The state a hypothetical lead would have, made by the events a real one gets: `lead.created` (and
 * `meeting.booked`) for a new lead, `lead.imported` for one further along.
 */
export function hypotheticalLeadState(tenantId: string, lead: HypotheticalLead, policy: LeadPolicy, now: number): LeadState {
  const state = initialLeadState(tenantId, previewLeadId, previewLeadId, lead.timeZone, now);
  const profile: LeadProfile = {
    phone: placeholderPhone,
    timeZone: lead.timeZone,
    ...(lead.name ? { name: lead.name } : {}),
    ...(lead.language ? { language: lead.language } : {}),
    ...(lead.country ? { country: lead.country } : {}),
    ...(lead.team ? { team: lead.team } : {}),
    ...(lead.owner ? { owner: lead.owner } : {}),
  };
  const occurredAt = new Date(now).toISOString();
  const changes = new Changes(now);
  const meeting = lead.meeting ? { id: lead.meeting.id ?? 'preview-meeting', startsAt: lead.meeting.startsAt, ...(lead.meeting.endsAt ? { endsAt: lead.meeting.endsAt } : {}) } : undefined;
  const stage = lead.stage ?? 'new';
  if (stage === 'new') {
    // A new lead, and the meeting it books now.
    applyLeadEvent(state, { eventId: 'preview:created', type: 'lead.created', occurredAt, profile }, policy, now, changes);
    if (meeting) applyLeadEvent(state, { eventId: 'preview:booked', type: 'meeting.booked', occurredAt, meeting }, policy, now, changes);
  } else {
    // A lead already further along, as the legacy import brings one in.
    applyLeadEvent(state, { eventId: 'preview:imported', type: 'lead.imported', occurredAt, profile, stage, completedSteps: lead.completedSteps ?? [], ...(meeting ? { meeting } : {}) }, policy, now, changes);
  }
  if (lead.lastInboundAt !== undefined) state.lastInboundAt = lead.lastInboundAt;
  return state;
}

/**
 * Runs the flows forward from `from` to `until` as the workflow's main loop would: the due step,
 * the guards at the moment of sending, the send, and whatever the send arms next.
 */
export function previewLead(start: LeadState, policy: LeadPolicy, company: string, window: { from: number; until: number }, options: { suppressed?: boolean; noSender?: boolean; senders?: SenderRoute[] } = {}): LeadPreview {
  const state = structuredClone(start);
  if (options.suppressed) state.optedOut = true;
  const sends: PreviewSend[] = [];
  const skips: PreviewSkip[] = [];
  const local = (ms: number): string => formatLocal(ms, state.timeZone);
  const spacedFrom = new Map<string, number>();
  const skipsIn = (changes: Changes, at: number): void => {
    for (const entry of changes.timeline) {
      if (entry.kind !== 'skipped' || !entry.flow || entry.step === undefined) continue;
      const reason = (entry.detail as { reason?: SkipReason } | undefined)?.reason ?? 'canceled';
      // Entry keys are `<why>:<step key>`, and a step key starts with its flow and step.
      const keyStart = entry.entryKey.indexOf(`${entry.flow}:${entry.step}`);
      skips.push({ key: keyStart >= 0 ? entry.entryKey.slice(keyStart) : entry.entryKey, flow: entry.flow, step: entry.step, at: new Date(at).toISOString(), local: local(at), reason, cause: entry.cause });
    }
  };

  let clock = window.from;
  for (let simulated = 0; simulated < maxSimulatedSteps; simulated++) {
    const wake = nextWakeAt(state);
    if (wake === undefined) break;
    clock = Math.max(clock, wake);
    if (clock > window.until) break;
    const step = dueStep(state, clock);
    if (!step) break;
    const changes = new Changes(clock);
    if (step.flow === 'no_show' && step.step === 'check') {
      runNoShowCheck(state, step, policy, clock, changes);
      skipsIn(changes, clock);
      continue;
    }
    const decision = sendDecision(state, step, policy, clock);
    if (decision.action === 'wait') {
      if (!spacedFrom.has(step.key)) spacedFrom.set(step.key, clock);
      clock = decision.until;
      continue;
    }
    if (decision.action === 'skip') {
      cancel(state, (planned) => planned.key === step.key, decision.reason, changes, 'skipped-at-send', { reason: decision.code });
      skipsIn(changes, clock);
      continue;
    }
    if (options.noSender) {
      // What the send activity answers for a tenant without a WhatsApp number.
      cancel(state, (planned) => planned.key === step.key, 'no WhatsApp number configured', changes, 'skipped-at-send', { reason: 'no_sender' });
      skipsIn(changes, clock);
      continue;
    }
    const guards: PreviewGuard[] = [];
    if (step.dueAt > step.baseAt && !isAllowed(step.baseAt, state.timeZone, policy.sendWindow)) {
      guards.push({ guard: 'send_window', detail: 'moved out of quiet hours or a day without sending into the send window', from: new Date(step.baseAt).toISOString() });
    }
    const spaced = spacedFrom.get(step.key);
    if (spaced !== undefined) guards.push({ guard: 'recipient_spacing', detail: `held ${policy.recipientSpacingSeconds} s after the previous message to this person`, from: new Date(spaced).toISOString() });
    if (decision.asTemplate) guards.push({ guard: 'outside_24h_window', detail: step.forceTemplate ? 'a template, as free text was refused' : 'a template: the lead has not written in the last 24 h' });
    const { message, language } = planStepMessage(state, policy, company, step, decision.asTemplate);
    const at = { key: step.key, flow: step.flow, step: step.step, at: new Date(clock).toISOString(), local: local(clock) };
    if (step.channel === 'sms') {
      sends.push({ ...at, message: { type: 'text', text: smsText(state, policy, company, step) }, language, channel: 'sms', cause: step.cause, guards: [] });
    } else {
      // As the workflow does: the first message chooses the number, later ones keep it.
      const sender = state.sender !== undefined ? { name: state.sender, rule: 'kept' as const } : (({ sender: name, rule }) => ({ name, rule }))(chooseSender(state.profile, options.senders));
      state.sender = sender.name;
      sends.push({ ...at, message, language, channel: 'whatsapp', sender, cause: step.cause, guards });
    }
    afterSent(state, step, policy, clock, changes, `preview:${step.key}`);
    skipsIn(changes, clock);
  }
  return {
    leadId: start.leadId,
    timeZone: state.timeZone,
    stage: state.stage,
    paused: state.paused,
    from: new Date(window.from).toISOString(),
    until: new Date(window.until).toISOString(),
    sends,
    skips,
    truncated: nextWakeAt(state) !== undefined,
    assumptions: previewAssumptions,
  };
}
