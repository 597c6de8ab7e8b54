/**
 * The call workflow on the time-skipping test server with stubbed activities: what it journals,
 * what it sends the CRM and the outcome actions, for events in any order and any number of times.
 */
import assert from 'node:assert/strict';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { CrmSyncInput, CrmSyncOutcome, EnrichCallInput } from '../../activities/crm.js';
import type { NotificationOutcome, SlackAlertInput } from '../../activities/notifications.js';
import { callPolicySchema } from '../../shared/calls.js';
import type { CallEnrichment, CallEvent, CallPolicy, CallSnapshot, EnrichmentState } from '../../shared/calls.js';
import { callWorkflowId } from '../../shared/vocabulary.js';
import { callEventsSignal, callWorkflow } from '../../workflows/call.js';
import { uniqueId } from '../harness/resources.js';
import { Recorder, timeSkippingEnv, withStubWorker } from './workflow-env.js';

const tenantId = 'fast-tenant';
const customerPhone = '+14155550123';
const linePhone = '+14155550100';

/**
 * Everything after the end is due at once; the wrap-up is long enough (in real time, while the
 * test server's clock runs normally) for late signals, and skipped once the test awaits the result.
 */
const policy = (overrides: Record<string, unknown> = {}): CallPolicy =>
  callPolicySchema.parse({
    crmSyncDelaySeconds: 0,
    outcomeWaitSeconds: 0,
    wrapUpMinutes: 5,
    tickets: { enabled: false },
    email: { enabled: false },
    slack: { transferRequested: false, lowSatisfactionAtOrBelow: 1, vip: false },
    callbackTaskForMissedCalls: false,
    ...overrides,
  });

const at = (offsetSeconds: number): string => new Date(Date.parse('2026-01-05T15:00:00.000Z') + offsetSeconds * 1000).toISOString();

function answeredCall(providerCallId: string): { started: CallEvent; answered: CallEvent; ended: CallEvent } {
  return {
    started: { eventId: `${providerCallId}-started`, type: 'call.started', occurredAt: at(0), direction: 'inbound', customerPhone, linePhone },
    answered: { eventId: `${providerCallId}-answered`, type: 'call.answered', occurredAt: at(5), agentId: 'agent-7' },
    ended: { eventId: `${providerCallId}-ended`, type: 'call.ended', occurredAt: at(65), durationSeconds: 60, disposition: 'answered' },
  };
}

/** The call workflow's activities as stubs that record every call. */
function stubActivities(options: { logCallToCrm?: (input: CrmSyncInput) => Promise<CrmSyncOutcome> } = {}) {
  const journal = new Recorder<{ snapshot: CallSnapshot; events: CallEvent[] }>();
  const crmSyncs = new Recorder<CrmSyncInput>();
  const enrichments = new Recorder<EnrichCallInput>();
  const leadLookups = new Recorder<[string, string]>();
  const slackAlerts = new Recorder<SlackAlertInput>();
  const activities = {
    loadCall: (): Promise<CallSnapshot | null> => Promise.resolve(null),
    recordCall: (snapshot: CallSnapshot, events: CallEvent[]): Promise<void> => {
      journal.record({ snapshot, events });
      return Promise.resolve();
    },
    findLeadByPhone: (tenant: string, phone: string): Promise<string | null> => {
      leadLookups.record([tenant, phone]);
      return Promise.resolve(null);
    },
    enrichCall: (input: EnrichCallInput): Promise<{ state: EnrichmentState; enrichment: CallEnrichment }> => {
      enrichments.record(input);
      return Promise.resolve({ state: 'not_found', enrichment: { previousInteractions: [], vip: false } });
    },
    logCallToCrm: (input: CrmSyncInput): Promise<CrmSyncOutcome> => {
      crmSyncs.record(input);
      return options.logCallToCrm ? options.logCallToCrm(input) : Promise.resolve({ state: 'synced', noteId: 7, entity: { type: 'contacts', id: 42 } });
    },
    sendSlackAlert: (input: SlackAlertInput): Promise<NotificationOutcome> => {
      slackAlerts.record(input);
      return Promise.resolve({ state: 'done' });
    },
  };
  return { activities, journal, crmSyncs, enrichments, leadLookups, slackAlerts };
}

const journaledEventIds = (journal: { calls: ReadonlyArray<{ events: CallEvent[] }> }): string[] => journal.calls.flatMap((write) => write.events.map((event) => event.eventId));

