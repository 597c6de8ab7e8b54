/**
 * The lead lifecycle as pure functions over LeadState: events arm and cancel planned messages,
 * each with its send time computed once (inside the lead's send window) and an idempotency key.
 * The lead workflow only waits for the next due step or signal and calls these.
 */
import type { FlowName, LeadEvent, LeadPolicy, LeadStage, LeadState, Meeting, PlannedStep, SkipReason, TimelineEntry } from './leads.js';
import { formatLocal, nextAllowed, previousAllowed } from './send-window.js';
import { decideWhatsAppError, whatsappRetryDelayMs } from './whatsapp-errors.js';
import type { WhatsAppRetryDecision } from './whatsapp-errors.js';
import { canonicalLanguage, resolveTemplate } from './templates.js';
import type { LanguageMatch } from './templates.js';
import type { SenderRule } from './senders.js';

const hour = 3_600_000;
const day = 24 * hour;
const seenEventLimit = 500;

export const closedStages: readonly LeadStage[] = ['won', 'lost', 'opted_out'];
export const isClosed = (state: LeadState): boolean => closedStages.includes(state.stage);

/** Replies that mean "stop messaging me". */
export function isOptOutText(text: string): boolean {
  return /^\s*(stop|stop all|stopall|unsubscribe|cancel|end|quit|opt[\s-]?out)\s*[.!]*\s*$/i.test(text);
}

export function initialLeadState(tenantId: string, leadId: string, workflowId: string, timeZone: string, now: number): LeadState {
  return {
    tenantId,
    leadId,
    workflowId,
    version: 0,
    stage: 'new',
    profile: {},
    timeZone,
    paused: false,
    optedOut: false,
    lastActivityAt: now,
    doneSteps: [],
    planned: [],
    rewarmAttempts: 0,
    seenEventIds: [],
  };
}

type NoteBase = Omit<TimelineEntry, 'at' | 'kind' | 'detail'> & { at?: number };
/** What a `skipped` entry says besides its reason. */
export type SkipDetail = { reason: SkipReason } & Record<string, unknown>;
/** A timeline entry to note: a skip must say why (`detail.reason`). */
export type TimelineNote =
  | (NoteBase & { kind: Exclude<TimelineEntry['kind'], 'skipped'>; detail?: Record<string, unknown> })
  | (NoteBase & { kind: 'skipped'; detail: SkipDetail });

/** What applying something to the state produced, for the journal and the timeline. */
export class Changes {
  readonly timeline: TimelineEntry[] = [];
  changed = false;
  constructor(private readonly now: number) {}
  note(entry: TimelineNote): void {
    this.timeline.push({ ...entry, at: new Date(entry.at ?? this.now).toISOString() });
    this.changed = true;
  }
}

interface ArmSpec {
  flow: FlowName;
  step: string;
  baseAt: number;
  cause: string;
  meetingId?: string;
  notAfter?: number;
  /** Key suffix for a repeat of a step (e.g. the template resend of a failed text). */
  keySuffix?: string;
  forceTemplate?: boolean;
  attempt?: number;
  /** A reminder whose moment has already passed is skipped as too close, not sent late. */
  skipIfPast?: boolean;
  /** The SMS fallback of a step WhatsApp could not deliver. */
  channel?: 'sms';
}

/**
 * Gives the lead its sender number (or another one, an operator's reassignment), noted on the
 * timeline with what chose it.
 */
export function assignSender(state: LeadState, choice: { sender: string; rule: SenderRule | 'reply' | 'operator' | 'unavailable' }, changes: Changes, cause: string, detail: Record<string, unknown> = {}): void {
  if (state.sender === choice.sender) return;
  const from = state.sender;
  state.sender = choice.sender;
  changes.note({ entryKey: `sender:${choice.sender}:${from ?? 'none'}:${state.version}:${changes.timeline.length}`, kind: 'sender', cause, detail: { sender: choice.sender, rule: choice.rule, ...(from !== undefined ? { from } : {}), ...detail } });
}

/** Due time first; ties in the order the steps were planned. */
export function sortPlanned(state: LeadState): void {
  state.planned.sort((a, b) => a.dueAt - b.dueAt || (a.sequence ?? 0) - (b.sequence ?? 0) || a.key.localeCompare(b.key));
}

export function stepKey(flow: FlowName, step: string, meetingId?: string): string {
  return meetingId ? `${flow}:${step}:${meetingId}` : `${flow}:${step}`;
}

/**
 * Plans a message: its send time is the rule's target moved into the send window, computed now and
 * kept. A step that is already done or planned is left alone; one that can no longer be sent in
 * time is recorded as skipped, with the reason.
 */
