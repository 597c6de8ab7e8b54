/**
 * The lead workflow on the time-skipping test server with stubbed activities: the welcome and its
 * effect key, events applied once and in the order they happened, a reply cancelling the
 * follow-ups, a pause holding a due send, and update validators refusing bad input.
 */
import assert from 'node:assert/strict';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { SendWhatsAppInput, SendWhatsAppOutcome } from '../../activities/messaging.js';
import type { LeadView } from '../../shared/lead-plan.js';
import { leadPolicySchema } from '../../shared/leads.js';
import type { LeadEvent, LeadPolicy, LeadState, TimelineEntry } from '../../shared/leads.js';
import { leadWorkflowId } from '../../shared/vocabulary.js';
import { leadEventsSignal, leadWorkflow, markBookedUpdate, pauseUpdate, resumeUpdate, skipStepUpdate } from '../../workflows/lead.js';
import { uniqueId } from '../harness/resources.js';
import { Recorder, timeSkippingEnv, withStubWorker } from './workflow-env.js';

const tenantId = 'fast-tenant';
const phone = '+14155550199';
const hour = 3_600_000;
const day = 24 * hour;
const welcomeKey = 'welcome:message';

/** Every day of the week, 09:00–19:00; events applied as they arrive unless a test wants the reorder buffer. */
const policy = (overrides: Partial<LeadPolicy> = {}): LeadPolicy => ({ ...leadPolicySchema.parse({ reorderWindowSeconds: 0, sendWindow: { days: [1, 2, 3, 4, 5, 6, 7] } }), ...overrides });

/** A fixed-offset zone where it is now `hour`:xx, so a test knows whether the send window is open without depending on the wall clock. */
function zoneWhereItIs(localHour: number, nowMs: number): string {
  let offset = localHour - new Date(nowMs).getUTCHours();
  if (offset < -12) offset += 24;
  if (offset > 14) offset -= 24;
  // POSIX sign convention: Etc/GMT-5 is UTC+5.
  return offset === 0 ? 'Etc/GMT' : `Etc/GMT${offset > 0 ? '-' : '+'}${Math.abs(offset)}`;
}

function stubActivities() {
  const journal = new Recorder<{ state: LeadState; timeline: TimelineEntry[] }>();
  const sends = new Recorder<SendWhatsAppInput>();
  const activities = {
    loadLead: (): Promise<LeadState | null> => Promise.resolve(null),
    recordLead: (state: LeadState, timeline: TimelineEntry[]): Promise<void> => {
      journal.record({ state, timeline });
      return Promise.resolve();
    },
    sendWhatsApp: (input: SendWhatsAppInput): Promise<SendWhatsAppOutcome> => {
      sends.record(input);
      return Promise.resolve({ status: 'sent', wamid: `wamid.${sends.calls.length}`, kind: input.message.type });
    },
  };
  /** Every timeline entry journaled so far. */
  const timeline = (): TimelineEntry[] => journal.calls.flatMap((write) => write.timeline);
  return { activities, journal, sends, timeline };
}

