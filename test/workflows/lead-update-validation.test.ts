/**
 * The lead workflow's update validators, driven the way the Temporal Web UI (or CLI) sends an
 * update: the JSON text an operator typed, as one `json/plain` payload, untouched by any typed
 * client code, through the client's payload codec (the UI's codec server) to a real lead workflow
 * on the dev server, with stubbed activities. Every update refuses an unknown field, a missing
 * required one and one of the wrong type with a message naming the field, and accepts a valid one;
 * what they refuse leaves no trace in the history.
 */
import assert from 'node:assert/strict';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import type { WorkflowHandle } from '@temporalio/client';
import { RawValue } from '@temporalio/common';
import type { UpdateDefinition } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import proto from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { loadConfig } from '../../config/load.js';
import { temporalDataConverter } from '../../security/payload-codec.js';
import { initialLeadState } from '../../shared/lead-plan.js';
import type { LeadView } from '../../shared/lead-plan.js';
import { leadPolicySchema } from '../../shared/leads.js';
import type { LeadState, PlannedStep, TimelineEntry } from '../../shared/leads.js';
import { leadWorkflowId } from '../../shared/vocabulary.js';
import { waitUntil } from '../../stack/processes.js';
import {
  cancelFlowUpdate,
  changeTimeZoneUpdate,
  markBookedUpdate,
  pauseUpdate,
  resumeUpdate,
  sendNowUpdate,
  skipStepUpdate,
} from '../../workflows/lead.js';
import type { leadWorkflow } from '../../workflows/lead.js';
import { uniqueId } from '../harness/resources.js';
import { getDevServer, getWorkflowBundle } from '../harness/temporal.js';

const { EventType } = proto.temporal.api.enums.v1;
const day = 24 * 3_600_000;
const tenantId = 'validator-tenant';
const encoder = new TextEncoder();

type Outcome = { accepted: true; view: LeadView } | { accepted: false; message: string };

/** The payload the Web UI sends for the text in its input box: the bytes as typed, `json/plain`. */
const typedInUi = (json: string): RawValue => RawValue.fromPayload({ metadata: { encoding: encoder.encode('json/plain') }, data: encoder.encode(json) });

