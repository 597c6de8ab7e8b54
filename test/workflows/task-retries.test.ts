/**
 * What a chaos run found when a workflow task died or timed out and another worker took it up
 * (chaos/findings). Real Temporal (dev server), stubbed activities, workers stopped and started
 * by the test so the order is exact.
 */
import assert from 'node:assert/strict';
import type { WorkflowHandle } from '@temporalio/client';
import proto from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { loadConfig } from '../../config/load.js';
import { temporalDataConverter } from '../../security/payload-codec.js';
import { initialSnapshot } from '../../shared/call-state.js';
import type { CallEnrichment, CallEvent, CallSnapshot, CrmSyncState, EnrichmentState } from '../../shared/calls.js';
import { callWorkflowId } from '../../shared/vocabulary.js';
import { waitUntil } from '../../stack/processes.js';
import { callEventsSignal } from '../../workflows/call.js';
import type { callWorkflow } from '../../workflows/call.js';
import { getDevServer, getWorkflowBundle } from '../harness/temporal.js';
import { uniqueId } from '../harness/resources.js';
import { callPolicy } from './completion-race-scenarios.js';

const { EventType } = proto.temporal.api.enums.v1;
const tenantId = 'retry-tenant';
const dataConverter = temporalDataConverter(loadConfig({}).temporal.payloadEncryption);

// The race scenarios' policy: everything after the end is due at once; no ticket, e-mail or Slack alert.
const policy = callPolicy;

/** A promise and the function that settles it. */
function signal<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((settle) => (resolve = settle));
  return { promise, resolve };
}

function answeredCall(providerCallId: string): CallEvent[] {
  const at = (offsetSeconds: number): string => new Date(Date.parse('2026-01-05T15:00:00.000Z') + offsetSeconds * 1000).toISOString();
  return [
    { eventId: `${providerCallId}-started`, type: 'call.started', occurredAt: at(0), direction: 'inbound', customerPhone: '+14155550123' },
    { eventId: `${providerCallId}-answered`, type: 'call.answered', occurredAt: at(5), agentId: 'agent-1' },
    { eventId: `${providerCallId}-ended`, type: 'call.ended', occurredAt: at(65), durationSeconds: 60, disposition: 'answered' },
  ];
}

const historyEvents = async (handle: WorkflowHandle): Promise<proto.temporal.api.history.v1.IHistoryEvent[]> => (await handle.fetchHistory()).events ?? [];