describe('lead workflow, stubbed activities (fast)', function () {
  this.timeout(60_000);
  let env: TestWorkflowEnvironment;

  before(async () => {
    env = await timeSkippingEnv();
  });

  const iso = (ms: number): string => new Date(ms).toISOString();
  const created = (leadId: string, occurredAt: string): LeadEvent => ({ eventId: `${leadId}-created`, type: 'lead.created', occurredAt, profile: { name: 'Sam', phone } });
  const reply = (leadId: string, occurredAt: string): LeadEvent => ({ eventId: `${leadId}-reply`, type: 'whatsapp.reply', occurredAt, messageId: `wamid.in.${leadId}`, text: 'Tell me more' });

  /**
   * Closes the lead as the CRM would; its run ends once it is idle. (A run terminated with a
   * workflow task in flight, a journal write say, leaves the test server's clock locked for later tests.)
   */
  async function close(handle: WorkflowHandle<typeof leadWorkflow>, leadId: string): Promise<LeadView> {
    await handle.signal(leadEventsSignal, { events: [{ eventId: `${leadId}-lost`, type: 'lead.status_changed', occurredAt: iso(await env.currentTimeMs()), status: 'lost' }] });
    return handle.result();
  }

  /** Starts a lead in `timeZone` with `events`; the test's body runs while the worker does, and the lead is terminated after it. */
  async function withLead<T>(
    stubs: ReturnType<typeof stubActivities>,
    options: { timeZone: string; events: LeadEvent[]; policy?: LeadPolicy },
    body: (handle: WorkflowHandle<typeof leadWorkflow>, leadId: string) => Promise<T>,
    leadId = uniqueId('lead'),
  ): Promise<T> {
    return withStubWorker(env, stubs.activities, async (taskQueue) => {
      const handle = await env.client.workflow.signalWithStart(leadWorkflow, {
        workflowId: leadWorkflowId(tenantId, leadId),
        taskQueue,
        args: [{ tenantId, leadId, policy: options.policy ?? policy(), defaultTimeZone: options.timeZone, company: 'Fast Co', messagingTaskQueue: taskQueue }],
        signal: leadEventsSignal,
        signalArgs: [{ events: options.events }],
      });
      let outcome: T;
      try {
        outcome = await body(handle, leadId);
      } catch (error) {
        // Closed first where it still can be, so a failure does not lock the clock for the next tests.
        const closed = close(handle, leadId).catch(() => undefined);
        await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 5_000).unref())]);
        await handle.terminate('test failed').catch(() => undefined);
        throw error;
      }
      assert.equal((await close(handle, leadId)).stage, 'lost');
      return outcome;
    });
  }

  it('sends the welcome once, under the step\'s effect key, then plans the follow-ups', async () => {
    const now = await env.currentTimeMs();
    const stubs = stubActivities();
    const leadId = uniqueId('lead-welcome');
    await withLead(stubs, { timeZone: zoneWhereItIs(12, now), events: [created(leadId, iso(now))] }, async () => {
      const sent = await stubs.sends.next(() => true, 'the welcome');
      assert.equal(sent.effectKey, `wa:${leadId}:${welcomeKey}`);
      assert.equal(sent.to, phone);
      assert.equal(sent.tenantId, tenantId);
      assert.equal(sent.leadId, leadId);
      // No reply yet, so no 24 h window: the approved template, filled with the lead's name and the company.
      assert.deepEqual(sent.message, { type: 'template', template: { name: 'welcome', language: 'en', params: ['Sam', 'Fast Co'] } });

      const { state } = await stubs.journal.next((write) => write.state.doneSteps.includes(welcomeKey), 'the welcome journaled as done');
      assert.equal(state.stage, 'contacted');
      assert.deepEqual(state.planned.filter((step) => step.flow === 'follow_up').map((step) => step.key), ['follow_up:1', 'follow_up:2', 'follow_up:3']);
      const sentEntry = stubs.timeline().find((entry) => entry.entryKey === `sent:${welcomeKey}`);
      assert.equal(sentEntry?.detail?.messageId, 'wamid.1');
    }, leadId);
    assert.equal(stubs.sends.calls.length, 1);
  });

  it('applies a burst of events once each, in the order they happened, not the order they came', async () => {
    const now = await env.currentTimeMs();
    const stubs = stubActivities();
    const leadId = uniqueId('lead-burst');
    const createdEvent = created(leadId, iso(now - 2 * 60_000));
    // The reply overtakes the creation, and the creation is delivered twice.
    const events = [reply(leadId, iso(now - 60_000)), createdEvent, { ...createdEvent }];
    await withLead(stubs, { timeZone: zoneWhereItIs(12, now), events, policy: policy({ reorderWindowSeconds: 1 }) }, async () => {
      const sent = await stubs.sends.next(() => true, 'the welcome');
      // The reply opened WhatsApp's 24 h window: free text.
      assert.equal(sent.message.type, 'text');
      const { state } = await stubs.journal.next((write) => write.state.doneSteps.includes(welcomeKey), 'the welcome journaled as done');
      assert.equal(state.stage, 'engaged');
      assert.deepEqual(state.planned.filter((step) => step.flow === 'follow_up'), [], 'a lead that replied is not chased');
      const timeline = stubs.timeline();
      assert.equal(timeline.filter((entry) => entry.entryKey === `event:${createdEvent.eventId}`).length, 1, 'the duplicate is not applied');
      // Applied after the reply, the creation would have armed the welcome as "delivered after later events".
      assert.equal(timeline.find((entry) => entry.entryKey === `sent:${welcomeKey}`)?.cause, `lead.created (${createdEvent.eventId})`);
    }, leadId);
    assert.equal(stubs.sends.calls.length, 1);
  });

  it('cancels the follow-ups when the lead replies: none goes out in the days after', async () => {
    const now = await env.currentTimeMs();
    const stubs = stubActivities();
    const leadId = uniqueId('lead-reply');
    await withLead(stubs, { timeZone: zoneWhereItIs(12, now), events: [created(leadId, iso(now))] }, async (handle) => {
      await stubs.journal.next((write) => write.state.planned.some((step) => step.flow === 'follow_up'), 'the follow-ups planned');
      await handle.signal(leadEventsSignal, { events: [reply(leadId, iso(await env.currentTimeMs()))] });
      const { state } = await stubs.journal.next((write) => write.state.stage === 'engaged', 'the reply journaled');
      assert.deepEqual(state.planned.filter((step) => step.flow === 'follow_up'), []);
      const skipped = stubs.timeline().filter((entry) => entry.kind === 'skipped' && entry.flow === 'follow_up');
      assert.deepEqual(skipped.map((entry) => entry.step).sort(), ['1', '2', '3']);
      assert.ok(skipped.every((entry) => entry.cause.startsWith('lead replied')), skipped.map((entry) => entry.cause).join('; '));

      // Past the last follow-up's day (the server skips the time, firing any timer on the way).
      await env.sleep(8 * day);
      const view = await handle.executeUpdate(pauseUpdate, { args: [{ operator: 'fast-test' }] });
      assert.deepEqual(view.doneSteps, [welcomeKey], 'only the welcome was sent');
    }, leadId);
    assert.deepEqual(stubs.sends.calls.map((send) => send.effectKey), [`wa:${leadId}:${welcomeKey}`]);
  });

  it('holds a due send while paused and sends it once resumed', async () => {
    const now = await env.currentTimeMs();
    const stubs = stubActivities();
    const leadId = uniqueId('lead-pause');
    // 03:xx there: the welcome waits for the window to open at 09:00.
    await withLead(stubs, { timeZone: zoneWhereItIs(3, now), events: [created(leadId, iso(now))] }, async (handle) => {
      const { state } = await stubs.journal.next((write) => write.state.planned.some((step) => step.key === welcomeKey), 'the welcome planned');
      const dueAt = state.planned.find((step) => step.key === welcomeKey)?.dueAt ?? 0;
      assert.ok(dueAt > now + 5 * hour && dueAt <= now + 6 * hour, `the welcome is due at 09:00 local (${iso(dueAt)}, now ${iso(now)})`);

      const paused = await handle.executeUpdate(pauseUpdate, { args: [{ operator: 'ops', reason: 'checking the number' }] });
      assert.equal(paused.paused, true);
      // 11:xx there: the window is open and the welcome long due.
      await env.sleep(8 * hour);
      assert.ok((await env.currentTimeMs()) > dueAt);
      // Something that wakes the paused lead: its loop runs with the welcome due, and must not send it.
      const updatedId = `${leadId}-updated`;
      await handle.signal(leadEventsSignal, { events: [{ eventId: updatedId, type: 'lead.updated', occurredAt: iso(await env.currentTimeMs()), profile: { name: 'Samantha' } }] });
      const woken = await stubs.journal.next((write) => write.timeline.some((entry) => entry.entryKey === `event:${updatedId}`), 'the update journaled');
      assert.deepEqual(woken.state.doneSteps, []);
      assert.equal(stubs.sends.calls.length, 0, 'no send while paused');
      const resumed = await handle.executeUpdate(resumeUpdate, { args: [{ operator: 'ops' }] });
      assert.equal(resumed.paused, false);
      assert.deepEqual(resumed.doneSteps, [], 'nothing was sent while paused');
      assert.ok(resumed.planned.some((step) => step.key === welcomeKey), 'the welcome is still planned');

      const sent = await stubs.sends.next(() => true, 'the welcome after the resume');
      assert.equal(sent.effectKey, `wa:${leadId}:${welcomeKey}`);
      await stubs.journal.next((write) => write.state.doneSteps.includes(welcomeKey), 'the welcome journaled as done');
      const operatorCauses = stubs.timeline().filter((entry) => entry.kind === 'operator').map((entry) => entry.cause);
      assert.deepEqual(operatorCauses, ['operator pause by ops: checking the number', 'operator resume by ops']);
    }, leadId);
    assert.equal(stubs.sends.calls.length, 1);
  });

  it('refuses bad operator input in the validators, leaving no trace, and applies a valid one', async () => {
    const now = await env.currentTimeMs();
    const stubs = stubActivities();
    const leadId = uniqueId('lead-validate');
    await withLead(stubs, { timeZone: zoneWhereItIs(3, now), events: [created(leadId, iso(now))] }, async (handle) => {
      await stubs.journal.next((write) => write.state.planned.some((step) => step.key === welcomeKey), 'the welcome planned');
      const refusal = async (update: () => Promise<LeadView>): Promise<string> => {
        try {
          await update();
        } catch (error) {
          if (error instanceof WorkflowUpdateFailedError) return error.cause?.message ?? error.message;
          throw error;
        }
        return assert.fail('the update was accepted');
      };
      assert.match(await refusal(() => handle.executeUpdate(skipStepUpdate, { args: [{ step: 'follow_up:9' }] })), /no planned step "follow_up:9"; planned: welcome:message/);
      assert.match(
        await refusal(() => handle.executeUpdate(markBookedUpdate, { args: [{ meeting: { id: 'm1', startsAt: iso(now - day) } }] })),
        /the meeting must start in the future/,
      );
      // Not an argument the update takes (as the Web UI could send it).
      const bogus = { step: welcomeKey, bogus: true } as unknown as { step: string };
      assert.match(await refusal(() => handle.executeUpdate(skipStepUpdate, { args: [bogus] })), /invalid skipStep input: .*bogus/);

      const view = await handle.executeUpdate(skipStepUpdate, { args: [{ step: welcomeKey, operator: 'ops' }] });
      assert.ok(!view.planned.some((step) => step.key === welcomeKey), 'the skipped welcome is no longer planned');
      await stubs.journal.next((write) => write.timeline.some((entry) => entry.kind === 'operator'), 'the skip journaled');
      const operator = stubs.timeline().filter((entry) => entry.kind === 'operator');
      assert.deepEqual(operator.map((entry) => entry.cause), ['operator skip by ops'], 'the refused updates left no entry');
      const skipped = stubs.timeline().find((entry) => entry.kind === 'skipped' && entry.flow === 'welcome');
      assert.equal(skipped?.detail?.reason, 'operator');
    }, leadId);
    assert.equal(stubs.sends.calls.length, 0);
  });
});
