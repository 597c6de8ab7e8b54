/**
 * Races at the end of a run, on the real Temporal dev server with stubbed activities: something
 * arrives while the workflow's last journal write is running. The journal activity is held on a
 * gate the scenario opens only once the signal or update is in Temporal, so the order is exact.
 * Shared by the tests (today's behaviour) and the recorder of their replay fixtures.
 */
import { WorkflowContinuedAsNewError } from '@temporalio/client';
import type { WorkflowHandle } from '@temporalio/client';
import type { History } from '@temporalio/common/lib/proto-utils.js';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import proto from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import type { WorkerOptions } from '@temporalio/worker';
import { loadConfig } from '../../config/load.js';
import { temporalDataConverter } from '../../security/payload-codec.js';
import type { CallEvent, CallPolicy, CallSnapshot } from '../../shared/calls.js';
import { callPolicySchema } from '../../shared/calls.js';
import type { LeadEvent, LeadPolicy, LeadState, TimelineEntry } from '../../shared/leads.js';
import { leadPolicySchema } from '../../shared/leads.js';
import { callWorkflowId, leadWorkflowId } from '../../shared/vocabulary.js';
import { callEventsSignal } from '../../workflows/call.js';
import type { callWorkflow } from '../../workflows/call.js';
import { leadEventsSignal, leadStateQuery, pauseUpdate, resumeUpdate } from '../../workflows/lead.js';
import type { leadWorkflow } from '../../workflows/lead.js';
import type { LeadView } from '../../shared/lead-plan.js';
import { waitUntil } from '../../stack/processes.js';
import { uniqueId } from '../harness/resources.js';

const { EventType } = proto.temporal.api.enums.v1;

/** Holds the first activity call that asks until the scenario opens it; later calls pass. */
class Gate {
  private enter!: () => void;
  private open!: () => void;
  private taken = false;
  readonly entered = new Promise<void>((resolve) => (this.enter = resolve));
  private readonly opened = new Promise<void>((resolve) => (this.open = resolve));
  async hold(): Promise<void> {
    if (this.taken) return;
    this.taken = true;
    this.enter();
    await this.opened;
  }
  release(): void {
    this.open();
  }
}

const tenantId = 'race-tenant';
const dataConverter = temporalDataConverter(loadConfig({}).temporal.payloadEncryption);

/**
 * A local activity running past 80 % of the workflow task timeout makes the worker complete the
 * task (a heartbeat) and take a new one, which delivers the updates that came meanwhile; the
 * signals that come after that heartbeat are delivered to a workflow still waiting on the write.
 * (A signal that comes within the task that started the write is safe: Temporal refuses to
 * complete that task and it is redone with the signal first.) A write that takes that long: a
 * slow or frozen PostgreSQL at the production timeout; a short timeout gets there in a second.
 */
const workflowTaskTimeout = '1s';

const completedTasks = async (handle: WorkflowHandle): Promise<number> =>
  ((await handle.fetchHistory()).events ?? []).filter((event) => event.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED).length;

/** Waits for the worker to complete one more workflow task: with a write running, its heartbeat. */
async function taskHeartbeat(handle: WorkflowHandle): Promise<void> {
  const before = await completedTasks(handle);
  await waitUntil(async () => (await completedTasks(handle)) > before, 30_000, `${handle.workflowId} completed no workflow task`);
}

/** Waits until the workflow has taken its latest signal: a workflow task completed after it. */
async function signalTaken(handle: WorkflowHandle): Promise<void> {
  await waitUntil(
    async () => {
      const events = (await handle.fetchHistory()).events ?? [];
      const signaled = events.findLastIndex((event) => event.eventType === EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED);
      return signaled >= 0 && events.slice(signaled + 1).some((event) => event.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED);
    },
    30_000,
    `${handle.workflowId} did not take its signal`,
  );
}

/** Signals the workflow while its held write runs past a workflow task heartbeat, then lets the write finish. */
async function signalDuringWrite(handle: WorkflowHandle, write: Gate, send: () => Promise<void>): Promise<void> {
  await write.entered;
  await taskHeartbeat(handle);
  await send();
  await signalTaken(handle);
  write.release();
}

/** Runs `body` with a worker on a queue of its own, serving the stubbed activities; every gate is opened at the end. */
async function withWorker<T>(env: TestWorkflowEnvironment, workflowBundle: NonNullable<WorkerOptions['workflowBundle']>, activities: object, gates: Gate[], body: (taskQueue: string) => Promise<T>): Promise<T> {
  const taskQueue = uniqueId('completion-race');
  const worker = await Worker.create({ connection: env.nativeConnection, namespace: env.client.options.namespace, taskQueue, workflowBundle, activities, dataConverter });
  return worker.runUntil(async () => {
    try {
      return await body(taskQueue);
    } finally {
      for (const gate of gates) gate.release();
    }
  });
}

