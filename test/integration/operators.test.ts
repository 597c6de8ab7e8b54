/**
 * Operator identities: tokens made by the CLI and stored hashed, each with a name and a role and
 * revocable; dashboard sessions that end on logout or with their token; the sign-in rate limit; the
 * Origin check on cookie-authenticated POSTs; and the operator's name taken from the credential.
 */
import assert from 'node:assert/strict';
import { pbxEvents } from '../../sandboxes/pbx-simulator.js';
import type { CallPlan } from '../../sandboxes/pbx-simulator.js';
import { startCallWorld } from '../harness/call-world.js';
import type { CallWorld } from '../harness/call-world.js';
import { runCli } from '../harness/cli.js';
import { uniqueId } from '../harness/resources.js';

const tokenPattern = /^sbo_[A-Za-z0-9_-]{43}$/m;

describe('operator identities', function () {
  this.timeout(180_000);
  let world: CallWorld;
  before(async () => {
    world = await startCallWorld({ crm: false });
  });
  after(async () => {
    await world.stop();
  });

  const url = (path: string): string => `${world.api.baseUrl}${path}`;
  const calls = (): string => `/api/${world.tenantId}/calls`;

  async function addOperator(name: string, role: string): Promise<string> {
    const added = await runCli(world.config, ['operators', 'add', '--tenant', world.tenantId, '--name', name, '--role', role]);
    assert.equal(added.code, 0, added.output);
    const token = tokenPattern.exec(added.output)?.[0];
    assert.ok(token, `a token in: ${added.output}`);
    return token;
  }

  async function signIn(token: string, address?: string): Promise<Response> {
    return fetch(url('/dashboard/login'), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...(address ? { 'x-forwarded-for': address } : {}) },
      body: new URLSearchParams({ tenant: world.tenantId, token }).toString(),
      redirect: 'manual',
    });
  }

  const cookieOf = (response: Response): string => (response.headers.get('set-cookie') ?? '').split(';')[0] ?? '';

  function endedCall(): CallPlan {
    return { callId: uniqueId('op'), direction: 'inbound', customerPhone: '+14155550177', linePhone: '+12025550100', agentId: 'agent-1', outcome: 'answered', startedAt: new Date(), ringSeconds: 2, talkSeconds: 30 };
  }

  it('stores a new token only as its hash, lists it by name and role, and a revoked token stops working at once', async () => {
    const token = await addOperator('Dana Rep', 'viewer');
    const stored = await world.db.query<{ name: string; role: string; token_sha256: Buffer }>(`SELECT name, role, token_sha256 FROM operator_tokens WHERE tenant_id = $1`, [world.tenantId]);
    assert.deepEqual(stored.rows.map((row) => [row.name, row.role]), [['Dana Rep', 'viewer']]);
    for (const row of stored.rows) assert.ok(!row.token_sha256.includes(Buffer.from(token)), 'the token itself is not stored');
    const dump = await world.db.query<{ dump: string }>(`SELECT string_agg(t::text, ' ') AS dump FROM operator_tokens t`);
    assert.ok(!(dump.rows[0]?.dump ?? '').includes(token.slice(4)));

    assert.equal((await fetch(url(calls()), { headers: { authorization: `Bearer ${token}` } })).status, 200);
    const listed = await runCli(world.config, ['operators', 'list', '--tenant', world.tenantId]);
    assert.match(listed.output, /Dana Rep\tviewer/);
    assert.ok(!listed.output.includes(token), 'list never prints a token');
    const again = await runCli(world.config, ['operators', 'add', '--tenant', world.tenantId, '--name', 'Dana Rep', '--role', 'admin']);
    assert.equal(again.code, 1, 'one live token per name');

    const session = cookieOf(await signIn(token));
    assert.equal((await fetch(url(calls()), { headers: { cookie: session } })).status, 200);
    const revoked = await runCli(world.config, ['operators', 'revoke', '--tenant', world.tenantId, '--name', 'Dana Rep']);
    assert.equal(revoked.code, 0, revoked.output);
    assert.match(revoked.output, /ended 1 dashboard session/);
    const refused = await fetch(url(calls()), { headers: { authorization: `Bearer ${token}` } });
    assert.equal(refused.status, 401);
    assert.equal(((await refused.json()) as { error: string }).error, 'invalid_token');
    assert.equal((await fetch(url(calls()), { headers: { cookie: session } })).status, 401, 'its session ended with it');
  });

  it('a viewer reads but may not act; the operator named in the journal is the credential\'s, never the body\'s', async () => {
    const viewer = await addOperator('Val Viewer', 'viewer');
    const agent = await addOperator('Otto Operator', 'operator');
    const call = endedCall();
    for (const event of pbxEvents(call)) assert.equal((await world.postSigned('pbx', event)).status, 202);
    const callId = `pbx:${call.callId}`;
    const form = JSON.stringify({ outcome: 'resolved', comment: 'sorted', submittedBy: 'Mallory' });
    const post = (token: string) => fetch(url(`/api/${world.tenantId}/calls/${encodeURIComponent(callId)}/result`), { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: form });

    const refused = await post(viewer);
    assert.equal(refused.status, 403);
    assert.equal(((await refused.json()) as { error: string }).error, 'insufficient_role');
    assert.equal((await post(agent)).status, 202);
    const logged = await world.waitForCall(callId, (snapshot) => snapshot.result !== undefined);
    assert.equal(logged.result?.submittedBy, 'Otto Operator');
  });

  it('a cookie-authenticated POST must come from our own origin; logging out ends the session on the server', async () => {
    const token = await addOperator('Sam Session', 'operator');
    const session = cookieOf(await signIn(token));
    const call = endedCall();
    for (const event of pbxEvents(call)) assert.equal((await world.postSigned('pbx', event)).status, 202);
    const resultUrl = url(`/api/${world.tenantId}/calls/${encodeURIComponent(`pbx:${call.callId}`)}/result`);
    const post = (headers: Record<string, string>) => fetch(resultUrl, { method: 'POST', headers: { cookie: session, 'content-type': 'application/json', ...headers }, body: JSON.stringify({ outcome: 'resolved' }) });

    for (const origin of [undefined, 'https://evil.example']) {
      const refused = await post(origin ? { origin } : {});
      assert.equal(refused.status, 403, `origin ${origin ?? '(none)'}`);
      assert.equal(((await refused.json()) as { error: string }).error, 'forbidden_origin');
    }
    assert.equal((await post({ origin: world.api.baseUrl })).status, 202);

    const logoutElsewhere = await fetch(url('/dashboard/logout'), { method: 'POST', headers: { cookie: session, origin: 'https://evil.example' }, redirect: 'manual' });
    assert.equal(logoutElsewhere.status, 403, 'another site cannot sign the operator out');
    const logout = await fetch(url('/dashboard/logout'), { method: 'POST', headers: { cookie: session, origin: world.api.baseUrl }, redirect: 'manual' });
    assert.equal(logout.status, 303);
    const after = await fetch(url(calls()), { headers: { cookie: session } });
    assert.equal(after.status, 401, 'the old cookie no longer works, even if the browser kept it');
  });

  it('limits failed sign-ins per address, whatever X-Forwarded-For claims, and then refuses even the right token for a while', async () => {
    const token = await addOperator('Lee Login', 'viewer');
    for (let attempt = 1; attempt <= 5; attempt++) {
      const wrong = await signIn(`wrong-${attempt}`, `203.0.113.${attempt}`);
      assert.equal(wrong.status, 303, `attempt ${attempt} is only refused`);
      assert.match(wrong.headers.get('location') ?? '', /error=invalid/);
    }
    const limited = await signIn(token, '198.51.100.7');
    assert.equal(limited.status, 429);
    assert.ok(Number(limited.headers.get('retry-after')) > 0);
    assert.equal(((await limited.json()) as { error: string }).error, 'too_many_attempts');
    // Bearer tokens are not sign-ins: the API keeps answering the operator.
    assert.equal((await fetch(url(calls()), { headers: { authorization: `Bearer ${token}` } })).status, 200);
    await world.db.query(`DELETE FROM operator_login_failures WHERE tenant_id = $1`, [world.tenantId]);
  });
});
