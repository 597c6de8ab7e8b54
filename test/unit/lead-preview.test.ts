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

  it("names each send's channel and sender number: chosen by the rules at the first send, then kept", () => {
    const senders = [{ name: 'iberia', countries: ['ES'] }, { name: 'enterprise', teams: ['enterprise'] }];
    const spanish = previewLead(hypotheticalLeadState('t', { timeZone: 'Europe/Madrid', country: 'ES' }, policy, fridayEvening), policy, 'Acme', window, { senders });
    assert.deepEqual(spanish.sends.slice(0, 3).map((send) => [send.channel, send.sender]), [
      ['whatsapp', { name: 'iberia', rule: 'country' }],
      ['whatsapp', { name: 'iberia', rule: 'kept' }],
      ['whatsapp', { name: 'iberia', rule: 'kept' }],
    ]);
    const team = previewLead(hypotheticalLeadState('t', { timeZone: 'Europe/Madrid', country: 'ES', team: 'Enterprise' }, policy, fridayEvening), policy, 'Acme', window, { senders });
    assert.deepEqual(team.sends[0]?.sender, { name: 'enterprise', rule: 'team' }, 'the team before the country');
    const elsewhere = previewLead(hypotheticalLeadState('t', { timeZone: 'America/New_York', country: 'US' }, policy, fridayEvening), policy, 'Acme', window, { senders });
    assert.deepEqual(elsewhere.sends[0]?.sender, { name: 'default', rule: 'default' });
  });

  it('sends free text inside the 24 h window, and templates in a language they are registered in', () => {
    const preview = previewLead(hypotheticalLeadState('t', { timeZone: 'Europe/Madrid', language: 'es', lastInboundAt: fridayEvening - 3600_000 }, policy, fridayEvening), policy, 'Acme', window);
    assert.equal(preview.sends[0]?.message.type, 'template', 'Monday 09:00 is more than 24 h after the last message');
    // The default templates are English only: a Spanish one would be refused (132001).
    assert.equal(preview.sends[0]?.message.type === 'template' && preview.sends[0].message.template.language, 'en');
    assert.deepEqual(preview.sends[0]?.language, { language: 'en', match: 'default', requested: 'es' });
    const recent = previewLead(hypotheticalLeadState('t', { timeZone: 'Europe/Madrid', lastInboundAt: Date.parse('2026-12-07T07:00:00Z') }, policy, fridayEvening), policy, 'Acme', window);
    assert.equal(recent.sends[0]?.message.type, 'text');
  });

  it('shows the language of every step: the Spanish version for a Spanish lead, the fallback where a flow has none', () => {
    const translated = leadPolicySchema.parse({
      languageFallback: ['en'],
      messages: {
        welcome: { text: 'Hi {{name}}', template: { name: 'welcome', params: ['name', 'company'], languages: { en: { placeholders: 2 }, es: { placeholders: 2, text: 'Hola {{name}}' } } } },
        follow_up: { text: 'Hi {{name}} {{booking_url}}', template: { name: 'follow_up', params: ['name', 'booking_url'], languages: { en: { placeholders: 2 }, es: { placeholders: 2 } } } },
      },
    });
    const preview = previewLead(hypotheticalLeadState('t', { timeZone: 'Europe/Madrid', name: 'Lucía', language: 'es' }, translated, fridayEvening), translated, 'Acme', window);
    const byKey = new Map(preview.sends.map((send) => [send.key, send]));
    assert.deepEqual(byKey.get('welcome:message')?.message, { type: 'template', template: { name: 'welcome', language: 'es', params: ['Lucía', 'Acme'] } });
    assert.deepEqual(byKey.get('welcome:message')?.language, { language: 'es', match: 'lead' });
    assert.equal(byKey.get('follow_up:1')?.language.language, 'es');
    // Rewarming has only the default (English) template here.
    const rewarm = preview.sends.find((send) => send.flow === 'rewarm');
    assert.deepEqual(rewarm?.language, { language: 'en', match: 'fallback', requested: 'es' });
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