describe('workflow tasks retried on another worker', () => {
  it('a call whose journal shows a CRM sync in flight (its first task died after writing it) logs the call and completes', async () => {
    const env = await getDevServer();
    const providerCallId = uniqueId('retry-call');
    const events = answeredCall(providerCallId);
    // What the dead attempt's local activity left in the journal: the call ended, the CRM sync started.
    const journaled: CallSnapshot = {
      ...initialSnapshot(tenantId, 'pbx', providerCallId),
      version: 2,
      status: 'ended',
      direction: 'inbound',
      customerPhone: '+14155550123',
      durationSeconds: 60,
      disposition: 'answered',
      startedAt: events[0]?.occurredAt ?? '',
      endedAt: events[2]?.occurredAt ?? '',
      enrichmentState: 'skipped',
      crmSyncState: 'pending',
      eventIds: events.map((event) => event.eventId),
    };
    const crmCalls: string[] = [];
    const taskQueue = uniqueId('task-retry');
    const activities = {
      loadCall: (): Promise<CallSnapshot> => Promise.resolve(structuredClone(journaled)),
      recordCall: (): Promise<void> => Promise.resolve(),
      findLeadByPhone: (): Promise<null> => Promise.resolve(null),
      logCallToCrm: (input: { callId: string }): Promise<{ state: CrmSyncState; noteId: number }> => {
        crmCalls.push(input.callId);
        return Promise.resolve({ state: 'synced', noteId: 7 });
      },
    };
    const worker = await Worker.create({ connection: env.nativeConnection, namespace: env.client.options.namespace, taskQueue, workflowBundle: await getWorkflowBundle(), activities, dataConverter });
    const result = await worker.runUntil(async () => {
      const handle = await env.client.workflow.signalWithStart<typeof callWorkflow, [{ events: CallEvent[] }]>('callWorkflow', {
        workflowId: callWorkflowId(tenantId, `pbx:${providerCallId}`),
        taskQueue,
        args: [{ tenantId, provider: 'pbx', providerCallId, policy }],
        signal: callEventsSignal,
        signalArgs: [{ events }],
      });
      let completed: CallSnapshot | undefined;
      const result = handle.result().then((snapshot) => (completed = snapshot));
      // A run that trusted the journal's "pending" waited forever for a sync nobody was running:
      // its first task completed with nothing scheduled and no timer left to fire.
      const count = (history: proto.temporal.api.history.v1.IHistoryEvent[], type: proto.temporal.api.enums.v1.EventType): number => history.filter((event) => event.eventType === type).length;
      const idleWithoutSync = (history: proto.temporal.api.history.v1.IHistoryEvent[]): boolean =>
        history.at(-1)?.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED &&
        count(history, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED) === 0 &&
        count(history, EventType.EVENT_TYPE_TIMER_STARTED) === count(history, EventType.EVENT_TYPE_TIMER_FIRED) + count(history, EventType.EVENT_TYPE_TIMER_CANCELED);
      await waitUntil(async () => completed !== undefined || idleWithoutSync(await historyEvents(handle)), 60_000, 'the call neither completed nor went idle');
      if (!completed) {
        await handle.terminate('stuck: no CRM sync scheduled');
        await result.catch(() => undefined);
        assert.fail('the run went idle without logging the call in the CRM');
      }
      return completed;
    });
    assert.deepEqual(crmCalls, [`pbx:${providerCallId}`], 'the call is logged in the CRM once');
    assert.equal(result.crmSyncState, 'synced');
    assert.equal(result.crm.noteId, 7);
    assert.equal(result.status, 'completed');
  });

  it('a call whose enrichment and CRM sync both finished while no worker ran replays on the history it then made', async () => {
    const env = await getDevServer();
    const workflowBundle = await getWorkflowBundle();
    const providerCallId = uniqueId('retry-concurrent');
    const workflowQueue = uniqueId('task-retry-workflows');
    const integrationsQueue = uniqueId('task-retry-integrations');
    const enrichEntered = signal();
    const syncEntered = signal();
    const outsideAnswers = signal();
    const integrations = await Worker.create({
      connection: env.nativeConnection,
      namespace: env.client.options.namespace,
      taskQueue: integrationsQueue,
      dataConverter,
      activities: {
        enrichCall: async (): Promise<{ state: EnrichmentState; enrichment: CallEnrichment }> => {
          enrichEntered.resolve();
          await outsideAnswers.promise;
          return { state: 'done', enrichment: { previousInteractions: [], vip: false } };
        },
        logCallToCrm: async (): Promise<{ state: CrmSyncState; noteId: number }> => {
          syncEntered.resolve();
          await outsideAnswers.promise;
          return { state: 'synced', noteId: 11 };
        },
      },
    });
    // On the second worker the lead look-up answers first and the journal write a little later, in
    // a workflow activation of its own: the order a busy worker saw in the chaos run. A replay
    // resolves both local activities in one activation, and the loop, which raced the look-up's
    // continuation, took another path (chaos/findings: timer id 4 expected, 3 found). The delay
    // only shapes that live order; nothing waits on it to assert.
    let writes = 0;
    let writesBeforeSecondWorker = Number.POSITIVE_INFINITY;
    const lookedUp = signal();
    const journalActivities = {
      loadCall: (): Promise<null> => Promise.resolve(null),
      recordCall: async (): Promise<void> => {
        if (++writes !== writesBeforeSecondWorker + 1) return;
        await lookedUp.promise;
        await new Promise((resolve) => setTimeout(resolve, 250));
      },
      findLeadByPhone: (): Promise<null> => {
        lookedUp.resolve();
        return Promise.resolve(null);
      },
    };
    const workflowWorker = (): Promise<Worker> =>
      Worker.create({ connection: env.nativeConnection, namespace: env.client.options.namespace, taskQueue: workflowQueue, workflowBundle, dataConverter, activities: journalActivities });

    const workflowId = callWorkflowId(tenantId, `pbx:${providerCallId}`);
    const handle = env.client.workflow.getHandle<typeof callWorkflow>(workflowId);
    const history = await integrations.runUntil(async () => {
      // The first worker schedules both outside calls, then goes away.
      const first = await workflowWorker();
      await first.runUntil(async () => {
        await env.client.workflow.signalWithStart<typeof callWorkflow, [{ events: CallEvent[] }]>('callWorkflow', {
          workflowId,
          taskQueue: workflowQueue,
          // A wrap-up long enough that the second worker's task ends waiting on its timer.
          args: [{ tenantId, provider: 'pbx', providerCallId, policy: { ...policy, wrapUpMinutes: 0.1 }, integrationsTaskQueue: integrationsQueue }],
          signal: callEventsSignal,
          signalArgs: [{ events: answeredCall(providerCallId) }],
        });
        await Promise.all([enrichEntered.promise, syncEntered.promise]);
      });
      // Both answer while no worker runs the workflow: the next task delivers the two at once.
      outsideAnswers.resolve();
      await waitUntil(async () => (await historyEvents(handle)).filter((event) => event.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED).length === 2, 30_000, 'the outside calls did not complete');
      writesBeforeSecondWorker = writes;
      const second = await workflowWorker();
      const result = await second.runUntil(handle.result());
      assert.equal(result.crmSyncState, 'synced');
      assert.equal(result.status, 'completed');
      return handle.fetchHistory();
    });
    // A replay with no cache (a task timed out, a worker restarted) must take the path the live run took.
    await Worker.runReplayHistory({ workflowBundle, dataConverter }, history, workflowId);
  });
});
