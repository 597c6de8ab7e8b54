/**
 * WhatsApp errors reaching a lead, over the real API, workers, PostgreSQL and the WhatsApp sandbox
 * on the time-skipping server. developers.facebook.com, WhatsApp error codes: errors come
 * "synchronously as a Graph API response, asynchronously via Webhook, or sometimes through both
 * methods"; 131047 usually comes back at once as the send's HTTP 400. Status messages webhook
 * reference: `played` exists, and a `read` may come without the `delivered` it implies. Errors
 * messages webhook reference: `value.errors` carries errors tied to no message.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { recordAcceptedMessage } from '../../db/whatsapp.js';
import { ingestWhatsApp } from '../../ingestion/ingest.js';
import type { IngestDeps, WhatsAppIngestResult } from '../../ingestion/ingest.js';
import { createLogger } from '../../observability/logger.js';
import { metaSignature } from '../../security/signatures.js';
import type { TimelineEntry } from '../../shared/leads.js';
import { signature, startLeadWorld } from '../harness/lead-world.js';
import type { LeadWorld } from '../harness/lead-world.js';
import { day, hour, iso, minute, nextMonday10, phoneFor } from '../harness/lead-time.js';
import { uniqueId } from '../harness/resources.js';


describe('WhatsApp errors reaching a lead (time-skipping)', function () {
  this.timeout(300_000);
  let world: LeadWorld;
  before(async () => {
    // 131047 as WhatsApp usually reports it: in the send's answer. Messages are read as they arrive.
    world = await startLeadWorld({ sandbox: { errorReporting: { 131047: 'response' }, autoRead: true, readWithoutDelivered: true } });
  });
  after(async () => {
    await world.stop();
  });
  beforeEach(async () => {
    await world.env.sleep(nextMonday10(await world.now()) - (await world.now()));
  });

  const webhook = (value: Record<string, unknown>): string =>
    JSON.stringify({ object: 'whatsapp_business_account', entry: [{ id: 'WABA1', changes: [{ field: 'messages', value: { messaging_product: 'whatsapp', metadata: { phone_number_id: 'PN1' }, ...value } }] }] });
  const postWebhook = (body: string): Promise<Response> =>
    fetch(`${world.api.baseUrl}/webhooks/${world.tenantId}/whatsapp`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-hub-signature-256': metaSignature('wa-app-secret', body) }, body });

  /** Runs the WhatsApp ingestion on a signed body in this process, with the world's hand-off unless given another. */
  const ingestDirectly = (body: string, deps: Partial<IngestDeps> = {}): Promise<WhatsAppIngestResult> => {
    const tenant = world.config.tenants[world.tenantId] ?? assert.fail('no tenant');
    return ingestWhatsApp(
      { config: world.config, db: world.db, logger: createLogger({ name: 'wa-errors-test', level: 'silent' }), handOff: world.api.ingestion.handOff, ...deps },
      { tenantId: world.tenantId, tenant, rawBody: Buffer.from(body), headers: { 'x-hub-signature-256': metaSignature('wa-app-secret', body), 'content-type': 'application/json' }, signedUrls: [], nowSeconds: Math.floor(Date.now() / 1000), receivedAt: new Date().toISOString() },
    );
  };

  /** A lead whose welcome went out, who then wrote to us on another channel: we think the 24 h window is open, WhatsApp does not. */
  async function leadBookedOutsideWindow(arrange: (phone: string) => void = () => undefined): Promise<{ leadId: string; phone: string; timeline: TimelineEntry[] }> {
    const leadId = uniqueId('wa');
    const phone = phoneFor();
    const crm = async (body: Record<string, unknown>): Promise<void> => assert.equal((await world.crm({ lead_id: leadId, occurred_at: iso(await world.now()), ...body })).status, 202);
    await crm({ event_id: `${leadId}-created`, event: 'lead.created', lead: { name: 'Kim Park', phone } });
    await world.idle(leadId);
    await world.inboundWebhook(phone, 'Please book me in');
    await world.idle(leadId);
    arrange(phone);
    const startsAt = (await world.now()) + 3 * day;
    await crm({ event_id: `${leadId}-booked`, event: 'meeting.booked', meeting: { id: 'm1', starts_at: iso(startsAt), ends_at: iso(startsAt + hour) } });
    await world.idle(leadId);
    return { leadId, phone, timeline: await world.timeline(leadId) };
  }

  it('a free text refused at once with 131047 (HTTP 400) is re-sent as the approved template, as when the refusal comes by webhook', async () => {
    const { leadId, phone, timeline } = await leadBookedOutsideWindow();
    assert.deepEqual(world.sentTo(phone).map(signature), ['template:welcome', 'template:booking_confirmation'], 'the refused text never went out; the template did');
    const decided = timeline.filter((entry) => entry.kind === 'failed' && entry.detail?.errorCode === 131047);
    assert.equal(decided.length, 1, 'the failure reached the workflow once, with its code');
    const resend = timeline.find((entry) => entry.kind === 'scheduled' && entry.cause.startsWith('resend as template'));
    assert.equal(resend?.flow, 'booking_confirmation');
    const view = await world.view(leadId);
    assert.ok(view.doneSteps.includes('booking_confirmation:message:m1#template'), JSON.stringify(view.doneSteps));
    await world.crm({ event_id: `${leadId}-lost`, event: 'lead.status_changed', lead_id: leadId, status: 'lost' });
  });

  it('131047 reported both in the answer and by webhook is one failure: one template resend', async () => {
    const { leadId, phone, timeline } = await leadBookedOutsideWindow((number) => world.whatsapp.failNext({ code: 131047, via: 'both', to: number }));
    assert.deepEqual(world.sentTo(phone).map(signature), ['template:welcome', 'template:booking_confirmation']);
    assert.equal(timeline.filter((entry) => entry.kind === 'failed' && entry.cause.startsWith('WhatsApp error 131047')).length, 1, 'applied once');
    assert.equal(timeline.filter((entry) => entry.kind === 'failed' && entry.cause.startsWith('WhatsApp status failed (error 131047)')).length, 1, 'the webhook is on the timeline too');
    assert.equal(timeline.filter((entry) => entry.kind === 'scheduled' && entry.cause.startsWith('resend as template')).length, 1);
    await world.crm({ event_id: `${leadId}-lost`, event: 'lead.status_changed', lead_id: leadId, status: 'lost' });
  });

  /** A new lead whose welcome the sandbox fails as `failure` says; settled, with nothing left due. */
  async function leadWelcomedThrough(failure: { code: number; via: 'webhook' | 'both' }): Promise<{ leadId: string; phone: string }> {
    const leadId = uniqueId('thr');
    const phone = phoneFor();
    world.whatsapp.failNext({ ...failure, to: phone });
    assert.equal((await world.crm({ event_id: `${leadId}-created`, event: 'lead.created', lead_id: leadId, occurred_at: iso(await world.now()), lead: { name: 'Kim Park', phone } })).status, 202);
    await world.idle(leadId);
    // Long past every backoff of the table (at most 5 minutes), well before the first follow-up.
    await world.advance(leadId, 15 * minute);
    return { leadId, phone };
  }
  const messagesForEffect = async (effectKey: string): Promise<string[]> =>
    (await world.db.query<{ status: string }>('SELECT status FROM whatsapp_messages WHERE tenant_id = $1 AND effect_key = $2 ORDER BY accepted_at', [world.tenantId, effectKey])).rows.map((row) => row.status);

  it('a welcome accepted and then failed by webhook for throttling (130429) is re-sent once after the backoff, and delivered', async () => {
    const { leadId, phone } = await leadWelcomedThrough({ code: 130429, via: 'webhook' });
    const sent = world.sentTo(phone);
    assert.deepEqual(sent.map(signature), ['template:welcome', 'template:welcome'], 'the refused welcome and its resend, nothing more');
    assert.deepEqual(sent.map((message) => message.statuses.at(-1)?.status), ['failed', 'read']);
    assert.deepEqual(sent.map((message) => message.bizOpaqueCallbackData), [`wa:${leadId}:welcome:message`, `wa:${leadId}:welcome:message#retry1`]);
    assert.deepEqual(await messagesForEffect(`wa:${leadId}:welcome:message#retry1`), ['read']);

    const timeline = await world.timeline(leadId);
    const resend = timeline.find((entry) => entry.entryKey === 'scheduled:welcome:message#retry1');
    assert.equal(resend?.cause, 'WhatsApp throttled (130429): resend in 1 s (retry 1 of 3)');
    const resent = timeline.find((entry) => entry.entryKey === 'sent:welcome:message#retry1');
    assert.equal(resent?.cause, resend.cause, 'the resend is on the timeline with its cause');
    const view = await world.view(leadId);
    assert.ok(view.doneSteps.includes('welcome:message#retry1'), JSON.stringify(view.doneSteps));
    assert.deepEqual(view.planned.filter((step) => step.flow === 'follow_up').map((step) => step.key), ['follow_up:1', 'follow_up:2', 'follow_up:3'], 'follow-ups armed once');
    await world.crm({ event_id: `${leadId}-lost`, event: 'lead.status_changed', lead_id: leadId, status: 'lost' });
  });

  it('130429 reported both in the answer and by webhook: the send retries it itself, and the stale failure re-sends nothing', async () => {
    const { leadId, phone } = await leadWelcomedThrough({ code: 130429, via: 'both' });
    assert.deepEqual(world.sentTo(phone).map(signature), ['template:welcome'], 'one welcome went out, from the retry of the refused send');
    const statuses = await messagesForEffect(`wa:${leadId}:welcome:message`);
    assert.equal(statuses.filter((status) => status !== 'failed').length, 1, `exactly one accepted message for the step: ${statuses.join()}`);
    assert.ok(statuses.includes('failed'), 'the failure WhatsApp reported under an id we never saw is kept');
    const timeline = await world.timeline(leadId);
    assert.ok(timeline.some((entry) => entry.kind === 'failed' && entry.cause === 'WhatsApp status failed (error 130429)'), 'the webhook is on the timeline');
    assert.ok(!timeline.some((entry) => entry.entryKey.startsWith('scheduled:welcome:message#retry')), 'no resend was armed');
    // Caught at ingestion when the retry's message is recorded first, else by the workflow (the webhook usually wins the race).
    assert.ok(timeline.some((entry) => entry.detail?.superseded === true || entry.detail?.reason === 'superseded'), 'the stale failure is recognised as superseded');
    const view = await world.view(leadId);
    assert.deepEqual(view.doneSteps.filter((key) => key.startsWith('welcome')), ['welcome:message']);
    await world.crm({ event_id: `${leadId}-lost`, event: 'lead.status_changed', lead_id: leadId, status: 'lost' });
  });

  it('a throttling failure under a key whose retry already went out is kept on the timeline but not handed to the workflow', async () => {
    const leadId = uniqueId('sup');
    const effectKey = `wa:${leadId}:welcome:message`;
    await recordAcceptedMessage(world.db, { tenantId: world.tenantId, wamid: `wamid.retried-${leadId}`, effectKey, leadId, kind: 'template', templateName: 'welcome' });
    const handedOff: Array<{ eventId: string }> = [];
    const handOff: IngestDeps['handOff'] = (delivery) => {
      handedOff.push(...delivery.events);
      return Promise.resolve({ via: 'inbox', inserted: delivery.events.length, duplicates: 0 });
    };
    const timestamp = String(Math.floor((await world.now()) / 1000));
    const failed = (id: string, code: number): string =>
      webhook({ statuses: [{ id, status: 'failed', timestamp, recipient_id: '16285550100', biz_opaque_callback_data: effectKey, errors: [{ code, title: `error ${code}`, message: `error ${code}`, error_data: { details: 'test' } }] }] });

    await ingestDirectly(failed(`wamid.refused-${leadId}`, 130429), { handOff });
    assert.equal(handedOff.length, 0, 'superseded: the workflow is not told');
    const entry = (await world.timeline(leadId)).find((timelineEntry) => timelineEntry.entryKey === `status:wamid.refused-${leadId}:failed`);
    assert.equal(entry?.kind, 'failed');
    assert.equal(entry.detail?.superseded, true);

    await ingestDirectly(failed(`wamid.undeliverable-${leadId}`, 131026), { handOff });
    assert.deepEqual(handedOff.map((event) => event.eventId), [`wa-failed:${effectKey}`], 'only throttling is superseded: a permanent failure still reaches the workflow');
  });

  it('records a read that came without its delivered, accepts played, and takes a delivery that also carries value.errors', async () => {
    const leadId = uniqueId('st');
    const phone = phoneFor();
    assert.equal((await world.crm({ event_id: `${leadId}-created`, event: 'lead.created', lead_id: leadId, occurred_at: iso(await world.now()), lead: { name: 'Kim', phone } })).status, 202);
    await world.idle(leadId);
    const wamid = world.sentTo(phone)[0]?.id ?? assert.fail('no welcome sent');
    const status = async (): Promise<string | undefined> =>
      (await world.db.query<{ status: string }>('SELECT status FROM whatsapp_messages WHERE tenant_id = $1 AND wamid = $2', [world.tenantId, wamid])).rows[0]?.status;
    assert.equal(await status(), 'read');
    const kinds = (await world.timeline(leadId)).map((entry) => entry.kind);
    assert.ok(kinds.includes('read') && !kinds.includes('delivered'), kinds.join());

    const timestamp = String(Math.floor((await world.now()) / 1000));
    const played = await postWebhook(webhook({ statuses: [{ id: wamid, status: 'played', timestamp, recipient_id: phone.slice(1) }] }));
    assert.equal(played.status, 200, await played.text());
    assert.equal(await status(), 'read', 'played changes nothing we track');

    const mixed = await postWebhook(
      webhook({
        errors: [{ code: 130429, title: 'Rate limit hit', message: 'Rate limit hit', error_data: { details: 'Cloud API message throughput has been reached.' }, href: 'https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/' }],
        statuses: [{ id: wamid, status: 'delivered', timestamp, recipient_id: phone.slice(1) }],
      }),
    );
    assert.equal(mixed.status, 200, await mixed.text());
    const delivered = await world.db.query('SELECT 1 FROM whatsapp_status_events WHERE tenant_id = $1 AND wamid = $2 AND status = $3', [world.tenantId, wamid, 'delivered']);
    assert.equal(delivered.rowCount, 1, 'the statuses beside the errors are recorded');
    await world.crm({ event_id: `${leadId}-lost`, event: 'lead.status_changed', lead_id: leadId, status: 'lost' });
  });

  it('names each error tied to no message by code and decision, in the result and the log, without refusing the delivery', async () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString('utf8'));
        done();
      },
    });
    const logger = createLogger({ name: 'wa-errors-test', level: 'warn', destination });
    const body = webhook({
      errors: [
        { code: 130429, title: 'Rate limit hit', message: 'Rate limit hit', error_data: { details: 'Cloud API message throughput has been reached.' } },
        { code: 131000, title: 'Something went wrong', message: 'Something went wrong' },
      ],
    });
    const result = await ingestDirectly(body, { logger });
    assert.deepEqual(result.errors, [
      { code: 130429, action: 'retry' },
      { code: 131000, action: 'permanent' },
    ]);
    const logged = lines.map((line) => JSON.parse(line) as { msg: string; code?: number; decision?: string });
    assert.deepEqual(
      logged.filter((entry) => entry.msg === 'WhatsApp reported an error tied to no message').map((entry) => [entry.code, entry.decision]),
      [
        [130429, 'retry'],
        [131000, 'permanent'],
      ],
    );
  });
});
