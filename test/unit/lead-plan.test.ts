import assert from 'node:assert/strict';
import { Changes, afterSent, applyLeadEvent, cancel, dueStep, initialLeadState, isOptOutText, runNoShowCheck, sendDecision } from '../../shared/lead-plan.js';
import { leadPolicySchema, normalizeLegacyStatus } from '../../shared/leads.js';
import type { LeadEvent, LeadState, SkipReason, TimelineEntry } from '../../shared/leads.js';
import type { LeadPlanFeatures } from '../../shared/lead-plan.js';

const policy = leadPolicySchema.parse({});
const hour = 3_600_000;
const day = 24 * hour;
// Monday 23 Nov 2026, 10:00 in New York.
const monday10 = Date.parse('2026-11-23T15:00:00Z');
const iso = (ms: number): string => new Date(ms).toISOString();

function lead(now = monday10): LeadState {
  return initialLeadState('demo', 'L1', 'lead:demo:L1', 'America/New_York', now);
}

type EventInput = LeadEvent extends infer E ? (E extends LeadEvent ? Omit<E, 'eventId' | 'occurredAt'> & { eventId?: string } : never) : never;

function apply(state: LeadState, event: EventInput, now: number, features: LeadPlanFeatures = {}): Changes {
  const changes = new Changes(now);
  applyLeadEvent(state, { eventId: event.eventId ?? `${event.type}-${now}`, occurredAt: iso(now), ...event }, policy, now, changes, features);
  return changes;
}

/** What a workflow that took the `lead-resend-throttled-status` patch passes, counting how often it was asked. */
function resendThrottledOn(): LeadPlanFeatures & { asked: number } {
  const features = { asked: 0, resendThrottled: () => ++features.asked > 0 };
  return features;
}

const keys = (state: LeadState): string[] => state.planned.map((step) => step.key);

