/**
 * The SMS fallback of lead messages, over the real API, workers, PostgreSQL, the WhatsApp sandbox
 * and the Twilio Messaging sandbox on the time-skipping server: a number WhatsApp cannot deliver to
 * (131026) gets the step once as SMS, whatever number of times the failure is reported; Twilio's
 * signed status callbacks move the ledger and the timeline; a STOP by SMS opts the lead out, and a
 * STOP we never heard of (Twilio refuses with 21610) does too.
 */
import assert from 'node:assert/strict';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { createSmsActivities } from '../../activities/sms.js';
import type { SendSmsOutcome } from '../../activities/sms.js';
import { createSmsAdapter } from '../../adapters/sms.js';
import { metaSignature, twilioSignature } from '../../security/signatures.js';
import type { TimelineEntry } from '../../shared/leads.js';
import { startLeadWorld, twilioAccount } from '../harness/lead-world.js';
import type { LeadWorld } from '../harness/lead-world.js';
import { day, hour, iso, minute, nextMonday10, phoneFor } from '../harness/lead-time.js';
import { localParts } from '../../shared/send-window.js';

/** The first Tuesday 09:00 in New York (to the minute) at or after `now`. */
function nextTuesday9(now: number): number {
  for (let at = now - (now % minute); at < now + 8 * day; at += minute) {
    const local = localParts(at, 'America/New_York');
    if (local.weekday === 2 && local.hour === 9 && local.minute === 0) return at;
  }
  throw new Error('no Tuesday within a week');
}
import { uniqueId } from '../harness/resources.js';
import { waitUntil } from '../../stack/processes.js';

