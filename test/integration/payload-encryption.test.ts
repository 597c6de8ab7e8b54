/**
 * Encrypted Temporal histories: a call and a lead go through the real stack (API, inbox, forwarder,
 * workers on the dev server), then their histories are read straight from Temporal with a client
 * that has no codec. No phone number, name, e-mail, transcript or message text may be anywhere in
 * the raw bytes; the same payloads decrypt, with the codec, to exactly that data. Then the codec
 * server the Temporal Web UI calls: credentials, CORS and refusals.
 */
import assert from 'node:assert/strict';
import { Client } from '@temporalio/client';
import type { Payload } from '@temporalio/common';
import proto from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { voiceAiEvents } from '../../sandboxes/pbx-simulator.js';
import { leadWorkflowId } from '../../shared/leads.js';
import { callWorkflowId } from '../../shared/calls.js';
import { encryptedEncoding, keyIdMetadataKey, payloadCodecFor, temporalDataConverter } from '../../security/payload-codec.js';
import { startCallWorld } from '../harness/call-world.js';
import type { CallWorld } from '../harness/call-world.js';
import { iso } from '../harness/lead-time.js';
import { startLeadWorld } from '../harness/lead-world.js';
import type { LeadWorld } from '../harness/lead-world.js';
import { uniqueId } from '../harness/resources.js';
import { getWorkflowBundle } from '../harness/temporal.js';

type History = proto.temporal.api.history.v1.IHistory;

const uiOrigin = 'http://ui.switchboard.test:8233';
const digits = (): string => String(Math.floor(Math.random() * 90) + 10);

/** Every Payload in a (raw) history, wherever it sits: inputs, results, signals, updates, failures, metadata. */
function payloadsIn(value: unknown, out: Payload[] = []): Payload[] {
  if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return out;
  if (Array.isArray(value)) {
    for (const item of value) payloadsIn(item, out);
    return out;
  }
  const record = value as Record<string, unknown>;
  if (record.metadata && typeof record.metadata === 'object' && !Array.isArray(record.metadata) && Object.values(record.metadata).every((item) => item instanceof Uint8Array) && 'data' in record) {
    out.push(record);
    return out;
  }
  for (const item of Object.values(record)) payloadsIn(item, out);
  return out;
}

/** The history exactly as Temporal stores and serves it, as bytes (latin1 keeps every byte). */
const rawBytes = (history: History): string => Buffer.from(proto.temporal.api.history.v1.History.encode(history).finish()).toString('latin1');

/** Phone numbers as they may be written: E.164, its national digits, and the national digits in groups. */
function phoneForms(e164: string): string[] {
  const national = e164.replace(/^\+1/, '');
  return [e164, e164.slice(1), national, `${national.slice(0, 3)}-${national.slice(3, 6)}-${national.slice(6)}`, `(${national.slice(0, 3)}) ${national.slice(3, 6)}-${national.slice(6)}`];
}

async function rawHistory(client: Client, workflowId: string): Promise<History> {
  return client.workflow.getHandle(workflowId).fetchHistory();
}

/**
 * Checks the raw history has none of `secrets` (in any of the forms given), and that decrypting its
 * payloads gives every one of `sent` (the values as the test sent them).
 */
async function assertEncrypted(history: History, secrets: { forms: string[]; sent: string[] }, codec: ReturnType<typeof payloadCodecFor>, context: string): Promise<void> {
  const raw = rawBytes(history);
  for (const secret of secrets.forms) assert.ok(!raw.includes(secret), `${context}: "${secret}" is in the raw history`);
  const payloads = payloadsIn(history);
  const encrypted = payloads.filter((payload) => Buffer.from(payload.metadata?.encoding ?? new Uint8Array()).toString() === encryptedEncoding);
  assert.ok(encrypted.length >= 3, `${context}: the history has encrypted payloads`);
  // Left in plain: search attributes (ids and states by design), and the SDK's own marker
  // bookkeeping (patch ids; a local activity's seq, id, type and times: its result is encrypted).
  const plain = payloads.filter((payload) => !encrypted.includes(payload));
  const bookkeeping = payloadsIn(
    history.events?.map((event) => [
      event.upsertWorkflowSearchAttributesEventAttributes,
      event.workflowExecutionStartedEventAttributes?.searchAttributes,
      Object.entries(event.markerRecordedEventAttributes?.details ?? {}).filter(([key]) => key !== 'result').map(([, value]) => value),
    ]),
  );
  assert.deepEqual(plain.filter((payload) => !bookkeeping.includes(payload)).map((payload) => Buffer.from(payload.data ?? new Uint8Array()).toString().slice(0, 80)), [], `${context}: every other payload is encrypted`);
  const decrypted = (await codec.decode(encrypted)).map((payload) => Buffer.from(payload.data ?? new Uint8Array()).toString('utf8')).join('\n');
  for (const secret of secrets.sent) assert.ok(decrypted.includes(secret), `${context}: "${secret}" is in the decrypted payloads`);
}

