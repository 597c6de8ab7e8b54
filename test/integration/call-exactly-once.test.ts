/**
 * Exactly-once effects under duplicated, shuffled and concurrent input, a CRM outage, and an
 * attempt that dies between the CRM's answer and our ledger.
 */
import assert from 'node:assert/strict';
import { createKommoAdapter } from '../../adapters/crm/kommo.js';
import { performOnce } from '../../db/effects.js';
import { startKommoSandbox } from '../../sandboxes/kommo.js';
import { pbxEvents, random, shuffle, voiceAiEvents } from '../../sandboxes/pbx-simulator.js';
import type { CallPlan, Outcome, VoiceAiPlan } from '../../sandboxes/pbx-simulator.js';
import type { CallSnapshot } from '../../shared/calls.js';
import { searchAttributes } from '../../shared/search-attributes.js';
import { waitUntil } from '../../stack/processes.js';
import { startCallWorld } from '../harness/call-world.js';
import type { CallWorld } from '../harness/call-world.js';
import { uniqueId } from '../harness/resources.js';

/** Runs `work` over `items` with at most `limit` in flight: many concurrent webhook senders. */
async function concurrently<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  await Promise.all(
    Array.from({ length: limit }, async () => {
      for (let item = queue.shift(); item !== undefined; item = queue.shift()) await work(item);
    }),
  );
}

const isSettled = (call: CallSnapshot): boolean =>
  call.status === 'completed' && call.enrichmentState !== 'pending' && call.crmSyncState !== 'waiting' && call.crmSyncState !== 'pending';