export function arm(state: LeadState, policy: LeadPolicy, spec: ArmSpec, now: number, changes: Changes): void {
  const key = stepKey(spec.flow, spec.step, spec.meetingId) + (spec.keySuffix ?? '');
  if (state.doneSteps.includes(key) || state.planned.some((step) => step.key === key)) return;
  const earliest = Math.max(spec.baseAt, now);
  if ((spec.notAfter !== undefined && earliest >= spec.notAfter) || (spec.skipIfPast && spec.baseAt < now - 60_000)) {
    changes.note({ entryKey: `skipped:${key}`, kind: 'skipped', flow: spec.flow, step: spec.step, cause: `too close: ${spec.cause}`, detail: { reason: 'too_close' } });
    return;
  }
  let dueAt = nextAllowed(earliest, state.timeZone, policy.sendWindow);
  if (spec.notAfter !== undefined && dueAt >= spec.notAfter) {
    // Quiet hours until the deadline: send at the last open minute before the target, if still ahead.
    const earlier = previousAllowed(earliest, state.timeZone, policy.sendWindow);
    if (earlier < now) {
      changes.note({ entryKey: `skipped:${key}`, kind: 'skipped', flow: spec.flow, step: spec.step, cause: `quiet hours until the deadline: ${spec.cause}`, detail: { reason: 'quiet_hours' } });
      return;
    }
    dueAt = Math.max(earlier, now);
  }
  const planned: PlannedStep = {
    key,
    flow: spec.flow,
    step: spec.step,
    ...(spec.meetingId ? { meetingId: spec.meetingId } : {}),
    baseAt: spec.baseAt,
    dueAt,
    ...(spec.notAfter !== undefined ? { notAfter: spec.notAfter } : {}),
    cause: spec.cause,
    ...(spec.forceTemplate ? { forceTemplate: true } : {}),
    ...(spec.channel ? { channel: spec.channel } : {}),
    attempt: spec.attempt ?? 1,
    sequence: (state.armed = (state.armed ?? 0) + 1),
  };
  state.planned.push(planned);
  sortPlanned(state);
  changes.note({
    entryKey: `scheduled:${key}`,
    kind: 'scheduled',
    flow: spec.flow,
    step: spec.step,
    cause: spec.cause,
    detail: { dueAt: new Date(dueAt).toISOString(), ...(dueAt !== earliest ? { movedFrom: new Date(earliest).toISOString(), reason: 'send_window' } : {}) },
  });
}

/** Drops planned steps (each recorded as skipped with the cause, and the reason in `detail`). */
export function cancel(
  state: LeadState,
  predicate: (step: PlannedStep) => boolean,
  cause: string,
  changes: Changes,
  entryPrefix = 'canceled',
  detail: SkipDetail = { reason: 'canceled' },
): void {
  const [dropped, kept] = [state.planned.filter(predicate), state.planned.filter((step) => !predicate(step))];
  state.planned = kept;
  for (const step of dropped) {
    changes.note({ entryKey: `${entryPrefix}:${step.key}`, kind: 'skipped', flow: step.flow, step: step.step, cause, detail });
  }
}

function setStage(state: LeadState, stage: LeadStage, cause: string, changes: Changes): void {
  if (state.stage === stage) return;
  changes.note({ entryKey: `stage:${stage}:${state.version}:${changes.timeline.length}`, kind: 'stage', cause, detail: { from: state.stage, to: stage } });
  state.stage = stage;
}

function meetingEnd(meeting: Meeting): number {
  return meeting.endsAt ? Date.parse(meeting.endsAt) : Date.parse(meeting.startsAt) + 30 * 60_000;
}

function armMeetingSteps(state: LeadState, policy: LeadPolicy, meeting: Meeting, now: number, changes: Changes, cause: string): void {
  const startsAt = Date.parse(meeting.startsAt);
  // Reminder keys name the meeting time, so a reschedule arms fresh ones.
  const version = `${meeting.id}@${meeting.startsAt}`;
  for (const hours of policy.reminderHoursBefore) {
    arm(state, policy, { flow: 'reminder', step: `${hours}h`, meetingId: version, baseAt: startsAt - hours * hour, notAfter: startsAt, skipIfPast: true, cause: `${hours} h before the meeting (${cause})` }, now, changes);
  }
  state.planned = state.planned.filter((step) => !(step.flow === 'no_show' && step.step === 'check'));
  state.planned.push({ key: stepKey('no_show', 'check', version), flow: 'no_show', step: 'check', meetingId: version, baseAt: meetingEnd(meeting), dueAt: meetingEnd(meeting) + policy.noShow.graceMinutes * 60_000, cause: 'meeting ended: was it attended?', attempt: 1 });
  sortPlanned(state);
}

const meetingFlows = (step: PlannedStep): boolean => step.flow === 'reminder' || (step.flow === 'no_show' && step.step === 'check');
const chasingFlows: FlowName[] = ['follow_up', 'rewarm', 'no_show', 'post_meeting'];

