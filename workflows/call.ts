/**
 * One workflow per call, id `call:<tenant>:<provider>:<provider call id>`. Every webhook and the
 * manager's result form signal it (signalWithStart), in any order and any number of times. It
 * journals each transition, enriches from the CRM without holding the journal up, logs the call
 * in the CRM once, and runs the outcome actions (ticket, Slack, e-mail) once each.
 */
import {
  allHandlersFinished,
  condition,
  defineQuery,
  defineSignal,
  getExternalWorkflowHandle,
  metricMeter,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import type { ActivityOptions } from '@temporalio/workflow';
import type { createCrmActivities, CrmSyncInput } from '../activities/crm.js';
import type { createJournalActivities } from '../activities/journal.js';
import type { createLeadActivities } from '../activities/leads.js';
import type { createNotificationActivities } from '../activities/notifications.js';
import type { createRecordingActivities } from '../activities/recordings.js';
import type { createTicketActivities } from '../activities/tickets.js';
import { decideOutcome } from '../shared/call-outcomes.js';
import { failureMessage } from '../shared/failures.js';
import { applyCallEvent, byOccurrence, closeByTimeout, initialSnapshot, isEnded, isMissedInbound, maskPhone } from '../shared/call-state.js';
import type { CallEvent, CallPolicy, CallProvider, CallSnapshot } from '../shared/calls.js';
import { leadWorkflowId } from '../shared/vocabulary.js';
import { searchAttributes } from '../shared/search-attributes.js';
import { leadEventsSignal } from './lead.js';

export interface CallWorkflowInput {
  tenantId: string;
  provider: CallProvider;
  providerCallId: string;
  policy: CallPolicy;
  /**
   * Where the CRM, ticket, notification and recording activities run. Absent in runs started
   * before it existed: those keep scheduling them on the workflow's own queue.
   */
  integrationsTaskQueue?: string;
}

export interface CallEventBatch {
  events: CallEvent[];
}

/** Canonical events from any source: webhooks, the result form, the inbox relay. */
export const callEventsSignal = defineSignal<[CallEventBatch]>('callEvents');
/** The call as the workflow knows it right now. */
export const callStateQuery = defineQuery<CallSnapshot>('callState');

type JournalActivities = ReturnType<typeof createJournalActivities>;
type LeadActivities = ReturnType<typeof createLeadActivities>;
type CrmActivities = ReturnType<typeof createCrmActivities>;
type TicketActivities = ReturnType<typeof createTicketActivities>;
type NotificationActivities = ReturnType<typeof createNotificationActivities>;
type RecordingActivities = ReturnType<typeof createRecordingActivities>;

const seconds = (value: number): number => value * 1000;


/** Outside systems may be down for hours: keep retrying with backoff, within the policy's limit. */
function outsideSystemOptions(policy: CallPolicy, taskQueue: string | undefined): ActivityOptions {
  return {
    ...(taskQueue ? { taskQueue } : {}),
    // Each HTTP request has its own timeout; this bounds the wait for the CRM's rate limit too.
    startToCloseTimeout: '5m',
    // The activities heartbeat while they wait (activities/lease.ts): a dead worker is noticed in
    // 30 s, and a live one hears that the attempt was given up and aborts its request.
    heartbeatTimeout: '30s',
    scheduleToCloseTimeout: `${policy.crmRetry.giveUpAfterHours}h`,
    retry: {
      initialInterval: seconds(policy.crmRetry.initialIntervalSeconds),
      backoffCoefficient: 2,
      maximumInterval: seconds(policy.crmRetry.maximumIntervalSeconds),
      nonRetryableErrorTypes: ['Rejected', 'Unauthorized', 'NotFound'],
    },
  };
}

/** The journaled call with every step it shows in flight set back to not started. */
function withPendingStepsRestarted(journaled: CallSnapshot): CallSnapshot {
  const { ticket, email, slack } = journaled.actions;
  return {
    ...journaled,
    crmSyncState: journaled.crmSyncState === 'pending' ? 'waiting' : journaled.crmSyncState,
    actions: {
      ...(ticket && ticket.state !== 'pending' ? { ticket } : {}),
      ...(email && email.state !== 'pending' ? { email } : {}),
      slack: slack.filter((alert) => alert.state !== 'pending'),
    },
  };
}

export async function callWorkflow(input: CallWorkflowInput): Promise<CallSnapshot> {
  const { tenantId, policy } = input;
  const databaseOptions = { startToCloseTimeout: '15s', retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '1m' } } as const;
  // Our own PostgreSQL is read and written inside the workflow task (local activities): the journal
  // row lands in the same task that applied the event, with no round trip through the server
  // (BENCHMARKS.md). The writes are idempotent. Runs recorded before this keep scheduled activities.
  const local = (): boolean => patched('call-journal-local-activity');
  const journalRemote = proxyActivities<JournalActivities>(databaseOptions);
  const journalLocal = proxyLocalActivities<JournalActivities>(databaseOptions);
  const leadsRemote = proxyActivities<LeadActivities>(databaseOptions);
  const leadsLocal = proxyLocalActivities<LeadActivities>(databaseOptions);
  const journal = () => (local() ? journalLocal : journalRemote);
  const leads = () => (local() ? leadsLocal : leadsRemote);
  const crm = proxyActivities<CrmActivities>(outsideSystemOptions(policy, input.integrationsTaskQueue));
  const tickets = proxyActivities<TicketActivities>(outsideSystemOptions(policy, input.integrationsTaskQueue));
  const notifications = proxyActivities<NotificationActivities>(outsideSystemOptions(policy, input.integrationsTaskQueue));
  const recordings = proxyActivities<RecordingActivities>({
    ...(input.integrationsTaskQueue ? { taskQueue: input.integrationsTaskQueue } : {}),
    startToCloseTimeout: '5m',
    heartbeatTimeout: '30s',
    scheduleToCloseTimeout: '6h',
    retry: { initialInterval: '10s', backoffCoefficient: 2, maximumInterval: '10m', nonRetryableErrorTypes: ['Rejected'] },
  });

  // Deliveries the workflow ignored as duplicates (exported with the worker's SDK metrics).
  const duplicateEvents = metricMeter.createCounter('switchboard_duplicate_events', 'events', 'Events ignored because their id was already applied');
  let snapshot = initialSnapshot(tenantId, input.provider, input.providerCallId);
  const arrived: CallEvent[] = [];
  const unjournaled: CallEvent[] = [];
  let changed = false;
  let lastActivityAt = Date.now();
  let endSeenAt: number | undefined;

  setHandler(callEventsSignal, ({ events }) => {
    arrived.push(...events);
    lastActivityAt = Date.now();
  });
  setHandler(callStateQuery, () => snapshot);

  // A run started by a late event (or after an operator terminated the last run) continues from the journal.
  const journaled = await journal().loadCall(tenantId, snapshot.callId);
  if (journaled) {
    // What the journal calls pending was started by a run (or an attempt of this run's first task,
    // on a worker that died before completing it) that is not running it now; nothing in this run
    // is, so it starts again. The effect ledger keeps each effect to one.
    snapshot = patched('call-restarts-steps-pending-in-journal') ? withPendingStepsRestarted(journaled) : journaled;
    if (isEnded(snapshot)) endSeenAt = Date.now() - seconds(Math.max(policy.crmSyncDelaySeconds, policy.outcomeWaitSeconds));
  }

  /** Side tasks run beside the main loop; each starts at most once per run and marks the call changed when it ends. */
  const started = new Set<string>();
  let inFlight = 0;
  const runOnce = (name: string, task: () => Promise<void>): void => {
    if (started.has(name)) return;
    started.add(name);
    inFlight++;
    void task().finally(() => {
      inFlight--;
      changed = true;
    });
  };

  const enrich = (): void => {
    const phone = snapshot.customerPhone;
    if (!phone || snapshot.enrichmentState !== 'pending') {
      if (!phone && snapshot.enrichmentState === 'pending' && isEnded(snapshot)) {
        snapshot.enrichmentState = 'skipped';
        changed = true;
      }
      return;
    }
    runOnce('enrich', async () => {
      try {
        const outcome = await crm.enrichCall.executeWithOptions({ summary: 'Enrich from CRM' }, [{ tenantId, callId: snapshot.callId, customerPhone: phone }]);
        snapshot.enrichmentState = outcome.state;
        snapshot.enrichment = outcome.enrichment;
      } catch {
        snapshot.enrichmentState = 'failed';
      }
    });
  };

  const fetchRecording = (): void => {
    const recording = snapshot.recording;
    if (!recording || recording.stored || recording.error) return;
    runOnce(`recording:${recording.sourceUrl}`, async () => {
      try {
        const stored = await recordings.fetchRecording.executeWithOptions({ summary: 'Fetch recording' }, [
          { tenantId, callId: snapshot.callId, provider: snapshot.provider, url: recording.sourceUrl },
        ]);
        snapshot.recording = { ...recording, stored: true, sizeBytes: stored.sizeBytes, contentType: stored.contentType };
      } catch (error) {
        snapshot.recording = { ...recording, error: failureMessage(error) };
      }
    });
  };

  const crmSyncInput = (): CrmSyncInput => ({
    tenantId,
    callId: snapshot.callId,
    direction: snapshot.direction ?? 'inbound',
    ...(snapshot.customerPhone ? { customerPhone: snapshot.customerPhone } : {}),
    ...(snapshot.linePhone ? { linePhone: snapshot.linePhone } : {}),
    startedAt: snapshot.startedAt ?? snapshot.endedAt ?? new Date().toISOString(),
    durationSeconds: snapshot.durationSeconds ?? 0,
    disposition: snapshot.disposition ?? 'missed',
    ...(snapshot.result ? { result: snapshot.result } : {}),
    hasRecording: snapshot.recording !== undefined,
    ...(snapshot.enrichment?.assignedRepresentative ? { responsibleUserId: snapshot.enrichment.assignedRepresentative.id } : {}),
  });

  const syncCrm = (): void => {
    if (snapshot.crmSyncState !== 'waiting' || endSeenAt === undefined) return;
    // A re-drive sets the state back to waiting; let the sync run again in this run.
    started.delete('crm-sync');
    const due = snapshot.result !== undefined || Date.now() >= endSeenAt + seconds(policy.crmSyncDelaySeconds);
    if (!due) return;
    snapshot.crmSyncState = 'pending';
    changed = true;
    runOnce('crm-sync', async () => {
      try {
        const { state, ...links } = await crm.logCallToCrm.executeWithOptions({ summary: 'Log call in CRM' }, [crmSyncInput()]);
        snapshot.crmSyncState = state;
        snapshot.crm = { ...snapshot.crm, ...links };
        const entity = snapshot.crm.entity;
        // Since lead workflows exist, a call from a lead's number reaches the lead (missed: the lead's
        // flow answers it); the CRM call-back task remains for callers with no running lead.
        const leadReached = patched('calls-signal-leads') && (await signalLead());
        if (isMissedInbound(snapshot) && policy.callbackTaskForMissedCalls && entity && !leadReached) {
          const task = await crm.createCallbackTask.executeWithOptions({ summary: 'Call-back task' }, [{ ...crmSyncInput(), entity }]);
          if ('taskId' in task) snapshot.crm = { ...snapshot.crm, callbackTaskId: task.taskId };
        }
      } catch (error) {
        snapshot.crmSyncState = 'failed';
        snapshot.crm = { ...snapshot.crm, error: failureMessage(error) };
      }
    });
  };

  /** Tells the caller's lead workflow about the call; false when there is no running lead for the number. */
  const signalLead = async (): Promise<boolean> => {
    const phone = snapshot.customerPhone;
    if (!phone || snapshot.direction !== 'inbound') return false;
    // A scheduled activity, not a local one: this runs beside the main loop's journal writes, and
    // two local activities in flight at once can resolve in one order live and in another on
    // replay, which moved the loop's timers (chaos/findings: timer id 4 expected, 3 found).
    const lookup = patched('call-lead-lookup-scheduled') ? leadsRemote : leads();
    const leadId = await lookup.findLeadByPhone(tenantId, phone);
    if (!leadId) return false;
    const missed = isMissedInbound(snapshot);
    try {
      await getExternalWorkflowHandle(leadWorkflowId(tenantId, leadId)).signal(leadEventsSignal, {
        events: [{ eventId: `call:${snapshot.callId}`, type: missed ? 'call.missed' : 'call.completed', occurredAt: snapshot.endedAt ?? new Date().toISOString(), callId: snapshot.callId }],
      });
      snapshot.crm = { ...snapshot.crm, leadId };
      return missed;
    } catch {
      return false;
    }
  };

  const customerLabel = (): string => snapshot.enrichment?.contact?.name ?? maskPhone(snapshot.customerPhone);

  const runOutcomeActions = (): void => {
    if (endSeenAt === undefined) return;
    const heard = snapshot.analytics !== undefined || snapshot.result !== undefined;
    if (!heard && Date.now() < endSeenAt + seconds(policy.outcomeWaitSeconds)) return;
    const decision = decideOutcome(snapshot, policy);

    if (decision.ticket && !snapshot.actions.ticket) {
      const draft = decision.ticket;
      snapshot.actions.ticket = { state: 'pending' };
      changed = true;
      runOnce('ticket', async () => {
        try {
          const ticket = await tickets.openTicket.executeWithOptions({ summary: 'Open ticket' }, [
            {
              tenantId,
              callId: snapshot.callId,
              draft,
              customer: {
                ...(snapshot.enrichment?.contact?.name ? { name: snapshot.enrichment.contact.name } : {}),
                ...(snapshot.customerPhone ? { phone: snapshot.customerPhone } : {}),
              },
            },
          ]);
          snapshot.actions.ticket = ticket.state === 'done' ? { state: 'done', id: ticket.id } : { state: 'skipped', reason: ticket.reason };
        } catch (error) {
          snapshot.actions.ticket = { state: 'failed', error: failureMessage(error) };
        }
      });
    }

    for (const trigger of decision.slack) {
      if (snapshot.actions.slack.some((alert) => alert.trigger === trigger)) continue;
      const alert: CallSnapshot['actions']['slack'][number] = { trigger, state: 'pending' };
      snapshot.actions.slack.push(alert);
      changed = true;
      runOnce(`slack:${trigger}`, async () => {
        try {
          const sent = await notifications.sendSlackAlert.executeWithOptions({ summary: `Slack: ${trigger}` }, [
            {
              tenantId,
              callId: snapshot.callId,
              trigger,
              customerLabel: customerLabel(),
              ...(snapshot.analytics?.summary ?? snapshot.summary ? { summary: snapshot.analytics?.summary ?? snapshot.summary } : {}),
              outcome: snapshot.result?.outcome ?? snapshot.disposition ?? 'unknown',
            },
          ]);
          alert.state = sent.state;
        } catch (error) {
          alert.state = 'failed';
          alert.error = failureMessage(error);
        }
      });
    }

    if (decision.email && !snapshot.actions.email) {
      const template = decision.email;
      snapshot.actions.email = { state: 'pending', template };
      changed = true;
      runOnce('email', async () => {
        const email = snapshot.actions.email ?? { state: 'pending', template };
        try {
          const sent = await notifications.sendFollowUpEmail.executeWithOptions({ summary: `E-mail: ${template}` }, [
            {
              tenantId,
              callId: snapshot.callId,
              template,
              ...(snapshot.enrichment?.contact?.name ? { customerName: snapshot.enrichment.contact.name } : {}),
              ...(typeof snapshot.variables?.email === 'string' ? { to: snapshot.variables.email } : {}),
              ...(snapshot.analytics?.summary ? { summary: snapshot.analytics.summary } : {}),
            },
          ]);
          snapshot.actions.email = { ...email, state: sent.state, ...(sent.state === 'skipped' ? { reason: sent.reason } : {}) };
        } catch (error) {
          snapshot.actions.email = { ...email, state: 'failed', error: failureMessage(error) };
        }
      });
    }
  };

  let publishedAttributes = '';
  const publish = (): void => {
    const values = [snapshot.status, snapshot.direction ?? '', snapshot.enrichmentState, snapshot.crmSyncState];
    const key = values.join('|');
    if (key !== publishedAttributes) {
      publishedAttributes = key;
      upsertSearchAttributes([
        { key: searchAttributes.tenant, value: tenantId },
        { key: searchAttributes.callProvider, value: snapshot.provider },
        { key: searchAttributes.callStatus, value: snapshot.status },
        { key: searchAttributes.callDirection, value: snapshot.direction ?? null },
        { key: searchAttributes.enrichmentState, value: snapshot.enrichmentState },
        { key: searchAttributes.crmSyncState, value: snapshot.crmSyncState },
      ]);
    }
    setCurrentDetails(
      [
        `**${snapshot.status}** · ${snapshot.direction ?? 'direction unknown'} · ${snapshot.disposition ?? 'in progress'}`,
        `| | |`,
        `|---|---|`,
        `| caller | ${maskPhone(snapshot.customerPhone)} |`,
        `| agent | ${snapshot.agentId ?? '—'} |`,
        `| duration | ${snapshot.durationSeconds ?? '—'} s |`,
        `| enrichment | ${snapshot.enrichmentState} |`,
        `| CRM | ${snapshot.crmSyncState}${snapshot.crm.noteId ? ` (note ${snapshot.crm.noteId})` : ''} |`,
        `| ticket | ${snapshot.actions.ticket ? `${snapshot.actions.ticket.state}${snapshot.actions.ticket.id ? ` #${snapshot.actions.ticket.id}` : ''}` : '—'} |`,
        `| events | ${snapshot.eventIds.length} |`,
      ].join('\n'),
    );
  };

  const journalNow = async (): Promise<void> => {
    snapshot.version++;
    const events = unjournaled.splice(0, unjournaled.length);
    await journal().recordCall.executeWithOptions({ summary: `Journal v${snapshot.version} (${snapshot.status})` }, [snapshot, events]);
    publish();
  };

  /**
   * The next moment a timer-driven step becomes due (stale call, CRM sync, outcome decision,
   * wrap-up), or undefined when only a running side task can move the call on.
   */
  const nextDeadline = (): number | undefined => {
    const now = Date.now();
    const candidates: number[] = [];
    if (endSeenAt === undefined) {
      candidates.push(lastActivityAt + policy.maxCallHours * 3_600_000);
    } else {
      candidates.push(lastActivityAt + policy.wrapUpMinutes * 60_000);
      if (snapshot.crmSyncState === 'waiting') candidates.push(endSeenAt + seconds(policy.crmSyncDelaySeconds));
      if (snapshot.analytics === undefined && snapshot.result === undefined) candidates.push(endSeenAt + seconds(policy.outcomeWaitSeconds));
    }
    const future = candidates.filter((at) => at > now);
    return future.length > 0 ? Math.min(...future) : undefined;
  };

  const finished = (): boolean =>
    isEnded(snapshot) &&
    inFlight === 0 &&
    arrived.length === 0 &&
    snapshot.crmSyncState !== 'waiting' &&
    snapshot.crmSyncState !== 'pending' &&
    Date.now() >= lastActivityAt + policy.wrapUpMinutes * 60_000;

  for (;;) {
    if (arrived.length > 0) {
      for (const event of byOccurrence(arrived.splice(0, arrived.length))) {
        if (applyCallEvent(snapshot, event)) {
          unjournaled.push(event);
          changed = true;
        } else {
          duplicateEvents.add(1, { kind: 'call', tenant: tenantId });
        }
      }
    }
    // An end can overtake the start, and voice-AI ends carry no caller number: a sync skipped for
    // want of one runs again once a later event brings it.
    const callerArrivedAfterSkip = snapshot.crmSyncState === 'skipped' && snapshot.crm.skippedReason === 'caller_id_withheld' && snapshot.customerPhone !== undefined;
    if (callerArrivedAfterSkip && patched('crm-resync-when-caller-known')) {
      const { skippedReason: _skipped, ...links } = snapshot.crm;
      snapshot.crm = links;
      snapshot.crmSyncState = 'waiting';
      changed = true;
    }
    if (!isEnded(snapshot) && Date.now() >= lastActivityAt + policy.maxCallHours * 3_600_000) {
      closeByTimeout(snapshot, new Date().toISOString());
      changed = true;
    }
    if (isEnded(snapshot)) endSeenAt ??= Date.now();

    enrich();
    fetchRecording();
    syncCrm();
    runOutcomeActions();

    if (changed || unjournaled.length > 0) {
      changed = false;
      await journalNow();
      continue;
    }
    if (finished()) {
      await condition(allHandlersFinished);
      snapshot.status = 'completed';
      snapshot.completedAt ??= new Date().toISOString();
      await journalNow();
      // Checked after the last await: events that came during the final write (a slow journal)
      // are applied and the run stays for another wrap-up, as a run started by a late event
      // would after loading the completed call, instead of ending with them unread.
      if (arrived.length === 0 || !patched('call-events-during-final-write')) return snapshot;
      continue;
    }
    const deadline = nextDeadline();
    const woken = () => arrived.length > 0 || changed;
    if (deadline === undefined) await condition(woken);
    else await condition(woken, deadline - Date.now());
  }
}
