/**
 * The webhook API over real HTTP: every kind of bad input is refused with a 4xx and kept; Twilio's
 * own signature scheme; recordings served with ranges; late events after a call's workflow has completed.
 */
import assert from 'node:assert/strict';
import { switchboardSignature } from '../../security/signatures.js';
import { deterministicWav } from '../../sandboxes/recordings.js';
import { pbxEvents, signedJsonRequest, signedTwilioRequest, twilioCallbacks, voiceAiEvents } from '../../sandboxes/pbx-simulator.js';
import type { CallPlan } from '../../sandboxes/pbx-simulator.js';
import { startApi } from '../harness/api.js';
import { startCallWorld } from '../harness/call-world.js';
import type { CallWorld } from '../harness/call-world.js';
import { uniqueId } from '../harness/resources.js';
import { getDevServer } from '../harness/temporal.js';

interface Refusal {
  error: string;
  message: string;
  details?: { fields?: Record<string, string> };
}

function plan(overrides: Partial<CallPlan> = {}): CallPlan {
  return {
    callId: uniqueId('pbx'),
    direction: 'inbound',
    customerPhone: '+14155550123',
    linePhone: '+12025550100',
    agentId: 'agent-1',
    outcome: 'answered',
    startedAt: new Date(),
    ringSeconds: 3,
    talkSeconds: 42,
    ...overrides,
  };
}