/** Re-arms the idle check: a lead with no activity for `idleDays` gets a rewarming message. */
export function armRewarm(state: LeadState, policy: LeadPolicy, now: number, changes: Changes): void {
  state.planned = state.planned.filter((step) => step.flow !== 'rewarm');
  if (isClosed(state) || state.stage === 'booked' || state.rewarmAttempts >= policy.rewarm.maxAttempts) return;
  const attempt = state.rewarmAttempts + 1;
  arm(state, policy, { flow: 'rewarm', step: String(attempt), baseAt: state.lastActivityAt + policy.rewarm.idleDays * day, cause: `no activity for ${policy.rewarm.idleDays} days` }, now, changes);
}

/** A lead.created that happened before what already moved the lead on, on a lead still open. */
function createdWasOvertaken(state: LeadState, createdAt: number): boolean {
  return state.stage !== 'new' && state.stage !== 'dormant' && !isClosed(state) && createdAt <= state.lastActivityAt;
}

function markActivity(state: LeadState, at: number): void {
  state.lastActivityAt = Math.max(state.lastActivityAt, at);
}

/**
 * Behaviour a running workflow switches on with patched(), so histories recorded before it replay
 * unchanged. Each is asked lazily, only when it would make a difference.
 */
export interface LeadPlanFeatures {
  /** Re-send a step that WhatsApp accepted and then failed by webhook with a throttling code. */
  resendThrottled?: () => boolean;
  /** Arm the welcome for a lead.created that arrives after later events moved the lead on. */
  welcomeLateCreated?: () => boolean;
  /** Send a step WhatsApp could not deliver as SMS (policy.smsFallback). */
  smsFallback?: () => boolean;
}

/** How many times a throttled message is re-sent before the step is given up. */
export const throttledResendLimit = 3;

/**
 * Applies one event (in place). Returns false for a duplicate. Every decision lands in the
 * timeline with its cause.
 */
