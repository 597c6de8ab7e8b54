/**
 * The API's contract with any caller: every input gets a 4xx with a machine-readable reason, never a
 * 5xx (each case here was a 500 once); undeclared methods get 405 with Allow; the OpenAPI document
 * states the rules the routes enforce; and the dashboard stream's events match their declared
 * schema. Every answer checked here is also checked against the document, by status and body.
 */
import assert from 'node:assert/strict';
import type { AppConfig } from '../../config/load.js';
import { recordCall } from '../../db/call-journal.js';
import { initialSnapshot } from '../../shared/call-state.js';
import type { CallSnapshot } from '../../shared/calls.js';
import { waitUntil } from '../../stack/processes.js';
import { startApi, testConfig } from '../harness/api.js';
import type { RunningApi } from '../harness/api.js';
import { inboxRowsOf, parkInboxRows } from '../harness/inbox.js';
import { validateAgainstDocument } from '../harness/openapi-validator.js';
import { createTestDatabase } from '../harness/postgres.js';
import type { TestDatabase } from '../harness/postgres.js';
import { uniqueId } from '../harness/resources.js';
import { getDevServer } from '../harness/temporal.js';

interface Answer {
  status: number;
  headers: Headers;
  body: unknown;
}

interface OpenApiDocument {
  paths: Record<string, Record<string, { parameters?: Array<{ name: string; in: string; schema: Record<string, unknown> }>; responses: Record<string, { content?: Record<string, { schema?: { $ref?: string } }> }> }>>;
  components: { schemas: Record<string, Record<string, unknown>> };
}

