import assert from 'node:assert/strict';
import { hypotheticalLeadState, previewLead } from '../../shared/lead-preview.js';
import { leadPolicySchema } from '../../shared/leads.js';

const day = 24 * 3600_000;
const policy = leadPolicySchema.parse({});
// Friday 20:00 in Madrid (19:00 UTC): the send window (weekdays 09:00–19:00) has closed for the weekend.
const fridayEvening = Date.parse('2026-12-04T19:00:00Z');
const window = { from: fridayEvening, until: fridayEvening + 30 * day };

describe('flow preview (planning code run forward)', () => {
  it('moves the welcome of a lead created in quiet hours to Monday 09:00, and says so', () => {
    const preview = previewLead(hypotheticalLeadState('t', { timeZone: 'Europe/Madrid', name: 'Lucía Gómez' }, policy, fridayEvening), policy, 'Acme', window);
    const [welcome, ...rest] = preview.sends;
    assert.equal(welcome?.key, 'welcome:message');
    assert.equal(welcome?.at, '2026-12-07T08:00:00.000Z');
    assert.deepEqual(welcome?.guards.map((guard) => guard.guard), ['send_window', 'outside_24h_window']);
    assert.deepEqual(welcome?.message, { type: 'template', template: { name: 'welcome', language: 'en', params: ['Lucía', 'Acme'] } });
    assert.deepEqual(rest.map((send) => send.key).slice(0, 3), ['follow_up:1', 'follow_up:2', 'follow_up:3']);
    assert.equal(rest[0]?.at, '2026-12-08T08:00:00.000Z', 'follow-up 1: a day after the welcome');
    for (const send of preview.sends) assert.ok(Date.parse(send.at) >= window.from && Date.parse(send.at) <= window.until);
  });

  it('sends free text inside the 24 h window, in the language asked for templates', () => {
    const preview = previewLead(hypotheticalLeadState('t', { timeZone: 'Europe/Madrid', language: 'es', lastInboundAt: fridayEvening - 3600_000 }, policy, fridayEvening), policy, 'Acme', window);
    assert.equal(preview.sends[0]?.message.type, 'template', 'Monday 09:00 is more than 24 h after the last message');
    assert.equal(preview.sends[0]?.message.type === 'template' && preview.sends[0].message.template.language, 'es');
    const recent = previewLead(hypotheticalLeadState('t', { timeZone: 'Europe/Madrid', lastInboundAt: Date.parse('2026-12-07T07:00:00Z') }, policy, fridayEvening), policy, 'Acme', window);
    assert.equal(recent.sends[0]?.message.type, 'text');
  });

  it('shows every step as a skip, with its reason, for an opted-out number or a tenant with no sender', () => {
    const lead = hypotheticalLeadState('t', { timeZone: 'America/New_York', meeting: { startsAt: '2026-12-10T15:00:00Z' } }, policy, fridayEvening);
    for (const [options, reason] of [[{ suppressed: true }, 'opted_out'], [{ noSender: true }, 'no_sender']] as const) {
      const preview = previewLead(lead, policy, 'Acme', window, options);
      assert.deepEqual(preview.sends, []);
      assert.ok(preview.skips.length >= 3, JSON.stringify(preview.skips));
      const reminders = preview.skips.filter((skip) => skip.key.startsWith('reminder:'));
      assert.deepEqual(reminders.map((skip) => [skip.key, skip.reason]), [['reminder:24h:preview-meeting@2026-12-10T15:00:00Z', reason], ['reminder:1h:preview-meeting@2026-12-10T15:00:00Z', reason]]);
    }
    assert.equal(lead.planned.length > 0, true, 'the preview ran on a copy: the state it was given still plans its steps');
  });

  it('holds a send that falls on another by the per-recipient spacing', () => {
    // Friday 08:30: the welcome goes at 09:00; follow-up 1 (Saturday) and 2 (Monday) both land on Monday 09:00.
    const fridayMorning = Date.parse('2026-12-04T07:30:00Z');
    const preview = previewLead(hypotheticalLeadState('t', { timeZone: 'Europe/Madrid' }, policy, fridayMorning), policy, 'Acme', { from: fridayMorning, until: fridayMorning + 10 * day });
    const [first, second] = preview.sends.filter((send) => send.flow === 'follow_up');
    assert.equal(first?.at, '2026-12-07T08:00:00.000Z');
    assert.equal(Date.parse(second?.at ?? '') - Date.parse(first?.at ?? ''), policy.recipientSpacingSeconds * 1000);
    assert.deepEqual(second?.guards.find((guard) => guard.guard === 'recipient_spacing')?.from, first?.at);
  });

  it('sends nothing for a paused lead, and says it is paused', () => {
    const lead = hypotheticalLeadState('t', { timeZone: 'Europe/Madrid' }, policy, fridayEvening);
    lead.paused = true;
    const preview = previewLead(lead, policy, 'Acme', window);
    assert.deepEqual([preview.sends, preview.paused, preview.truncated], [[], true, false]);
  });

  it('stops at the horizon and says more is planned', () => {
    const preview = previewLead(hypotheticalLeadState('t', { timeZone: 'Europe/Madrid' }, policy, fridayEvening), policy, 'Acme', { from: fridayEvening, until: fridayEvening + 4 * day });
    assert.deepEqual(preview.sends.map((send) => send.key), ['welcome:message', 'follow_up:1']);
    assert.equal(preview.truncated, true);
  });
});