export function applyLeadEvent(state: LeadState, event: LeadEvent, policy: LeadPolicy, now: number, changes: Changes, features: LeadPlanFeatures = {}): boolean {
  if (state.seenEventIds.includes(event.eventId)) return false;
  state.seenEventIds.push(event.eventId);
  if (state.seenEventIds.length > seenEventLimit) state.seenEventIds.splice(0, state.seenEventIds.length - seenEventLimit);
  const at = Date.parse(event.occurredAt);
  const cause = `${event.type} (${event.eventId})`;
  changes.note({ entryKey: `event:${event.eventId}`, kind: event.type === 'whatsapp.reply' || event.type === 'sms.reply' ? 'replied' : 'event', cause: event.type, detail: { eventId: event.eventId, ...(event.type === 'whatsapp.reply' && event.receivedOn !== undefined ? { receivedOn: event.receivedOn } : {}) }, at: Math.min(at, now) });

  if (state.optedOut && event.type !== 'lead.updated') return true;
  switch (event.type) {
    case 'lead.created':
    case 'lead.updated': {
      state.profile = { ...state.profile, ...event.profile };
      if (event.profile.timeZone) replanTimeZone(state, policy, event.profile.timeZone, now, changes, cause);
      if (event.type === 'lead.created' && state.stage === 'new') {
        markActivity(state, at);
        arm(state, policy, { flow: 'welcome', step: 'message', baseAt: now, cause }, now, changes);
        armRewarm(state, policy, now, changes);
      } else if (event.type === 'lead.created' && createdWasOvertaken(state, at) && features.welcomeLateCreated?.()) {
        // Delivery is at least once and can be late (an inbox waiting out a database freeze while a
        // later event went straight to Temporal): had it come first, the welcome would have been
        // armed and nothing after it but a close cancels a welcome.
        arm(state, policy, { flow: 'welcome', step: 'message', baseAt: now, cause: `${cause}, delivered after later events` }, now, changes);
      }
      break;
    }
    case 'lead.imported':
      applyImport(state, policy, event, now, changes);
      break;
    case 'meeting.booked': {
      const previous = state.meeting;
      cancel(state, (step) => meetingFlows(step) || chasingFlows.includes(step.flow) || step.flow === 'cancellation', `meeting booked (${cause})`, changes, `booked:${event.meeting.id}`);
      state.meeting = { ...event.meeting, status: 'booked' };
      markActivity(state, at);
      setStage(state, 'booked', cause, changes);
      arm(state, policy, { flow: 'booking_confirmation', step: 'message', meetingId: event.meeting.id, baseAt: now, notAfter: Date.parse(event.meeting.startsAt), cause }, now, changes);
      armMeetingSteps(state, policy, event.meeting, now, changes, previous?.status === 'no_show' ? 'rebooked after a no-show' : 'booked');
      break;
    }
    case 'meeting.rescheduled': {
      const version = `${event.meeting.id}@${event.meeting.startsAt}`;
      cancel(state, meetingFlows, `meeting rescheduled to ${event.meeting.startsAt} (${cause})`, changes, `rescheduled:${version}`);
      state.meeting = { ...event.meeting, status: 'booked' };
      markActivity(state, at);
      setStage(state, 'booked', cause, changes);
      arm(state, policy, { flow: 'reschedule', step: 'message', meetingId: version, baseAt: now, notAfter: Date.parse(event.meeting.startsAt), cause }, now, changes);
      armMeetingSteps(state, policy, event.meeting, now, changes, 'rescheduled');
      break;
    }
    case 'meeting.canceled': {
      cancel(state, meetingFlows, `meeting canceled (${cause})`, changes, `canceled-meeting:${event.meetingId}`);
      if (state.meeting?.id === event.meetingId) state.meeting = { ...state.meeting, status: 'canceled' };
      markActivity(state, at);
      setStage(state, 'engaged', cause, changes);
      arm(state, policy, { flow: 'cancellation', step: 'message', meetingId: event.meetingId, baseAt: now, cause }, now, changes);
      armRewarm(state, policy, now, changes);
      break;
    }
    case 'meeting.attended':
      markAttended(state, policy, event.meetingId, now, changes, cause);
      break;
    case 'meeting.no_show':
      markNoShow(state, policy, event.meetingId, now, changes, cause);
      break;
    case 'lead.status_changed':
      cancel(state, () => true, `lead ${event.status} (${cause})`, changes, `closed:${event.status}`);
      setStage(state, event.status, cause, changes);
      break;
    case 'lead.opted_out':
      optOut(state, cause, changes);
      break;
    case 'whatsapp.reply': {
      state.lastInboundAt = Math.max(state.lastInboundAt ?? 0, at);
      markActivity(state, at);
      // A lead who writes first is answered from the number they wrote to: the thread is there.
      if (event.receivedOn !== undefined && state.sender === undefined) assignSender(state, { sender: event.receivedOn, rule: 'reply' }, changes, `the lead wrote to it (${cause})`);
      if (isOptOutText(event.text)) {
        optOut(state, `opt-out reply (${cause})`, changes);
        break;
      }
      cancel(state, (step) => chasingFlows.includes(step.flow), `lead replied (${cause})`, changes, `replied:${event.eventId}`);
      if (state.stage === 'new' || state.stage === 'contacted' || state.stage === 'dormant') setStage(state, 'engaged', cause, changes);
      armRewarm(state, policy, now, changes);
      break;
    }
    case 'sms.reply':
      // A text message is no WhatsApp message: it opens no 24 h window.
      markActivity(state, at);
      cancel(state, (step) => chasingFlows.includes(step.flow), `lead replied by SMS (${cause})`, changes, `replied:${event.eventId}`);
      if (state.stage === 'new' || state.stage === 'contacted' || state.stage === 'dormant') setStage(state, 'engaged', cause, changes);
      armRewarm(state, policy, now, changes);
      break;
    case 'whatsapp.failed':
      applySendFailure(state, policy, event, now, changes, features);
      break;
    case 'call.missed':
      markActivity(state, at);
      arm(state, policy, { flow: 'missed_call', step: 'message', meetingId: event.callId, baseAt: now, cause }, now, changes);
      break;
    case 'call.completed':
      markActivity(state, at);
      cancel(state, (step) => step.flow === 'follow_up' || step.flow === 'rewarm', `spoke on the phone (${cause})`, changes, `called:${event.callId}`);
      if (state.stage === 'new' || state.stage === 'contacted') setStage(state, 'engaged', cause, changes);
      armRewarm(state, policy, now, changes);
      break;
  }
  return true;
}

function optOut(state: LeadState, cause: string, changes: Changes): void {
  state.optedOut = true;
  cancel(state, () => true, `opted out (${cause})`, changes, 'opted-out');
  setStage(state, 'opted_out', cause, changes);
}

function markAttended(state: LeadState, policy: LeadPolicy, meetingId: string, now: number, changes: Changes, cause: string): void {
  cancel(state, (step) => meetingFlows(step) || step.flow === 'no_show', `meeting attended (${cause})`, changes, `attended:${meetingId}`);
  const meeting = state.meeting;
  if (meeting) state.meeting = { ...meeting, status: 'attended' };
  setStage(state, 'attended', cause, changes);
  const end = meeting ? meetingEnd(meeting) : now;
  for (const [index, hours] of policy.postMeetingFollowUpHours.entries()) {
    arm(state, policy, { flow: 'post_meeting', step: String(index + 1), meetingId, baseAt: end + hours * hour, cause: `${hours} h after the meeting` }, now, changes);
  }
}

function markNoShow(state: LeadState, policy: LeadPolicy, meetingId: string, now: number, changes: Changes, cause: string): void {
  if (state.meeting?.status === 'attended') return;
  cancel(state, meetingFlows, `no-show (${cause})`, changes, `no-show:${meetingId}`);
  if (state.meeting) state.meeting = { ...state.meeting, status: 'no_show' };
  setStage(state, 'no_show', cause, changes);
  for (const [index, days] of policy.noShow.attemptDays.entries()) {
    arm(state, policy, { flow: 'no_show', step: `rebook-${index + 1}`, meetingId, baseAt: now + days * day, cause: `no-show recovery attempt ${index + 1} of ${policy.noShow.attemptDays.length}` }, now, changes);
  }
}

