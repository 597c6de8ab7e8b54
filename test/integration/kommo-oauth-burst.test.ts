/**
 * Kommo OAuth 2.0 in the whole deployment (API, worker, Temporal, PostgreSQL, Kommo sandbox): the
 * operator authorizes with `npm run cli -- kommo-authorize`, then an access token expires while a
 * burst of calls is being logged. Kommo renews with the refresh token and rotates it
 * (developers.kommo.com/reference/get-token; the PHP library renews once on a 401,
 * amocrm-api-php src/AmoCRM/Client/AmoCRMApiRequest.php).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { pbxEvents } from '../../sandboxes/pbx-simulator.js';
import type { CallPlan } from '../../sandboxes/pbx-simulator.js';
import type { CallSnapshot } from '../../shared/calls.js';
import { waitUntil } from '../../stack/processes.js';
import { startCallWorld } from '../harness/call-world.js';
import type { CallWorld } from '../harness/call-world.js';
import { runCli } from '../harness/cli.js';
import { uniqueId } from '../harness/resources.js';

const oauthApp = { clientId: 'burst-client', clientSecret: 'burst-secret', redirectUri: 'https://switchboard.example/kommo/callback' };

const isSettled = (call: CallSnapshot): boolean =>
  call.status === 'completed' && call.enrichmentState !== 'pending' && call.crmSyncState !== 'waiting' && call.crmSyncState !== 'pending';

describe('Kommo OAuth under a burst of calls', function () {
  this.timeout(300_000);
  let world: CallWorld;
  let authorized: { code: number | null; output: string };
  before(async () => {
    const tokenKey = randomBytes(32).toString('base64');
    world = await startCallWorld({
      kommo: { oauth: oauthApp },
      kommoCrm: (baseUrl) => ({ kind: 'kommo', baseUrl, source: 'Switchboard', oauth: { ...oauthApp, tokenKey, refreshAheadSeconds: 0 } }),
    });
    // What the operator does once, with the code Kommo sent to the redirect URI.
    authorized = await runCli(world.config, ['kommo-authorize', '--tenant', world.tenantId, '--code', world.kommo.authorize()]);
  });
  after(async () => {
    await world.stop();
  });

  it('the CLI exchanges an authorization code and stores the tokens encrypted, printing none', async () => {
    const { code, output } = authorized;
    assert.equal(code, 0, output);
    assert.match(output, /stored Kommo tokens for tenant .* \(encrypted; access token valid until .*, renewed automatically\)/);
    const row = await world.db.query<{ n: number }>('SELECT count(*)::int AS n FROM crm_tokens WHERE tenant_id = $1 AND crm = $2', [world.tenantId, 'kommo']);
    assert.equal(row.rows[0]?.n, 1);
    assert.equal(world.kommo.state().oauth.granted.authorization_code, 1);

    const reused = await runCli(world.config, ['kommo-authorize', '--tenant', world.tenantId, '--code', 'not-a-code']);
    assert.equal(reused.code, 1);
    assert.match(reused.output, /Kommo refused the code/);
  });

  it('an access token that expires in the middle of a burst is renewed once, and every call is logged exactly once', async () => {
    const plans: CallPlan[] = Array.from({ length: 16 }, (_, index) => ({
      callId: uniqueId(`oauth-${index}`),
      direction: 'inbound',
      customerPhone: `+1415555${String(8000 + index)}`,
      linePhone: '+12025550100',
      agentId: 'agent-1',
      outcome: 'answered',
      startedAt: new Date(Date.now() - 120_000),
      ringSeconds: 2,
      talkSeconds: 40 + index,
    }));
    // Half are known contacts; the others become incoming leads.
    for (const [index, plan] of plans.entries()) if (index % 2 === 0) world.kommo.seedContact({ name: `OAuth caller ${index}`, phone: plan.customerPhone });
    const ids = plans.map((plan) => `pbx:${plan.callId}`);
    const notesOf = (id: string): number => world.kommo.state().notes.filter((note) => note.params.uniq === id).length;

    for (const plan of plans) for (const event of pbxEvents(plan)) assert.equal((await world.postSigned('pbx', event)).status, 202);
    // Some calls are logged, the rest are still on their way: now the access token stops working.
    await waitUntil(() => Promise.resolve(ids.filter((id) => notesOf(id) > 0).length >= 3), 120_000, 'no call was logged before the expiry');
    const loggedBefore = ids.filter((id) => notesOf(id) > 0).length;
    world.kommo.expireAccessTokens();

    for (const id of ids) {
      const call = await world.waitForCall(id, isSettled, 240_000);
      assert.equal(call.crmSyncState, 'synced', `${id}: ${JSON.stringify(call.crm)}`);
    }
    assert.ok(loggedBefore < ids.length, 'the expiry came in the middle of the burst');
    const state = world.kommo.state();
    for (const [index, id] of ids.entries()) {
      assert.equal(notesOf(id), 1, `${id}: shown once`);
      assert.equal(state.unsorted.filter((lead) => lead.metadata.uniq === id).length, index % 2 === 0 ? 0 : 1, `${id}: incoming leads`);
    }
    assert.equal(state.oauth.granted.refresh_token, 1, 'one renewal for the whole burst');
    assert.deepEqual(state.oauth.refused.filter((refusal) => refusal.grant === 'refresh_token'), [], 'no spent refresh token was sent');
    const row = await world.db.query<{ version: number; refreshed_at: Date | null }>('SELECT version, refreshed_at FROM crm_tokens WHERE tenant_id = $1 AND crm = $2', [world.tenantId, 'kommo']);
    assert.equal(row.rows[0]?.version, 2, 'the rotated pair was stored');
    assert.ok(row.rows[0]?.refreshed_at);
  });
});