describe('lead update validators, with input as the Temporal Web UI sends it', function () {
  this.timeout(120_000);
  let env: TestWorkflowEnvironment;
  let handle: WorkflowHandle<typeof leadWorkflow>;
  let stopWorker: () => Promise<void>;
  const journaled: TimelineEntry[] = [];
  const acceptedUpdates: string[] = [];

  /** Sends `update` with the operator's raw JSON (or no input at all): accepted with the lead's view, or refused with the validator's message. */
  async function send<Arg>(update: UpdateDefinition<LeadView, [Arg]>, json?: string): Promise<Outcome> {
    // Raw on purpose: the Web UI sends whatever was typed, not a value of the update's type.
    const args = (json === undefined ? [] : [typedInUi(json)]) as unknown as [Arg];
    try {
      const view = await handle.executeUpdate(update, { args });
      acceptedUpdates.push(update.name);
      return { accepted: true, view };
    } catch (error) {
      if (error instanceof WorkflowUpdateFailedError) return { accepted: false, message: error.cause?.message ?? error.message };
      throw error;
    }
  }

  async function refused<Arg>(update: UpdateDefinition<LeadView, [Arg]>, json: string | undefined, message: RegExp): Promise<void> {
    const outcome = await send(update, json);
    assert.equal(outcome.accepted, false, `${update.name} ${json ?? '(no input)'} was accepted`);
    if (!outcome.accepted) assert.match(outcome.message, message, `${update.name} ${json ?? '(no input)'}`);
  }

  async function accepted<Arg>(update: UpdateDefinition<LeadView, [Arg]>, json?: string): Promise<LeadView> {
    const outcome = await send(update, json);
    if (!outcome.accepted) assert.fail(`${update.name} ${json ?? '(no input)'} was refused: ${outcome.message}`);
    return outcome.view;
  }

  before(async () => {
    env = await getDevServer();
    const taskQueue = uniqueId('update-validation');
    const leadId = uniqueId('validated-lead');
    const workflowId = leadWorkflowId(tenantId, leadId);
    const now = Date.now();
    // A paused lead with follow-ups days ahead: nothing is due, whatever the updates do before it resumes.
    const followUp = (step: number): PlannedStep => ({ key: `follow_up:${step}`, flow: 'follow_up', step: String(step), baseAt: now + step * day, dueAt: now + step * day, cause: `follow-up ${step}`, attempt: 1, sequence: step });
    const journal: LeadState = { ...initialLeadState(tenantId, leadId, workflowId, 'America/New_York', now), stage: 'contacted', paused: true, planned: [1, 2, 3].map(followUp) };
    const activities = {
      loadLead: (): Promise<LeadState> => Promise.resolve(journal),
      recordLead: (_state: LeadState, timeline: TimelineEntry[]): Promise<void> => {
        journaled.push(...timeline);
        return Promise.resolve();
      },
      // The lead has no phone: a step that comes due is skipped before any send.
      sendWhatsApp: () => Promise.reject(new Error('no send expected')),
    };
    const dataConverter = temporalDataConverter(loadConfig({}).temporal.payloadEncryption);
    const worker = await Worker.create({ connection: env.nativeConnection, namespace: env.client.options.namespace, taskQueue, workflowBundle: await getWorkflowBundle(), activities, dataConverter });
    const running = worker.run();
    stopWorker = async () => {
      worker.shutdown();
      await running;
    };
    handle = await env.client.workflow.start<typeof leadWorkflow>('leadWorkflow', {
      workflowId,
      taskQueue,
      args: [{ tenantId, leadId, policy: leadPolicySchema.parse({ reorderWindowSeconds: 0 }), defaultTimeZone: 'America/New_York', company: 'Validator Co', messagingTaskQueue: taskQueue }],
    });
    // Updates are refused until the lead is loaded, which its first workflow task does.
    await waitUntil(
      async () => ((await handle.fetchHistory()).events ?? []).some((event) => event.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED),
      30_000,
      `${workflowId} did not start`,
    );
  });

  after(async () => {
    await handle?.terminate('validator test done').catch(() => undefined);
    await stopWorker?.();
  });

  const notAnObject = /must be a JSON object/;

  it('pause: refuses unknown fields and ill-typed ones; accepts a reason, or no input at all', async () => {
    await refused(pauseUpdate, '{"bogus":1}', /^invalid pause input: bogus: unknown field; allowed: operator, reason$/);
    await refused(pauseUpdate, '{"reason":5}', /^invalid pause input: reason: must be a string of at most 500 characters, got number 5$/);
    await refused(pauseUpdate, '"now"', notAnObject);
    await refused(pauseUpdate, 'null', /takes one JSON object/);
    assert.equal((await accepted(pauseUpdate, '{"reason":"customer asked"}')).paused, true);
    assert.equal((await accepted(pauseUpdate)).paused, true);
  });

  it('skipStep: refuses an unknown field, a missing or ill-typed step; skips a planned one', async () => {
    await refused(skipStepUpdate, '{"step":"follow_up:1","bogus":1}', /^invalid skipStep input: bogus: unknown field; allowed: step, operator, reason$/);
    await refused(skipStepUpdate, '{}', /^invalid skipStep input: step: required$/);
    await refused(skipStepUpdate, undefined, /^invalid skipStep input: step: required$/);
    await refused(skipStepUpdate, '{"step":1}', /^invalid skipStep input: step: must be a string of 1 to 300 characters, got number 1$/);
    await refused(skipStepUpdate, '{"step":"follow_up:9"}', /^no planned step "follow_up:9"/);
    const view = await accepted(skipStepUpdate, '{"step":"follow_up:1","reason":"called instead"}');
    assert.ok(!view.planned.some((step) => step.key === 'follow_up:1'), 'skipped');
  });

  it('sendNow: refuses an unknown field, a missing or ill-typed step; brings a planned one forward', async () => {
    await refused(sendNowUpdate, '{"step":"follow_up:2","when":"now"}', /^invalid sendNow input: when: unknown field; allowed: step, operator, reason$/);
    await refused(sendNowUpdate, '{"reason":"asap"}', /^invalid sendNow input: step: required$/);
    await refused(sendNowUpdate, '{"step":["follow_up:2"]}', /^invalid sendNow input: step: must be a string of 1 to 300 characters, got an array$/);
    const view = await accepted(sendNowUpdate, '{"step":"follow_up:2"}');
    assert.equal(view.planned[0]?.key, 'follow_up:2', 'first in line (held while paused)');
  });

  it('changeTimeZone: refuses an unknown field, a missing, ill-typed or unknown zone; re-plans in a valid one', async () => {
    await refused(changeTimeZoneUpdate, '{"timeZone":"Europe/Berlin","tz":"x"}', /^invalid changeTimeZone input: tz: unknown field; allowed: timeZone, operator, reason$/);
    await refused(changeTimeZoneUpdate, '{}', /^invalid changeTimeZone input: timeZone: required$/);
    await refused(changeTimeZoneUpdate, '{"timeZone":2}', /^invalid changeTimeZone input: timeZone: must be a string of 1 to 64 characters, got number 2$/);
    await refused(changeTimeZoneUpdate, '{"timeZone":"Mars/Olympus"}', /^invalid changeTimeZone input: timeZone: "Mars\/Olympus" is not an IANA time zone$/);
    assert.equal((await accepted(changeTimeZoneUpdate, '{"timeZone":"Europe/Berlin"}')).timeZone, 'Europe/Berlin');
  });

  it('cancelFlow: refuses an unknown field, a missing or unknown flow; cancels a flow', async () => {
    await refused(cancelFlowUpdate, '{"flow":"follow_up","all":true}', /^invalid cancelFlow input: all: unknown field; allowed: flow, operator, reason$/);
    await refused(cancelFlowUpdate, '{}', /^invalid cancelFlow input: flow: required$/);
    await refused(cancelFlowUpdate, '{"flow":"nurture"}', /^invalid cancelFlow input: flow: must be one of welcome, follow_up, .*; got "nurture"$/);
    const view = await accepted(cancelFlowUpdate, '{"flow":"follow_up"}');
    assert.ok(!view.planned.some((step) => step.flow === 'follow_up'), 'no follow-up left');
  });

  it('markBooked: refuses unknown fields (in the meeting too), a missing or ill-typed meeting; books a valid one', async () => {
    const startsAt = new Date(Date.now() + 3 * day).toISOString();
    await refused(markBookedUpdate, `{"meeting":{"id":"m1","startsAt":"${startsAt}"},"bogus":1}`, /^invalid markBooked input: bogus: unknown field; allowed: meeting, operator, reason$/);
    await refused(markBookedUpdate, `{"meeting":{"id":"m1","startsAt":"${startsAt}","room":"A"}}`, /^invalid markBooked input: meeting\.room: unknown field; allowed: id, startsAt, endsAt$/);
    await refused(markBookedUpdate, '{}', /^invalid markBooked input: meeting: required$/);
    await refused(markBookedUpdate, '{"meeting":{"id":"m1"}}', /^invalid markBooked input: meeting\.startsAt: required$/);
    await refused(markBookedUpdate, '{"meeting":{"id":"m1","startsAt":"tomorrow"}}', /^invalid markBooked input: meeting\.startsAt: must be an ISO 8601 date-time with an offset, got "tomorrow"$/);
    await refused(markBookedUpdate, '{"meeting":"m1"}', /^invalid markBooked input: meeting: must be a JSON object, got "m1"$/);
    const view = await accepted(markBookedUpdate, `{"meeting":{"id":"m1","startsAt":"${startsAt}"}}`);
    assert.equal(view.stage, 'booked');
    assert.equal(view.meeting?.startsAt, startsAt);
  });

  it('resume: refuses an unknown field; resumes with no fields', async () => {
    await refused(resumeUpdate, '{"paused":false}', /^invalid resume input: paused: unknown field; allowed: operator, reason$/);
    await refused(resumeUpdate, '[]', notAnObject);
    assert.equal((await accepted(resumeUpdate, '{}')).paused, false);
  });

  it('what the validators refused left no trace: the history holds only the accepted updates', async () => {
    const events = (await handle.fetchHistory()).events ?? [];
    const inHistory = events.filter((event) => event.eventType === EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED).map((event) => event.workflowExecutionUpdateAcceptedEventAttributes?.acceptedRequest?.input?.name);
    assert.deepEqual(inHistory, acceptedUpdates);
    await waitUntil(() => Promise.resolve(journaled.some((entry) => entry.cause.startsWith('operator resume'))), 30_000, 'the resume was not journaled');
    const operatorCauses = journaled.filter((entry) => entry.kind === 'operator').map((entry) => entry.cause);
    assert.equal(operatorCauses.filter((cause) => cause.startsWith('operator pause')).length, 2);
    assert.ok(journaled.every((entry) => !entry.cause.includes('bogus')), 'nothing refused was journaled');
  });
});