function applySendFailure(state: LeadState, policy: LeadPolicy, event: Extract<LeadEvent, { type: 'whatsapp.failed' }>, now: number, changes: Changes, features: LeadPlanFeatures): void {
  const key = event.effectKey.replace(/^wa:[^:]*:/, '');
  const [base = key] = key.split('#');
  const [flowName = '', step = ''] = base.split(':');
  const flow = flowName as FlowName;
  changes.note({ entryKey: `failed:${key}:${event.messageId}`, kind: 'failed', flow, step, cause: `WhatsApp error ${event.errorCode}${event.errorTitle ? ` (${event.errorTitle})` : ''}`, detail: { errorCode: event.errorCode, messageId: event.messageId } });
  const meetingId = base.split(':').slice(2).join(':') || undefined;
  const decision = decideWhatsAppError(event.errorCode);
  if (decision.action === 'retry') {
    // Not done yet: the send activity is still retrying the same refusal itself.
    if (state.doneSteps.includes(key) && features.resendThrottled?.()) resendThrottled(state, policy, { key, base, flow, step, meetingId, messageId: event.messageId }, decision, now, changes);
  } else if (event.errorCode === 131047 && !key.includes('#template')) {
    // Outside the 24 h window the free text was refused: the approved template goes instead.
    state.lastInboundAt = undefined;
    arm(state, policy, { flow, step, ...(meetingId ? { meetingId } : {}), baseAt: now, keySuffix: '#template', forceTemplate: true, attempt: 2, cause: 'resend as template: outside the 24 h window (131047)' }, now, changes);
  } else if (event.errorCode === 131049 && !key.includes('#later')) {
    // WhatsApp's per-user marketing cap: wait a day, once.
    arm(state, policy, { flow, step, ...(meetingId ? { meetingId } : {}), baseAt: now + day, keySuffix: '#later', forceTemplate: key.includes('#template'), attempt: 2, cause: 'marketing cap reached (131049): retry in 24 h' }, now, changes);
  } else if (smsFallbackCovers(policy, flow, event.errorCode) && !isClosed(state) && features.smsFallback?.()) {
    // The number cannot get WhatsApp messages: the step goes once as SMS (one key per step, whichever
    // WhatsApp attempt failed), planned now inside the send window, never after a meeting started.
    const notAfter = meetingStartOf(state, flow, meetingId);
    arm(
      state,
      policy,
      { flow, step, ...(meetingId ? { meetingId } : {}), baseAt: now, ...(notAfter !== undefined ? { notAfter } : {}), keySuffix: smsKeySuffix, channel: 'sms', attempt: 2, cause: `SMS fallback: WhatsApp cannot deliver (${event.errorCode})` },
      now,
      changes,
    );
  }
}

/** The suffix of a step's SMS fallback key: `wa:<lead>:<flow>:<step>[:<meeting>]#sms`. */
export const smsKeySuffix = '#sms';

/** Whether the lead policy sends this flow as SMS when WhatsApp fails with this code. */
export function smsFallbackCovers(policy: LeadPolicy, flow: FlowName, errorCode: number): boolean {
  const fallback = policy.smsFallback;
  // Policies recorded before the fallback existed have no smsFallback.
  if (!fallback?.enabled) return false;
  return fallback.whatsappErrorCodes.includes(errorCode) && (fallback.flows === undefined || fallback.flows.includes(flow));
}

/** The text an SMS fallback sends: the flow's free text (SMS has no 24 h window and no templates). */
export function smsText(state: LeadState, policy: LeadPolicy, company: string, step: Pick<PlannedStep, 'flow'>): string {
  return fill(policy.messages[step.flow].text, messageValues(state, policy, company));
}

const throttledRetrySuffix = /#retry(\d+)$/;

/** Whether a step key is a re-send of a throttled message (the step itself was already counted). */
const isThrottledResend = (key: string): boolean => throttledRetrySuffix.test(key);

const formatDelay = (ms: number): string => (ms % 60_000 === 0 ? `${ms / 60_000} min` : `${Math.round(ms / 1000)} s`);

/**
 * A message WhatsApp accepted and then failed for throttling: the same step again under
 * `#retry<n>` (keeping its other suffixes, so a template stays a template), after the table's
 * backoff; after the last retry the step is given up, on the timeline.
 */
