import assert from 'node:assert/strict';
import { pbxEvents, voiceAiEvents } from '../../sandboxes/pbx-simulator.js';
import type { CallPlan } from '../../sandboxes/pbx-simulator.js';
import { searchAttributes } from '../../shared/search-attributes.js';
import { waitUntil } from '../../stack/processes.js';
import { callStateQuery } from '../../workflows/call.js';
import { startCallWorld } from '../harness/call-world.js';
import type { CallWorld } from '../harness/call-world.js';
import { uniqueId } from '../harness/resources.js';

describe('a call from PBX webhooks to the journal and the CRM', function () {
  this.timeout(120_000);
  let world: CallWorld;
  before(async () => {
    world = await startCallWorld();
  });
  after(async () => {
    await world.stop();
  });

  it('journals an answered inbound call, enriches it and logs it in Kommo once', async () => {
    const contact = world.kommo.seedContact({ name: 'Ada Lovelace', phone: '+1 (415) 555-0142', company: 'Analytical Engines' });
    const plan: CallPlan = {
      callId: uniqueId('pbx'),
      direction: 'inbound',
      customerPhone: '415-555-0142',
      linePhone: '+12025550100',
      agentId: 'agent-7',
      outcome: 'answered',
      startedAt: new Date(),
      ringSeconds: 4,
      talkSeconds: 95,
    };
    for (const event of pbxEvents(plan)) {
      const response = await world.postSigned('pbx', event);
      assert.equal(response.status, 202, await response.text());
    }
    const callId = `pbx:${plan.callId}`;
    const call = await world.waitForCall(callId, (snapshot) => snapshot.status === 'completed');
    assert.equal(call.customerPhone, '+14155550142');
    assert.equal(call.disposition, 'answered');
    assert.equal(call.durationSeconds, 95);
    assert.equal(call.waitSeconds, 4);
    assert.equal(call.agentId, 'agent-7');
    assert.equal(call.enrichmentState, 'done');
    assert.equal(call.enrichment?.contact?.id, contact.id);
    assert.equal(call.enrichment?.account?.name, 'Analytical Engines');
    assert.equal(call.crmSyncState, 'synced');
    assert.deepEqual(call.crm.entity, { type: 'contacts', id: contact.id });
    const notes = world.kommo.state().notes.filter((note) => note.params.uniq === callId);
    assert.equal(notes.length, 1);
    assert.equal(notes[0]?.note_type, 'call_in');
    assert.equal(notes[0]?.params.call_status, 4);
  });

  it('is readable in the Temporal Web UI: summary, details, search attributes without phone numbers, and a state query', async () => {
    const plan: CallPlan = {
      callId: uniqueId('ui'),
      direction: 'outbound',
      customerPhone: '+14155550143',
      linePhone: '+12025550100',
      agentId: 'agent-2',
      outcome: 'answered',
      startedAt: new Date(),
      ringSeconds: 1,
      talkSeconds: 10,
    };
    const [ringing, answered] = pbxEvents(plan);
    await world.postSigned('pbx', ringing);
    await world.postSigned('pbx', answered);
    const callId = `pbx:${plan.callId}`;
    const journaled = await world.waitForCall(callId, (snapshot) => snapshot.status === 'in_progress');
    const handle = world.client.workflow.getHandle(journaled.workflowId);
    // The search attributes are upserted in the workflow task after the journal write returns.
    let description = await handle.describe();
    await waitUntil(async () => (description = await handle.describe()).typedSearchAttributes.get(searchAttributes.callStatus) === 'in_progress', 30_000, 'CallStatus never became in_progress').catch(() => undefined);
    assert.equal(await description.staticSummary(), 'Outbound call via pbx · Test Co');
    assert.match((await description.staticDetails()) ?? '', new RegExp(`\\\`${callId}\\\``));
    const attributes = description.typedSearchAttributes;
    assert.equal(attributes.get(searchAttributes.tenant), world.tenantId);
    assert.equal(attributes.get(searchAttributes.callStatus), 'in_progress');
    assert.equal(attributes.get(searchAttributes.callDirection), 'outbound');
    assert.equal(attributes.get(searchAttributes.callProvider), 'pbx');
    assert.doesNotMatch(JSON.stringify(description.raw.workflowExecutionInfo?.searchAttributes ?? {}), /4155550143/);
    const metadata = await handle.query<{ currentDetails?: string }>('__temporal_workflow_metadata');
    assert.match(metadata.currentDetails ?? '', /\*\*in_progress\*\*/);
    assert.match(metadata.currentDetails ?? '', /\+14•••43/);
    assert.doesNotMatch(metadata.currentDetails ?? '', /4155550143/);
    const state = await handle.query(callStateQuery);
    assert.equal(state.status, 'in_progress');
    assert.equal(state.agentId, 'agent-2');
  });

  it('runs the outcome actions of a voice-AI call: ticket, Slack alerts, follow-up e-mail, reporting facts', async () => {
    const callId = uniqueId('ai');
    const events = voiceAiEvents({
      callId,
      agentId: 'ai-agent-1',
      direction: 'inbound',
      customerPhone: '+14155550199', // on the tenant's VIP list
      agentPhone: '+12025550101',
      startedAt: new Date(),
      durationSeconds: 140,
      satisfaction: 2,
      resolved: false,
      sentiment: 'negative',
      issueType: 'Billing',
      transferRequested: true,
      email: 'caller@example.org',
    });
    for (const event of events) assert.equal((await world.postSigned('voice-ai', event)).status, 202);
    const id = `voice-ai:${callId}`;
    const call = await world.waitForCall(id, (snapshot) => snapshot.status === 'completed');

    const ticket = world.ticketing.state().tickets.find((item) => item.external_id === `switchboard:${world.tenantId}:${id}`);
    assert.ok(ticket, 'a ticket for the unresolved call');
    assert.equal(ticket.subject, 'Billing (unresolved call)');
    assert.equal(ticket.priority, 'high');
    assert.equal(ticket.queue, 'Billing');
    assert.match(ticket.description, /Caller asked about Billing/);
    assert.equal(call.actions.ticket?.id, ticket.id);

    const alerts = world.slack.state().messages.filter((message) => (message.text ?? '').includes(id));
    assert.deepEqual(alerts.map((message) => message.path).sort(), ['/services/T1/B1/alerts', '/services/T1/B1/support', '/services/T1/B1/vip']);
    assert.ok(alerts.every((message) => !(message.text ?? '').includes('4155550199')), 'no raw phone number in Slack');

    const mail = world.smtp.state().messages.filter((message) => message.to.includes('caller@example.org'));
    assert.equal(mail.length, 1);
    assert.match(mail[0]?.subject ?? '', /sorry/i);
    assert.ok(mail[0]?.to.includes('escalations@test.example'), 'the apology is copied for escalation');
    assert.equal(call.actions.email?.template, 'apology_escalation');

    const facts = await world.db.query<{ disposition: string; satisfaction: number; resolved: boolean; issue_type: string; transcript_text: string; metrics: Record<string, number>; variables: Record<string, string> }>(
      'SELECT disposition, satisfaction, resolved, issue_type, transcript_text, metrics, variables FROM reporting_call_facts WHERE tenant_id = $1 AND call_id = $2',
      [world.tenantId, id],
    );
    const row = facts.rows[0];
    assert.ok(row);
    assert.equal(row.disposition, 'answered');
    assert.equal(row.satisfaction, 2);
    assert.equal(row.resolved, false);
    assert.equal(row.issue_type, 'Billing');
    assert.match(row.transcript_text, /^agent: Thanks for calling/);
    assert.deepEqual(row.metrics, { talk_ratio: 0.55 });
    assert.equal(row.variables.plan, 'pro');
  });

  it('serves the journal: search with filters and paging, and one call with its events', async () => {
    const phone = '+14155550150';
    const plans = Array.from({ length: 3 }, (_, index): CallPlan => ({
      callId: uniqueId(`page-${index}`),
      direction: 'inbound',
      customerPhone: phone,
      linePhone: '+12025550100',
      agentId: 'agent-pager',
      outcome: index === 2 ? 'missed' : 'answered',
      startedAt: new Date(Date.now() - (3 - index) * 60_000),
      ringSeconds: 2,
      talkSeconds: 20,
    }));
    for (const plan of plans) for (const event of pbxEvents(plan)) await world.postSigned('pbx', event);
    for (const plan of plans) await world.waitForCall(`pbx:${plan.callId}`, (snapshot) => snapshot.status === 'completed');

    type Page = { calls: Array<{ callId: string; disposition: string }>; nextCursor: string | null };
    const first = (await (await world.operatorGet(`/api/${world.tenantId}/calls?phone=${encodeURIComponent('(415) 555-0150')}&limit=2`)).json()) as Page;
    assert.deepEqual(first.calls.map((item) => item.callId), [`pbx:${plans[2]?.callId}`, `pbx:${plans[1]?.callId}`]);
    assert.ok(first.nextCursor);
    const second = (await (await world.operatorGet(`/api/${world.tenantId}/calls?phone=%2B14155550150&limit=2&cursor=${first.nextCursor}`)).json()) as Page;
    assert.deepEqual(second.calls.map((item) => item.callId), [`pbx:${plans[0]?.callId}`]);
    assert.equal(second.nextCursor, null);

    const missed = (await (await world.operatorGet(`/api/${world.tenantId}/calls?phone=%2B14155550150&disposition=missed`)).json()) as Page;
    assert.deepEqual(missed.calls.map((item) => item.callId), [`pbx:${plans[2]?.callId}`]);
    const since = new Date(Date.now() - 150_000).toISOString();
    const recent = (await (await world.operatorGet(`/api/${world.tenantId}/calls?phone=%2B14155550150&from=${encodeURIComponent(since)}`)).json()) as Page;
    assert.deepEqual(recent.calls.map((item) => item.callId), [`pbx:${plans[2]?.callId}`, `pbx:${plans[1]?.callId}`]);
    const byAgent = (await (await world.operatorGet(`/api/${world.tenantId}/calls?agent=agent-pager&direction=inbound`)).json()) as Page;
    assert.deepEqual(byAgent.calls.map((item) => item.callId), [`pbx:${plans[1]?.callId}`, `pbx:${plans[0]?.callId}`]);
    const bad = await world.operatorGet(`/api/${world.tenantId}/calls?status=flying`);
    assert.equal(bad.status, 422);

    const detail = (await (await world.operatorGet(`/api/${world.tenantId}/calls/${encodeURIComponent(`pbx:${plans[0]?.callId}`)}`)).json()) as {
      call: { status: string; crm: { noteId?: number; incomingLeadId?: number }; enrichmentState: string };
      events: Array<{ type: string }>;
    };
    assert.equal(detail.call.status, 'completed');
    assert.deepEqual(detail.events.map((event) => event.type), ['call.ringing', 'call.answered', 'call.ended']);
    // Logged in the CRM: a call note, or (for whichever of these calls from an unknown number synced
    // first) the incoming lead Kommo created with the call event on it.
    assert.ok(detail.call.crm.noteId ?? detail.call.crm.incomingLeadId, JSON.stringify(detail.call.crm));
    assert.equal((await world.operatorGet(`/api/${world.tenantId}/calls/pbx:nope`)).status, 404);
  });
});
