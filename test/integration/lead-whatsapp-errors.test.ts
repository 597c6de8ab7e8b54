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
import { ingestWhatsApp } from '../../ingestion/ingest.js';
import { createLogger } from '../../observability/logger.js';
import { metaSignature } from '../../security/signatures.js';
import type { TimelineEntry } from '../../shared/leads.js';
import { signature, startLeadWorld } from '../harness/lead-world.js';
import type { LeadWorld } from '../harness/lead-world.js';
import { day, hour, iso, nextMonday10, phoneFor } from '../harness/lead-time.js';
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
    const tenant = world.config.tenants[world.tenantId] ?? assert.fail('no tenant');
    const result = await ingestWhatsApp(
      { config: world.config, db: world.db, logger, handOff: world.api.ingestion.handOff },
      { tenantId: world.tenantId, tenant, rawBody: Buffer.from(body), headers: { 'x-hub-signature-256': metaSignature('wa-app-secret', body), 'content-type': 'application/json' }, signedUrls: [], nowSeconds: Math.floor(Date.now() / 1000), receivedAt: new Date().toISOString() },
    );
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