// The same calls against each CRM the product supports: the tenant's CRM is the only difference.
for (const crmKind of ['kommo', 'hubspot'] as const) describe(`exactly-once call effects (${crmKind})`, function () {
  this.timeout(300_000);
  let world: CallWorld;
  before(async () => {
    world = await startCallWorld({ crmKind });
  });
  after(async () => {
    await world.stop();
  });

  it('50 calls, each full event sequence sent 3 times in shuffled order: one journal row, one CRM call, at most one ticket each', async () => {
    const next = random(20_261_121);
    const outcomes: Outcome[] = ['answered', 'answered', 'answered', 'missed', 'busy', 'abandoned'];
    const pbxPlans: CallPlan[] = Array.from({ length: 30 }, (_, index) => ({
      callId: uniqueId(`bulk-${index}`),
      direction: index % 5 === 4 ? 'outbound' : 'inbound',
      customerPhone: `+1415555${String(2000 + index)}`,
      linePhone: '+12025550100',
      agentId: `agent-${index % 4}`,
      outcome: outcomes[index % outcomes.length] as Outcome,
      startedAt: new Date(Date.now() - 600_000),
      ringSeconds: 2 + (index % 9),
      talkSeconds: 30 + index,
    }));
    const voicePlans: VoiceAiPlan[] = Array.from({ length: 20 }, (_, index) => ({
      callId: uniqueId(`ai-${index}`),
      agentId: 'ai-agent',
      direction: 'inbound',
      customerPhone: `+1415555${String(3000 + index)}`,
      agentPhone: '+12025550101',
      startedAt: new Date(Date.now() - 600_000),
      durationSeconds: 60 + index,
      satisfaction: 1 + (index % 5),
      resolved: index % 3 !== 0,
      sentiment: index % 3 === 0 ? 'negative' : 'positive',
      issueType: index % 2 === 0 ? 'Billing' : 'Shipping',
    }));
    // Half of the callers are already contacts in the CRM; the rest become incoming leads.
    for (const [index, call] of pbxPlans.entries()) if (index % 2 === 0) world.crm.seedContact({ name: `Caller ${index}`, phone: call.customerPhone });
    for (const [index, call] of voicePlans.entries()) if (index % 2 === 0) world.crm.seedContact({ name: `AI caller ${index}`, phone: call.customerPhone });

    const deliveries = shuffle(
      [
        ...pbxPlans.flatMap((call) => pbxEvents(call).flatMap((event) => [0, 1, 2].map(() => ({ provider: 'pbx' as const, event })))),
        ...voicePlans.flatMap((call) => voiceAiEvents(call).flatMap((event) => [0, 1, 2].map(() => ({ provider: 'voice-ai' as const, event })))),
      ],
      next,
    );
    let refused = 0;
    await concurrently(deliveries, 24, async ({ provider, event }) => {
      const response = await world.postSigned(provider, event);
      if (response.status !== 202) refused++;
    });
    assert.equal(refused, 0);

    const ids = [...pbxPlans.map((call) => `pbx:${call.callId}`), ...voicePlans.map((call) => `voice-ai:${call.callId}`)];
    const settled = new Map<string, CallSnapshot>();
    for (const id of ids) settled.set(id, await world.waitForCall(id, isSettled, 240_000));

    const rows = await world.db.query<{ call_id: string; events: number }>(
      `SELECT c.call_id, (SELECT count(*) FROM call_events e WHERE e.tenant_id = c.tenant_id AND e.call_id = c.call_id)::int AS events
       FROM calls c WHERE c.tenant_id = $1 AND c.call_id = ANY($2)`,
      [world.tenantId, ids],
    );
    assert.equal(rows.rows.length, 50, 'exactly one journal row per call');
    for (const call of pbxPlans) {
      const id = `pbx:${call.callId}`;
      const journaled = settled.get(id) as CallSnapshot;
      assert.equal(rows.rows.find((row) => row.call_id === id)?.events, pbxEvents(call).length, `${id}: each distinct event once`);
      assert.equal(journaled.disposition, call.outcome, `${id}: disposition`);
      assert.equal(journaled.durationSeconds, call.outcome === 'answered' ? call.talkSeconds : 0);
      const logged = world.crm.loggedCalls(id);
      const unknownOutbound = call.direction === 'outbound' && pbxPlans.indexOf(call) % 2 === 1;
      // Neither CRM attaches a call by itself: an outbound call to a number no entity has is logged nowhere.
      assert.equal(logged.length, unknownOutbound ? 0 : 1, `${id}: CRM calls (journal: ${JSON.stringify(journaled.crm)})`);
      assert.equal(journaled.crmSyncState, unknownOutbound ? 'skipped' : 'synced', `${id}: CRM sync state`);
      assert.ok(world.crm.incomingLeads(id, call.customerPhone) <= 1, `${id}: at most one incoming lead`);
      const missedInbound = call.direction === 'inbound' && call.outcome !== 'answered';
      assert.equal(world.crm.callbackTasks(id), missedInbound ? 1 : 0, `${id}: call-back tasks`);
    }
    const tickets = world.ticketing.state().tickets;
    for (const call of voicePlans) {
      const id = `voice-ai:${call.callId}`;
      const journaled = settled.get(id) as CallSnapshot;
      assert.equal(rows.rows.find((row) => row.call_id === id)?.events, 4, `${id}: start, answered, end, analytics`);
      assert.equal(world.crm.loggedCalls(id).length, 1, `${id}: one CRM call`);
      const callTickets = tickets.filter((ticket) => ticket.external_id === `switchboard:${world.tenantId}:${id}`);
      assert.equal(callTickets.length, call.resolved === false ? 1 : 0, `${id}: tickets`);
      if (call.resolved === false) {
        assert.equal(callTickets[0]?.subject, `${call.issueType} (unresolved call)`);
        assert.equal(callTickets[0]?.queue, call.issueType === 'Billing' ? 'Billing' : 'Support');
        assert.equal(journaled.actions.ticket?.id, callTickets[0]?.id);
      }
      assert.equal(journaled.analytics?.satisfaction, call.satisfaction);
    }
    const lowSatisfaction = voicePlans.filter((call) => (call.satisfaction ?? 5) <= 2).length;
    assert.equal(world.slack.state().messages.filter((message) => (message.text ?? '').startsWith('#alerts')).length, lowSatisfaction);
  });

  it('the call-result form posted at the same moment as the ending webhook: one CRM entity, one note', async () => {
    const rounds = await Promise.all(
      Array.from({ length: 5 }, async (_, index) => {
        const phone = `+1415555${String(4000 + index)}`;
        const contact = world.crm.seedContact({ name: `Form caller ${index}`, phone });
        const plan: CallPlan = {
          callId: uniqueId('race'),
          direction: 'inbound',
          customerPhone: phone,
          linePhone: '+12025550100',
          agentId: 'agent-1',
          outcome: 'answered',
          startedAt: new Date(),
          ringSeconds: 2,
          talkSeconds: 80,
        };
        const [ringing, answered, ended] = pbxEvents(plan);
        assert.equal((await world.postSigned('pbx', ringing)).status, 202);
        assert.equal((await world.postSigned('pbx', answered)).status, 202);
        const form = { outcome: 'resolved', comment: 'Booked a demo', entity: { type: 'contacts', id: contact.id } };
        const [formResponse, endResponse, formAgain] = await Promise.all([
          world.postResult(`pbx:${plan.callId}`, form),
          world.postSigned('pbx', ended),
          world.postResult(`pbx:${plan.callId}`, form),
        ]);
        assert.deepEqual([formResponse.status, endResponse.status, formAgain.status], [202, 202, 202]);
        return { id: `pbx:${plan.callId}`, contactId: contact.id, phone };
      }),
    );
    for (const round of rounds) {
      const call = await world.waitForCall(round.id, isSettled);
      assert.deepEqual(call.crm.entity, { type: 'contacts', id: round.contactId });
      assert.equal(call.result?.outcome, 'resolved');
      const logged = world.crm.loggedCalls(round.id);
      assert.equal(logged.length, 1, 'one CRM call');
      assert.equal(logged[0]?.entity?.id, round.contactId);
      assert.equal(logged[0]?.result, 'resolved: Booked a demo');
      assert.equal(world.crm.incomingLeads(round.id, round.phone), 0, 'no second entity');
    }
  });

  it('the form before the first webhook, and after the end: still one workflow, one entity, one note', async () => {
    const phone = '+14155554100';
    const contact = world.crm.seedContact({ name: 'Early form', phone });
    const early: CallPlan = { callId: uniqueId('early'), direction: 'inbound', customerPhone: phone, linePhone: '+12025550100', agentId: 'agent-2', outcome: 'answered', startedAt: new Date(), ringSeconds: 1, talkSeconds: 20 };
    assert.equal((await world.postResult(`pbx:${early.callId}`, { outcome: 'resolved', entity: { type: 'contacts', id: contact.id } })).status, 202);
    for (const event of pbxEvents(early)) assert.equal((await world.postSigned('pbx', event)).status, 202);
    const late: CallPlan = { ...early, callId: uniqueId('late-form') };
    for (const event of pbxEvents(late)) assert.equal((await world.postSigned('pbx', event)).status, 202);
    assert.equal((await world.postResult(`pbx:${late.callId}`, { outcome: 'callback_requested', entity: { type: 'contacts', id: contact.id } })).status, 202);
    for (const id of [`pbx:${early.callId}`, `pbx:${late.callId}`]) {
      const call = await world.waitForCall(id, isSettled);
      assert.equal(call.disposition, 'answered');
      assert.equal(world.crm.loggedCalls(id).length, 1);
      assert.equal(call.crm.entity?.id, contact.id);
    }
  });

  it('a voice-AI end that overtakes its start past the CRM sync still logs the call under the caller, once', async () => {
    const phone = '+14155554200';
    const contact = world.crm.seedContact({ name: 'Start came late', phone });
    const plan: VoiceAiPlan = { callId: uniqueId('late-start'), agentId: 'ai-agent-9', direction: 'inbound', customerPhone: phone, agentPhone: '+12025550101', startedAt: new Date(Date.now() - 120_000), durationSeconds: 45, satisfaction: 5, resolved: true };
    const [start, end, analytics] = voiceAiEvents(plan);
    const id = `voice-ai:${plan.callId}`;
    assert.equal((await world.postSigned('voice-ai', end)).status, 202);
    assert.equal((await world.postSigned('voice-ai', analytics)).status, 202);
    // The sync ran before the start came: voice-AI ends carry no caller number.
    const early = await world.waitForCall(id, (snapshot) => snapshot.crmSyncState === 'skipped');
    assert.equal(early.crm.skippedReason, 'caller_id_withheld');
    assert.equal((await world.postSigned('voice-ai', start)).status, 202);
    const call = await world.waitForCall(id, isSettled);
    assert.equal(call.crmSyncState, 'synced', JSON.stringify(call.crm));
    assert.deepEqual(call.crm.entity, { type: 'contacts', id: contact.id });
    assert.equal(world.crm.loggedCalls(id).length, 1);
  });

  it('calls during a CRM outage are journaled at once, then enriched and logged exactly once after recovery', async () => {
    world.crm.setOutage(true);
    const plans: CallPlan[] = Array.from({ length: 4 }, (_, index) => ({
      callId: uniqueId('outage'),
      direction: 'inbound',
      customerPhone: `+1415555${String(5000 + index)}`,
      linePhone: '+12025550100',
      agentId: 'agent-3',
      outcome: index === 3 ? 'missed' : 'answered',
      startedAt: new Date(),
      ringSeconds: 2,
      talkSeconds: 50,
    }));
    world.crm.seedContact({ name: 'Known during outage', phone: plans[0]?.customerPhone ?? '' });
    for (const plan of plans) for (const event of pbxEvents(plan)) assert.equal((await world.postSigned('pbx', event)).status, 202);

    for (const plan of plans) {
      const call = await world.waitForCall(`pbx:${plan.callId}`, (snapshot) => snapshot.status === 'ended' && snapshot.crmSyncState === 'pending');
      assert.equal(call.enrichmentState, 'pending', 'journaled with enrichment pending while the CRM is down');
      assert.equal(call.disposition, plan.outcome);
      // The workflow upserts its search attributes in the task after the journal write returns.
      const attributes = async () => {
        const described = await world.client.workflow.getHandle(call.workflowId).describe();
        return [described.typedSearchAttributes.get(searchAttributes.enrichmentState), described.typedSearchAttributes.get(searchAttributes.crmSyncState)];
      };
      await waitUntil(async () => (await attributes()).join() === 'pending,pending', 30_000, 'search attributes never showed the pending state').catch(async (error: unknown) => {
        assert.fail(`${(error as Error).message}: ${(await attributes()).join()}`);
      });
    }
    const refusedDuringOutage = world.crm.requests();
    assert.ok(refusedDuringOutage > 0, 'the workers kept trying');

    world.crm.setOutage(false);
    for (const plan of plans) {
      const id = `pbx:${plan.callId}`;
      const call = await world.waitForCall(id, isSettled, 120_000);
      assert.notEqual(call.enrichmentState, 'pending');
      assert.equal(call.crmSyncState, 'synced', JSON.stringify(call.crm));
      assert.equal(world.crm.loggedCalls(id).length, 1, `${id}: one CRM call after recovery`);
      assert.ok(world.crm.incomingLeads(id, plan.customerPhone) <= 1);
    }
    assert.equal((await world.call(`pbx:${plans[0]?.callId}`))?.enrichmentState, 'done');
  });

  // HubSpot's counterpart (its search lags behind writes) is in hubspot-crm.test.ts.
  if (crmKind === 'kommo') it('an attempt that dies after Kommo stored the call is resolved by looking it up, not by logging again', async () => {
    // A Kommo of its own, so the worker's traffic does not share this test's rate limit.
    const sandbox = await startKommoSandbox({ token: 'kommo-crash-token' });
    const phone = '+14155556000';
    sandbox.seedContact({ name: 'Crash test', phone });
    const kommo = createKommoAdapter({ kind: 'kommo', baseUrl: sandbox.url, token: 'kommo-crash-token', source: 'Switchboard', rateLimitPerSecond: 6, callbackDueMinutes: 60 });
    const callId = `pbx:${uniqueId('crash')}`;
    const call = { callId, direction: 'inbound' as const, customerPhone: phone, startedAt: new Date().toISOString(), durationSeconds: 30, answered: true, status: 4 };
    const once = () =>
      performOnce(world.db, {
        tenantId: world.tenantId,
        key: `crm:call:${callId}`,
        kind: 'crm_call',
        lookup: () => kommo.findLoggedCall(call),
        perform: async () => {
          const logged = await kommo.logCall(call);
          if (!logged) throw new Error('not attached');
          return logged;
        },
      });
    // The first attempt reaches Kommo, then "crashes" before the ledger hears back.
    await assert.rejects(
      performOnce(world.db, {
        tenantId: world.tenantId,
        key: `crm:call:${callId}`,
        kind: 'crm_call',
        perform: async () => {
          await kommo.logCall(call);
          throw new Error('worker died');
        },
      }),
      /worker died/,
    );
    const retried = await once();
    assert.equal(retried.via, 'recovered');
    const again = await once();
    assert.equal(again.via, 'already_done');
    assert.equal(sandbox.state().notes.filter((note) => note.params.uniq === callId).length, 1);
    await sandbox.stop();
  });
});
