/**
 * Lead messaging end to end: operator interventions as Temporal updates, out-of-order and
 * duplicated CRM events, WhatsApp status webhooks, continue-as-new, calls reaching leads, and the
 * legacy import.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { repoRoot } from '../../config/load.js';
import { insertOperatorToken } from '../../db/operators.js';
import { newOperatorToken, operatorTokenHash } from '../../security/operator-tokens.js';
import { metaSignature } from '../../security/signatures.js';
import { pbxEvents, random, shuffle } from '../../sandboxes/pbx-simulator.js';
import type { LeadView } from '../../shared/lead-plan.js';
import { leadWorkflowId } from '../../shared/leads.js';
import { signature, startLeadWorld } from '../harness/lead-world.js';
import type { LeadWorld } from '../harness/lead-world.js';
import { day, hour, iso, minute, nextMonday10, phoneFor } from '../harness/lead-time.js';
import { uniqueId } from '../harness/resources.js';


async function created(world: LeadWorld, leadId: string, phone: string, extra: Record<string, unknown> = {}): Promise<void> {
  const response = await world.crm({ event_id: `${leadId}-created`, event: 'lead.created', lead_id: leadId, occurred_at: iso(await world.now()), lead: { name: 'Kim Park', phone }, ...extra });
  assert.equal(response.status, 202, await response.text());
}

describe('lead messaging over the API (time-skipping)', function () {
  this.timeout(300_000);
  let world: LeadWorld;
  before(async () => {
    world = await startLeadWorld();
  });
  after(async () => {
    await world.stop();
  });
  beforeEach(async () => {
    // Every test starts on a Monday morning in New York, inside the send window.
    await world.env.sleep(nextMonday10(await world.now()) - (await world.now()));
  });

  it('operators steer a lead with validated updates: pause, resume, skip, send now, time zone, cancel flow, mark booked', async () => {
    const leadId = uniqueId('op');
    const phone = phoneFor();
    // A named operator's own token: the timeline names them, whatever a body says.
    const token = newOperatorToken();
    await insertOperatorToken(world.db, { tenantId: world.tenantId, name: 'ops@acme', role: 'operator', tokenSha256: operatorTokenHash(token) });
    const act = async (action: Record<string, unknown>, headers: Record<string, string> = {}) => {
      const response = await world.operator(leadId, action, { authorization: `Bearer ${token}`, ...headers });
      return { status: response.status, body: (await response.json()) as { lead?: LeadView; error?: string; message?: string } };
    };
    await created(world, leadId, phone);
    await world.idle(leadId);
    const named = await act({ action: 'pause', operator: 'someone else', reason: 'customer asked for a call first' });
    assert.equal(named.status, 422, 'a body naming the operator is refused, not obeyed');
    assert.equal(named.body.error, 'invalid_payload');
    assert.match(named.body.message ?? '', /operator: unknown field: the operator is the credential's/);
    assert.equal((await world.view(leadId)).paused, false, 'nothing was done');
    assert.equal((await act({ action: 'pause', reason: 'customer asked for a call first' })).body.lead?.paused, true);
    await world.advance(leadId, 2 * day);
    assert.deepEqual(world.sentTo(phone).map(signature), ['template:welcome'], 'nothing went out while paused');

    const resumed = await act({ action: 'resume' });
    assert.equal(resumed.body.lead?.paused, false);
    await world.idle(leadId);
    const planned = (await world.view(leadId)).planned.map((step) => step.key);
    assert.ok(planned.includes('follow_up:2'));

    const rejected = await act({ action: 'skip_step', step: 'follow_up:9' });
    assert.equal(rejected.status, 422);
    assert.equal(rejected.body.error, 'action_rejected');
    assert.match(rejected.body.message ?? '', /no planned step "follow_up:9"/);
    const badZone = await act({ action: 'change_time_zone', timeZone: 'Mars/Olympus' });
    assert.equal(badZone.status, 422);
    assert.equal(badZone.body.error, 'invalid_payload');

    assert.equal((await act({ action: 'skip_step', step: 'follow_up:2', reason: 'already called' })).status, 200);
    const sendNow = await act({ action: 'send_now', step: 'follow_up:3' }, { 'idempotency-key': `${leadId}-send-now` });
    assert.equal(sendNow.status, 200);
    await world.idle(leadId);
    const again = await act({ action: 'send_now', step: 'follow_up:3' }, { 'idempotency-key': `${leadId}-send-now` });
    assert.equal(again.status, 200, 'a repeated Idempotency-Key returns the first outcome, not a validation error');
    assert.equal(world.sentTo(phone).filter((message) => message.template?.name === 'follow_up').length, 2, 'follow-up 1 (after resume) and 3 (sent now)');

    const zoned = await act({ action: 'change_time_zone', timeZone: 'Europe/Berlin' });
    assert.equal(zoned.body.lead?.timeZone, 'Europe/Berlin');
    const cancelled = await act({ action: 'cancel_flow', flow: 'rewarm' });
    assert.ok(!cancelled.body.lead?.planned.some((step) => step.flow === 'rewarm'));
    const startsAt = iso((await world.now()) + 2 * day);
    const booked = await act({ action: 'mark_booked', meeting: { id: 'op-m1', startsAt } });
    assert.equal(booked.body.lead?.stage, 'booked');
    await world.idle(leadId);
    assert.equal(world.sentTo(phone).at(-1)?.template?.name, 'booking_confirmation');

    const timeline = await world.timeline(leadId);
    const operatorEntries = timeline.filter((entry) => entry.kind === 'operator');
    assert.ok(operatorEntries.some((entry) => entry.cause === 'operator pause by ops@acme: customer asked for a call first'));
    const skipped = timeline.find((entry) => entry.kind === 'skipped' && entry.step === '2' && entry.flow === 'follow_up');
    assert.equal(skipped?.cause, 'operator skip by ops@acme: already called');
    assert.equal(operatorEntries.filter((entry) => entry.cause.startsWith('operator send-now')).length, 1, 'the repeated update is not applied twice');
    assert.ok(!timeline.some((entry) => entry.cause.includes('someone else')), 'the body does not name the operator');
    assert.deepEqual(
      operatorEntries.map((entry) => entry.detail?.operator),
      operatorEntries.map(() => 'ops@acme'),
      `every operator action names the token's operator: ${operatorEntries.map((entry) => entry.cause).join(' | ')}`,
    );
    assert.deepEqual(skipped?.detail, { reason: 'operator', operator: 'ops@acme' });
    for (const entry of timeline.filter((item) => item.kind === 'skipped')) assert.ok(entry.cause.length > 0 && typeof entry.detail?.reason === 'string', `skipped ${entry.flow}:${entry.step} has a reason`);
    await world.crm({ event_id: `${leadId}-lost`, event: 'lead.status_changed', lead_id: leadId, status: 'lost' });
  });

  it('duplicated and shuffled CRM events give the same messages as clean ones', async () => {
    const run = async (messy: boolean): Promise<string[]> => {
      const leadId = uniqueId(messy ? 'messy' : 'clean');
      const phone = phoneFor();
      const start = await world.now();
      const events = [
        { event_id: `${leadId}-1`, event: 'lead.created', lead_id: leadId, occurred_at: iso(start), lead: { name: 'Lee', phone } },
        { event_id: `${leadId}-2`, event: 'meeting.booked', lead_id: leadId, occurred_at: iso(start + 1_000), meeting: { id: 'm1', starts_at: iso(start + 2 * day + 5 * hour), ends_at: iso(start + 2 * day + 6 * hour) } },
        { event_id: `${leadId}-3`, event: 'meeting.rescheduled', lead_id: leadId, occurred_at: iso(start + 2_000), meeting: { id: 'm1', starts_at: iso(start + 3 * day + 5 * hour), ends_at: iso(start + 3 * day + 6 * hour) } },
      ];
      const deliveries = messy ? shuffle(events.flatMap((event) => [event, event, event]), random(7)) : events;
      await Promise.all(deliveries.map(async (event) => assert.equal((await world.crm(event)).status, 202)));
      await world.advance(leadId, 3 * day + 5 * hour + 15 * minute);
      await world.crm({ event_id: `${leadId}-4`, event: 'meeting.attended', lead_id: leadId, occurred_at: iso(await world.now()), meeting: { id: 'm1' } });
      await world.crm({ event_id: `${leadId}-4`, event: 'meeting.attended', lead_id: leadId, occurred_at: iso(await world.now()), meeting: { id: 'm1' } });
      await world.advance(leadId, 2 * day);
      await world.crm({ event_id: `${leadId}-5`, event: 'lead.status_changed', lead_id: leadId, status: 'won' });
      return world.sentTo(phone).map(signature);
    };
    const clean = await run(false);
    await world.env.sleep(nextMonday10(await world.now()) - (await world.now()));
    const messy = await run(true);
    assert.deepEqual(clean, ['template:welcome', 'template:booking_confirmation', 'template:meeting_rescheduled', 'template:meeting_reminder', 'template:meeting_reminder', 'template:post_meeting']);
    assert.deepEqual(messy, clean);
  });

  it('records WhatsApp statuses once per message and status, in any order, and verifies Meta\'s signature', async () => {
    const leadId = uniqueId('status');
    const phone = phoneFor();
    await created(world, leadId, phone);
    await world.idle(leadId);
    const wamid = world.sentTo(phone)[0]?.id;
    assert.ok(wamid);
    const statusWebhook = (status: string, timestamp: number) =>
      JSON.stringify({ object: 'whatsapp_business_account', entry: [{ id: 'WABA1', changes: [{ field: 'messages', value: { messaging_product: 'whatsapp', metadata: { display_phone_number: '15555550100', phone_number_id: 'PN1' }, statuses: [{ id: wamid, status, timestamp: String(Math.floor(timestamp / 1000)), recipient_id: phone.slice(1), biz_opaque_callback_data: `wa:${leadId}:welcome:message` }] } }] }] });
    const post = (body: string, signatureValue = metaSignature('wa-app-secret', body)) =>
      fetch(`${world.api.baseUrl}/webhooks/${world.tenantId}/whatsapp`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-hub-signature-256': signatureValue }, body });
    const now = await world.now();
    // WhatsApp times statuses in whole seconds: this "read" is timed in the second the workflow sent the message, before its milliseconds.
    const sentAt = Date.parse((await world.timeline(leadId)).find((entry) => entry.entryKey === 'sent:welcome:message')?.at ?? assert.fail('the welcome was sent'));
    const read = statusWebhook('read', sentAt);
    for (const body of [read, read, statusWebhook('delivered', now + minute), read]) assert.equal((await post(body)).status, 200);
    const events = await world.db.query<{ status: string }>('SELECT status FROM whatsapp_status_events WHERE tenant_id = $1 AND wamid = $2 ORDER BY status', [world.tenantId, wamid]);
    assert.deepEqual(events.rows.map((row) => row.status), ['delivered', 'read', 'sent']);
    const message = await world.db.query<{ status: string }>('SELECT status FROM whatsapp_messages WHERE tenant_id = $1 AND wamid = $2', [world.tenantId, wamid]);
    assert.equal(message.rows[0]?.status, 'read', 'a late "delivered" does not move the message back');
    const timeline = await world.timeline(leadId);
    assert.equal(timeline.filter((entry) => entry.kind === 'read').length, 1);
    assert.equal(timeline.filter((entry) => entry.kind === 'delivered').length, 1);
    const stages = timeline.filter((entry) => ['scheduled:welcome:message', 'sent:welcome:message'].includes(entry.entryKey) || entry.detail?.messageId === wamid);
    assert.deepEqual(stages.map((entry) => entry.kind), ['scheduled', 'sent', 'delivered', 'read'], 'the timeline reads in causal order, whatever WhatsApp\'s clock');
    const times = stages.map((entry) => Date.parse(entry.at));
    assert.deepEqual(times, [...times].sort((a, b) => a - b));

    const forged = await post(read, metaSignature('not-the-secret', read));
    assert.equal(forged.status, 401);
    assert.equal(((await forged.json()) as { error: string }).error, 'invalid_signature');
    const verify = await fetch(`${world.api.baseUrl}/webhooks/${world.tenantId}/whatsapp?hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1158201444`);
    assert.equal(await verify.text(), '1158201444');
    assert.equal((await fetch(`${world.api.baseUrl}/webhooks/${world.tenantId}/whatsapp?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1`)).status, 403);
    await world.crm({ event_id: `${leadId}-lost`, event: 'lead.status_changed', lead_id: leadId, status: 'lost' });
  });

  it('refuses bad CRM events with a 4xx and keeps them', async () => {
    const marker = uniqueId('badcrm');
    const cases: Array<[Record<string, unknown>, number, string]> = [
      [{ event_id: marker, event: 'lead.exploded', lead_id: marker }, 422, 'unknown_event_type'],
      [{ event_id: `${marker}-2`, event: 'meeting.booked', lead_id: marker }, 422, 'invalid_payload'],
      [{ event_id: `${marker}-3`, event: 'lead.created', lead_id: marker, lead: { phone: 'call me' } }, 422, 'invalid_phone_number'],
      [{ event_id: `${marker}-4`, event: 'lead.created', lead_id: marker, lead: { time_zone: 'Nowhere/Land' } }, 422, 'invalid_payload'],
    ];
    for (const [body, status, reason] of cases) {
      const response = await world.crm(body);
      assert.equal(response.status, status, JSON.stringify(body));
      assert.equal(((await response.json()) as { error: string }).error, reason);
    }
    const stored = await world.db.query(`SELECT reason FROM rejected_events WHERE source = 'crm' AND position($1::bytea in raw_body) > 0`, [Buffer.from(marker)]);
    assert.equal(stored.rowCount, cases.length);
  });

  it('continues as new to keep history bounded, carrying state, dedupe set and pending events', async () => {
    const small = await startLeadWorld({ policy: { continueAsNewAfterEvents: 60, reorderWindowSeconds: 0 } });
    try {
      const leadId = uniqueId('can');
      const phone = phoneFor();
      await created(small, leadId, phone);
      await small.idle(leadId);
      for (let index = 0; index < 30; index++) {
        const response = await small.crm({ event_id: `${leadId}-u${index}`, event: 'lead.updated', lead_id: leadId, lead: { name: `Kim ${index}` } });
        assert.equal(response.status, 202);
      }
      // A duplicate of an event from before continue-as-new is still recognised.
      await small.crm({ event_id: `${leadId}-u3`, event: 'lead.updated', lead_id: leadId, lead: { name: 'Duplicate' } });
      await small.advance(leadId, 1 * day + hour);
      // The current run was continued from an earlier one (the test server cannot list runs).
      const history = await small.client.workflow.getHandle(leadWorkflowId(small.tenantId, leadId)).fetchHistory();
      const started = history.events?.[0]?.workflowExecutionStartedEventAttributes;
      assert.ok(started?.continuedExecutionRunId, 'the running execution is a continuation');
      assert.ok((history.events?.length ?? 0) < 200, 'its history stays small');
      const view = await small.view(leadId);
      assert.equal(view.profile.name, 'Kim 29');
      assert.ok(view.doneSteps.includes('welcome:message') && view.doneSteps.includes('follow_up:1'));
      assert.deepEqual(small.sentTo(phone).map(signature), ['template:welcome', 'template:follow_up'], 'no step was sent twice across runs');
    } finally {
      await small.stop();
    }
  });
});

describe('lead messaging on the dev server', function () {
  this.timeout(300_000);
  let world: LeadWorld;
  before(async () => {
    // Real time here: the send window is always open.
    world = await startLeadWorld({ timeSkipping: false, policy: { sendWindow: { days: [1, 2, 3, 4, 5, 6, 7], start: '00:00', end: '23:59' }, reorderWindowSeconds: 1 } });
  });
  after(async () => {
    await world.stop();
  });

  it('a missed call from a lead\'s number reaches the lead, which answers on WhatsApp instead of a CRM call-back task', async () => {
    const leadId = uniqueId('caller');
    const phone = phoneFor();
    await created(world, leadId, phone);
    await world.idle(leadId);
    const callId = uniqueId('missed');
    for (const event of pbxEvents({ callId, direction: 'inbound', customerPhone: phone, linePhone: '+12025550100', agentId: 'a1', outcome: 'missed', startedAt: new Date(), ringSeconds: 5, talkSeconds: 0 })) {
      const request = await import('../../sandboxes/pbx-simulator.js').then((module) => module.signedJsonRequest('lead-webhook-secret', event));
      assert.equal((await fetch(`${world.api.baseUrl}/webhooks/${world.tenantId}/pbx`, { method: 'POST', headers: request.headers, body: request.body })).status, 202);
    }
    let names: string[] = [];
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && !names.includes('missed_call')) {
      await world.idle(leadId);
      names = world.sentTo(phone).map((message) => message.template?.name ?? 'text');
    }
    assert.deepEqual(names, ['welcome', 'missed_call']);
    const timeline = await world.timeline(leadId);
    assert.ok(timeline.some((entry) => entry.cause === 'call.missed'));
  });

  it('imports legacy leads from CSV with the CLI, at their stage, without re-sending what was sent', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'switchboard-import-'));
    const lastContact = iso(Date.now() - 2 * day);
    const ids = [uniqueId('legacy'), uniqueId('legacy'), uniqueId('legacy')];
    const phones = [phoneFor(), phoneFor(), phoneFor()];
    const csv = [
      'Lead ID,Full Name,Phone,Status,Steps Sent,Last Contact,Time Zone',
      `${ids[0]},Ana Gil,${phones[0]},Followed Up,welcome_sent;followup_1,${lastContact},Europe/Madrid`,
      `${ids[1]},Bo Chen,${phones[1]},NO-SHOW,welcome,${lastContact},`,
      `${ids[2]},Cy Dow,${phones[2]},Banana,,,`,
    ].join('\n');
    const file = path.join(dir, 'legacy.csv');
    await writeFile(file, csv);
    const configPath = path.join(dir, 'switchboard.yaml');
    await writeFile(configPath, stringify({ tenants: world.config.tenants, temporal: { namespace: world.config.temporal.namespace, taskQueues: world.config.temporal.taskQueues, payloadEncryption: world.config.temporal.payloadEncryption } }));
    const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'cli/main.ts', 'import-leads', '--tenant', world.tenantId, '--file', file], {
        cwd: repoRoot,
        env: { ...process.env, SWITCHBOARD_CONFIG: configPath, DATABASE_URL: world.config.database.url, TEMPORAL_ADDRESS: world.config.temporal.address, TEMPORAL_NAMESPACE: world.config.temporal.namespace },
      });
      let text = '';
      child.stdout.on('data', (chunk: Buffer) => (text += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (text += chunk.toString()));
      child.on('exit', (exitCode) => resolve({ code: exitCode, output: text }));
    });
    assert.match(output, /row 3 \(.*\): unknown status "Banana"/);
    assert.match(output, /imported 2 lead\(s\): contacted 1, no_show 1/);
    assert.equal(code, 1, 'a row was refused');

    await world.idle(ids[0] ?? '');
    const first = await world.view(ids[0] ?? '');
    assert.equal(first.stage, 'contacted');
    assert.equal(first.timeZone, 'Europe/Madrid');
    assert.ok(first.doneSteps.includes('welcome:message') && first.doneSteps.includes('follow_up:1'));
    assert.deepEqual(first.planned.filter((step) => step.flow === 'follow_up').map((step) => step.key), ['follow_up:2', 'follow_up:3']);
    assert.equal(world.sentTo(phones[0] ?? '').length, 0, 'nothing already sent goes out again');
    const timeline = await world.timeline(ids[0] ?? '');
    assert.ok(timeline.some((entry) => entry.kind === 'stage' && entry.cause.startsWith('imported from the legacy system')));
  });
});