function resendThrottled(
  state: LeadState,
  policy: LeadPolicy,
  failed: { key: string; base: string; flow: FlowName; step: string; meetingId: string | undefined; messageId: string },
  decision: WhatsAppRetryDecision,
  now: number,
  changes: Changes,
): void {
  const { key, flow, step, meetingId } = failed;
  const suffix = key.slice(failed.base.length);
  const retry = Number(throttledRetrySuffix.exec(suffix)?.[1] ?? 0) + 1;
  const throttled = `WhatsApp throttled (${decision.code})`;
  // A refusal reported both ways: its status names an id the send never got, and the send's own retry already went out.
  const sentAs = state.sentMessageIds?.[key];
  if (sentAs !== undefined && sentAs !== failed.messageId) {
    changes.note({ entryKey: `superseded:${key}:${failed.messageId}`, kind: 'skipped', flow, step, cause: `${throttled}: not re-sent, the send's own retry already went out`, detail: { reason: 'superseded', messageId: failed.messageId, sentAs } });
    return;
  }
  if (retry > throttledResendLimit) {
    changes.note({ entryKey: `gave-up:${key}`, kind: 'skipped', flow, step, cause: `${throttled}: gave up after ${throttledResendLimit} resends`, detail: { reason: 'throttled', errorCode: decision.code } });
    return;
  }
  if (isClosed(state)) {
    changes.note({ entryKey: `gave-up:${key}`, kind: 'skipped', flow, step, cause: `${throttled}: not re-sent, the lead is ${state.stage}`, detail: { reason: 'closed', errorCode: decision.code } });
    return;
  }
  const delayMs = whatsappRetryDelayMs(decision, retry);
  const notAfter = meetingStartOf(state, flow, meetingId);
  arm(
    state,
    policy,
    {
      flow,
      step,
      ...(meetingId ? { meetingId } : {}),
      baseAt: now + delayMs,
      ...(notAfter !== undefined ? { notAfter } : {}),
      keySuffix: `${suffix.replace(throttledRetrySuffix, '')}#retry${retry}`,
      forceTemplate: key.includes('#template'),
      attempt: retry + 1,
      cause: `${throttled}: resend in ${formatDelay(delayMs)} (retry ${retry} of ${throttledResendLimit})`,
    },
    now,
    changes,
  );
}

/** The deadline a meeting-bound message was armed with: a resend must not go after the meeting starts either. */
function meetingStartOf(state: LeadState, flow: FlowName, meetingId: string | undefined): number | undefined {
  if (!meetingId) return undefined;
  // Reminder and reschedule steps name the meeting time: `<meeting id>@<starts at>`.
  if (flow === 'reminder' || flow === 'reschedule') {
    const startsAt = Date.parse(meetingId.slice(meetingId.lastIndexOf('@') + 1));
    return Number.isNaN(startsAt) ? undefined : startsAt;
  }
  if (flow === 'booking_confirmation' && state.meeting?.id === meetingId) return Date.parse(state.meeting.startsAt);
  return undefined;
}

function applyImport(state: LeadState, policy: LeadPolicy, event: Extract<LeadEvent, { type: 'lead.imported' }>, now: number, changes: Changes): void {
  state.profile = { ...state.profile, ...event.profile };
  if (event.profile.timeZone) state.timeZone = event.profile.timeZone;
  for (const key of event.completedSteps) if (!state.doneSteps.includes(key)) state.doneSteps.push(key);
  const lastContact = event.lastContactAt ? Date.parse(event.lastContactAt) : Date.parse(event.occurredAt);
  markActivity(state, lastContact);
  const cause = `imported from the legacy system as ${event.stage}`;
  setStage(state, event.stage, cause, changes);
  if (event.meeting) state.meeting = { ...event.meeting, status: event.stage === 'attended' ? 'attended' : event.stage === 'no_show' ? 'no_show' : 'booked' };
  switch (event.stage) {
    case 'new':
      arm(state, policy, { flow: 'welcome', step: 'message', baseAt: now, cause }, now, changes);
      break;
    case 'contacted':
      policy.followUpDays.forEach((days, index) => arm(state, policy, { flow: 'follow_up', step: String(index + 1), baseAt: lastContact + days * day, cause: `${cause}: follow-up ${index + 1}` }, now, changes));
      break;
    case 'booked':
      if (event.meeting) armMeetingSteps(state, policy, event.meeting, now, changes, cause);
      break;
    case 'no_show':
      if (event.meeting) {
        policy.noShow.attemptDays.forEach((days, index) =>
          arm(state, policy, { flow: 'no_show', step: `rebook-${index + 1}`, meetingId: event.meeting?.id, baseAt: lastContact + days * day, cause: `${cause}: rebooking attempt ${index + 1}` }, now, changes),
        );
      }
      break;
    case 'attended':
      if (event.meeting) {
        policy.postMeetingFollowUpHours.forEach((hours, index) =>
          arm(state, policy, { flow: 'post_meeting', step: String(index + 1), meetingId: event.meeting?.id, baseAt: meetingEnd(event.meeting as Meeting) + hours * hour, cause }, now, changes),
        );
      }
      break;
    case 'opted_out':
      state.optedOut = true;
      break;
    default:
      break;
  }
  // Leftovers from the legacy flow that are long overdue are not worth a burst of messages now.
  cancel(state, (step) => step.baseAt < now - 2 * day && step.flow !== 'no_show', 'overdue at import', changes, 'import-overdue');
  armRewarm(state, policy, now, changes);
}