// Everything after the end is due at once (no CRM wait, no outcome wait); nothing goes out.
export const callPolicy: CallPolicy = callPolicySchema.parse({
  crmSyncDelaySeconds: 0,
  outcomeWaitSeconds: 0,
  wrapUpMinutes: 0.001,
  tickets: { enabled: false },
  email: { enabled: false },
  slack: { transferRequested: false, lowSatisfactionAtOrBelow: 1, vip: false },
  callbackTaskForMissedCalls: false,
});

export interface CallRace {
  result: CallSnapshot;
  /** Every journal write, in order. */
  recorded: Array<{ snapshot: CallSnapshot; events: CallEvent[] }>;
  lateEventId: string;
  history: History;
}

/**
 * A missed call with a withheld number completes; while its final journal write (status
 * completed) runs, the manager's result form signals the workflow.
 */
export async function callEventDuringFinalWrite(env: TestWorkflowEnvironment, workflowBundle: NonNullable<WorkerOptions['workflowBundle']>): Promise<CallRace> {
  const finalWrite = new Gate();
  const recorded: CallRace['recorded'] = [];
  const activities = {
    loadCall: (): Promise<CallSnapshot | null> => Promise.resolve(null),
    recordCall: async (snapshot: CallSnapshot, events: CallEvent[]): Promise<void> => {
      recorded.push({ snapshot, events });
      if (snapshot.status === 'completed') await finalWrite.hold();
    },
    logCallToCrm: () => Promise.resolve({ state: 'skipped' as const, skippedReason: 'caller_id_withheld' }),
  };
  const providerCallId = uniqueId('race-call');
  const callId = `pbx:${providerCallId}`;
  const at = (offsetSeconds: number): string => new Date(Date.parse('2026-01-05T15:00:00.000Z') + offsetSeconds * 1000).toISOString();
  const first: CallEvent[] = [
    { eventId: `${providerCallId}-started`, type: 'call.started', occurredAt: at(0), direction: 'inbound' },
    { eventId: `${providerCallId}-ended`, type: 'call.ended', occurredAt: at(20), direction: 'inbound', durationSeconds: 0, disposition: 'missed' },
  ];
  const lateEventId = `${providerCallId}-result`;
  const late: CallEvent = { eventId: lateEventId, type: 'call.result', occurredAt: at(60), result: { outcome: 'callback_requested' } };
  return withWorker(env, workflowBundle, activities, [finalWrite], async (taskQueue) => {
    const handle: WorkflowHandle<typeof callWorkflow> = await env.client.workflow.signalWithStart<typeof callWorkflow, [{ events: CallEvent[] }]>('callWorkflow', {
      workflowId: callWorkflowId(tenantId, callId),
      taskQueue,
      args: [{ tenantId, provider: 'pbx', providerCallId, policy: callPolicy }],
      workflowTaskTimeout,
      signal: callEventsSignal,
      signalArgs: [{ events: first }],
    });
    await signalDuringWrite(handle, finalWrite, () => handle.signal(callEventsSignal, { events: [late] }));
    const result = await handle.result();
    return { result, recorded, lateEventId, history: await handle.fetchHistory() };
  });
}

// Events are applied as they arrive (no reorder window); nothing is planned, so nothing is sent.
const leadPolicy = (overrides: Partial<LeadPolicy> = {}): LeadPolicy => ({ ...leadPolicySchema.parse({ reorderWindowSeconds: 0 }), ...overrides });
const leadInput = (leadId: string, taskQueue: string, policy: LeadPolicy) => ({ tenantId, leadId, policy, defaultTimeZone: 'America/New_York', company: 'Race Co', messagingTaskQueue: taskQueue });

export interface LeadRecording {
  recorded: Array<{ state: LeadState; timeline: TimelineEntry[] }>;
}

export interface LeadCompletionRace extends LeadRecording {
  lateEventId: string;
  history: History;
}

/**
 * A lead is won. An operator pauses it while that is being journaled, so the run ends with one
 * more write; while that final write runs, a CRM update signals the workflow.
 */
