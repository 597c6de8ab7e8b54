/**
 * The flow preview against what then happens: a preview taken through the API (of the lead, and of
 * the same lead described hypothetically) must list exactly the sends the time-skipping journey then
 * makes, in order, at the same moments.
 */
import assert from 'node:assert/strict';
import type { LeadPreview } from '../../shared/lead-preview.js';
import { localParts } from '../../shared/send-window.js';
import { signature, startLeadWorld } from '../harness/lead-world.js';
import type { LeadWorld } from '../harness/lead-world.js';
import { uniqueId } from '../harness/resources.js';

const minute = 60_000;
const hour = 60 * minute;
const day = 24 * hour;
const iso = (ms: number): string => new Date(ms).toISOString();

/** The next moment at or after `now` that is `weekday` (1 = Monday) `hour`:00 in `timeZone`. */
function nextLocal(now: number, weekday: number, atHour: number, timeZone: string): number {
  for (let at = now - (now % minute) + minute; at < now + 9 * day; at += minute) {
    const local = localParts(at, timeZone);
    if (local.weekday === weekday && local.hour === atHour && local.minute === 0) return at;
  }
  throw new Error('no such moment in the next 9 days');
}

describe('flow preview (dry run) against the journey that follows', function () {
  this.timeout(300_000);
  let world: LeadWorld;
  before(async () => {
    world = await startLeadWorld();
  });
  after(async () => {
    await world.stop();
  });

  const preview = async (path: string, init: RequestInit = {}): Promise<LeadPreview> => {
    const response = await fetch(`${world.api.baseUrl}/api/${world.tenantId}/${path}`, {
      ...init,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${world.tenant.secrets.operatorToken}` },
    });
    const text = await response.text();
    assert.equal(response.status, 200, text);
    return (JSON.parse(text) as { preview: LeadPreview }).preview;
  };

  it('lists the sends a lead created in quiet hours, who books a meeting and never shows up, then receives', async () => {
    const leadId = uniqueId('preview');
    const phone = `+1415555${String(Math.floor(Math.random() * 9000) + 1000)}`;
    // Friday 20:00 in Madrid: the send window (weekdays 09:00–19:00) is closed until Monday.
    const start = nextLocal(await world.now(), 5, 20, 'Europe/Madrid');
    await world.env.sleep(start - (await world.now()));
    const meeting = { id: 'm1', starts_at: iso(start + 5 * day + 2 * hour), ends_at: iso(start + 5 * day + 3 * hour) };
    const send = async (sequence: number, event: string, extra: Record<string, unknown>): Promise<void> => {
      const response = await world.crm({ event_id: `${leadId}-${sequence}`, event, lead_id: leadId, occurred_at: iso(await world.now()), ...extra });
      assert.equal(response.status, 202, await response.text());
    };
    await send(1, 'lead.created', { lead: { name: 'Lucía Gómez', phone, time_zone: 'Europe/Madrid' } });
    await send(2, 'meeting.booked', { meeting });
    await world.idle(leadId);

    const from = await world.now();
    const ofLead = await preview(`leads/${encodeURIComponent(leadId)}/preview?days=14&from=${encodeURIComponent(iso(from))}`);
    // The same lead, described instead of looked up.
    const hypothetical = await preview('lead-preview', {
      method: 'POST',
      body: JSON.stringify({ lead: { timeZone: 'Europe/Madrid', name: 'Lucía Gómez', meeting: { id: 'm1', startsAt: meeting.starts_at, endsAt: meeting.ends_at } }, days: 14, from: iso(from) }),
    });

    await world.env.sleep(from + 14 * day - (await world.now()));
    await world.idle(leadId);

    const sent = world.sentTo(phone);
    const timelineSends = (await world.timeline(leadId)).filter((entry) => entry.kind === 'sent');
    assert.ok(sent.length >= 5, `the journey sends enough to compare (${sent.length})`);
    for (const [label, forecast] of [['the lead', ofLead], ['the hypothetical lead', hypothetical]] as const) {
      assert.deepEqual(
        forecast.sends.map((item) => (item.message.type === 'template' ? `template:${item.message.template.name}` : 'text')),
        sent.map(signature),
        `${label}: the preview lists the messages sent, in order`,
      );
      assert.deepEqual(
        forecast.sends.map((item) => item.key),
        timelineSends.map((entry) => entry.entryKey.replace(/^sent:/, '')),
        `${label}: the same steps`,
      );
      forecast.sends.forEach((item, index) => {
        const actual = Date.parse(timelineSends[index]?.at ?? '');
        assert.ok(Math.abs(Date.parse(item.at) - actual) < minute, `${label}: ${item.key} previewed at ${item.at}, sent at ${timelineSends[index]?.at}`);
      });
    }
    // The welcome waited for Monday 09:00; outside the 24 h window every message is a template.
    const welcome = ofLead.sends.find((item) => item.key === 'welcome:message');
    assert.ok(welcome?.guards.some((guard) => guard.guard === 'send_window'), JSON.stringify(welcome));
    assert.match(welcome?.local ?? '', /^Mon .*09:00/);
    assert.ok(ofLead.sends.every((item) => item.message.type === 'template' && item.guards.some((guard) => guard.guard === 'outside_24h_window')));
    assert.ok(ofLead.sends.some((item) => item.flow === 'no_show'), 'with no attendance the meeting ends as a no-show');
    await send(3, 'lead.status_changed', { status: 'lost' });
  });

  it('refuses a hypothetical lead with unknown or missing fields, naming them', async () => {
    const response = await fetch(`${world.api.baseUrl}/api/${world.tenantId}/lead-preview`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${world.tenant.secrets.operatorToken}` },
      body: JSON.stringify({ lead: { stage: 'new', bogus: 1 } }),
    });
    assert.equal(response.status, 422);
    const body = (await response.json()) as { error: string; details: { fields: Record<string, string> } };
    assert.equal(body.error, 'invalid_payload');
    assert.ok(body.details.fields['lead.timeZone'], JSON.stringify(body));
    assert.ok(body.details.fields['lead.bogus'] ?? body.details.fields.lead, JSON.stringify(body));
    const unknownQuery = await fetch(`${world.api.baseUrl}/api/${world.tenantId}/leads/nobody/preview?weeks=2`, { headers: { authorization: `Bearer ${world.tenant.secrets.operatorToken}` } });
    assert.equal(unknownQuery.status, 422);
    const missing = await fetch(`${world.api.baseUrl}/api/${world.tenantId}/leads/nobody/preview`, { headers: { authorization: `Bearer ${world.tenant.secrets.operatorToken}` } });
    assert.equal(missing.status, 404);
  });
});