describe('SMS fallback for numbers WhatsApp cannot reach (time-skipping)', function () {
  this.timeout(300_000);
  let world: LeadWorld;
  before(async () => {
    // Twilio delivers every status callback twice: each counts once.
    world = await startLeadWorld({ policy: { smsFallback: { enabled: true } }, sms: { duplicateCallbacks: true } });
  });
  after(async () => {
    await world.stop();
  });
  beforeEach(async () => {
    await world.env.sleep(nextMonday10(await world.now()) - (await world.now()));
  });

  const created = async (leadId: string, phone: string): Promise<void> => {
    const response = await world.crm({ event_id: `${leadId}-created`, event: 'lead.created', lead_id: leadId, occurred_at: iso(await world.now()), lead: { name: 'Kim Park', phone } });
    assert.equal(response.status, 202, await response.text());
  };
  /** A `failed` status webhook for a step's message, signed as Meta signs it. */
  const whatsappFailed = async (leadId: string, phone: string, step: string): Promise<void> => {
    const body = JSON.stringify({
      object: 'whatsapp_business_account',
      entry: [{ id: 'WABA1', changes: [{ field: 'messages', value: { messaging_product: 'whatsapp', metadata: { phone_number_id: 'PN1' }, statuses: [{ id: `wamid.${uniqueId('f')}`, status: 'failed', timestamp: String(Math.floor((await world.now()) / 1000)), recipient_id: phone.slice(1), biz_opaque_callback_data: `wa:${leadId}:${step}`, errors: [{ code: 131026, title: 'Message undeliverable' }] }] } }] }],
    });
    const response = await fetch(`${world.api.baseUrl}/webhooks/${world.tenantId}/whatsapp`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-hub-signature-256': metaSignature('wa-app-secret', body) }, body });
    assert.equal(response.status, 200, await response.text());
  };
  const ledger = async (effectKey: string) =>
    (await world.db.query<{ sid: string; status: string }>('SELECT sid, status FROM sms_messages WHERE tenant_id = $1 AND effect_key = $2', [world.tenantId, effectKey])).rows;
  const statusEvents = async (sid: string) =>
    (await world.db.query<{ status: string }>('SELECT status FROM sms_status_events WHERE tenant_id = $1 AND sid = $2 ORDER BY received_at', [world.tenantId, sid])).rows.map((row) => row.status);
  const entries = (timeline: TimelineEntry[], kind: TimelineEntry['kind'], key: string): TimelineEntry[] => timeline.filter((entry) => entry.kind === kind && (entry.entryKey === `${kind}:${key}` || entry.detail?.key === key));

  it('a number not on WhatsApp gets exactly one SMS for the step, however often the failure is reported; its status callbacks update the ledger and the timeline', async () => {
    const leadId = uniqueId('sms');
    const phone = phoneFor();
    // 131026 in the send's answer and by a `failed` status webhook (under an id the sender never saw).
    world.whatsapp.failNext({ code: 131026, via: 'both', to: phone, times: 20 });
    await created(leadId, phone);
    await world.idle(leadId);
    // The failure again, reported late under yet another message id: nothing more is sent.
    await whatsappFailed(leadId, phone, 'welcome:message');
    await world.idle(leadId);

    assert.equal(world.sentTo(phone).length, 0, 'WhatsApp took no message');
    const sms = world.smsTo(phone);
    assert.equal(sms.length, 1, 'one SMS for the step');
    assert.equal(sms[0]?.body, 'Hi Kim, thanks for your interest in Acme! Reply here any time.', "the flow's free text");
    assert.equal(sms[0]?.messagingServiceSid, twilioAccount.messagingServiceSid);
    const key = 'welcome:message#sms';
    const [row] = await ledger(`wa:${leadId}:${key}`);
    assert.equal(row?.sid, sms[0]?.sid);
    assert.equal(row?.status, 'delivered', 'the callbacks moved the ledger forward');
    assert.deepEqual(await statusEvents(row?.sid ?? ''), ['queued', 'sent', 'delivered'], 'each status once, though Twilio delivered each twice');
    const effect = await world.db.query<{ state: string; kind: string }>('SELECT state, kind FROM external_effects WHERE tenant_id = $1 AND effect_key = $2', [world.tenantId, `wa:${leadId}:${key}`]);
    assert.deepEqual(effect.rows, [{ state: 'done', kind: 'sms' }]);

    const timeline = await world.timeline(leadId);
    assert.equal(timeline.filter((entry) => entry.kind === 'failed' && entry.detail?.errorCode === 131026 && entry.entryKey.startsWith('failed:welcome:message:')).length, 1, 'the failure reached the workflow once');
    const scheduled = entries(timeline, 'scheduled', key);
    assert.equal(scheduled.length, 1);
    assert.match(scheduled[0]?.cause ?? '', /SMS fallback: WhatsApp cannot deliver \(131026\)/);
    const sent = entries(timeline, 'sent', key);
    assert.equal(sent.length, 1);
    assert.deepEqual([sent[0]?.detail?.channel, sent[0]?.detail?.messageId], ['sms', sms[0]?.sid]);
    const delivered = entries(timeline, 'delivered', key);
    assert.equal(delivered.length, 1, 'delivered, once');
    assert.equal(delivered[0]?.detail?.messageId, sms[0]?.sid);
    const order = timeline.map((entry) => entry.entryKey);
    assert.ok(order.indexOf(`sent:${key}`) < order.indexOf(delivered[0]?.entryKey ?? ''), 'delivered shows after the send');
    const view = await world.view(leadId);
    assert.ok(view.doneSteps.includes(key));
    assert.equal(view.stage, 'contacted');
    assert.ok(view.planned.some((step) => step.flow === 'follow_up'), 'the welcome went out: follow-ups are planned');
    await world.crm({ event_id: `${leadId}-lost`, event: 'lead.status_changed', lead_id: leadId, status: 'lost' });
  });

  it('a STOP reply by SMS opts the lead out: later steps go neither by WhatsApp nor by SMS', async () => {
    const leadId = uniqueId('stop');
    const phone = phoneFor();
    world.whatsapp.failNext({ code: 131026, via: 'webhook', to: phone, times: 20 });
    await created(leadId, phone);
    await world.idle(leadId);
    assert.equal(world.smsTo(phone).length, 1, 'the welcome went as SMS');
    const whatsappBefore = world.sentTo(phone).length;
    await world.textUs(phone, 'Stop');
    await world.idle(leadId);
    const view = await world.view(leadId);
    assert.equal(view.optedOut, true);
    assert.equal(view.stage, 'opted_out');
    assert.deepEqual(view.planned, [], 'every planned step was canceled');
    const suppressed = await world.db.query('SELECT reason FROM suppressions WHERE tenant_id = $1 AND phone = $2', [world.tenantId, phone]);
    assert.equal(suppressed.rowCount, 1);
    // Past every follow-up's time: nothing goes out.
    await world.advance(leadId, 8 * day);
    assert.equal(world.smsTo(phone).length, 1, 'no SMS after STOP');
    assert.equal(world.sentTo(phone).length, whatsappBefore, 'no WhatsApp message after STOP');
    const timeline = await world.timeline(leadId);
    assert.ok(timeline.some((entry) => entry.kind === 'skipped' && entry.flow === 'follow_up' && /opted out/.test(entry.cause)), JSON.stringify(timeline.map((entry) => [entry.kind, entry.cause])));
    assert.ok(timeline.some((entry) => entry.kind === 'stage' && entry.detail?.to === 'opted_out'));
  });

  it('an ordinary SMS reply is a reply: follow-ups stop, the lead is engaged, and it opens no WhatsApp window', async () => {
    const leadId = uniqueId('reply');
    const phone = phoneFor();
    world.whatsapp.failNext({ code: 131026, via: 'response', to: phone, times: 20 });
    await created(leadId, phone);
    await world.idle(leadId);
    await world.textUs(phone, 'Yes please, call me tomorrow');
    await world.idle(leadId);
    const view = await world.view(leadId);
    assert.equal(view.stage, 'engaged');
    assert.equal(view.planned.filter((step) => step.flow === 'follow_up').length, 0);
    assert.equal(view.lastInboundAt, undefined, 'an SMS opens no 24 h WhatsApp window');
    const timeline = await world.timeline(leadId);
    assert.equal(timeline.filter((entry) => entry.kind === 'replied').length, 1);
    await world.crm({ event_id: `${leadId}-lost`, event: 'lead.status_changed', lead_id: leadId, status: 'lost' });
  });

  it('a fallback decided in quiet hours waits for the send window', async () => {
    const leadId = uniqueId('quiet');
    const phone = phoneFor();
    await created(leadId, phone);
    await world.idle(leadId);
    assert.equal(world.sentTo(phone).length, 1, 'the welcome went by WhatsApp');
    // Monday 22:00 in New York: WhatsApp reports the welcome undeliverable after all.
    await world.env.sleep(12 * hour);
    await whatsappFailed(leadId, phone, 'welcome:message');
    await world.idle(leadId);
    const key = 'welcome:message#sms';
    const planned = (await world.view(leadId)).planned.find((step) => step.key === key);
    assert.ok(planned, 'the SMS is planned');
    assert.equal(planned.dueAt, iso(nextTuesday9(await world.now())), 'at 09:00 on Tuesday, when the window opens');
    assert.equal(world.smsTo(phone).length, 0, 'nothing at night');
    await world.advance(leadId, 12 * hour);
    assert.equal(world.smsTo(phone).length, 1, 'sent once the window opened');
    await world.crm({ event_id: `${leadId}-lost`, event: 'lead.status_changed', lead_id: leadId, status: 'lost' });
  });

  it('a STOP Twilio got but we never heard of: the send is refused with 21610, the number suppressed and the lead opted out', async () => {
    const leadId = uniqueId('unsub');
    const phone = phoneFor();
    const twilio = world.twilio ?? assert.fail('no Twilio sandbox');
    twilio.setInboundWebhookUrl(undefined);
    await twilio.inbound({ from: phone, body: 'STOP' });
    twilio.setInboundWebhookUrl(`${world.api.baseUrl}/webhooks/${world.tenantId}/sms`);
    world.whatsapp.failNext({ code: 131026, via: 'both', to: phone, times: 20 });
    await created(leadId, phone);
    await world.idle(leadId);
    await world.idle(leadId);
    assert.equal(world.smsTo(phone).length, 0);
    const view = await world.view(leadId);
    assert.equal(view.optedOut, true, 'opted out by the 21610');
    const timeline = await world.timeline(leadId);
    const skipped = timeline.find((entry) => entry.kind === 'skipped' && entry.entryKey === 'skipped-at-send:welcome:message#sms');
    assert.equal(skipped?.detail?.reason, 'opted_out');
    assert.match(skipped?.cause ?? '', /21610/);
    assert.equal((await world.db.query('SELECT 1 FROM suppressions WHERE tenant_id = $1 AND phone = $2', [world.tenantId, phone])).rowCount, 1);
  });

  describe('the send activity and the webhook routes', () => {
    const quiet = { logger: new DefaultLogger('ERROR') };
    const activities = () => {
      const tenant = world.config.tenants[world.tenantId] ?? assert.fail('no tenant');
      const adapter = createSmsAdapter(tenant.sms ?? assert.fail('no sms'), tenant.secrets);
      return createSmsActivities({ db: world.db, config: world.config, sms: () => adapter });
    };
    const run = (input: Parameters<ReturnType<typeof activities>['sendSms']>[0]): Promise<SendSmsOutcome> =>
      new MockActivityEnvironment({ startToCloseTimeoutMs: 30_000 }, quiet).run((value) => activities().sendSms(value), input);

    it('sends once per ledger key, however often it is retried, and skips an invalid number (21211) with its reason', async () => {
      const phone = phoneFor();
      const input = { tenantId: world.tenantId, leadId: 'direct-1', effectKey: 'wa:direct-1:follow_up:1#sms', to: phone, body: 'hello' };
      const first = await run(input);
      const again = await run(input);
      assert.equal(first.status, 'sent');
      assert.deepEqual(again, first, 'the retry finds the send done');
      assert.equal(world.smsTo(phone).length, 1);
      const invalid = await run({ ...input, effectKey: 'wa:direct-1:follow_up:2#sms', to: '12345' });
      assert.equal(invalid.status, 'skipped');
      assert.equal(invalid.status === 'skipped' ? invalid.code : undefined, 'invalid_number');
      assert.doesNotMatch(invalid.status === 'skipped' ? invalid.reason : '', /12345/, 'the number is not in the reason');
      await world.twilio?.settle();
    });

    it('a send whose answer was lost (the attempt was cut off) is found again by its status callback: the retry sends nothing', async () => {
      const phone = phoneFor();
      const twilio = world.twilio ?? assert.fail('no Twilio sandbox');
      const input = { tenantId: world.tenantId, leadId: 'direct-2', effectKey: 'wa:direct-2:rewarm:1#sms', to: phone, body: 'still there?' };
      twilio.setResponseDelay(60_000);
      const env = new MockActivityEnvironment({ heartbeatTimeoutMs: 300, startToCloseTimeoutMs: 30_000 }, quiet);
      const first = env.run((value: typeof input) => activities().sendSms(value), input).then(
        () => assert.fail('the first attempt was expected to be cut off'),
        (error: unknown) => error,
      );
      try {
        await waitUntil(() => Promise.resolve(world.smsTo(phone).length === 1), 10_000, 'Twilio never got the message');
        // Temporal gives up on the attempt (its worker is gone) while Twilio has the message.
        env.cancel('TIMED_OUT');
        await first;
      } finally {
        twilio.setResponseDelay(0);
      }
      await twilio.settle();
      const retried = await run(input);
      assert.equal(retried.status, 'sent');
      assert.equal(retried.status === 'sent' ? retried.sid : undefined, world.smsTo(phone)[0]?.sid, 'the retry adopted the message Twilio has');
      assert.equal(world.smsTo(phone).length, 1, 'not sent twice');
    });

    it('refuses unsigned or badly signed callbacks with 401 and a reason, stores them, and refuses a bad ledger key with 422', async () => {
      const url = `${world.api.baseUrl}/webhooks/${world.tenantId}/sms/status?key=${encodeURIComponent('wa:x:welcome:message#sms')}`;
      const params = { MessageSid: `SM${'e'.repeat(32)}`, MessageStatus: 'delivered', AccountSid: twilioAccount.accountSid };
      const post = (target: string, signature?: string) =>
        fetch(target, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...(signature ? { 'x-twilio-signature': signature } : {}) }, body: new URLSearchParams(params).toString() });
      const before = (await world.db.query('SELECT count(*)::int AS n FROM rejected_events WHERE tenant_id = $1', [world.tenantId])).rows[0] as { n: number };
      const unsigned = await post(url);
      assert.equal(unsigned.status, 401);
      assert.equal(((await unsigned.json()) as { error: string }).error, 'missing_signature');
      const forged = await post(url, twilioSignature('not-the-token', url, params));
      assert.equal(forged.status, 401);
      assert.equal(((await forged.json()) as { error: string }).error, 'invalid_signature');
      const otherKey = url.replace('welcome', 'rewarm');
      const moved = await post(otherKey, twilioSignature(twilioAccount.authToken, url, params));
      assert.equal(moved.status, 401, 'the signature covers the URL, so the key cannot be swapped');
      const badKey = `${world.api.baseUrl}/webhooks/${world.tenantId}/sms/status?key=nonsense`;
      const refused = await post(badKey, twilioSignature(twilioAccount.authToken, badKey, params));
      assert.equal(refused.status, 422);
      const body = (await refused.json()) as { error: string; details?: { fields?: Record<string, string> } };
      assert.equal(body.error, 'invalid_payload');
      assert.ok(body.details?.fields?.key);
      const after = (await world.db.query('SELECT count(*)::int AS n FROM rejected_events WHERE tenant_id = $1', [world.tenantId])).rows[0] as { n: number };
      assert.equal(after.n - before.n, 4, 'each refusal is stored');
      const signed = await post(url, twilioSignature(twilioAccount.authToken, url, params));
      assert.equal(signed.status, 200);
      assert.deepEqual(await signed.json(), { status: 'ok', duplicate: false, matched: true });
      const again = await post(url, twilioSignature(twilioAccount.authToken, url, params));
      assert.deepEqual(await again.json(), { status: 'ok', duplicate: true, matched: true });
    });
  });
});