/** A time-zone change re-plans every pending step from its raw target. */
export function replanTimeZone(
  state: LeadState,
  policy: LeadPolicy,
  timeZone: string,
  now: number,
  changes: Changes,
  cause: string,
  kind: 'event' | 'operator' = 'event',
  /** Who asked, for an operator's change. */
  by: { operator?: string } = {},
): void {
  if (timeZone === state.timeZone) return;
  const previous = state.timeZone;
  state.timeZone = timeZone;
  const steps = state.planned;
  state.planned = [];
  for (const step of steps) {
    if (step.flow === 'no_show' && step.step === 'check') {
      state.planned.push(step);
      continue;
    }
    const dueAt = nextAllowed(Math.max(step.baseAt, now), timeZone, policy.sendWindow);
    state.planned.push({ ...step, dueAt });
  }
  sortPlanned(state);
  changes.note({ entryKey: `timezone:${timeZone}:${state.version}`, kind, cause, detail: { ...by, from: previous, to: timeZone } });
}

/** The next step whose time has come (none while paused). */
export function dueStep(state: LeadState, now: number): PlannedStep | undefined {
  if (state.paused) return undefined;
  return state.planned.find((step) => step.dueAt <= now);
}

/** When the workflow must next wake up on its own. */
export function nextWakeAt(state: LeadState): number | undefined {
  if (state.paused) return undefined;
  return state.planned[0]?.dueAt;
}

export type SendDecision =
  | { action: 'send'; asTemplate: boolean }
  | { action: 'skip'; reason: string; code: SkipReason }
  | { action: 'wait'; until: number };

/** The guards that apply at the moment of sending (state may have moved since the step was planned). */
export function sendDecision(state: LeadState, step: PlannedStep, policy: LeadPolicy, now: number): SendDecision {
  if (state.optedOut) return { action: 'skip', reason: 'opted out', code: 'opted_out' };
  if (!state.profile.phone) return { action: 'skip', reason: 'no phone number', code: 'no_phone' };
  if (step.notAfter !== undefined && now >= step.notAfter) return { action: 'skip', reason: 'too late: the moment has passed', code: 'too_late' };
  const spacingUntil = (state.lastSentAt ?? 0) + policy.recipientSpacingSeconds * 1000;
  if (now < spacingUntil) return { action: 'wait', until: spacingUntil };
  // Inside the 24 h window (with 5 minutes to spare) free text may go; otherwise only a template.
  const insideWindow = state.lastInboundAt !== undefined && now < state.lastInboundAt + day - 5 * 60_000;
  return { action: 'send', asTemplate: step.forceTemplate === true || !insideWindow };
}

/** After a successful send (as WhatsApp message `messageId`): the step is done, and some flows arm their next steps. */
export function afterSent(state: LeadState, step: PlannedStep, policy: LeadPolicy, sentAt: number, changes: Changes, messageId?: string): void {
  state.planned = state.planned.filter((planned) => planned.key !== step.key);
  if (!state.doneSteps.includes(step.key)) state.doneSteps.push(step.key);
  if (messageId !== undefined) state.sentMessageIds = { ...state.sentMessageIds, [step.key]: messageId };
  state.lastSentAt = sentAt;
  // A throttled message sent again: its step already went through what follows its first send.
  if (isThrottledResend(step.key)) return;
  if (step.flow === 'welcome' && (state.stage === 'new' || state.stage === 'contacted')) {
    // Follow-ups chase leads that have not engaged yet; a booked or replying lead gets none.
    setStage(state, 'contacted', 'welcome sent', changes);
    policy.followUpDays.forEach((days, index) =>
      arm(state, policy, { flow: 'follow_up', step: String(index + 1), baseAt: sentAt + days * day, cause: `follow-up ${index + 1}: ${days} day(s) after the welcome` }, sentAt, changes),
    );
  }
  if (step.flow === 'rewarm') {
    state.rewarmAttempts++;
    state.lastActivityAt = sentAt;
    if (state.rewarmAttempts >= policy.rewarm.maxAttempts) setStage(state, 'dormant', `no answer after ${state.rewarmAttempts} rewarming message(s)`, changes);
    else armRewarm(state, policy, sentAt, changes);
  }
}

/** The no-show check fired: a meeting that ended without "attended" is a no-show. */
export function runNoShowCheck(state: LeadState, step: PlannedStep, policy: LeadPolicy, now: number, changes: Changes): void {
  state.planned = state.planned.filter((planned) => planned.key !== step.key);
  if (state.meeting?.status === 'booked' && `${state.meeting.id}@${state.meeting.startsAt}` === step.meetingId) {
    markNoShow(state, policy, state.meeting.id, now, changes, 'the meeting ended with no attendance recorded');
  }
}