describe('call ingestion over HTTP', function () {
  this.timeout(120_000);
  let world: CallWorld;
  before(async () => {
    world = await startCallWorld();
  });
  after(async () => {
    await world.stop();
  });

  async function storedRejection(reason: string, marker: string): Promise<{ reason: string; http_status: number; raw_body: Buffer; source: string }> {
    const rows = await world.db.query<{ reason: string; http_status: number; raw_body: Buffer; source: string }>(
      `SELECT reason, http_status, raw_body, source FROM rejected_events WHERE reason = $1 AND position($2::bytea in raw_body) > 0`,
      [reason, Buffer.from(marker)],
    );
    assert.equal(rows.rows.length, 1, `one stored rejection ${reason} containing ${marker}`);
    return rows.rows[0] as { reason: string; http_status: number; raw_body: Buffer; source: string };
  }

  describe('bad input gets a 4xx with a machine-readable reason and is stored with its raw body', () => {
    const secret = 'test-webhook-secret';
    type Case = { name: string; status: number; reason: string; send: (marker: string) => Promise<Response> };
    const pbxBody = (marker: string, overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
      event_id: marker,
      event: 'call.ringing',
      call_id: marker,
      timestamp: new Date().toISOString(),
      direction: 'inbound',
      from: '+14155550100',
      ...overrides,
    });
    const post = (path: string, body: string, headers: Record<string, string>) =>
      fetch(`${world.api.baseUrl}${path}`, { method: 'POST', headers, body });
    const signed = (body: string, nowSeconds = Math.floor(Date.now() / 1000)) => {
      const request = signedJsonRequest(secret, JSON.parse(body) as unknown, nowSeconds);
      return { ...request.headers };
    };
    const cases: Case[] = [
      { name: 'an unknown tenant', status: 404, reason: 'unknown_tenant', send: (m) => post('/webhooks/no-such-tenant/pbx', JSON.stringify(pbxBody(m)), signed(JSON.stringify(pbxBody(m)))) },
      { name: 'an unknown provider', status: 404, reason: 'unknown_provider', send: (m) => post(`/webhooks/${world.tenantId}/fax`, JSON.stringify(pbxBody(m)), signed(JSON.stringify(pbxBody(m)))) },
      { name: 'a missing signature', status: 401, reason: 'missing_signature', send: (m) => post(`/webhooks/${world.tenantId}/pbx`, JSON.stringify(pbxBody(m)), { 'content-type': 'application/json' }) },
      {
        name: 'a bad signature',
        status: 401,
        reason: 'invalid_signature',
        send: (m) => {
          const body = JSON.stringify(pbxBody(m));
          return post(`/webhooks/${world.tenantId}/pbx`, body, { ...signed(body), 'x-switchboard-signature': `sha256=${'0'.repeat(64)}` });
        },
      },
      {
        name: 'a body changed after signing',
        status: 401,
        reason: 'invalid_signature',
        send: (m) => post(`/webhooks/${world.tenantId}/pbx`, JSON.stringify(pbxBody(m, { direction: 'outbound' })), signed(JSON.stringify(pbxBody(m)))),
      },
      {
        name: 'an old timestamp (replay)',
        status: 401,
        reason: 'stale_timestamp',
        send: (m) => {
          const body = JSON.stringify(pbxBody(m));
          return post(`/webhooks/${world.tenantId}/pbx`, body, signed(body, Math.floor(Date.now() / 1000) - 301));
        },
      },
      {
        name: 'malformed JSON',
        status: 400,
        reason: 'malformed_json',
        send: (m) => {
          const body = `{"event_id":"${m}", "event": `;
          const now = Math.floor(Date.now() / 1000);
          return post(`/webhooks/${world.tenantId}/pbx`, body, {
            'content-type': 'application/json',
            'x-switchboard-timestamp': String(now),
            'x-switchboard-signature': switchboardSignature(secret, now, body),
          });
        },
      },
      { name: 'an unknown event type', status: 422, reason: 'unknown_event_type', send: (m) => sendSigned('pbx', pbxBody(m, { event: 'call.teleported' })) },
      { name: 'wrong field types', status: 422, reason: 'invalid_payload', send: (m) => sendSigned('pbx', pbxBody(m, { event: 'call.ended', duration: 'long' })) },
      { name: 'a missing required field', status: 422, reason: 'invalid_payload', send: (m) => sendSigned('voice-ai', { event: 'call.end', call_id: m, agent_id: 'a', timestamp: Date.now() }) },
      { name: 'a phone number that is not one', status: 422, reason: 'invalid_phone_number', send: (m) => sendSigned('pbx', pbxBody(m, { from: '12' })) },
      {
        name: 'the wrong content type',
        status: 415,
        reason: 'unsupported_media_type',
        send: (m) => {
          const body = JSON.stringify(pbxBody(m));
          return post(`/webhooks/${world.tenantId}/pbx`, body, { ...signed(body), 'content-type': 'text/plain' });
        },
      },
      {
        name: 'a tampered Twilio callback',
        status: 401,
        reason: 'invalid_signature',
        send: (m) => {
          const path = `/webhooks/${world.tenantId}/twilio`;
          const params = { CallSid: m, CallStatus: 'ringing', From: '+14155550100', To: '+12025550100', Direction: 'inbound' };
          const request = signedTwilioRequest('test-twilio-token', `${world.config.api.publicUrl}${path}`, params);
          return post(path, request.body.replace('ringing', 'completed'), request.headers);
        },
      },
      {
        name: 'an unknown Twilio CallStatus',
        status: 422,
        reason: 'unknown_event_type',
        send: (m) => world.postTwilio({ CallSid: m, CallStatus: 'exploded', From: '+14155550100', To: '+12025550100' }),
      },
      {
        name: 'a call result without a token',
        status: 401,
        reason: 'missing_token',
        send: (m) => post(`/api/${world.tenantId}/calls/pbx:${m}/result`, JSON.stringify({ outcome: 'resolved', comment: m }), { 'content-type': 'application/json' }),
      },
      {
        name: 'a call result with a wrong token',
        status: 401,
        reason: 'invalid_token',
        send: (m) =>
          post(`/api/${world.tenantId}/calls/pbx:${m}/result`, JSON.stringify({ outcome: 'resolved', comment: m }), {
            'content-type': 'application/json',
            authorization: 'Bearer nope',
          }),
      },
      { name: 'a call result with an unknown outcome', status: 422, reason: 'invalid_payload', send: (m) => world.postResult(`pbx:${m}`, { outcome: 'teleported', comment: m }) },
      { name: 'a call result for a malformed call id', status: 400, reason: 'invalid_call_id', send: (m) => world.postResult(`nonsense-${m}`, { outcome: 'resolved', comment: m }) },
    ];

    async function sendSigned(provider: 'pbx' | 'voice-ai', body: unknown): Promise<Response> {
      return world.postSigned(provider, body);
    }

    for (const testCase of cases) {
      it(`refuses ${testCase.name} with ${testCase.status} ${testCase.reason}`, async () => {
        const marker = uniqueId('bad');
        const response = await testCase.send(marker);
        const body = (await response.json()) as Refusal;
        assert.equal(response.status, testCase.status, JSON.stringify(body));
        assert.equal(body.error, testCase.reason);
        assert.ok(body.message.length > 0);
        const stored = await storedRejection(testCase.reason, marker);
        assert.equal(stored.http_status, testCase.status);
      });
    }

    it('names the bad fields in the refusal', async () => {
      const response = await world.postSigned('pbx', pbxBody(uniqueId('bad'), { event: 'call.ended', duration: 'long', timestamp: 'yesterday' }));
      const body = (await response.json()) as Refusal;
      assert.equal(response.status, 422);
      assert.deepEqual(Object.keys(body.details?.fields ?? {}).sort(), ['duration', 'timestamp']);
    });

    it('refuses a body over 1 MB with 413 and keeps the record', async () => {
      const marker = uniqueId('big');
      const response = await fetch(`${world.api.baseUrl}/webhooks/${world.tenantId}/pbx`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-marker': marker },
        body: `{"pad":"${'x'.repeat(1_100_000)}"}`,
      });
      assert.equal(response.status, 413);
      assert.equal(((await response.json()) as Refusal).error, 'payload_too_large');
      const rows = await world.db.query(`SELECT 1 FROM rejected_events WHERE reason = 'payload_too_large' AND headers ->> 'x-marker' = $1`, [marker]);
      assert.equal(rows.rowCount, 1);
    });

    it('keeps answering after all of that', async () => {
      assert.equal((await fetch(`${world.api.baseUrl}/healthz`)).status, 200);
    });
  });

  it('accepts a Twilio callback signed with the auth token exactly as Twilio signs it', async () => {
    const callSid = `CA${uniqueId('x').replace(/\W/g, '')}`;
    const callbacks = twilioCallbacks({ ...plan({ callId: callSid }), accountSid: 'AC00000000000000000000000000000001' });
    for (const callback of callbacks) {
      const response = await world.postTwilio(callback);
      assert.equal(response.status, 202, await response.text());
    }
    const call = await world.waitForCall(`twilio:${callSid}`, (snapshot) => snapshot.status === 'completed');
    assert.equal(call.disposition, 'answered');
    assert.equal(call.durationSeconds, 42);
    assert.equal(call.customerPhone, '+14155550123');
  });

  // twilio-node validateRequest (src/webhooks/webhooks.ts) accepts a signature over the URL with and
  // without the default port, and signs a repeated parameter's values sorted; so must the route.
  it('accepts a Twilio callback signed over our public URL with the default port added or removed, and with a repeated parameter', async () => {
    const temporal = await getDevServer();
    const path = `/webhooks/${world.tenantId}/twilio`;
    const cases = [
      { publicUrl: 'https://hooks.example.test', signedOver: 'https://hooks.example.test:443' },
      { publicUrl: 'https://hooks.example.test:443', signedOver: 'https://hooks.example.test' },
    ];
    for (const { publicUrl, signedOver } of cases) {
      // An API that knows itself by that public URL, on the world's database (its forwarder delivers).
      const api = await startApi({ config: { ...world.config, api: { ...world.config.api, publicUrl } }, db: world.db, connection: temporal.connection, forward: false });
      try {
        const callSid = `CA${uniqueId('x').replace(/\W/g, '')}`;
        const pairs: Array<[string, string]> = [
          ['CallSid', callSid],
          ['CallStatus', 'ringing'],
          ['Direction', 'inbound'],
          ['From', '+14155550123'],
          ['To', '+12025550100'],
          ['Tag', 'second'],
          ['Tag', 'first'],
        ];
        const post = (signedUrl: string) => {
          const request = signedTwilioRequest('test-twilio-token', `${signedUrl}${path}`, pairs);
          return fetch(`${api.baseUrl}${path}`, { method: 'POST', headers: request.headers, body: request.body });
        };
        const other = await post('https://hooks.example.test:8443');
        assert.equal(other.status, 401, 'a port twilio-node would not try');
        const accepted = await post(signedOver);
        assert.equal(accepted.status, 202, `${publicUrl} / signed over ${signedOver}: ${await accepted.text()}`);
        const call = await world.waitForCall(`twilio:${callSid}`, (snapshot) => snapshot.status === 'ringing');
        assert.equal(call.customerPhone, '+14155550123');
      } finally {
        await api.close();
      }
    }
  });

  it('checks each signed provider against its own keys, and takes the old key beside the new one while it rotates', async () => {
    const temporal = await getDevServer();
    const tenant = world.config.tenants[world.tenantId];
    assert.ok(tenant);
    // The PBX key is being rotated; voice-AI has a key of its own; the shared key is retired.
    const { webhookSigningSecret: _retired, ...secrets } = tenant.secrets;
    const rotatingTenant = { ...tenant, secrets: { ...secrets, signingSecrets: { pbx: ['pbx-new-key', 'pbx-old-key'] as [string, string], 'voice-ai': 'voice-ai-key', crm: 'crm-key' } } };
    const api = await startApi({ config: { ...world.config, tenants: { [world.tenantId]: rotatingTenant } }, db: world.db, connection: temporal.connection, forward: false });
    try {
      const post = (provider: 'pbx' | 'voice-ai', key: string, body: unknown) => {
        const request = signedJsonRequest(key, body);
        return fetch(`${api.baseUrl}/webhooks/${world.tenantId}/${provider}`, { method: 'POST', headers: request.headers, body: request.body });
      };
      const [ringing, answered] = pbxEvents(plan());
      assert.equal((await post('pbx', 'pbx-old-key', ringing)).status, 202, 'the old PBX key still verifies during the rotation');
      assert.equal((await post('pbx', 'pbx-new-key', answered)).status, 202, 'the new PBX key verifies');
      for (const key of ['test-webhook-secret', 'voice-ai-key']) {
        const refused = await post('pbx', key, answered);
        assert.equal(refused.status, 401, `the PBX route refuses ${key}`);
        assert.equal(((await refused.json()) as Refusal).error, 'invalid_signature');
      }
      const [start] = voiceAiEvents({ callId: uniqueId('ai'), agentId: 'ai-agent', direction: 'inbound', customerPhone: '+14155550124', agentPhone: '+12025550101', startedAt: new Date(), durationSeconds: 30, satisfaction: 4, resolved: true, sentiment: 'positive', issueType: 'Billing' });
      assert.equal((await post('voice-ai', 'pbx-new-key', start)).status, 401, "the voice-AI route refuses the PBX's key");
      assert.equal((await post('voice-ai', 'voice-ai-key', start)).status, 202);
    } finally {
      await api.close();
    }
  });

  it('stores the recording and serves byte ranges (206) with Accept-Ranges, to operators and signed links', async () => {
    const wav = deterministicWav(2, 'range-test');
    const call = plan();
    call.recordingUrl = `${world.recordings.url}${world.recordings.put(`/recordings/${call.callId}.wav`, wav, 'audio/wav').replace(world.recordings.url, '')}`;
    for (const event of pbxEvents(call)) assert.equal((await world.postSigned('pbx', event)).status, 202);
    const callId = `pbx:${call.callId}`;
    await world.waitForCall(callId, (snapshot) => snapshot.recording?.stored === true);
    const path = `/api/${world.tenantId}/calls/${encodeURIComponent(callId)}/recording`;

    const whole = await world.operatorGet(path);
    assert.equal(whole.status, 200);
    assert.equal(whole.headers.get('accept-ranges'), 'bytes');
    assert.equal(whole.headers.get('content-type'), 'audio/wav');
    assert.deepEqual(Buffer.from(await whole.arrayBuffer()), wav);

    const part = await world.operatorGet(path, { range: 'bytes=100-199' });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get('content-range'), `bytes 100-199/${wav.length}`);
    assert.deepEqual(Buffer.from(await part.arrayBuffer()), wav.subarray(100, 200));

    const tail = await world.operatorGet(path, { range: 'bytes=-44' });
    assert.equal(tail.status, 206);
    assert.deepEqual(Buffer.from(await tail.arrayBuffer()), wav.subarray(wav.length - 44));

    assert.equal((await world.operatorGet(path, { range: `bytes=${wav.length + 10}-` })).status, 416);
    assert.equal((await fetch(`${world.api.baseUrl}${path}`)).status, 401, 'no token, no signature');

    const journaled = await world.waitForCall(callId, (snapshot) => snapshot.crmSyncState === 'synced');
    const link = world.kommo.state().notes.find((note) => note.params.uniq === callId)?.params.link;
    assert.ok(link, 'the CRM note carries a recording link');
    assert.equal(journaled.crmSyncState, 'synced');
    const viaLink = await fetch(link, { headers: { range: 'bytes=0-3' } });
    assert.equal(viaLink.status, 206);
    assert.equal(Buffer.from(await viaLink.arrayBuffer()).toString('ascii'), 'RIFF');
  });

  it('handles an event that arrives after the call workflow completed: a new run continues from the journal', async () => {
    const callId = uniqueId('late');
    const events = voiceAiEvents({
      callId,
      agentId: 'ai-1',
      direction: 'inbound',
      customerPhone: '+14155550177',
      agentPhone: '+12025550100',
      startedAt: new Date(),
      durationSeconds: 120,
    });
    for (const event of events) assert.equal((await world.postSigned('voice-ai', event)).status, 202);
    const id = `voice-ai:${callId}`;
    const first = await world.waitForCall(id, (snapshot) => snapshot.status === 'completed');
    assert.equal(first.actions.ticket, undefined);

    const late = { event: 'analytics.completed', call_id: callId, agent_id: 'ai-1', timestamp: Date.now(), metrics: { satisfaction: 2, resolved: false, issue_type: 'Billing', summary: 'Refund not received' } };
    assert.equal((await world.postSigned('voice-ai', late)).status, 202);
    const updated = await world.waitForCall(id, (snapshot) => snapshot.analytics?.resolved === false && snapshot.actions.ticket?.state === 'done' && snapshot.version > first.version);
    assert.equal(updated.status, 'completed');
    assert.equal(world.ticketing.state().tickets.filter((ticket) => ticket.external_id === `switchboard:${world.tenantId}:${id}`).length, 1);
    const runs = [];
    for await (const run of world.client.workflow.list({ query: `WorkflowId = '${first.workflowId}'` })) runs.push(run.runId);
    assert.equal(runs.length, 2, 'the late event started a second run of the same workflow id');
  });
});