export async function leadEventDuringFinalWrite(env: TestWorkflowEnvironment, workflowBundle: NonNullable<WorkerOptions['workflowBundle']>): Promise<LeadCompletionRace> {
  const wonWrite = new Gate();
  const finalWrite = new Gate();
  const recorded: LeadRecording['recorded'] = [];
  const activities = {
    loadLead: (): Promise<LeadState | null> => Promise.resolve(null),
    recordLead: async (state: LeadState, timeline: TimelineEntry[]): Promise<void> => {
      recorded.push({ state, timeline });
      if (recorded.length === 1) await wonWrite.hold();
      else if (state.paused) await finalWrite.hold();
    },
  };
  const leadId = uniqueId('race-lead');
  const won: LeadEvent = { eventId: `${leadId}-won`, type: 'lead.status_changed', occurredAt: '2026-01-05T15:00:00.000Z', status: 'won' };
  const lateEventId = `${leadId}-updated`;
  const late: LeadEvent = { eventId: lateEventId, type: 'lead.updated', occurredAt: '2026-01-05T15:01:00.000Z', profile: { language: 'en' } };
  return withWorker(env, workflowBundle, activities, [wonWrite, finalWrite], async (taskQueue) => {
    const handle: WorkflowHandle<typeof leadWorkflow> = await env.client.workflow.signalWithStart<typeof leadWorkflow, [{ events: LeadEvent[] }]>('leadWorkflow', {
      workflowId: leadWorkflowId(tenantId, leadId),
      taskQueue,
      workflowTaskTimeout,
      args: [leadInput(leadId, taskQueue, leadPolicy())],
      signal: leadEventsSignal,
      signalArgs: [{ events: [won] }],
    });
    await wonWrite.entered;
    await handle.executeUpdate(pauseUpdate, { args: [{ operator: 'race-test' }] });
    wonWrite.release();
    await signalDuringWrite(handle, finalWrite, () => handle.signal(leadEventsSignal, { events: [late] }));
    await handle.result();
    return { recorded, lateEventId, history: await handle.fetchHistory() };
  });
}

/** The run id a run continued as (waiting for it to end), or a failure if it ended otherwise. */
async function continuedAs(run: WorkflowHandle): Promise<string> {
  try {
    await run.result();
  } catch (error) {
    if (error instanceof WorkflowContinuedAsNewError) return error.newExecutionRunId;
    throw error;
  }
  throw new Error('the run completed instead of continuing as new');
}

export interface LeadContinueAsNewRace extends LeadRecording {
  /** The first run's history, which ends in continue-as-new. */
  history: History;
  /** What the next run knows, once it has started. */
  nextRun: LeadView;
}

/**
 * An operator pauses a lead; its history is then past the continue-as-new threshold. While the
 * pause is journaled, the operator resumes it; the run then continues as new.
 */
export async function leadUpdateBeforeContinueAsNew(env: TestWorkflowEnvironment, workflowBundle: NonNullable<WorkerOptions['workflowBundle']>): Promise<LeadContinueAsNewRace> {
  const pauseWrite = new Gate();
  const recorded: LeadRecording['recorded'] = [];
  const activities = {
    loadLead: (): Promise<LeadState | null> => Promise.resolve(null),
    recordLead: async (state: LeadState, timeline: TimelineEntry[]): Promise<void> => {
      recorded.push({ state, timeline });
      await pauseWrite.hold();
    },
  };
  const leadId = uniqueId('race-lead-can');
  // Below the schema's floor on purpose: a run's first task (history length 3) is not past it,
  // the pause's task is, so the first run continues as new once the pause is journaled and the
  // next run stays.
  const policy = leadPolicy({ continueAsNewAfterEvents: 4 });
  return withWorker(env, workflowBundle, activities, [pauseWrite], async (taskQueue) => {
    const handle = await env.client.workflow.start<typeof leadWorkflow>('leadWorkflow', {
      workflowId: leadWorkflowId(tenantId, leadId),
      taskQueue,
      workflowTaskTimeout,
      args: [leadInput(leadId, taskQueue, policy)],
    });
    const firstRun = env.client.workflow.getHandle(handle.workflowId, handle.firstExecutionRunId, { followRuns: false });
    try {
      // Operator actions are refused until the lead is loaded, in the run's first task.
      await waitUntil(async () => (await completedTasks(handle)) > 0, 30_000, `${handle.workflowId} did not start`);
      const pausing = handle.executeUpdate(pauseUpdate, { args: [{ operator: 'race-test' }] });
      await pauseWrite.entered;
      await handle.executeUpdate(resumeUpdate, { args: [{ operator: 'race-test' }] });
      pauseWrite.release();
      await pausing;
      const nextRunId = await continuedAs(firstRun);
      // Answered once the next run's first task has run.
      const nextRun = await env.client.workflow.getHandle(handle.workflowId, nextRunId).query(leadStateQuery);
      return { recorded, history: await firstRun.fetchHistory(), nextRun };
    } finally {
      await env.client.workflow.getHandle(handle.workflowId).terminate('race scenario done').catch(() => undefined);
    }
  });
}