describe('API contract', function () {
  this.timeout(180_000);
  let database: TestDatabase;
  let config: AppConfig;
  let api: RunningApi;
  let document: OpenApiDocument;
  const tenantId = uniqueId('contract').toLowerCase();
  const token = `operator-${tenantId}`;
  const auth = { authorization: `Bearer ${token}` };
  /** Every answer to a declared operation, checked against the document at the end. */
  const answered: Array<{ method: string; template: string; answer: Answer }> = [];
  const startedAt = '2026-03-01T12:00:00.000Z';
  let seeded: CallSnapshot;

  const send = async (method: string, path: string, options: { headers?: Record<string, string>; body?: string; template?: string } = {}): Promise<Answer> => {
    const response = await fetch(`${api.baseUrl}${path}`, { method, headers: options.headers ?? {}, ...(options.body !== undefined ? { body: options.body } : {}), redirect: 'manual' });
    const text = await response.text();
    const isJson = (response.headers.get('content-type') ?? '').startsWith('application/json');
    const answer = { status: response.status, headers: response.headers, body: isJson ? (JSON.parse(text) as unknown) : text };
    if (options.template) answered.push({ method: method.toLowerCase(), template: options.template, answer });
    return answer;
  };
  const reasonOf = (answer: Answer): unknown => (answer.body as { error?: unknown }).error;

  before(async () => {
    database = await createTestDatabase('contract');
    const base = testConfig({ databaseUrl: database.url });
    const demo = base.tenants[base.demo.tenant];
    assert.ok(demo, 'the development configuration has the demo tenant');
    config = { ...base, tenants: { [tenantId]: { ...demo, secrets: { ...demo.secrets, operatorToken: token } } } };
    api = await startApi({ config, db: database.db, connection: (await getDevServer()).connection, forward: false, liveFeed: true });
    document = (await (await fetch(`${api.baseUrl}/openapi.json`)).json()) as OpenApiDocument;
    seeded = { ...initialSnapshot(tenantId, 'pbx', 'seeded-1'), version: 1, status: 'in_progress', direction: 'inbound', customerPhone: '+14155550150', startedAt, answeredAt: startedAt };
    await recordCall(database.db, seeded, []);
  });
  after(async () => {
    await api.close();
  });

  const callIds = (answer: Answer): string[] => ((answer.body as { calls?: Array<{ callId: string }> }).calls ?? []).map((call) => call.callId);

  it('filters by any RFC 3339 instant, offsets PostgreSQL refuses included (the fuzzer found a 500)', async () => {
    const list = (query: string) => send('GET', `/api/${tenantId}/calls?${query}`, { headers: auth, template: '/api/{tenant}/calls' });
    const before = await list(`to=${encodeURIComponent('4114-01-19T19:02:20-17:15')}`);
    assert.equal(before.status, 200);
    assert.deepEqual(callIds(before), [seeded.callId]);
    const after = await list(`from=${encodeURIComponent('4114-01-19T19:02:20-17:15')}`);
    assert.equal(after.status, 200);
    assert.deepEqual(callIds(after), []);
    // Past PostgreSQL's years at either end: the filter still means what it says.
    assert.deepEqual(callIds(await list(`from=${encodeURIComponent('0000-01-01T00:00:00+23:59')}`)), [seeded.callId]);
    assert.deepEqual(callIds(await list(`to=${encodeURIComponent('0000-01-01T00:00:00+23:59')}`)), []);
    assert.deepEqual(callIds(await list(`to=${encodeURIComponent('9999-12-31T23:59:59-23:59')}`)), [seeded.callId]);
    // A cursor is ours, but anyone can forge one: its instant is read the same way.
    const forged = Buffer.from(JSON.stringify({ startedAt: '9999-12-31T23:59:59-23:59', callId: 'pbx:zzz' })).toString('base64url');
    const paged = await list(`cursor=${forged}`);
    assert.equal(paged.status, 200);
    assert.deepEqual(callIds(paged), [seeded.callId]);
    const nul = Buffer.from(JSON.stringify({ startedAt, callId: 'pbx:a\u0000b' })).toString('base64url');
    const refusedCursor = await list(`cursor=${nul}`);
    assert.equal(refusedCursor.status, 422);
    assert.equal(reasonOf(refusedCursor), 'invalid_payload');
  });

  it('answers a malformed or forged session cookie 401 invalid_token (it answered 500)', async () => {
    for (const cookie of ['sb_operator=%E0%A4%A', 'sb_operator=constructor.99999999999.x', 'sb_operator=__proto__.99999999999.x', `sb_operator=${tenantId}.notanumber.x`]) {
      const answer = await send('GET', `/api/${tenantId}/calls`, { headers: { cookie }, template: '/api/{tenant}/calls' });
      assert.equal(answer.status, 401, cookie);
      assert.equal(reasonOf(answer), 'invalid_token', cookie);
      const page = await send('GET', `/dashboard/${tenantId}`, { headers: { cookie } });
      assert.equal(page.status, 303, `the dashboard page sends ${cookie} to the sign-in page`);
    }
  });

  it('takes no member of Object.prototype for a tenant', async () => {
    for (const name of ['constructor', '__proto__', 'hasOwnProperty', 'toString']) {
      const webhook = await send('POST', `/webhooks/${name}/pbx`, { headers: { 'content-type': 'application/json' }, body: '{}', template: '/webhooks/{tenant}/pbx' });
      assert.equal(webhook.status, 404, `/webhooks/${name}/pbx`);
      assert.equal(reasonOf(webhook), 'unknown_tenant');
      const crm = await send('POST', `/webhooks/${name}/crm`, { headers: { 'content-type': 'application/json' }, body: '{}', template: '/webhooks/{tenant}/crm' });
      assert.equal(crm.status, 404, `/webhooks/${name}/crm`);
      const operator = await send('GET', `/api/${name}/calls`, { headers: auth, template: '/api/{tenant}/calls' });
      assert.equal(operator.status, 404, `/api/${name}/calls`);
      assert.equal(reasonOf(operator), 'unknown_tenant');
      const verify = await send('GET', `/webhooks/${name}/whatsapp?hub.mode=subscribe&hub.verify_token=x&hub.challenge=1`, { template: '/webhooks/{tenant}/whatsapp' });
      assert.equal(verify.status, 403);
    }
  });

  it('refuses path and query values PostgreSQL cannot store, and unreadable paths, with a 4xx', async () => {
    const expect = async (answer: Promise<Answer>, status: number, reason: string, what: string): Promise<void> => {
      const { status: got, body } = await answer;
      assert.equal(got, status, `${what}: ${JSON.stringify(body)}`);
      assert.equal((body as { error?: string }).error, reason, what);
    };
    const calls = `/api/${tenantId}/calls`;
    await expect(send('GET', `${calls}/${encodeURIComponent('pbx:a\u0000b')}`, { headers: auth, template: '/api/{tenant}/calls/{callId}' }), 400, 'invalid_call_id', 'a call id with U+0000');
    await expect(send('GET', `${calls}/nonsense`, { headers: auth, template: '/api/{tenant}/calls/{callId}' }), 400, 'invalid_call_id', 'a call id of no provider');
    await expect(send('GET', `${calls}/${encodeURIComponent('pbx:a\u0000b')}/recording`, { headers: auth, template: '/api/{tenant}/calls/{callId}/recording' }), 400, 'invalid_call_id', 'a recording of a call id with U+0000');
    await expect(send('GET', `${calls}/%E0%A4%A`, { headers: auth, template: '/api/{tenant}/calls/{callId}' }), 400, 'malformed_path', 'a path that is not percent-encoded UTF-8');
    await expect(send('GET', `${calls}?agent=a%00b`, { headers: auth, template: '/api/{tenant}/calls' }), 422, 'invalid_payload', 'an agent with U+0000');
    await expect(send('GET', `${calls}?phone=call%20me`, { headers: auth, template: '/api/{tenant}/calls' }), 422, 'invalid_payload', 'a phone filter that is no number');
    await expect(send('GET', `${calls}?phone=12`, { headers: auth, template: '/api/{tenant}/calls' }), 422, 'invalid_phone_number', 'a phone filter that is no possible number');
    const leads = `/api/${tenantId}/leads`;
    await expect(send('GET', `${leads}/a%00b`, { headers: auth, template: '/api/{tenant}/leads/{leadId}' }), 400, 'invalid_lead_id', 'a lead id with U+0000');
    await expect(send('GET', `${leads}/a%00b/timeline`, { headers: auth, template: '/api/{tenant}/leads/{leadId}/timeline' }), 400, 'invalid_lead_id', 'a timeline of a lead id with U+0000');
    const json = { ...auth, 'content-type': 'application/json' };
    await expect(send('POST', `${leads}/L1/actions`, { headers: json, body: JSON.stringify({ action: 'pause', reason: 'a\u0000b' }), template: '/api/{tenant}/leads/{leadId}/actions' }), 422, 'invalid_payload', 'a lead action with U+0000');
    await expect(send('POST', `${leads}/L1/actions`, { headers: json, body: '{"action":', template: '/api/{tenant}/leads/{leadId}/actions' }), 400, 'malformed_json', 'a lead action that is no JSON');
    await expect(send('POST', `${leads}/L1/actions`, { headers: { ...auth, 'content-type': 'application/json; charset=latin1' }, body: '{}', template: '/api/{tenant}/leads/{leadId}/actions' }), 415, 'unsupported_media_type', 'a lead action in latin1');
    await expect(send('POST', `${leads}/L1/actions`, { headers: json, body: JSON.stringify({ action: 'pause', reason: 'x'.repeat(40_000) }), template: '/api/{tenant}/leads/{leadId}/actions' }), 413, 'payload_too_large', 'a lead action past 32 kB');
    await expect(send('POST', `${leads}/L1/actions`, { headers: json, body: JSON.stringify({ action: 'change_time_zone', timeZone: 'Mars/Olympus' }), template: '/api/{tenant}/leads/{leadId}/actions' }), 422, 'invalid_payload', 'a time zone that is none');
    const result = await send('POST', `${calls}/pbx%3Aseeded-1/result`, { headers: json, body: JSON.stringify({ outcome: 'resolved', comment: 'a\u0000b' }), template: '/api/{tenant}/calls/{callId}/result' });
    assert.equal(result.status, 422, JSON.stringify(result.body));
    assert.equal(reasonOf(result), 'invalid_payload');
    assert.equal(await inboxRowsOf(database.db, tenantId), 0, 'nothing PostgreSQL could not journal later went into the inbox');
  });

  it('answers an undeclared method on a served path 405 with Allow, and an unknown path 404, as JSON', async () => {
    const cases: Array<[string, string, string]> = [
      ['DELETE', `/api/${tenantId}/calls`, 'GET, HEAD'],
      ['PUT', `/webhooks/${tenantId}/pbx`, 'POST'],
      ['GET', `/webhooks/${tenantId}/pbx`, 'POST'],
      ['PATCH', `/webhooks/${tenantId}/whatsapp`, 'GET, HEAD, POST'],
      ['GET', `/api/${tenantId}/calls/pbx%3A1/result`, 'POST'],
      ['POST', `/api/${tenantId}/leads/L1`, 'GET, HEAD'],
      ['DELETE', '/openapi.json', 'GET, HEAD'],
      ['POST', '/healthz', 'GET, HEAD'],
    ];
    for (const [method, path, allow] of cases) {
      const answer = await send(method, path, { headers: auth });
      assert.equal(answer.status, 405, `${method} ${path}`);
      assert.equal(answer.headers.get('allow'), allow, `${method} ${path}`);
      assert.deepEqual(answer.body, { error: 'method_not_allowed', message: `${method} is not allowed on this path`, details: { allow: allow.split(', ') } });
    }
    for (const [method, path] of [
      ['GET', '/no/such/route'],
      ['DELETE', `/api/${tenantId}/calls/pbx%3A1/result/more`],
    ] as const) {
      const answer = await send(method, path, { headers: auth });
      assert.equal(answer.status, 404, `${method} ${path}`);
      assert.equal(reasonOf(answer), 'not_found');
    }
    const errorReasons = (document.components.schemas.Error as { properties: { error: { enum: string[] } } }).properties.error.enum;
    assert.ok(errorReasons.includes('method_not_allowed') && errorReasons.includes('not_found'));
  });

  it('refuses a lead action with an unknown field or a missing or ill-typed one, naming each field; the document states the rule', async () => {
    const json = { ...auth, 'content-type': 'application/json' };
    const act = (body: Record<string, unknown>) => send('POST', `/api/${tenantId}/leads/L1/actions`, { headers: json, body: JSON.stringify(body), template: '/api/{tenant}/leads/{leadId}/actions' });
    const cases: Array<[Record<string, unknown>, Record<string, string | RegExp>]> = [
      [{ action: 'pause', bogus: 1 }, { bogus: 'unknown field' }],
      [{ action: 'pause', operator: 'Mallory' }, { operator: /^unknown field: the operator is the credential's/ }],
      [{ action: 'skip_step' }, { step: 'required' }],
      [{ action: 'skip_step', step: 3, extra: true }, { step: /expected string/, extra: 'unknown field' }],
      [{ action: 'mark_booked', meeting: { id: 'm1', startsAt: '2030-01-07T15:00:00Z', room: 'A' } }, { 'meeting.room': 'unknown field' }],
      [{ action: 'mark_booked', meeting: { id: 'm1' } }, { 'meeting.startsAt': 'required' }],
      [{ step: 'follow_up:1' }, { action: /Invalid discriminator/ }],
    ];
    for (const [body, expected] of cases) {
      const answer = await act(body);
      assert.equal(answer.status, 422, JSON.stringify(body));
      const refusal = answer.body as { error: string; message: string; details: { fields: Record<string, string> } };
      assert.equal(refusal.error, 'invalid_payload');
      assert.deepEqual(Object.keys(refusal.details.fields).sort(), Object.keys(expected).sort(), JSON.stringify(body));
      for (const [field, message] of Object.entries(expected)) {
        assert.match(refusal.details.fields[field] ?? '', typeof message === 'string' ? new RegExp(`^${message}$`) : message, `${JSON.stringify(body)}: ${field}`);
        assert.ok(refusal.message.includes(`${field}: `), `the message names ${field}: ${refusal.message}`);
      }
    }
    type Strict = { additionalProperties?: boolean; required?: string[]; properties: Record<string, Strict & { const?: string }> };
    const branches = ((document.components.schemas.LeadAction as { oneOf?: Strict[] }).oneOf ?? []).map((branch): [string, Strict] => [branch.properties.action?.const ?? '', branch]);
    assert.equal(branches.length, 8);
    const required: Record<string, string[] | undefined> = Object.fromEntries(branches.map(([action, branch]) => [action, branch.required]));
    assert.deepEqual(required, { pause: ['action'], resume: ['action'], skip_step: ['action', 'step'], send_now: ['action', 'step'], change_time_zone: ['action', 'timeZone'], cancel_flow: ['action', 'flow'], mark_booked: ['action', 'meeting'], reassign_sender: ['action', 'sender'] });
    for (const [action, branch] of branches) {
      assert.equal(branch.additionalProperties, false, `${action}: no other fields`);
      assert.ok(!('operator' in branch.properties), `${action}: the body names no operator`);
    }
    const meeting = branches.find(([action]) => action === 'mark_booked')?.[1].properties.meeting;
    assert.equal(meeting?.additionalProperties, false);
    assert.deepEqual(meeting?.required, ['id', 'startsAt']);
  });

  it('states in the document the rules the routes enforce: tenant, call id, lead id, phone, instants, time zones', () => {
    const parameter = (template: string, name: string) => document.paths[template]?.get?.parameters?.find((item) => item.name === name)?.schema ?? {};
    const matches = (schema: Record<string, unknown>, value: string): boolean => new RegExp(String(schema.pattern), 'u').test(value) && value.length <= Number(schema.maxLength ?? Infinity);
    const tenant = parameter('/api/{tenant}/calls', 'tenant');
    assert.ok(matches(tenant, tenantId) && !matches(tenant, 'Constructor') && !matches(tenant, '__proto__'));
    const callId = parameter('/api/{tenant}/calls/{callId}', 'callId');
    assert.ok(matches(callId, 'pbx:abc123') && matches(callId, 'voice-ai:x') && matches(callId, 'twilio:CA1'));
    for (const refused of ['nonsense', 'sms:1', 'pbx:', 'pbx:a\u0000b', `pbx:${'x'.repeat(201)}`]) assert.ok(!matches(callId, refused), JSON.stringify(refused));
    const leadId = parameter('/api/{tenant}/leads/{leadId}', 'leadId');
    assert.ok(matches(leadId, 'L1') && !matches(leadId, 'a\u0000b') && !matches(leadId, ''));
    const phone = parameter('/api/{tenant}/calls', 'phone');
    assert.ok(matches(phone, '+14155550150') && matches(phone, '(415) 555-0150') && !matches(phone, 'call me'));
    assert.equal(parameter('/api/{tenant}/calls', 'to').format, 'date-time');
    assert.equal(parameter('/api/{tenant}/calls', 'limit').maximum, 200);
    type Branch = { properties: { action: { const: string }; timeZone?: { enum?: string[] } } };
    const actions = document.components.schemas.LeadAction as { oneOf?: Branch[]; anyOf?: Branch[] };
    const zones = (actions.oneOf ?? actions.anyOf)?.find((branch) => branch.properties.action.const === 'change_time_zone')?.properties.timeZone?.enum ?? [];
    assert.ok(zones.includes('Europe/Berlin') && zones.includes('UTC') && !zones.includes('Mars/Olympus'), 'the time zones are listed');
  });

  it('sends dashboard stream events that match DashboardStreamEvent, and JSON bodies that match their schemas', async () => {
    const controller = new AbortController();
    const response = await fetch(`${api.baseUrl}/api/${tenantId}/dashboard/stream`, { headers: auth, signal: controller.signal });
    assert.equal(response.status, 200);
    const reader = response.body?.getReader();
    assert.ok(reader);
    const decoder = new TextDecoder();
    let buffer = '';
    const events: Array<{ event: string; id?: string; data: string }> = [];
    const pump = (async () => {
      for (;;) {
        const chunk = await reader.read().catch(() => ({ done: true as const, value: undefined }));
        if (chunk.done) return;
        buffer += decoder.decode(chunk.value as Uint8Array, { stream: true });
        for (let separator = buffer.indexOf('\n\n'); separator >= 0; separator = buffer.indexOf('\n\n')) {
          const lines = buffer.slice(0, separator).split('\n').filter((line) => !line.startsWith(':') && line.includes(':'));
          buffer = buffer.slice(separator + 2);
          const fields = Object.fromEntries(lines.map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1).replace(/^ /, '')]));
          if (fields.event && fields.data !== undefined) events.push({ event: fields.event, ...(fields.id ? { id: fields.id } : {}), data: fields.data });
        }
      }
    })();
    const parked: Array<{ remove(): Promise<void> }> = [];
    try {
      await waitUntil(() => Promise.resolve(events.some((event) => event.event === 'snapshot')), 10_000, 'no first snapshot');
      await recordCall(database.db, { ...seeded, version: 2, status: 'ended', endedAt: '2026-03-01T12:05:00.000Z', durationSeconds: 300, disposition: 'answered' }, []);
      await waitUntil(() => Promise.resolve(events.some((event) => event.event === 'change')), 10_000, 'no change event for the journal write');
      // The snapshot the change brings first, so the backlog parked next is news only a backlog event tells.
      await waitUntil(() => Promise.resolve(events.filter((event) => event.event === 'snapshot').length >= 2), 10_000, 'no snapshot after the change');
      parked.push(await parkInboxRows(database.db, tenantId, { count: 2, ageSeconds: 30 }));
      await waitUntil(() => Promise.resolve(events.some((event) => event.event === 'backlog')), 10_000, 'no backlog event');
    } finally {
      controller.abort();
      await pump;
      for (const rows of parked) await rows.remove();
    }
    const streamEvent = document.components.schemas.DashboardStreamEvent as { oneOf: Array<{ properties: { event: { const: string }; data: { contentSchema: { $ref: string } } } }> };
    const dataComponent = (event: string): string => {
      const branch = streamEvent.oneOf.find((item) => item.properties.event.const === event);
      assert.ok(branch, `the document declares the "${event}" event`);
      return branch.properties.data.contentSchema.$ref.replace('#/components/schemas/', '');
    };
    const items = events.flatMap((event) => [
      { component: 'DashboardStreamEvent', instance: event },
      { component: dataComponent(event.event), instance: JSON.parse(event.data) as unknown },
    ]);
    const problems = await validateAgainstDocument(document, items);
    const broken = items.map((item, index) => ({ item, errors: problems[index] ?? [] })).filter(({ errors }) => errors.length > 0);
    assert.deepEqual(broken.map(({ item, errors }) => `${item.component}: ${errors.join('; ')}`), [], 'every stream event matches its schema');
    assert.deepEqual([...new Set(events.map((event) => event.event))].sort(), ['backlog', 'change', 'snapshot']);

    const snapshot = await send('GET', `/api/${tenantId}/dashboard/snapshot`, { headers: auth, template: '/api/{tenant}/dashboard/snapshot' });
    assert.equal(snapshot.status, 200);
    const page = await send('GET', `/api/${tenantId}/calls?limit=1`, { headers: auth, template: '/api/{tenant}/calls' });
    assert.equal(page.status, 200);
  });

  it('answered every request above with a status the document declares for it, and a body of the declared schema', async () => {
    assert.ok(answered.length > 40, `${answered.length} answers recorded`);
    const checks: Array<{ label: string; component: string; instance: unknown }> = [];
    for (const { method, template, answer } of answered) {
      const responses = document.paths[template]?.[method]?.responses;
      assert.ok(responses, `${method.toUpperCase()} ${template} is documented`);
      const declared = responses[String(answer.status)];
      assert.ok(declared, `${method.toUpperCase()} ${template} declares ${answer.status}`);
      const ref = declared.content?.['application/json']?.schema?.$ref;
      if (ref && typeof answer.body === 'object') checks.push({ label: `${method.toUpperCase()} ${template} ${answer.status}`, component: ref.replace('#/components/schemas/', ''), instance: answer.body });
    }
    const problems = await validateAgainstDocument(document, checks);
    const broken = checks.map((check, index) => ({ check, errors: problems[index] ?? [] })).filter(({ errors }) => errors.length > 0);
    assert.deepEqual(broken.map(({ check, errors }) => `${check.label}: ${errors.join('; ')}`), []);
  });
});