describe('call workflow, stubbed activities (fast)', function () {
  this.timeout(60_000);
  let env: TestWorkflowEnvironment;

  before(async () => {
    env = await timeSkippingEnv();
  });

  function start(taskQueue: string, providerCallId: string, events: CallEvent[], callPolicy = policy()) {
    return env.client.workflow.signalWithStart(callWorkflow, {
      workflowId: callWorkflowId(tenantId, `pbx:${providerCallId}`),
      taskQueue,
      args: [{ tenantId, provider: 'pbx', providerCallId, policy: callPolicy }],
      signal: callEventsSignal,
      signalArgs: [{ events }],
    });
  }

  it('journals each event once and logs the call in the CRM once, with the call as its events tell it', async () => {
    const providerCallId = uniqueId('call');
    const callId = `pbx:${providerCallId}`;
    const { started, answered, ended } = answeredCall(providerCallId);
    const stubs = stubActivities();
    const result = await withStubWorker(env, stubs.activities, async (taskQueue) => (await start(taskQueue, providerCallId, [started, answered, ended])).result());

    assert.deepEqual(stubs.crmSyncs.calls, [
      { tenantId, callId, direction: 'inbound', customerPhone, linePhone, startedAt: at(0), durationSeconds: 60, disposition: 'answered', hasRecording: false },
    ]);
    assert.deepEqual(stubs.enrichments.calls, [{ tenantId, callId, customerPhone }]);
    assert.deepEqual(stubs.leadLookups.calls, [[tenantId, customerPhone]], 'the caller is looked up among the leads once');
    assert.deepEqual(journaledEventIds(stubs.journal), [started.eventId, answered.eventId, ended.eventId]);
    const versions = stubs.journal.calls.map((write) => write.snapshot.version);
    assert.deepEqual(versions, versions.map((_, index) => index + 1), 'every write has the next version');
    const last = stubs.journal.calls.at(-1)?.snapshot;
    assert.equal(last?.status, 'completed');
    assert.deepEqual(last, result, 'the last journal write is the result');
    assert.equal(result.crmSyncState, 'synced');
    assert.deepEqual(result.crm, { noteId: 7, entity: { type: 'contacts', id: 42 } });
    assert.equal(result.enrichmentState, 'not_found');
    assert.equal(result.agentId, 'agent-7');
  });

  it('applies duplicated and reordered deliveries once, in the order they happened', async () => {
    const providerCallId = uniqueId('call-dup');
    const { started, answered, ended } = answeredCall(providerCallId);
    const stubs = stubActivities();
    const result = await withStubWorker(env, stubs.activities, async (taskQueue) => {
      // The end overtakes the start, and the provider repeats itself.
      const handle = await start(taskQueue, providerCallId, [ended, answered, ended, started, answered]);
      await stubs.crmSyncs.next(() => true, 'the CRM sync');
      await stubs.journal.next((write) => write.snapshot.crmSyncState === 'synced', 'the synced call journaled');
      // A webhook retried after the call was logged in the CRM.
      await handle.signal(callEventsSignal, { events: [started, ended] });
      return handle.result();
    });

    assert.deepEqual(journaledEventIds(stubs.journal), [started.eventId, answered.eventId, ended.eventId], 'each event is journaled once, in the order it happened');
    assert.equal(stubs.crmSyncs.calls.length, 1, 'the call is logged in the CRM once');
    assert.equal(stubs.crmSyncs.calls[0]?.durationSeconds, 60);
    assert.deepEqual(result.eventIds, [started.eventId, answered.eventId, ended.eventId]);
    assert.equal(result.startedAt, at(0));
    assert.equal(result.answeredAt, at(5));
    assert.equal(result.endedAt, at(65));
    assert.equal(result.disposition, 'answered');
    assert.equal(result.status, 'completed');
  });

  it('sends one Slack alert for a transfer request, however often the analytics arrive', async () => {
    const providerCallId = uniqueId('call-slack');
    const { started, answered, ended } = answeredCall(providerCallId);
    const analytics: CallEvent = { eventId: `${providerCallId}-analytics`, type: 'call.analytics', occurredAt: at(70), analytics: { transferRequested: true, summary: 'wants a human' } };
    const stubs = stubActivities();
    const callPolicy = policy({ slack: { transferRequested: true, lowSatisfactionAtOrBelow: 1, vip: false } });
    const result = await withStubWorker(env, stubs.activities, async (taskQueue) => {
      const handle = await start(taskQueue, providerCallId, [started, answered, ended, analytics], callPolicy);
      await stubs.slackAlerts.next(() => true, 'the Slack alert');
      await handle.signal(callEventsSignal, { events: [{ ...analytics }] });
      return handle.result();
    });

    assert.deepEqual(stubs.slackAlerts.calls, [
      { tenantId, callId: `pbx:${providerCallId}`, trigger: 'transfer_requested', customerLabel: '+14•••23', summary: 'wants a human', outcome: 'answered' },
    ]);
    assert.deepEqual(result.actions.slack, [{ trigger: 'transfer_requested', state: 'done' }]);
  });

  it('records a CRM refusal as a failed sync with its reason, and still completes the call', async () => {
    const providerCallId = uniqueId('call-refused');
    const { started, answered, ended } = answeredCall(providerCallId);
    const stubs = stubActivities({ logCallToCrm: () => Promise.reject(ApplicationFailure.nonRetryable('kommo: token revoked', 'Unauthorized')) });
    const result = await withStubWorker(env, stubs.activities, async (taskQueue) => (await start(taskQueue, providerCallId, [started, answered, ended])).result());

    assert.equal(stubs.crmSyncs.calls.length, 1, 'a non-retryable refusal is not retried');
    assert.equal(result.status, 'completed');
    assert.equal(result.crmSyncState, 'failed');
    assert.match(result.crm.error ?? '', /token revoked/);
  });
});