describe('lead planner', () => {
  it('welcomes a new lead at once inside business hours, then plans follow-ups from the moment it was sent', () => {
    const state = lead();
    apply(state, { type: 'lead.created', profile: { name: 'Ann', phone: '+14155550100' } }, monday10);
    const welcome = dueStep(state, monday10);
    assert.equal(welcome?.key, 'welcome:message');
    afterSent(state, welcome, policy, monday10, new Changes(monday10));
    assert.equal(state.stage, 'contacted');
    assert.deepEqual(keys(state).filter((key) => key.startsWith('follow_up')), ['follow_up:1', 'follow_up:2', 'follow_up:3']);
    assert.deepEqual(state.planned.filter((step) => step.flow === 'follow_up').map((step) => iso(step.dueAt)), [iso(monday10 + day), iso(monday10 + 3 * day), iso(monday10 + 7 * day)]);
  });

  it('a lead.created delivered after the booking it preceded still arms the welcome, as in order; not once the lead is closed', () => {
    const startsAt = monday10 + 3 * day;
    const created = (eventId: string): LeadEvent => ({ eventId, type: 'lead.created', occurredAt: iso(monday10), profile: { phone: '+14155550100' } });
    const features: LeadPlanFeatures = { welcomeLateCreated: () => true };
    const inOrder = lead();
    apply(inOrder, created('c1'), monday10, features);
    apply(inOrder, { type: 'meeting.booked', meeting: { id: 'm1', startsAt: iso(startsAt) } }, monday10 + 60_000, features);

    const overtaken = lead();
    apply(overtaken, { type: 'meeting.booked', meeting: { id: 'm1', startsAt: iso(startsAt) } }, monday10 + 60_000, features);
    const changes = apply(overtaken, created('c1'), monday10 + 120_000, features);
    assert.deepEqual(keys(overtaken).sort(), keys(inOrder).sort(), 'the same plan as when the events came in order');
    assert.ok(keys(overtaken).includes('welcome:message'));
    assert.match(changes.timeline.find((entry) => entry.kind === 'scheduled' && entry.flow === 'welcome')?.cause ?? '', /delivered after later events/);

    const unpatched = lead();
    apply(unpatched, { type: 'meeting.booked', meeting: { id: 'm1', startsAt: iso(startsAt) } }, monday10 + 60_000);
    apply(unpatched, created('c1'), monday10 + 120_000);
    assert.ok(!keys(unpatched).includes('welcome:message'), 'runs without the patch keep ignoring it');

    const won = lead();
    apply(won, { type: 'lead.status_changed', status: 'won' }, monday10 + 60_000, features);
    apply(won, created('c1'), monday10 + 120_000, features);
    assert.deepEqual(keys(won), [], 'a closed lead gets no welcome');
  });

  it('moves a send that falls in quiet hours or on a weekend to the next opening in the lead\'s zone', () => {
    const saturdayNight = Date.parse('2026-11-22T03:00:00Z'); // Saturday 22:00 in New York
    const state = lead(saturdayNight);
    const changes = apply(state, { type: 'lead.created', profile: { phone: '+14155550100' } }, saturdayNight);
    assert.equal(iso(state.planned.find((step) => step.flow === 'welcome')?.dueAt ?? 0), '2026-11-23T14:00:00.000Z'); // Monday 09:00
    const scheduled = changes.timeline.find((entry) => entry.kind === 'scheduled' && entry.flow === 'welcome');
    assert.equal(scheduled?.detail?.reason, 'send_window');
  });

  it('stops following up when the lead replies, and says why in the timeline', () => {
    const state = lead();
    apply(state, { type: 'lead.created', profile: { phone: '+14155550100' } }, monday10);
    afterSent(state, dueStep(state, monday10) ?? assert.fail(), policy, monday10, new Changes(monday10));
    const changes = apply(state, { type: 'whatsapp.reply', messageId: 'w1', text: 'Tell me more' }, monday10 + 2 * hour);
    assert.ok(!keys(state).some((key) => key.startsWith('follow_up')));
    assert.equal(state.stage, 'engaged');
    const skipped = changes.timeline.filter((entry) => entry.kind === 'skipped' && entry.flow === 'follow_up').map((entry) => entry.step);
    assert.deepEqual(skipped.sort(), ['1', '2', '3']);
    assert.ok(changes.timeline.filter((entry) => entry.kind === 'skipped').every((entry) => entry.cause.startsWith('lead replied')));
  });

  it('books: confirmation now, reminders at T-24h and T-1h, and skips a reminder that is already too close', () => {
    const state = lead();
    const startsAt = monday10 + 5 * hour; // today 15:00: T-24h has passed
    const changes = apply(state, { type: 'meeting.booked', meeting: { id: 'm1', startsAt: iso(startsAt) } }, monday10);
    assert.deepEqual(keys(state).filter((key) => !key.startsWith('rewarm')), ['booking_confirmation:message:m1', `reminder:1h:m1@${iso(startsAt)}`, `no_show:check:m1@${iso(startsAt)}`]);
    const tooClose = changes.timeline.find((entry) => entry.kind === 'skipped' && entry.flow === 'reminder');
    assert.equal(tooClose?.step, '24h');
    assert.match(tooClose?.cause ?? '', /^too close/);
  });

  it('rescheduling cancels pending reminders and arms new ones for the new time', () => {
    const state = lead();
    const first = monday10 + 3 * day;
    apply(state, { type: 'meeting.booked', meeting: { id: 'm1', startsAt: iso(first) } }, monday10);
    const second = monday10 + 4 * day;
    apply(state, { type: 'meeting.rescheduled', meeting: { id: 'm1', startsAt: iso(second) } }, monday10 + hour);
    const reminders = keys(state).filter((key) => key.startsWith('reminder'));
    assert.deepEqual(reminders.sort(), [`reminder:1h:m1@${iso(second)}`, `reminder:24h:m1@${iso(second)}`]);
    assert.ok(keys(state).includes(`reschedule:message:m1@${iso(second)}`));
  });

  it('treats a meeting that ended without attendance as a no-show and offers a rebooking a capped number of times', () => {
    const state = lead();
    const startsAt = monday10 + 2 * day;
    apply(state, { type: 'meeting.booked', meeting: { id: 'm1', startsAt: iso(startsAt), endsAt: iso(startsAt + hour) } }, monday10);
    const check = state.planned.find((step) => step.step === 'check');
    assert.equal(iso(check?.dueAt ?? 0), iso(startsAt + hour + policy.noShow.graceMinutes * 60_000));
    const changes = new Changes(startsAt + 2 * hour);
    runNoShowCheck(state, check ?? assert.fail(), policy, startsAt + 2 * hour, changes);
    assert.equal(state.stage, 'no_show');
    assert.deepEqual(keys(state).filter((key) => key.startsWith('no_show')), ['no_show:rebook-1:m1', 'no_show:rebook-2:m1', 'no_show:rebook-3:m1']);
  });

  it('an attended meeting plans the post-meeting follow-up and never a no-show', () => {
    const state = lead();
    const startsAt = monday10 + day;
    apply(state, { type: 'meeting.booked', meeting: { id: 'm1', startsAt: iso(startsAt) } }, monday10);
    apply(state, { type: 'meeting.attended', meetingId: 'm1' }, startsAt + hour);
    assert.equal(state.stage, 'attended');
    assert.ok(!keys(state).some((key) => key.startsWith('no_show') || key.startsWith('reminder')));
    assert.ok(keys(state).includes('post_meeting:1:m1'));
  });

  it('opting out (event or a STOP reply) cancels everything and suppresses further sends', () => {
    const state = lead();
    apply(state, { type: 'lead.created', profile: { phone: '+14155550100' } }, monday10);
    apply(state, { type: 'whatsapp.reply', messageId: 'w2', text: ' STOP ' }, monday10 + hour);
    assert.equal(state.stage, 'opted_out');
    assert.deepEqual(state.planned, []);
    apply(state, { type: 'meeting.booked', meeting: { id: 'm9', startsAt: iso(monday10 + 2 * day) } }, monday10 + 2 * hour);
    assert.deepEqual(state.planned, [], 'nothing is armed for an opted-out lead');
    assert.equal(isOptOutText('please stop calling me at night'), false);
  });

  it('sends free text inside the 24 h window and a template outside it', () => {
    const state = lead();
    apply(state, { type: 'lead.created', profile: { phone: '+14155550100' } }, monday10);
    const welcome = dueStep(state, monday10) ?? assert.fail();
    assert.deepEqual(sendDecision(state, welcome, policy, monday10), { action: 'send', asTemplate: true });
    state.lastInboundAt = monday10 - hour;
    assert.deepEqual(sendDecision(state, welcome, policy, monday10), { action: 'send', asTemplate: false });
    assert.deepEqual(sendDecision(state, welcome, policy, monday10 - hour + day), { action: 'send', asTemplate: true }, 'within the last 5 minutes of the window: template');
  });

  it('keeps 6 s between two messages to one person', () => {
    const state = lead();
    apply(state, { type: 'lead.created', profile: { phone: '+14155550100' } }, monday10);
    state.lastSentAt = monday10 - 2_000;
    assert.deepEqual(sendDecision(state, dueStep(state, monday10) ?? assert.fail(), policy, monday10), { action: 'wait', until: monday10 + 4_000 });
  });

  it('re-sends a free text refused outside the window (131047) as the template, once', () => {
    const state = lead();
    apply(state, { type: 'lead.created', profile: { phone: '+14155550100' } }, monday10);
    afterSent(state, dueStep(state, monday10) ?? assert.fail(), policy, monday10, new Changes(monday10));
    apply(state, { type: 'whatsapp.failed', messageId: 'w3', effectKey: 'wa:L1:welcome:message', errorCode: 131047 }, monday10 + 60_000);
    const resend = state.planned.find((step) => step.key === 'welcome:message#template');
    assert.ok(resend?.forceTemplate);
    apply(state, { type: 'whatsapp.failed', messageId: 'w4', effectKey: 'wa:L1:welcome:message#template', errorCode: 131047 }, monday10 + 120_000);
    assert.equal(state.planned.filter((step) => step.key.startsWith('welcome')).length, 1, 'no endless resends');
  });

  it('re-sends a message WhatsApp accepted and then failed for throttling, after the backoff, under #retry1', () => {
    const state = lead();
    apply(state, { type: 'lead.created', profile: { phone: '+14155550100' } }, monday10);
    afterSent(state, dueStep(state, monday10) ?? assert.fail(), policy, monday10, new Changes(monday10));
    const failedAt = monday10 + 20_000;
    const changes = apply(state, { type: 'whatsapp.failed', messageId: 'w5', effectKey: 'wa:L1:welcome:message', errorCode: 130429 }, failedAt, resendThrottledOn());
    const resend = state.planned.find((step) => step.key === 'welcome:message#retry1') ?? assert.fail(keys(state).join());
    assert.equal(iso(resend.dueAt), iso(failedAt + 1_000));
    assert.equal(resend.attempt, 2);
    assert.equal(resend.forceTemplate, undefined, 'a free text may go as free text again');
    assert.equal(resend.cause, 'WhatsApp throttled (130429): resend in 1 s (retry 1 of 3)');
    const scheduled = changes.timeline.find((entry) => entry.kind === 'scheduled' && entry.flow === 'welcome');
    assert.equal(scheduled?.cause, resend.cause);
  });

  it('keeps the template and the meeting deadline when a throttled template is re-sent', () => {
    const state = lead();
    const startsAt = monday10 + 2 * day;
    apply(state, { type: 'meeting.booked', meeting: { id: 'm1', startsAt: iso(startsAt) } }, monday10);
    state.doneSteps.push('booking_confirmation:message:m1#template');
    apply(state, { type: 'whatsapp.failed', messageId: 'w6', effectKey: 'wa:L1:booking_confirmation:message:m1#template', errorCode: 131056 }, monday10, resendThrottledOn());
    const resend = state.planned.find((step) => step.key === 'booking_confirmation:message:m1#template#retry1') ?? assert.fail(keys(state).join());
    assert.equal(resend.forceTemplate, true);
    assert.equal(iso(resend.dueAt), iso(monday10 + 6_000), "the pair limit's floor");
    assert.equal(resend.notAfter, startsAt);
  });

  it('re-sends a throttled message at most 3 times, backing off, then gives the step up on the timeline', () => {
    const state = lead();
    apply(state, { type: 'lead.created', profile: { phone: '+14155550100' } }, monday10);
    let now = monday10;
    afterSent(state, dueStep(state, now) ?? assert.fail(), policy, now, new Changes(now));
    const delays: number[] = [];
    let failedKey = 'welcome:message';
    let changes = new Changes(now);
    for (let failure = 1; failure <= 4; failure++) {
      now += 10_000;
      changes = apply(state, { type: 'whatsapp.failed', messageId: `w-${failure}`, effectKey: `wa:L1:${failedKey}`, errorCode: 130429 }, now, resendThrottledOn());
      const resend = state.planned.find((step) => step.flow === 'welcome');
      if (!resend) break;
      delays.push(resend.dueAt - now);
      now = resend.dueAt;
      afterSent(state, dueStep(state, now) ?? assert.fail(), policy, now, new Changes(now));
      failedKey = resend.key;
    }
    assert.deepEqual(delays, [1_000, 2_000, 4_000]);
    assert.equal(failedKey, 'welcome:message#retry3');
    assert.ok(!state.planned.some((step) => step.flow === 'welcome'), 'no fourth resend');
    const gaveUp = changes.timeline.find((entry) => entry.kind === 'skipped' && entry.flow === 'welcome');
    assert.equal(gaveUp?.cause, 'WhatsApp throttled (130429): gave up after 3 resends');
    assert.equal(gaveUp?.detail?.reason, 'throttled');
    assert.equal(state.stage, 'contacted');
    assert.deepEqual(keys(state).filter((key) => key.startsWith('follow_up')), ['follow_up:1', 'follow_up:2', 'follow_up:3'], 'the resends armed no extra follow-ups');
  });

  it('re-arms nothing for a throttled step not sent yet (the send is still retrying it), nor for runs without the patch', () => {
    const state = lead();
    apply(state, { type: 'lead.created', profile: { phone: '+14155550100' } }, monday10);
    const features = resendThrottledOn();
    apply(state, { type: 'whatsapp.failed', messageId: 'w7', effectKey: 'wa:L1:welcome:message', errorCode: 130429 }, monday10, features);
    assert.deepEqual(keys(state).filter((key) => key.startsWith('welcome')), ['welcome:message'], 'the planned welcome stays as it was');
    assert.equal(features.asked, 0, 'the patch is not asked when nothing would change');

    afterSent(state, dueStep(state, monday10) ?? assert.fail(), policy, monday10, new Changes(monday10));
    const changes = apply(state, { type: 'whatsapp.failed', messageId: 'w8', effectKey: 'wa:L1:welcome:message', errorCode: 130429, eventId: 'old-run' }, monday10 + 20_000);
    assert.ok(!keys(state).some((key) => key.startsWith('welcome')), 'a history recorded before the patch only notes the failure');
    assert.deepEqual(changes.timeline.map((entry) => entry.kind), ['event', 'failed']);
  });

  it('re-sends nothing for a throttling failure under a message id the step did not go out as (a refusal the send retried past)', () => {
    const state = lead();
    apply(state, { type: 'lead.created', profile: { phone: '+14155550100' } }, monday10);
    afterSent(state, dueStep(state, monday10) ?? assert.fail(), policy, monday10, new Changes(monday10), 'wamid.sent-by-the-retry');
    const changes = apply(state, { type: 'whatsapp.failed', messageId: 'wamid.never-seen', effectKey: 'wa:L1:welcome:message', errorCode: 130429 }, monday10 + 10_000, resendThrottledOn());
    assert.ok(!keys(state).some((key) => key.startsWith('welcome')), keys(state).join());
    const superseded = changes.timeline.find((entry) => entry.kind === 'skipped' && entry.flow === 'welcome');
    assert.equal(superseded?.detail?.reason, 'superseded');

    apply(state, { type: 'whatsapp.failed', messageId: 'wamid.sent-by-the-retry', effectKey: 'wa:L1:welcome:message', errorCode: 130429, eventId: 'failed-as-sent' }, monday10 + 20_000, resendThrottledOn());
    assert.ok(keys(state).includes('welcome:message#retry1'), 'the message the step went out as failing is re-sent');
  });

  it('counts a re-sent rewarming message as the same attempt', () => {
    const state = lead();
    apply(state, { type: 'lead.created', profile: { phone: '+14155550100' } }, monday10);
    afterSent(state, dueStep(state, monday10) ?? assert.fail(), policy, monday10, new Changes(monday10));
    const rewarm = state.planned.find((step) => step.key === 'rewarm:1') ?? assert.fail(keys(state).join());
    afterSent(state, rewarm, policy, rewarm.dueAt, new Changes(rewarm.dueAt));
    assert.equal(state.rewarmAttempts, 1);
    apply(state, { type: 'whatsapp.failed', messageId: 'w9', effectKey: 'wa:L1:rewarm:1', errorCode: 80007 }, rewarm.dueAt + 5_000, resendThrottledOn());
    const resend = state.planned.find((step) => step.key === 'rewarm:1#retry1') ?? assert.fail(keys(state).join());
    afterSent(state, resend, policy, resend.dueAt, new Changes(resend.dueAt));
    assert.equal(state.rewarmAttempts, 1);
    assert.ok(keys(state).includes('rewarm:2'), 'the next rewarming message is still planned');
  });

  it('ignores a duplicated event', () => {
    const state = lead();
    const event = { eventId: 'crm:1', type: 'lead.created' as const, profile: { phone: '+14155550100' } };
    apply(state, event, monday10);
    const changes = apply(state, event, monday10 + 1_000);
    assert.equal(changes.timeline.length, 0);
    assert.equal(state.planned.filter((step) => step.flow === 'welcome').length, 1);
  });

  it('normalizes messy legacy status spellings', () => {
    for (const raw of ['No Show', 'no_show', 'noshow', 'NO-SHOW', ' No-Show ', 'DNA']) assert.equal(normalizeLegacyStatus(raw), 'no_show', raw);
    assert.equal(normalizeLegacyStatus('Closed Won'), 'won');
    assert.equal(normalizeLegacyStatus('Meeting Booked'), 'booked');
    assert.equal(normalizeLegacyStatus('opt-out'), 'opted_out');
    assert.equal(normalizeLegacyStatus('banana'), undefined);
  });

  it('adopts an imported lead at its stage without re-sending what the legacy system sent', () => {
    const state = lead();
    const lastContact = monday10 - 2 * day;
    apply(state, { type: 'lead.imported', profile: { phone: '+14155550100' }, stage: 'contacted', completedSteps: ['welcome:message', 'follow_up:1'], lastContactAt: iso(lastContact) }, monday10);
    assert.equal(state.stage, 'contacted');
    assert.ok(!keys(state).includes('welcome:message'));
    assert.ok(!keys(state).includes('follow_up:1'));
    assert.deepEqual(keys(state).filter((key) => key.startsWith('follow_up')), ['follow_up:2', 'follow_up:3']);
  });
  it('every skip carries its reason in detail.reason: the planner\'s, an operator\'s, and the guards at send time', () => {
    const skipped: TimelineEntry[] = [];
    const collect = (changes: Changes): void => void skipped.push(...changes.timeline.filter((entry) => entry.kind === 'skipped'));
    const state = lead();
    collect(apply(state, { type: 'lead.created', profile: { phone: '+14155550100' } }, monday10));
    afterSent(state, dueStep(state, monday10) ?? assert.fail(), policy, monday10, new Changes(monday10));
    // A meeting an hour away: its 24 h reminder is too close.
    collect(apply(state, { type: 'meeting.booked', meeting: { id: 'm1', startsAt: iso(monday10 + hour) } }, monday10));
    const byOperator = new Changes(monday10);
    cancel(state, (step) => step.flow === 'reminder', 'operator cancel flow by ops@acme', byOperator, 'operator-cancel', { reason: 'operator', operator: 'ops@acme' });
    collect(byOperator);
    collect(apply(state, { type: 'lead.status_changed', status: 'won' }, monday10 + 60_000));
    const reasons = skipped.map((entry) => `${entry.flow}:${entry.step}=${String(entry.detail?.reason)}`);
    assert.deepEqual(reasons.sort(), ['booking_confirmation:message=canceled', 'follow_up:1=canceled', 'follow_up:2=canceled', 'follow_up:3=canceled', 'no_show:check=canceled', 'reminder:1h=operator', 'reminder:24h=too_close', 'rewarm:1=canceled'].sort());
    assert.equal(skipped.find((entry) => entry.detail?.reason === 'operator')?.detail?.operator, 'ops@acme');

    const due = lead();
    apply(due, { type: 'lead.created', profile: {} }, monday10);
    const welcome = dueStep(due, monday10) ?? assert.fail();
    assert.deepEqual(sendDecision(due, welcome, policy, monday10), { action: 'skip', reason: 'no phone number', code: 'no_phone' });
    due.profile.phone = '+14155550100';
    assert.deepEqual(sendDecision(due, { ...welcome, notAfter: monday10 }, policy, monday10), { action: 'skip', reason: 'too late: the moment has passed', code: 'too_late' });
    due.optedOut = true;
    assert.deepEqual(sendDecision(due, welcome, policy, monday10), { action: 'skip', reason: 'opted out', code: 'opted_out' });

    const compileOnly = (changes: Changes, reason: SkipReason): void => {
      changes.note({ entryKey: 'x', kind: 'skipped', cause: 'a skip with its reason', detail: { reason } });
      // @ts-expect-error a skip must say why
      changes.note({ entryKey: 'y', kind: 'skipped', cause: 'a skip without one' });
    };
    assert.equal(typeof compileOnly, 'function');
  });
});