/** Values for message placeholders. */
export function messageValues(state: LeadState, policy: LeadPolicy, company: string): Record<string, string> {
  return {
    name: state.profile.name?.split(' ')[0] ?? 'there',
    company,
    booking_url: policy.bookingUrl,
    meeting_time: state.meeting ? formatLocal(Date.parse(state.meeting.startsAt), state.timeZone) : '',
  };
}

export function fill(text: string, values: Record<string, string>): string {
  return text.replace(/\{\{(\w+)\}\}/g, (_match, name: string) => values[name] ?? '');
}

/** What a step sends: its flow's template (outside the 24 h window) or free text, in the lead's language. */
export type StepMessage = { type: 'template'; template: { name: string; language: string; params: string[] } } | { type: 'text'; text: string };

/** The language a step's message goes in, and how it was chosen (shared/templates.ts). */
export interface StepLanguage {
  language: string;
  match: LanguageMatch;
  /** The lead's language, when it had one and it was not what went. */
  requested?: string;
}

/**
 * The message a step sends and its language, as the workflow sends it and the preview shows it:
 * the template version the lead's language picks (else the tenant's fallback chain, else the
 * template's default), its parameters in that version's placeholder order. Free text is the
 * version's own `text` if it has one, else the flow's `text` (written in the default language).
 */
export function planStepMessage(state: LeadState, policy: LeadPolicy, company: string, step: Pick<PlannedStep, 'flow'>, asTemplate: boolean): { message: StepMessage; language: StepLanguage } {
  const flowMessage = policy.messages[step.flow];
  const values = messageValues(state, policy, company);
  const resolved = resolveTemplate(flowMessage.template, state.profile.language, policy.languageFallback);
  const chosen: StepLanguage = { language: resolved.language, match: resolved.match, ...(resolved.requested !== undefined ? { requested: resolved.requested } : {}) };
  if (asTemplate) {
    return { message: { type: 'template', template: { name: flowMessage.template.name, language: resolved.language, params: resolved.version.placeholders.map((name) => values[name] ?? '') } }, language: chosen };
  }
  if (resolved.version.text !== undefined) return { message: { type: 'text', text: fill(resolved.version.text, values) }, language: chosen };
  const requested = state.profile.language === undefined ? undefined : canonicalLanguage(state.profile.language);
  const spoken = requested === flowMessage.template.language;
  const textLanguage: StepLanguage = { language: flowMessage.template.language, match: spoken ? 'lead' : 'default', ...(requested !== undefined && !spoken ? { requested } : {}) };
  return { message: { type: 'text', text: fill(flowMessage.text, values) }, language: textLanguage };
}

/** The message a step sends (see planStepMessage). */
export function stepMessage(state: LeadState, policy: LeadPolicy, company: string, step: Pick<PlannedStep, 'flow'>, asTemplate: boolean): StepMessage {
  return planStepMessage(state, policy, company, step, asTemplate).message;
}

/** What operators see (query, API, Web UI). */
export interface LeadView {
  leadId: string;
  stage: LeadState['stage'];
  profile: LeadState['profile'];
  timeZone: string;
  paused: boolean;
  optedOut: boolean;
  meeting?: LeadState['meeting'];
  /** The WhatsApp number the lead is written from, once it has one. */
  sender?: string;
  planned: Array<{ key: string; flow: FlowName; step: string; dueAt: string; cause: string }>;
  doneSteps: string[];
  lastInboundAt?: string;
  lastSentAt?: string;
  nextActionAt?: string;
  /** Events waiting in the reorder buffer (running workflow only), and when they will be applied. */
  bufferedEvents?: number;
  bufferReleaseAt?: string;
}


const iso = (ms: number | undefined): string | undefined => (ms === undefined ? undefined : new Date(ms).toISOString());

export function leadView(state: LeadState): LeadView {
  const next = nextWakeAt(state);
  return {
    leadId: state.leadId,
    stage: state.stage,
    profile: state.profile,
    timeZone: state.timeZone,
    paused: state.paused,
    optedOut: state.optedOut,
    ...(state.meeting ? { meeting: state.meeting } : {}),
    ...(state.sender !== undefined ? { sender: state.sender } : {}),
    planned: state.planned.map((step) => ({ key: step.key, flow: step.flow, step: step.step, dueAt: new Date(step.dueAt).toISOString(), cause: step.cause })),
    doneSteps: state.doneSteps,
    ...(state.lastInboundAt !== undefined ? { lastInboundAt: iso(state.lastInboundAt) } : {}),
    ...(state.lastSentAt !== undefined ? { lastSentAt: iso(state.lastSentAt) } : {}),
    ...(next !== undefined ? { nextActionAt: iso(next) } : {}),
  };
}