describe('encrypted Temporal payloads', function () {
  this.timeout(240_000);

  describe('a call', () => {
    let world: CallWorld;
    let callHistory: History;
    let secrets: { forms: string[]; sent: string[] };
    before(async () => {
      world = await startCallWorld({ codecAllowedOrigins: [uiOrigin] });
      const phone = `+1415555${digits()}${digits()}`;
      const name = `Grace Hopper ${uniqueId('n')}`;
      const email = `${uniqueId('grace').toLowerCase()}@navy.example`;
      const sentence = `My cobol compiler ${uniqueId('c')} keeps failing`;
      world.kommo.seedContact({ name, phone, company: 'Eckert-Mauchly' });
      const plan = { callId: uniqueId('enc'), agentId: 'agent-3', direction: 'inbound' as const, customerPhone: phone, agentPhone: '+12025550100', startedAt: new Date(), durationSeconds: 42, satisfaction: 4, resolved: true, email };
      const events = voiceAiEvents(plan);
      const end = events.find((event) => event.event === 'call.end');
      assert.ok(end);
      end.transcript = [{ role: 'user', text: sentence }, { role: 'agent', text: 'Let me check that for you.' }];
      for (const event of events) {
        const response = await world.postSigned('voice-ai', event);
        assert.equal(response.status, 202, await response.text());
      }
      const callId = `voice-ai:${plan.callId}`;
      const call = await world.waitForCall(callId, (snapshot) => snapshot.status === 'completed' && snapshot.crmSyncState === 'synced');
      assert.equal(call.customerPhone, phone);
      assert.equal(call.enrichment?.contact?.name, name, 'the CRM lookup (an activity result) carried the name');
      const raw = new Client({ connection: world.client.connection, namespace: world.config.temporal.namespace });
      callHistory = await rawHistory(raw, callWorkflowId(world.tenantId, callId));
      secrets = { forms: [...phoneForms(phone), name, email, sentence], sent: [phone, name, email, sentence] };
    });
    after(async () => {
      await world.stop();
    });

    it('leaves no phone number, name, e-mail or transcript in the raw history, and decrypts to all of them', async () => {
      assert.ok(rawBytes(callHistory).includes(world.tenantId), 'the raw history is readable where it should be (ids)');
      await assertEncrypted(callHistory, secrets, payloadCodecFor(world.config.temporal.payloadEncryption), 'call');
    });

    it('replays its encrypted history on the current workflow code, with the codec', async () => {
      await Worker.runReplayHistory({ workflowBundle: await getWorkflowBundle(), dataConverter: temporalDataConverter(world.config.temporal.payloadEncryption) }, callHistory);
    });

    describe('the codec server for the Web UI', () => {
      const url = (direction: string): string => `${world.api.baseUrl}/codec/${direction}`;
      const bearer = (): Record<string, string> => ({ authorization: `Bearer ${world.tenant.secrets.operatorToken}` });
      const json = { 'content-type': 'application/json' };
      const asJson = (payload: Payload) => ({
        metadata: Object.fromEntries(Object.entries(payload.metadata ?? {}).map(([key, value]) => [key, Buffer.from(value ?? new Uint8Array()).toString('base64')])),
        data: Buffer.from(payload.data ?? new Uint8Array()).toString('base64'),
      });
      const encryptedSignal = (): Payload => {
        const signal = callHistory.events?.find((event) => event.workflowExecutionSignaledEventAttributes)?.workflowExecutionSignaledEventAttributes?.input?.payloads?.[0];
        assert.ok(signal);
        return signal;
      };
      const decodedText = (body: { payloads: Array<{ data: string }> }): string => body.payloads.map((payload) => Buffer.from(payload.data, 'base64').toString('utf8')).join('\n');

      it('decodes an encrypted payload for an operator bearer token, in the UI\'s request format', async () => {
        const response = await fetch(url('decode'), { method: 'POST', headers: { ...json, ...bearer(), 'x-namespace': world.config.temporal.namespace, origin: uiOrigin }, body: JSON.stringify({ payloads: [asJson(encryptedSignal())] }) });
        assert.equal(response.status, 200, await response.clone().text());
        assert.equal(response.headers.get('access-control-allow-origin'), uiOrigin);
        assert.equal(response.headers.get('access-control-allow-credentials'), 'true');
        const body = (await response.json()) as { payloads: Array<{ metadata: Record<string, string>; data: string }> };
        assert.equal(Buffer.from(body.payloads[0]?.metadata.encoding ?? '', 'base64').toString(), 'json/plain');
        const text = decodedText(body);
        assert.ok(secrets.sent.some((secret) => text.includes(secret)), 'the decoded signal carries the caller');
      });

      it('decodes with the dashboard session cookie (the UI with "Include cross-origin credentials")', async () => {
        const login = await fetch(`${world.api.baseUrl}/dashboard/login`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', origin: world.api.baseUrl },
          body: new URLSearchParams({ tenant: world.tenantId, token: world.tenant.secrets.operatorToken }).toString(),
          redirect: 'manual',
        });
        const cookie = login.headers.get('set-cookie')?.split(';')[0];
        assert.ok(cookie, `signed in (${login.status})`);
        const response = await fetch(url('decode'), { method: 'POST', headers: { ...json, cookie, origin: uiOrigin }, body: JSON.stringify({ payloads: [asJson(encryptedSignal())] }) });
        assert.equal(response.status, 200, await response.clone().text());
        const text = decodedText((await response.json()) as { payloads: Array<{ data: string }> });
        assert.ok(secrets.sent.some((secret) => text.includes(secret)));
      });

      it('encodes what the UI sends, and decodes it back; plain payloads pass through decode unchanged', async () => {
        const plain = { metadata: { encoding: Buffer.from('json/plain').toString('base64') }, data: Buffer.from('{"note":"hello"}').toString('base64') };
        const encoded = await fetch(url('encode'), { method: 'POST', headers: { ...json, ...bearer() }, body: JSON.stringify({ payloads: [plain] }) });
        assert.equal(encoded.status, 200);
        const sealed = ((await encoded.json()) as { payloads: Array<{ metadata: Record<string, string>; data: string }> }).payloads[0];
        assert.ok(sealed);
        assert.equal(Buffer.from(sealed.metadata.encoding ?? '', 'base64').toString(), encryptedEncoding);
        assert.equal(Buffer.from(sealed.metadata[keyIdMetadataKey] ?? '', 'base64').toString(), world.config.temporal.payloadEncryption.activeKeyId);
        const decoded = await fetch(url('decode'), { method: 'POST', headers: { ...json, ...bearer() }, body: JSON.stringify({ payloads: [sealed, plain] }) });
        assert.deepEqual(await decoded.json(), { payloads: [plain, plain] });
      });

      it('answers 401 without a credential and with a wrong one, with CORS headers so the UI can tell', async () => {
        const body = JSON.stringify({ payloads: [asJson(encryptedSignal())] });
        const missing = await fetch(url('decode'), { method: 'POST', headers: { ...json, origin: uiOrigin }, body });
        assert.equal(missing.status, 401);
        assert.equal(((await missing.json()) as { error: string }).error, 'missing_token');
        assert.equal(missing.headers.get('access-control-allow-origin'), uiOrigin);
        const wrong = await fetch(url('decode'), { method: 'POST', headers: { ...json, authorization: 'Bearer not-a-token' }, body });
        assert.equal(wrong.status, 401);
        assert.equal(((await wrong.json()) as { error: string }).error, 'invalid_token');
        const staleCookie = await fetch(url('decode'), { method: 'POST', headers: { ...json, cookie: `sb_operator=${world.tenantId}.1.forged` }, body });
        assert.equal(staleCookie.status, 401);
      });

      it('answers the CORS preflight from the UI origin, and refuses a foreign origin', async () => {
        const preflight = await fetch(url('decode'), { method: 'OPTIONS', headers: { origin: uiOrigin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,x-namespace' } });
        assert.equal(preflight.status, 204);
        assert.equal(preflight.headers.get('access-control-allow-origin'), uiOrigin);
        assert.equal(preflight.headers.get('access-control-allow-credentials'), 'true');
        assert.match(preflight.headers.get('access-control-allow-methods') ?? '', /POST/);
        const allowed = (preflight.headers.get('access-control-allow-headers') ?? '').toLowerCase();
        for (const header of ['content-type', 'x-namespace', 'authorization']) assert.ok(allowed.includes(header), header);
        assert.match(preflight.headers.get('vary') ?? '', /origin/i);

        const foreign = await fetch(url('decode'), { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } });
        assert.equal(foreign.status, 403);
        assert.equal(foreign.headers.get('access-control-allow-origin'), null);
        const foreignPost = await fetch(url('decode'), { method: 'POST', headers: { ...json, ...bearer(), origin: 'https://evil.example' }, body: JSON.stringify({ payloads: [asJson(encryptedSignal())] }) });
        assert.equal(foreignPost.status, 403);
        assert.equal(((await foreignPost.json()) as { error: string }).error, 'forbidden_origin');
        assert.equal(foreignPost.headers.get('access-control-allow-origin'), null);
      });

      it('refuses what it cannot read with a 4xx and a reason: unknown key id, altered data, bad JSON, wrong type, another namespace', async () => {
        const sealed = asJson(encryptedSignal());
        const post = (body: string, headers: Record<string, string> = {}) => fetch(url('decode'), { method: 'POST', headers: { ...json, ...bearer(), ...headers }, body });
        const reasonOf = async (response: Response): Promise<[number, string, string]> => {
          const body = (await response.json()) as { error: string; message: string };
          return [response.status, body.error, body.message];
        };
        const unknownKey = await reasonOf(await post(JSON.stringify({ payloads: [{ ...sealed, metadata: { ...sealed.metadata, [keyIdMetadataKey]: Buffer.from('retired-2019').toString('base64') } }] })));
        assert.deepEqual(unknownKey.slice(0, 2), [422, 'undecodable_payload']);
        assert.match(unknownKey[2], /unknown key id "retired-2019"/);
        const data = Buffer.from(sealed.data, 'base64');
        data[data.length - 1] = (data[data.length - 1] ?? 0) ^ 0xff;
        const altered = await reasonOf(await post(JSON.stringify({ payloads: [{ ...sealed, data: data.toString('base64') }] })));
        assert.deepEqual(altered.slice(0, 2), [422, 'undecodable_payload']);
        for (const secret of secrets.forms) assert.ok(!altered[2].includes(secret));
        assert.deepEqual((await reasonOf(await post('{"payloads": ['))).slice(0, 2), [400, 'malformed_json']);
        assert.deepEqual((await reasonOf(await post(JSON.stringify({ payloads: [{ data: 'not base64!' }] })))).slice(0, 2), [422, 'invalid_payload']);
        assert.deepEqual((await reasonOf(await post(JSON.stringify({ items: [] })))).slice(0, 2), [422, 'invalid_payload']);
        assert.deepEqual((await reasonOf(await post('payloads', { 'content-type': 'text/plain' }))).slice(0, 2), [415, 'unsupported_media_type']);
        assert.deepEqual((await reasonOf(await post(JSON.stringify({ payloads: [] }), { 'x-namespace': 'someone-else' }))).slice(0, 2), [400, 'unknown_namespace']);
      });
    });
  });

  describe('a lead', () => {
    let world: LeadWorld;
    before(async () => {
      world = await startLeadWorld({ timeSkipping: false, policy: { sendWindow: { days: [1, 2, 3, 4, 5, 6, 7], start: '00:00', end: '23:59' }, reorderWindowSeconds: 1 } });
    });
    after(async () => {
      await world.stop();
    });

    it('leaves no phone number, name, e-mail or message text in the raw history (signals, activities, the pause update), and decrypts to all of them', async () => {
      const leadId = uniqueId('enc');
      const phone = `+1628555${digits()}${digits()}`;
      const name = `Katherine Johnson ${uniqueId('n')}`;
      const email = `${uniqueId('kj').toLowerCase()}@nasa.example`;
      const reply = `Orbit ${uniqueId('r')}: can we talk on Tuesday?`;
      const created = await world.crm({ event_id: `${leadId}-created`, event: 'lead.created', lead_id: leadId, occurred_at: iso(await world.now()), lead: { name, phone, email } });
      assert.equal(created.status, 202, await created.text());
      await world.idle(leadId);
      assert.ok(world.sentTo(phone).length >= 1, 'the welcome went out');
      await world.reply(phone, reply);
      await world.idle(leadId);
      assert.ok((await world.timeline(leadId)).some((entry) => entry.kind === 'replied'), 'the reply reached the workflow');
      const paused = await world.operator(leadId, { action: 'pause' });
      assert.equal(paused.status, 200, await paused.clone().text());
      const view = (await paused.json()) as { lead: { profile: { phone?: string } } };
      assert.equal(view.lead.profile.phone, phone, 'the update result (a payload) carried the phone');

      const raw = new Client({ connection: world.env.connection, namespace: world.config.temporal.namespace });
      const history = await rawHistory(raw, leadWorkflowId(world.tenantId, leadId));
      assert.ok(history.events?.some((event) => event.workflowExecutionUpdateCompletedEventAttributes), 'the history holds the update');
      await assertEncrypted(history, { forms: [...phoneForms(phone), name, email, reply], sent: [phone, name, email, reply] }, payloadCodecFor(world.config.temporal.payloadEncryption), 'lead');
    });
  });
});
