/**
 * Several WhatsApp sender numbers per tenant (issue 16, part 1), on the dev server (real time: the
 * numbers' limits are per real second). Two worker sets stand for two worker processes; they share
 * the numbers' budgets through PostgreSQL only.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'mocha';
import { metaSignature } from '../../security/signatures.js';
import { waitUntil } from '../../stack/processes.js';
import type { TimelineEntry } from '../../shared/leads.js';
import type { WhatsAppStoredMessage } from '../../sandboxes/whatsapp.js';
import { startLeadWorld } from '../harness/lead-world.js';
import type { LeadWorld } from '../harness/lead-world.js';
import { uniqueId } from '../harness/resources.js';

const limits = { PN1: 4, PN2: 3 } as const;

/** The most messages a number accepted within any one second. */
function busiestSecond(messages: WhatsAppStoredMessage[]): number {
  const times = messages.map((message) => Date.parse(message.acceptedAt)).sort((a, b) => a - b);
  let most = 0;
  for (let start = 0, end = 0; end < times.length; end++) {
    while ((times[end] ?? 0) - (times[start] ?? 0) >= 1000) start++;
    most = Math.max(most, end - start + 1);
  }
  return most;
}

describe('lead sender numbers (dev server)', function () {
  this.timeout(300_000);
  let world: LeadWorld;
  const leads = [
    ...Array.from({ length: 8 }, (_, index) => ({ id: uniqueId('us'), phone: `+1212555${String(1000 + index)}`, number: 'PN1', sender: 'default' })),
    ...Array.from({ length: 8 }, (_, index) => ({ id: uniqueId('es'), phone: `+3461200${String(1000 + index)}`, number: 'PN2', sender: 'iberia' })),
  ];

  before(async () => {
    world = await startLeadWorld({
      timeSkipping: false,
      workerSets: 2,
      policy: { sendWindow: { days: [1, 2, 3, 4, 5, 6, 7], start: '00:00', end: '23:59' }, reorderWindowSeconds: 0 },
      whatsapp: { messagesPerSecond: limits.PN1, senders: { iberia: { phoneNumberId: 'PN2', messagesPerSecond: limits.PN2, qualityRating: 'GREEN', countries: ['ES', 'MX'] } } },
      sandbox: { messagesPerSecond: limits.PN1, extraNumbers: [{ phoneNumberId: 'PN2', displayPhoneNumber: '34911000000', messagesPerSecond: limits.PN2 }] },
    });
  });
  after(async () => {
    await world.stop();
  });

  it("writes each lead from its country's number, within each number's own limit in every second, and routes replies back", async () => {
    const answers = await Promise.all(
      leads.map((lead) => world.crm({ event_id: `${lead.id}-created`, event: 'lead.created', lead_id: lead.id, lead: { name: 'Kim Park', phone: lead.phone } })),
    );
    assert.deepEqual(answers.map((answer) => answer.status), leads.map(() => 202));
    await waitUntil(() => Promise.resolve(leads.every((lead) => world.sentTo(lead.phone).length >= 1)), 120_000, 'every lead got its welcome');

    for (const lead of leads) {
      const sent = world.sentTo(lead.phone);
      assert.deepEqual(sent.map((message) => message.phoneNumberId), [lead.number], `${lead.id}: one welcome, from ${lead.number}`);
      assert.equal((await world.view(lead.id)).sender, lead.sender);
    }
    const messages = world.whatsapp.state().messages;
    for (const [number, limit] of Object.entries(limits)) {
      const fromNumber = messages.filter((message) => message.phoneNumberId === number);
      assert.equal(fromNumber.length, 8);
      assert.ok(busiestSecond(fromNumber) <= limit, `${number}: ${busiestSecond(fromNumber)} messages in one second, over its limit of ${limit}`);
    }
    assert.equal(world.whatsapp.state().requests.rateLimited, 0, 'no send was refused for throughput (130429)');

    const [us, es] = [leads[0], leads[8]];
    assert.ok(us && es);
    for (const lead of [us, es]) {
      await world.reply(lead.phone, 'Hi, tell me more');
      await world.idle(lead.id);
      const replied = (await world.timeline(lead.id)).find((entry) => entry.kind === 'replied');
      assert.equal(replied?.detail?.receivedOn, lead.sender, `${lead.id}: the reply came to its number and reached it`);
      assert.equal((await world.view(lead.id)).stage, 'engaged');
    }
    const sentEntry = (await world.timeline(es.id)).find((entry) => entry.kind === 'sent');
    assert.equal(sentEntry?.detail?.sender, 'iberia');
  });

  it('lets an operator move a lead to another number, on the timeline, and refuses one the tenant does not have', async () => {
    const lead = leads[9];
    assert.ok(lead);
    const unknown = await world.operator(lead.id, { action: 'reassign_sender', sender: 'nowhere' });
    assert.equal(unknown.status, 422);
    assert.match(((await unknown.json()) as { message: string }).message, /no sender number "nowhere"; configured: default, iberia/);

    const moved = await world.operator(lead.id, { action: 'reassign_sender', sender: 'default', reason: 'moved to New York' });
    assert.equal(moved.status, 200, await moved.clone().text());
    assert.equal(((await moved.json()) as { lead: { sender?: string } }).lead.sender, 'default');
    const entries = (await world.timeline(lead.id)).filter((entry: TimelineEntry) => entry.kind === 'sender');
    assert.deepEqual(entries.map((entry) => entry.detail?.rule), ['country', 'operator']);
    assert.equal(entries[1]?.detail?.from, 'iberia');
    assert.match(entries[1]?.cause ?? '', /^operator sender reassignment by .+: moved to New York$/);
    const again = await world.operator(lead.id, { action: 'reassign_sender', sender: 'default' });
    assert.equal(again.status, 422, 'already written from it');
  });

  it("refuses a webhook for a business number the tenant does not have, and keeps it for replay", async () => {
    const body = JSON.stringify({
      object: 'whatsapp_business_account',
      entry: [{ id: 'WABA1', changes: [{ field: 'messages', value: { messaging_product: 'whatsapp', metadata: { display_phone_number: '15550009999', phone_number_id: 'PN9' }, messages: [{ from: '12125551000', id: `wamid.${uniqueId('x')}`, timestamp: String(Math.floor(Date.now() / 1000)), type: 'text', text: { body: 'hello' } }] } }] }],
    });
    const post = (payload: string) =>
      fetch(`${world.api.baseUrl}/webhooks/${world.tenantId}/whatsapp`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-hub-signature-256': metaSignature('wa-app-secret', payload) }, body: payload });
    const refused = await post(body);
    assert.equal(refused.status, 403);
    assert.equal(((await refused.json()) as { error: string }).error, 'unknown_phone_number_id');
    const kept = await world.db.query<{ reason: string }>(`SELECT reason FROM rejected_events WHERE tenant_id = $1 AND source = 'whatsapp' ORDER BY received_at DESC LIMIT 1`, [world.tenantId]);
    assert.equal(kept.rows[0]?.reason, 'unknown_phone_number_id');

    const unnamed = await post(body.replace(/"metadata":\{[^}]*\},/, ''));
    assert.equal(unnamed.status, 422);
    assert.match(await unnamed.text(), /metadata\.phone_number_id/);
  });
});
