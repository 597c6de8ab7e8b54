/**
 * One workflow per lead, id `lead:<tenant>:<CRM lead id>`, for its whole life: welcome, follow-ups,
 * booking confirmation, reminders, no-show recovery, rescheduling, post-meeting follow-up and
 * rewarming over WhatsApp. CRM events, replies, delivery failures and calls arrive as signals;
 * operators steer it with updates (from our API or the Temporal Web UI). Every send time is
 * computed once and kept in state; every send has an idempotency key.
 */
import {
  allHandlersFinished,
  condition,
  continueAsNew,
  defineQuery,
  defineSignal,
  defineUpdate,
  metricMeter,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { ActivityOptions } from '@temporalio/workflow';
import type { createLeadActivities } from '../activities/leads.js';
import type { createMessagingActivities } from '../activities/messaging.js';
import type { createSmsActivities } from '../activities/sms.js';
import {
  Changes,
  afterSent,
  assignSender,
  applyLeadEvent,
  cancel,
  dueStep,
  initialLeadState,
  isClosed,
  leadView,
  nextWakeAt,
  replanTimeZone,
  runNoShowCheck,
  sendDecision,
  planStepMessage,
  smsText,
  sortPlanned,
} from '../shared/lead-plan.js';
import { failureMessage, failureReason } from '../shared/failures.js';
import type { LeadView } from '../shared/lead-plan.js';
import type { LeadEvent, LeadPolicy, LeadState, PlannedStep, TimelineEntry } from '../shared/leads.js';
import { searchAttributes } from '../shared/search-attributes.js';
import { leadWorkflowId } from '../shared/vocabulary.js';
import { leadUpdateInputProblem } from '../shared/lead-actions.js';
import type { BookingAction, FlowAction, LeadUpdateName, OperatorInput, SenderAction, StepAction, TimeZoneAction } from '../shared/lead-actions.js';
import { chooseSender, isKnownSender, senderNames } from '../shared/senders.js';
import type { SenderRoute } from '../shared/senders.js';

export interface LeadWorkflowInput {
  tenantId: string;
  leadId: string;
  policy: LeadPolicy;
  /** The tenant's zone, for leads that have none of their own. */
  defaultTimeZone: string;
  company: string;
  /** The rate-limited queue the WhatsApp sends run on. */
  messagingTaskQueue: string;
  /** The tenant's WhatsApp numbers besides the default and the leads each serves (absent: the default number only). */
  senders?: SenderRoute[];
  /** Carried across continue-as-new. */
  carried?: { state: LeadState; pending: PendingEvent[] };
}

export interface LeadEventBatch {
  events: LeadEvent[];
}

/** An event waiting in the reorder buffer, with the (workflow) time it arrived. */
export interface PendingEvent {
  event: LeadEvent;
  arrivedAt: number;
}

export const leadEventsSignal = defineSignal<[LeadEventBatch]>('leadEvents');
export const leadStateQuery = defineQuery<LeadView>('leadState');
export const pauseUpdate = defineUpdate<LeadView, [OperatorInput]>('pause');
export const resumeUpdate = defineUpdate<LeadView, [OperatorInput]>('resume');
export const skipStepUpdate = defineUpdate<LeadView, [StepAction]>('skipStep');
export const sendNowUpdate = defineUpdate<LeadView, [StepAction]>('sendNow');
export const changeTimeZoneUpdate = defineUpdate<LeadView, [TimeZoneAction]>('changeTimeZone');
export const cancelFlowUpdate = defineUpdate<LeadView, [FlowAction]>('cancelFlow');
export const markBookedUpdate = defineUpdate<LeadView, [BookingAction]>('markBooked');
export const reassignSenderUpdate = defineUpdate<LeadView, [SenderAction]>('reassignSender');

type LeadActivities = ReturnType<typeof createLeadActivities>;

type MessagingActivities = ReturnType<typeof createMessagingActivities>;
type SmsActivities = ReturnType<typeof createSmsActivities>;

export async function leadWorkflow(input: LeadWorkflowInput): Promise<LeadView> {
  const { tenantId, leadId, policy } = input;
  const journalOptions = { startToCloseTimeout: '15s', retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '1m' } } as const;
  const leadsRemote = proxyActivities<LeadActivities>(journalOptions);
  // Reading and writing our own journal runs inside the workflow task: two fewer workflow tasks and
  // no activity round trip through the server per step, which is what bounded the lead drain
  // (BENCHMARKS.md). Both writes are idempotent, so a retried task repeating one is harmless.
  // Runs recorded before this change keep their scheduled activities.
  const leadsLocal = proxyLocalActivities<LeadActivities>(journalOptions);
  const leads = () => (patched('lead-journal-local-activity') ? leadsLocal : leadsRemote);
  const sendOptions: ActivityOptions = {
    taskQueue: input.messagingTaskQueue,
    startToCloseTimeout: `${policy.sendTimeoutSeconds}s`,
    // The send heartbeats while it waits (activities/lease.ts), so a stalled attempt is cut off.
    heartbeatTimeout: '10s',
    scheduleToCloseTimeout: '2h',
    retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '5m', nonRetryableErrorTypes: ['Rejected', 'Unauthorized', 'NotFound'] },
  };
  const messaging = proxyActivities<MessagingActivities>(sendOptions);
  // The SMS fallback: planned only by runs that have the 'lead-sms-fallback' patch (applySendFailure).
  const sms = proxyActivities<SmsActivities>(sendOptions);

  // Runs recorded before a throttling failure reported by webhook re-sent the message keep noting it only.
  // Runs recorded before a late lead.created armed the welcome keep ignoring it.
  // Runs recorded before the SMS fallback keep only noting a failure WhatsApp could not deliver.
  const planFeatures = {
    resendThrottled: () => patched('lead-resend-throttled-status'),
    welcomeLateCreated: () => patched('lead-welcome-when-created-arrives-late'),
    smsFallback: () => patched('lead-sms-fallback'),
  };

  // Deliveries the workflow ignored as duplicates (exported with the worker's SDK metrics).
  const duplicateEvents = metricMeter.createCounter('switchboard_duplicate_events', 'events', 'Events ignored because their id was already applied');
  const pending: PendingEvent[] = [...(input.carried?.pending ?? [])];
  const reorderWindowMs = policy.reorderWindowSeconds * 1000;
  let timeline: TimelineEntry[] = [];
  let dirty = false;
  const record = (changes: Changes): void => {
    timeline.push(...changes.timeline);
    if (changes.changed) dirty = true;
  };

  let state: LeadState = input.carried?.state ?? initialLeadState(tenantId, leadId, leadWorkflowId(tenantId, leadId), input.defaultTimeZone, Date.now());
  let loaded = input.carried !== undefined;

  setHandler(leadEventsSignal, ({ events }) => {
    const arrivedAt = Date.now();
    pending.push(...events.map((event) => ({ event, arrivedAt })));
  });
  /** When the buffered events may be applied: the burst has been quiet for the window, or the oldest waited 3 windows. */
  const bufferReleaseAt = (): number | undefined => {
    if (pending.length === 0) return undefined;
    const arrivals = pending.map((item) => item.arrivedAt);
    return Math.min(Math.max(...arrivals) + reorderWindowMs, Math.min(...arrivals) + 3 * reorderWindowMs);
  };
  setHandler(leadStateQuery, () => {
    const releaseAt = bufferReleaseAt();
    return { ...leadView(state), bufferedEvents: pending.length, ...(releaseAt !== undefined ? { bufferReleaseAt: new Date(releaseAt).toISOString() } : {}) };
  });

  /** Operator actions: validated before they are accepted (a rejected update leaves no trace in history). */
  const operatorCause = (name: string, action: OperatorInput): string =>
    `operator ${name}${action.operator ? ` by ${action.operator}` : ''}${action.reason ? `: ${action.reason}` : ''}`;
  const byOperator = (action: OperatorInput): { operator?: string } => (action.operator ? { operator: action.operator } : {});
  const operatorNote = (name: string, action: OperatorInput, detail: Record<string, unknown> = {}): Changes => {
    const changes = new Changes(Date.now());
    changes.note({ entryKey: `operator:${name}:${workflowInfo().historyLength}:${Date.now()}`, kind: 'operator', cause: operatorCause(name, action), detail: { ...byOperator(action), ...detail } });
    return changes;
  };
  const findStep = (key: string): PlannedStep | undefined => state.planned.find((step) => step.key === key);
  /**
   * The update's input, once it has the update's exact shape (from our API, the Temporal CLI or the
   * Web UI alike) and the lead is loaded; the validators then check it fits the lead's state.
   */
  const validInput = <T extends OperatorInput>(update: LeadUpdateName, args: unknown[]): T => {
    const problem = leadUpdateInputProblem(update, args);
    if (problem) throw new Error(problem);
    if (!loaded) throw new Error('the lead is still loading; try again in a moment');
    return (args[0] ?? {}) as T;
  };

  setHandler(
    pauseUpdate,
    (action: OperatorInput = {}) => {
      state.paused = true;
      record(operatorNote('pause', action));
      return leadView(state);
    },
    { validator: (...args: unknown[]) => void validInput('pause', args) },
  );
  setHandler(
    resumeUpdate,
    (action: OperatorInput = {}) => {
      state.paused = false;
      record(operatorNote('resume', action));
      return leadView(state);
    },
    { validator: (...args: unknown[]) => void validInput('resume', args) },
  );
  setHandler(
    skipStepUpdate,
    (action: StepAction) => {
      const changes = operatorNote('skip', action, { step: action.step });
      cancel(state, (step) => step.key === action.step, operatorCause('skip', action), changes, `operator-skip:${Date.now()}`, { reason: 'operator', ...byOperator(action) });
      record(changes);
      return leadView(state);
    },
    {
      validator: (...args: unknown[]) => {
        const action = validInput<StepAction>('skipStep', args);
        if (!findStep(action.step)) throw new Error(`no planned step "${action.step}"; planned: ${state.planned.map((step) => step.key).join(', ') || 'none'}`);
      },
    },
  );
  setHandler(
    sendNowUpdate,
    (action: StepAction) => {
      const step = findStep(action.step);
      if (step) step.dueAt = Date.now();
      sortPlanned(state);
      record(operatorNote('send-now', action, { step: action.step }));
      return leadView(state);
    },
    {
      validator: (...args: unknown[]) => {
        const action = validInput<StepAction>('sendNow', args);
        const step = findStep(action.step);
        if (!step) throw new Error(`no planned step "${action.step}"`);
        if (step.flow === 'no_show' && step.step === 'check') throw new Error('the no-show check is not a message');
        if (state.optedOut) throw new Error('the lead opted out');
      },
    },
  );
  setHandler(
    changeTimeZoneUpdate,
    (action: TimeZoneAction) => {
      const changes = new Changes(Date.now());
      replanTimeZone(state, policy, action.timeZone, Date.now(), changes, operatorCause('time zone change', action), 'operator', byOperator(action));
      state.profile = { ...state.profile, timeZone: action.timeZone };
      record(changes);
      return leadView(state);
    },
    // The input's shape includes the zone being a known IANA name.
    { validator: (...args: unknown[]) => void validInput<TimeZoneAction>('changeTimeZone', args) },
  );
  setHandler(
    cancelFlowUpdate,
    (action: FlowAction) => {
      const changes = operatorNote('cancel-flow', action, { flow: action.flow });
      cancel(state, (step) => step.flow === action.flow, operatorCause('cancel flow', action), changes, `operator-cancel:${Date.now()}`, { reason: 'operator', ...byOperator(action) });
      record(changes);
      return leadView(state);
    },
    { validator: (...args: unknown[]) => void validInput<FlowAction>('cancelFlow', args) },
  );
  setHandler(
    markBookedUpdate,
    (action: BookingAction) => {
      const changes = operatorNote('mark-booked', action, { meetingId: action.meeting.id });
      applyLeadEvent(state, { eventId: `operator-booked:${action.meeting.id}@${action.meeting.startsAt}`, type: 'meeting.booked', occurredAt: new Date().toISOString(), meeting: action.meeting }, policy, Date.now(), changes);
      record(changes);
      return leadView(state);
    },
    {
      validator: (...args: unknown[]) => {
        const action = validInput<BookingAction>('markBooked', args);
        if (Date.parse(action.meeting.startsAt) <= Date.now()) throw new Error('the meeting must start in the future');
      },
    },
  );

  setHandler(
    reassignSenderUpdate,
    (action: SenderAction) => {
      const changes = new Changes(Date.now());
      assignSender(state, { sender: action.sender, rule: 'operator' }, changes, operatorCause('sender reassignment', action), byOperator(action));
      record(changes);
      return leadView(state);
    },
    {
      validator: (...args: unknown[]) => {
        const action = validInput<SenderAction>('reassignSender', args);
        if (!isKnownSender(action.sender, input.senders)) throw new Error(`no sender number "${action.sender}"; configured: ${senderNames(input.senders).join(', ')}`);
        if (state.sender === action.sender) throw new Error(`the lead is already written from "${action.sender}"`);
      },
    },
  );

  if (!input.carried) {
    // A run started after an earlier one ended (late event, operator terminate) continues from the journal.
    const journaled = await leads().loadLead(tenantId, leadId);
    if (journaled) state = journaled;
    loaded = true;
  }

  let publishedAttributes = '';
  const publish = (): void => {
    const next = nextWakeAt(state);
    const key = `${state.stage}|${next ?? ''}`;
    if (key !== publishedAttributes) {
      publishedAttributes = key;
      upsertSearchAttributes([
        { key: searchAttributes.tenant, value: tenantId },
        { key: searchAttributes.leadStage, value: state.stage },
        { key: searchAttributes.nextActionAt, value: next === undefined ? null : new Date(next) },
      ]);
    }
    const upcoming = state.planned.slice(0, 5).map((step) => `| ${step.key} | ${new Date(step.dueAt).toISOString()} | ${step.cause} |`);
    setCurrentDetails(
      [
        `**${state.stage}**${state.paused ? ' · ⏸ paused' : ''}${state.optedOut ? ' · opted out' : ''} · zone ${state.timeZone}`,
        state.meeting ? `meeting ${state.meeting.id} at ${state.meeting.startsAt} (${state.meeting.status})` : 'no meeting',
        '',
        '| next step | when (UTC) | why |',
        '|---|---|---|',
        ...(upcoming.length > 0 ? upcoming : ['| — | — | — |']),
        '',
        `sent: ${state.doneSteps.length} step(s)`,
      ].join('\n'),
    );
  };

  const journal = async (): Promise<void> => {
    state.version++;
    const entries = timeline;
    timeline = [];
    dirty = false;
    await leads().recordLead(state, entries);
    publish();
  };

  /** Executes the step that is due now, if any. Returns a time to wait until, when spacing asks for it. */
  const runDueStep = async (): Promise<number | undefined> => {
    const step = dueStep(state, Date.now());
    if (!step) return undefined;
    const changes = new Changes(Date.now());
    if (step.flow === 'no_show' && step.step === 'check') {
      runNoShowCheck(state, step, policy, Date.now(), changes);
      record(changes);
      return undefined;
    }
    const decision = sendDecision(state, step, policy, Date.now());
    if (decision.action === 'wait') return decision.until;
    if (decision.action === 'skip') {
      cancel(state, (planned) => planned.key === step.key, decision.reason, changes, 'skipped-at-send', { reason: decision.code });
      record(changes);
      return undefined;
    }
    const phone = state.profile.phone ?? '';
    if (step.channel === 'sms') {
      try {
        const sent = await sms.sendSms.executeWithOptions({ summary: `SMS ${step.key}` }, [
          { tenantId, leadId, effectKey: `wa:${leadId}:${step.key}`, to: phone, body: smsText(state, policy, input.company, step) },
        ]);
        if (sent.status === 'skipped') {
          cancel(state, (planned) => planned.key === step.key, sent.reason, changes, 'skipped-at-send', { reason: sent.code, channel: 'sms' });
        } else {
          changes.note({ entryKey: `sent:${step.key}`, kind: 'sent', flow: step.flow, step: step.step, cause: step.cause, detail: { messageId: sent.sid, as: 'sms', channel: 'sms' } });
          afterSent(state, step, policy, Date.now(), changes);
        }
      } catch (error) {
        state.planned = state.planned.filter((planned) => planned.key !== step.key);
        changes.note({ entryKey: `failed:${step.key}:send`, kind: 'failed', flow: step.flow, step: step.step, cause: step.cause, detail: { error: failureMessage(error), channel: 'sms' } });
      }
      record(changes);
      return undefined;
    }
    // The language version and its parameters are chosen here, in the planner's pure code: only the
    // activity's input changes with them, so histories recorded before keep replaying.
    const { message, language } = planStepMessage(state, policy, input.company, step, decision.asTemplate);
    const languageDetail = { language: language.language, languageMatch: language.match, ...(language.requested !== undefined ? { requestedLanguage: language.requested } : {}) };
    // The first message chooses the lead's number; later ones keep it (one conversation thread).
    let sender = state.sender;
    if (sender === undefined) {
      const choice = chooseSender(state.profile, input.senders);
      assignSender(state, choice, changes, `first message (${choice.rule === 'default' ? 'no rule matched' : `by ${choice.rule}`})`);
      sender = choice.sender;
    }
    try {
      const sent = await messaging.sendWhatsApp.executeWithOptions({ summary: `WhatsApp ${step.key}${decision.asTemplate ? ' (template)' : ''}` }, [
        { tenantId, leadId, effectKey: `wa:${leadId}:${step.key}`, to: phone, message, language: language.language, sender },
      ]);
      // A number taken out of the configuration: the message went from the default one, which the lead keeps.
      if (sent.status === 'sent' && sent.sender !== undefined && sent.sender !== sender) {
        assignSender(state, { sender: sent.sender, rule: 'unavailable' }, changes, `sender "${sender}" is no longer configured`);
      }
      if (sent.status === 'skipped') {
        cancel(state, (planned) => planned.key === step.key, sent.reason, changes, 'skipped-at-send', { reason: sent.code ?? 'not_sent' });
      } else {
        changes.note({ entryKey: `sent:${step.key}`, kind: 'sent', flow: step.flow, step: step.step, cause: step.cause, detail: { messageId: sent.wamid, as: sent.kind, ...languageDetail, sender: sent.sender ?? sender } });
        afterSent(state, step, policy, Date.now(), changes, sent.wamid);
      }
    } catch (error) {
      state.planned = state.planned.filter((planned) => planned.key !== step.key);
      changes.note({ entryKey: `failed:${step.key}:send`, kind: 'failed', flow: step.flow, step: step.step, cause: step.cause, detail: { error: failureMessage(error), ...failureReason(error), ...languageDetail, sender } });
    }
    record(changes);
    return undefined;
  };

  publish();
  for (;;) {
    const releaseAt = bufferReleaseAt();
    if (releaseAt !== undefined && Date.now() >= releaseAt) {
      const changes = new Changes(Date.now());
      const batch = pending
        .splice(0, pending.length)
        .map((item) => item.event)
        .sort((a, b) => Date.parse(a.occurredAt) - Date.parse(b.occurredAt));
      for (const event of batch) {
        if (!applyLeadEvent(state, event, policy, Date.now(), changes, planFeatures)) duplicateEvents.add(1, { kind: 'lead', tenant: tenantId });
      }
      record(changes);
    }
    const waitUntil = await runDueStep();
    if (dirty || timeline.length > 0) await journal();

    const done = (isClosed(state) || state.stage === 'dormant') && state.planned.length === 0 && pending.length === 0;
    if (done) {
      await condition(allHandlersFinished);
      if (dirty || timeline.length > 0) await journal();
      // Checked after the last await: an event or operator action that came during the final
      // write (a slow journal) goes round again instead of ending the run unread.
      const settled = pending.length === 0 && !dirty && timeline.length === 0;
      if (settled || !patched('lead-events-during-final-write')) return leadView(state);
      continue;
    }
    if (workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > policy.continueAsNewAfterEvents) {
      await condition(allHandlersFinished);
      // Continue-as-new carries the state and the buffered events, not the timeline: what an
      // operator did during the last write is journaled first, and checked again after that write.
      if ((dirty || timeline.length > 0) && patched('lead-journal-before-continue-as-new')) {
        await journal();
        continue;
      }
      await continueAsNew<typeof leadWorkflow>({ ...input, carried: { state, pending: pending.splice(0, pending.length) } });
    }
    if (dueStep(state, Date.now()) && waitUntil === undefined) continue;
    const wakes = [waitUntil ?? nextWakeAt(state), bufferReleaseAt()].filter((at): at is number => at !== undefined);
    const wake = wakes.length > 0 ? Math.min(...wakes) : undefined;
    const arrivals = pending.length;
    const woken = (): boolean => pending.length !== arrivals || dirty;
    if (wake === undefined) await condition(woken);
    else if (wake > Date.now()) await condition(woken, wake - Date.now());
  }
}
