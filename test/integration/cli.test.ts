/** The ops CLI, each command run as its own process against a real deployment. */
import assert from 'node:assert/strict';
import { createApiTemporalClient } from '../../workers/temporal-client.js';
import { startKommoSandbox } from '../../sandboxes/kommo.js';
import { pbxEvents, signedJsonRequest } from '../../sandboxes/pbx-simulator.js';
import type { CallPlan } from '../../sandboxes/pbx-simulator.js';
import { startApi } from '../harness/api.js';
import { startCallWorld } from '../harness/call-world.js';
import type { CallWorld } from '../harness/call-world.js';
import { runCli } from '../harness/cli.js';
import { startLeadWorld } from '../harness/lead-world.js';
import { createTestDatabase } from '../harness/postgres.js';
import { freePort, uniqueId } from '../harness/resources.js';

const plan = (overrides: Partial<CallPlan> = {}): CallPlan => ({
  callId: uniqueId('cli'),
  direction: 'inbound',
  customerPhone: '+14155557000',
  linePhone: '+12025550100',
  agentId: 'agent-1',
  outcome: 'answered',
  startedAt: new Date(),
  ringSeconds: 2,
  talkSeconds: 30,
  ...overrides,
});

describe('ops CLI', function () {
  this.timeout(240_000);
  let world: CallWorld;
  before(async () => {
    world = await startCallWorld();
  });
  after(async () => {
    await world.stop();
  });

  it('answers an unknown command with its usage and exit code 2', async () => {
    const { code, output } = await runCli(world.config, ['frobnicate']);
    assert.equal(code, 2);
    assert.match(output, /replay-rejected --tenant/);
    assert.match(output, /lead-timeline --tenant/);
  });

  it('lists rejected events and replays them: refused again without the operator\'s word, accepted with it', async () => {
    const call = plan();
    const [ringing] = pbxEvents(call);
    const stale = signedJsonRequest('test-webhook-secret', ringing, Math.floor(Date.now() / 1000) - 600);
    const refused = await fetch(`${world.api.baseUrl}/webhooks/${world.tenantId}/pbx`, { method: 'POST', headers: stale.headers, body: stale.body });
    assert.equal(refused.status, 401);
    const malformed = signedJsonRequest('test-webhook-secret', { event: 'call.teleported', call_id: call.callId });
    assert.equal((await fetch(`${world.api.baseUrl}/webhooks/${world.tenantId}/pbx`, { method: 'POST', headers: malformed.headers, body: malformed.body })).status, 422);

    const listed = await runCli(world.config, ['rejected', '--tenant', world.tenantId]);
    assert.equal(listed.code, 0);
    assert.match(listed.output, /stale_timestamp/);
    assert.match(listed.output, /unknown_event_type/);
    const staleId = (await world.db.query<{ id: number }>(`SELECT id FROM rejected_events WHERE tenant_id = $1 AND reason = 'stale_timestamp' ORDER BY id DESC LIMIT 1`, [world.tenantId])).rows[0]?.id;
    assert.ok(staleId);

    const strict = await runCli(world.config, ['replay-rejected', '--tenant', world.tenantId, '--id', String(staleId)]);
    assert.equal(strict.code, 1);
    assert.match(strict.output, /rejected again: stale_timestamp/);
    const vouched = await runCli(world.config, ['replay-rejected', '--tenant', world.tenantId, '--id', String(staleId), '--skip-signature']);
    assert.equal(vouched.code, 0, vouched.output);
    assert.match(vouched.output, new RegExp(`accepted: pbx:${call.callId}, 1 event`));
    const journaled = await world.waitForCall(`pbx:${call.callId}`, (snapshot) => snapshot.eventIds.length === 1);
    assert.equal(journaled.status, 'ringing');
    const row = await world.db.query<{ replay_result: string }>('SELECT replay_result FROM rejected_events WHERE id = $1', [staleId]);
    assert.match(row.rows[0]?.replay_result ?? '', /^accepted/);

    const again = await runCli(world.config, ['replay-rejected', '--tenant', world.tenantId, '--reason', 'unknown_event_type']);
    assert.equal(again.code, 1);
    assert.match(again.output, /rejected again: unknown_event_type/);
  });

  it('forwards the inbox to Temporal', async () => {
    // An inbox of its own, filled by an API whose Temporal is unreachable, so that only the CLI forwards it.
    const inbox = await createTestDatabase('cli-inbox');
    const inboxConfig = { ...world.config, database: { url: inbox.url, embedded: false } };
    const dead = createApiTemporalClient({ connection: { address: `127.0.0.1:${await freePort()}` }, namespace: world.config.temporal.namespace, payloadEncryption: world.config.temporal.payloadEncryption });
    const outage = await startApi({ config: inboxConfig, db: inbox.db, connection: dead.connection, forward: false });
    const call = plan({ customerPhone: '+14155557001' });
    try {
      for (const event of pbxEvents(call)) {
        const request = signedJsonRequest('test-webhook-secret', event);
        assert.equal((await fetch(`${outage.baseUrl}/webhooks/${world.tenantId}/pbx`, { method: 'POST', headers: request.headers, body: request.body })).status, 202);
      }
    } finally {
      await outage.close();
      await dead.connection.close();
    }
    const { code, output } = await runCli(inboxConfig, ['replay-inbox']);
    assert.equal(code, 0, output);
    assert.match(output, /forwarded 3 waiting event\(s\) to Temporal; 0 still waiting/);
    await world.waitForCall(`pbx:${call.callId}`, (snapshot) => snapshot.status === 'completed');
  });

  it('lists stuck work, and re-drives a failed CRM sync once the CRM is fixed', async () => {
    // A deployment whose Kommo refuses the configured token: every CRM call fails for good (401).
    const broken = await startCallWorld({ kommoToken: 'the-right-token' });
    try {
      const call = plan({ customerPhone: '+14155557002' });
      for (const event of pbxEvents(call)) assert.equal((await broken.postSigned('pbx', event)).status, 202);
      const id = `pbx:${call.callId}`;
      await broken.waitForCall(id, (snapshot) => snapshot.crmSyncState === 'failed' && snapshot.status === 'completed');

      const stuck = await runCli(broken.config, ['stuck', '--tenant', broken.tenantId, '--older-than-minutes', '0']);
      assert.equal(stuck.code, 0);
      assert.match(stuck.output, /CRM sync failed or stuck: 1/);
      assert.match(stuck.output, new RegExp(`${id} failed since .*: Kommo: .* answered 401`));

      // Fix the CRM: it now accepts the token the tenant is configured with.
      const port = Number(new URL(broken.kommo.url).port);
      await broken.kommo.stop();
      const fixed = await startKommoSandbox({ token: 'kommo-test-token', port });
      fixed.seedContact({ name: 'Fixed', phone: call.customerPhone });
      try {
        const redrive = await runCli(broken.config, ['redrive-crm', '--tenant', broken.tenantId, '--call', id, '--operator', 'ops@acme']);
        assert.equal(redrive.code, 0, redrive.output);
        const synced = await broken.waitForCall(id, (snapshot) => snapshot.crmSyncState === 'synced' && snapshot.status === 'completed');
        assert.ok(synced.crm.noteId);
        assert.equal(fixed.state().notes.filter((note) => note.params.uniq === id).length, 1);
        // A second re-drive of a synced call does nothing more.
        await runCli(broken.config, ['redrive-crm', '--tenant', broken.tenantId, '--call', id]);
        await broken.waitForCall(id, (snapshot) => snapshot.eventIds.filter((eventId) => eventId.startsWith('redrive-crm')).length === 2 && snapshot.status === 'completed');
        assert.equal(fixed.state().notes.filter((note) => note.params.uniq === id).length, 1);
      } finally {
        await fixed.stop();
      }
    } finally {
      await broken.stop();
    }
  });

  it('prints a lead\'s timeline in the terminal', async () => {
    const leads = await startLeadWorld({ timeSkipping: false, policy: { sendWindow: { days: [1, 2, 3, 4, 5, 6, 7], start: '00:00', end: '23:59' }, reorderWindowSeconds: 0 } });
    try {
      const leadId = uniqueId('tl');
      assert.equal((await leads.crm({ event_id: `${leadId}-1`, event: 'lead.created', lead_id: leadId, lead: { name: 'Tia', phone: '+16285553333' } })).status, 202);
      await leads.idle(leadId);
      const { code, output } = await runCli(leads.config, ['lead-timeline', '--tenant', leads.tenantId, '--lead', leadId]);
      assert.equal(code, 0, output);
      assert.match(output, /^time \(UTC\)\s+kind\s+step\s+cause/m);
      assert.match(output, /sent\s+welcome:message\s+lead\.created/);
      assert.match(output, /scheduled\s+follow_up:1/);
      const missing = await runCli(leads.config, ['lead-timeline', '--tenant', leads.tenantId, '--lead', 'nobody']);
      assert.equal(missing.code, 1);

      // The flow preview of the same lead: the follow-ups it has planned, nothing it already sent.
      const preview = await runCli(leads.config, ['lead-preview', '--tenant', leads.tenantId, '--lead', leadId, '--days', '10']);
      assert.equal(preview.code, 0, preview.output);
      assert.match(preview.output, /^when \(lead\)\s+step\s+message\s+from\s+guards/m);
      // The lead already has its number from the welcome.
      assert.match(preview.output, /follow_up:1\s+template follow_up \(en\)\s+default \(kept\)/);
      assert.doesNotMatch(preview.output, /welcome:message/);
      // A hypothetical lead who books a meeting, as JSON.
      const meetingAt = new Date(Date.now() + 3 * 24 * 3600_000).toISOString();
      const hypothetical = await runCli(leads.config, ['lead-preview', '--tenant', leads.tenantId, '--time-zone', 'Asia/Tokyo', '--meeting-at', meetingAt, '--days', '5', '--json']);
      assert.equal(hypothetical.code, 0, hypothetical.output);
      const forecast = JSON.parse(hypothetical.output) as { timeZone: string; sends: Array<{ key: string }> };
      assert.equal(forecast.timeZone, 'Asia/Tokyo');
      assert.ok(forecast.sends.some((send) => send.key.startsWith('booking_confirmation:message')), hypothetical.output);
      assert.ok(forecast.sends.some((send) => send.key.startsWith('reminder:24h')), hypothetical.output);
      const refused = await runCli(leads.config, ['lead-preview', '--tenant', leads.tenantId, '--time-zone', 'Mars/Olympus']);
      assert.equal(refused.code, 2, refused.output);
      assert.match(refused.output, /--time-zone: must be an IANA time zone/);
    } finally {
      await leads.stop();
    }
  });
});
