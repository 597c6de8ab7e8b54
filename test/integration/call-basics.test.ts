import assert from 'node:assert/strict';
import { pbxEvents } from '../../sandboxes/pbx-simulator.js';
import type { CallPlan } from '../../sandboxes/pbx-simulator.js';
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
});
