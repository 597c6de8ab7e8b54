import assert from 'node:assert/strict';
import { WorkflowNotFoundError } from '@temporalio/client';
import { deterministicWav } from '../../sandboxes/recordings.js';
import { pbxEvents, signedJsonRequest, voiceAiEvents } from '../../sandboxes/pbx-simulator.js';
import { switchboardSigningSecret } from '../../security/secrets.js';
import { leadWorkflowId } from '../../shared/leads.js';
import { waitUntil } from '../../stack/processes.js';
import { startCallWorld } from '../harness/call-world.js';
import type { CallWorld } from '../harness/call-world.js';
import { runCli } from '../harness/cli.js';
import { uniqueId } from '../harness/resources.js';

/** Every place in the database where any of these (PostgreSQL, case-insensitive) patterns occurs: "table.column". */
async function whereStored(world: CallWorld, pattern: string): Promise<string[]> {
  const columns = await world.db.query<{ table_name: string; column_name: string; data_type: string }>(
    `SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c
       JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE'
      WHERE c.table_schema = 'public' AND c.data_type IN ('text', 'character varying', 'jsonb', 'json', 'bytea', 'ARRAY')`,
  );
  const found: string[] = [];
  for (const { table_name: table, column_name: column, data_type: type } of columns.rows) {
    const asText = type === 'bytea' ? `encode("${column}", 'escape')` : `"${column}"::text`;
    const hits = await world.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM "${table}" WHERE ${asText} ~* $1`, [pattern]);
    if ((hits.rows[0]?.n ?? 0) > 0) found.push(`${table}.${column}`);
  }
  return found;
}

/** The counts `erase` printed, by label. */
function countsOf(output: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const match of output.matchAll(/^ {2}(.+?)\s{2,}(\d+)$/gm)) counts.set(match[1] ?? '', Number(match[2]));
  return counts;
}

/** `npm run cli -- erase --tenant <world's tenant> …`, as its own process. */
const erase = (world: CallWorld, args: string[]): Promise<{ code: number | null; output: string }> => runCli(world.config, ['erase', '--tenant', world.tenantId, ...args]);

describe('erasure on request (npm run cli -- erase)', function () {
  this.timeout(300_000);
  let world: CallWorld;
  before(async () => {
    world = await startCallWorld();
  });
  after(async () => {
    await world.stop();
  });

  it('erases a caller and lead by phone from every table and from Temporal, reports masked counts, and a second run does nothing', async () => {
    const phone = '+14155550177';
    // Any spelling of the number, the name, the e-mail and the transcript's words.
    const person = ['4\\D{0,3}1\\D{0,3}5\\D{0,3}5\\D{0,3}5\\D{0,3}5\\D{0,3}0\\D{0,3}1\\D{0,3}7\\D{0,3}7', 'Grace Hopper', 'grace\\.hopper(@|%40)example\\.org', 'question about Compilers'].join('|');
    const leadId = uniqueId('L');
    const crm = signedJsonRequest(switchboardSigningSecret(world.tenant.secrets, 'crm'), {
      event_id: uniqueId('crm'),
      event: 'lead.created',
      lead_id: leadId,
      lead: { name: 'Grace Hopper', phone: '(415) 555-0177', email: 'grace.hopper@example.org', time_zone: 'America/New_York' },
    });
    assert.equal((await fetch(`${world.api.baseUrl}/webhooks/${world.tenantId}/crm`, { method: 'POST', headers: crm.headers, body: crm.body })).status, 202);
    await waitUntil(async () => (await world.db.query('SELECT 1 FROM leads WHERE tenant_id = $1 AND lead_id = $2', [world.tenantId, leadId])).rowCount === 1, 60_000, 'the lead was never journaled');

    // A voice-AI call with a transcript and an e-mail, and a PBX call with a recording, from the same number.
    const aiCallId = uniqueId('ai');
    const aiEvents = voiceAiEvents({ callId: aiCallId, agentId: 'ai-1', direction: 'inbound', customerPhone: '415-555-0177', agentPhone: '+12025550101', startedAt: new Date(), durationSeconds: 40, satisfaction: 4, resolved: true, sentiment: 'positive', issueType: 'Compilers', email: 'grace.hopper@example.org' });
    for (const event of aiEvents) assert.equal((await world.postSigned('voice-ai', event)).status, 202);
    const pbxCallId = uniqueId('pbx');
    const recordingUrl = world.recordings.put(`/recordings/${pbxCallId}.wav`, deterministicWav(1, pbxCallId), 'audio/wav');
    const plan = { callId: pbxCallId, direction: 'inbound' as const, customerPhone: phone, linePhone: '+12025550100', agentId: 'agent-1', outcome: 'answered' as const, startedAt: new Date(), ringSeconds: 1, talkSeconds: 5, recordingUrl };
    for (const event of pbxEvents(plan)) assert.equal((await world.postSigned('pbx', event)).status, 202);
    // A refused webhook naming the caller: kept with its raw body.
    const refused = await world.postSigned('pbx', { event_id: uniqueId('bad'), event: 'call.started', call_id: uniqueId('bad'), timestamp: 'yesterday', from: '+1 415 555 0177' });
    assert.ok(refused.status >= 400 && refused.status < 500, String(refused.status));
    const aiCall = await world.waitForCall(`voice-ai:${aiCallId}`, (call) => call.status === 'completed' && call.actions.email?.state === 'done');
    const pbxCall = await world.waitForCall(`pbx:${pbxCallId}`, (call) => call.status === 'completed' && call.recording?.stored === true);
    const workflowIds = [aiCall.workflowId, pbxCall.workflowId, leadWorkflowId(world.tenantId, leadId)];
    for (const workflowId of workflowIds) await world.client.workflow.getHandle(workflowId).describe();
    const before = await whereStored(world, person);
    for (const place of ['calls.customer_phone', 'calls.transcript', 'call_events.payload', 'leads.state', 'rejected_events.raw_body']) assert.ok(before.includes(place), `${place} holds the person before the erasure (${before.join(', ')})`);

    const first = await erase(world, ['--phone', '(415) 555-0177']);
    assert.equal(first.code, 0, first.output);
    assert.match(first.output, /phone \+14•••77/);
    assert.doesNotMatch(first.output, /5550177|555-0177/, 'the phone number is masked');
    const counts = countsOf(first.output);
    assert.equal(counts.get('calls anonymised (kept for reporting)'), 2, first.output);
    assert.equal(counts.get('leads deleted'), 1, first.output);
    assert.equal(counts.get('recordings deleted'), 1, first.output);
    assert.ok((counts.get('Temporal workflow runs deleted') ?? 0) >= 3, first.output);
    assert.ok((counts.get('call events deleted') ?? 0) >= 5, first.output);
    assert.ok((counts.get('lead timeline entries deleted') ?? 0) >= 1, first.output);
    assert.ok((counts.get('rejected webhooks deleted') ?? 0) >= 1, first.output);

    assert.deepEqual(await whereStored(world, person), [], 'nothing in the database names the person');
    const calls = await world.db.query<{ status: string; direction: string; duration_seconds: number }>('SELECT status, direction, duration_seconds FROM calls WHERE tenant_id = $1 ORDER BY call_id', [world.tenantId]);
    assert.deepEqual(calls.rows.map((row) => [row.status, row.direction]), [['completed', 'inbound'], ['completed', 'inbound']], 'the calls still count in reports');
    // Deletion is asynchronous; the server deletes a run only once its closing tasks are done.
    for (const workflowId of workflowIds) {
      await waitUntil(
        () => world.client.workflow.getHandle(workflowId).describe().then(() => false, (error: unknown) => error instanceof WorkflowNotFoundError),
        120_000,
        `${workflowId} is still in Temporal`,
      ).catch(async (error: unknown) => {
        const left = await world.client.workflow.getHandle(workflowId).describe();
        throw new Error(`${(error as Error).message}: run ${left.runId} ${left.status.name}, closed ${left.closeTime?.toISOString() ?? 'no'}; erase said:\n${first.output}`);
      });
    }

    for (const args of [['--phone', '+1 415 555 0177'], ['--lead', leadId]]) {
      const again = await erase(world, args);
      assert.equal(again.code, 0, again.output);
      assert.deepEqual([...countsOf(again.output).values()].filter((count) => count !== 0), [], again.output);
      assert.equal(countsOf(again.output).size, 11, again.output);
      assert.match(again.output, /nothing \(left\) to erase/);
    }
  });

  it('erases a lead by its id: its phone and e-mail go with it, and its running workflow is terminated and deleted', async () => {
    const leadId = uniqueId('L');
    const crm = signedJsonRequest(switchboardSigningSecret(world.tenant.secrets, 'crm'), {
      event_id: uniqueId('crm'),
      event: 'lead.created',
      lead_id: leadId,
      lead: { name: 'Alan Turing', phone: '+1 415 555 0188', email: 'alan.turing@example.org' },
    });
    assert.equal((await fetch(`${world.api.baseUrl}/webhooks/${world.tenantId}/crm`, { method: 'POST', headers: crm.headers, body: crm.body })).status, 202);
    await waitUntil(async () => (await world.db.query('SELECT 1 FROM leads WHERE tenant_id = $1 AND lead_id = $2', [world.tenantId, leadId])).rowCount === 1, 60_000, 'the lead was never journaled');
    const handle = world.client.workflow.getHandle(leadWorkflowId(world.tenantId, leadId));
    assert.equal((await handle.describe()).status.name, 'RUNNING');
    const person = ['4\\D{0,3}1\\D{0,3}5\\D{0,3}5\\D{0,3}5\\D{0,3}5\\D{0,3}0\\D{0,3}1\\D{0,3}8\\D{0,3}8', 'Alan Turing', 'alan\\.turing(@|%40)example\\.org'].join('|');
    assert.ok((await whereStored(world, person)).includes('leads.state'));

    const erased = await erase(world, ['--lead', leadId]);
    assert.equal(erased.code, 0, erased.output);
    assert.match(erased.output, new RegExp(`erased lead ${leadId} in tenant ${world.tenantId}:`));
    assert.doesNotMatch(erased.output, /5550188/);
    const counts = countsOf(erased.output);
    assert.equal(counts.get('leads deleted'), 1, erased.output);
    assert.equal(counts.get('Temporal workflow runs deleted'), 1, erased.output);
    assert.deepEqual(await whereStored(world, person), []);
    await waitUntil(() => handle.describe().then(() => false, (error: unknown) => error instanceof WorkflowNotFoundError), 120_000, 'the lead workflow is still in Temporal');
  });

  it('refuses a phone it cannot read, and a request that names nobody (exit code 2, nothing erased)', async () => {
    const unreadable = await erase(world, ['--phone', 'call me 5550123']);
    assert.equal(unreadable.code, 2, unreadable.output);
    assert.match(unreadable.output, /^--phone is not a phone number\nusage: npm run cli -- erase/m);
    const nobody = await erase(world, []);
    assert.equal(nobody.code, 2, nobody.output);
    assert.match(nobody.output, /choose whom to erase: --phone or --lead/);
  });
});
