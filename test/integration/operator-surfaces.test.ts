/**
 * Operator surfaces: tenant isolation on every operator route, Prometheus metrics, the OpenAPI
 * description, the dashboard's live stream, and redacted logs.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import type { openApiDocument } from '../../api/openapi.js';
import { pbxEventNames } from '../../ingestion/providers/pbx.js';
import type { AppConfig } from '../../config/load.js';
import { createLogger } from '../../observability/logger.js';
import { pbxEvents, signedJsonRequest } from '../../sandboxes/pbx-simulator.js';
import type { CallPlan } from '../../sandboxes/pbx-simulator.js';
import { startApi } from '../harness/api.js';
import type { RunningApi } from '../harness/api.js';
import { startCallWorld } from '../harness/call-world.js';
import type { CallWorld } from '../harness/call-world.js';
import { uniqueId } from '../harness/resources.js';
import { inboxRowsOf, parkInboxRows } from '../harness/inbox.js';
import { getDevServer } from '../harness/temporal.js';
import { parsePrometheus } from '../harness/prometheus.js';
import { waitUntil } from '../../stack/processes.js';

const plan = (overrides: Partial<CallPlan> = {}): CallPlan => ({
  callId: uniqueId('ops'),
  direction: 'inbound',
  customerPhone: '+14155558000',
  linePhone: '+12025550100',
  agentId: 'agent-9',
  outcome: 'answered',
  startedAt: new Date(),
  ringSeconds: 3,
  talkSeconds: 40,
  ...overrides,
});

interface StreamEvent {
  event: string;
  id?: string;
  data: string;
}

/** Reads a dashboard stream event by event (comments and heartbeats skipped). */
async function openDashboardStream(url: string, token: string): Promise<{ next(wanted: (event: StreamEvent) => boolean, timeoutMs?: number): Promise<StreamEvent | undefined>; close(): void }> {
  const controller = new AbortController();
  const response = await fetch(url, { headers: { authorization: `Bearer ${token}` }, signal: controller.signal });
  assert.equal(response.headers.get('content-type'), 'text/event-stream');
  const reader = response.body?.getReader();
  assert.ok(reader);
  const decoder = new TextDecoder();
  let buffer = '';
  let reading: ReturnType<typeof reader.read> | undefined;
  return {
    /** The next wanted event; undefined when none came within `timeoutMs` (waits for ever without it). */
    async next(wanted, timeoutMs) {
      const deadline = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
      for (;;) {
        const separator = buffer.indexOf('\n\n');
        if (separator >= 0) {
          const block = buffer.slice(0, separator);
          buffer = buffer.slice(separator + 2);
          const fields = Object.fromEntries(block.split('\n').filter((line) => !line.startsWith(':') && line.includes(':')).map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1).trim()]));
          if (fields.event && fields.data !== undefined) {
            const event = { event: fields.event, ...(fields.id ? { id: fields.id } : {}), data: fields.data };
            if (wanted(event)) return event;
          }
          continue;
        }
        // A read left pending by a timeout is picked up again, so no bytes are lost.
        reading ??= reader.read();
        const chunk = deadline === undefined ? await reading : await Promise.race([reading, new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), Math.max(0, deadline - Date.now())))]);
        if (chunk === 'timeout') return undefined;
        reading = undefined;
        if (chunk.done) throw new Error('stream ended');
        buffer += decoder.decode(chunk.value as Uint8Array, { stream: true });
      }
    },
    close() {
      reading?.catch(() => undefined);
      controller.abort();
    },
  };
}

describe('operator surfaces', function () {
  this.timeout(180_000);
  let world: CallWorld;
  /** A second API over the same database, serving tenant A (the world's) and tenant B. */
  let shared: RunningApi;
  let config: AppConfig;
  const tenantB = uniqueId('b').toLowerCase();
  const tokenB = `operator-${tenantB}`;

  before(async () => {
    world = await startCallWorld({ liveFeed: true });
    const tenantA = world.tenant;
    config = {
      ...world.config,
      tenants: { ...world.config.tenants, [tenantB]: { ...tenantA, displayName: 'Other Co', secrets: { ...tenantA.secrets, operatorToken: tokenB, webhookSigningSecret: 'tenant-b-secret' } } },
    };
    shared = await startApi({ config, db: world.db, connection: (await getDevServer()).connection, liveFeed: true });
  });
  after(async () => {
    await shared.close();
    await world.stop();
  });

  describe('tenant isolation', () => {
    const tokenA = () => world.tenant.secrets.operatorToken;

    it("never lets one tenant's credentials read or change another tenant, on any operator route", async () => {
      // Data of both tenants: a call for each.
      const callA = plan();
      for (const event of pbxEvents(callA)) assert.equal((await world.postSigned('pbx', event)).status, 202);
      const callB = plan({ customerPhone: '+14155558001' });
      for (const event of pbxEvents(callB)) {
        const request = signedJsonRequest('tenant-b-secret', event);
        assert.equal((await fetch(`${shared.baseUrl}/webhooks/${tenantB}/pbx`, { method: 'POST', headers: request.headers, body: request.body })).status, 202);
      }
      await world.waitForCall(`pbx:${callA.callId}`, (snapshot) => snapshot.status === 'completed');

      const a = world.tenantId;
      const callId = encodeURIComponent(`pbx:${callA.callId}`);
      const probes: Record<string, { method: string; path: string; body?: unknown }> = {
        'GET /api/:tenant/calls': { method: 'GET', path: `/api/${a}/calls` },
        'GET /api/:tenant/calls/:callId': { method: 'GET', path: `/api/${a}/calls/${callId}` },
        'POST /api/:tenant/calls/:callId/result': { method: 'POST', path: `/api/${a}/calls/${callId}/result`, body: { outcome: 'resolved' } },
        'GET /api/:tenant/calls/:callId/recording': { method: 'GET', path: `/api/${a}/calls/${callId}/recording` },
        'GET /api/:tenant/leads/:leadId': { method: 'GET', path: `/api/${a}/leads/L1` },
        'GET /api/:tenant/leads/:leadId/timeline': { method: 'GET', path: `/api/${a}/leads/L1/timeline` },
        'POST /api/:tenant/leads/:leadId/actions': { method: 'POST', path: `/api/${a}/leads/L1/actions`, body: { action: 'pause' } },
        'GET /api/:tenant/leads/:leadId/preview': { method: 'GET', path: `/api/${a}/leads/L1/preview` },
        'POST /api/:tenant/lead-preview': { method: 'POST', path: `/api/${a}/lead-preview`, body: { lead: { timeZone: 'UTC' } } },
        'GET /api/:tenant/dashboard/context': { method: 'GET', path: `/api/${a}/dashboard/context` },
        'GET /api/:tenant/dashboard/snapshot': { method: 'GET', path: `/api/${a}/dashboard/snapshot` },
        'GET /api/:tenant/dashboard/stream': { method: 'GET', path: `/api/${a}/dashboard/stream` },
        'GET /api/:tenant/analytics/outcomes': { method: 'GET', path: `/api/${a}/analytics/outcomes` },
        'GET /api/:tenant/analytics/charts': { method: 'GET', path: `/api/${a}/analytics/charts` },
        'GET /dashboard/:tenant': { method: 'GET', path: `/dashboard/${a}` },
        'GET /dashboard/:tenant/analytics': { method: 'GET', path: `/dashboard/${a}/analytics` },
        'GET /dashboard/:tenant/calls/:callId': { method: 'GET', path: `/dashboard/${a}/calls/${callId}` },
        'GET /dashboard/:tenant/leads/:leadId': { method: 'GET', path: `/dashboard/${a}/leads/L1` },
      };
      const operatorRoutes = shared.routes.filter((route) => /^\w+ \/(api|dashboard)\/:tenant\b/.test(route));
      assert.deepEqual(operatorRoutes.sort(), Object.keys(probes).sort(), 'every operator route is probed here');

      // A session cookie of tenant B, obtained by signing in.
      const signIn = await fetch(`${shared.baseUrl}/dashboard/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ tenant: tenantB, token: tokenB }).toString(),
        redirect: 'manual',
      });
      assert.equal(signIn.status, 303);
      const cookieB = (signIn.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
      assert.match(cookieB, /^sb_operator=/);

      for (const [route, probe] of Object.entries(probes)) {
        const request = (headers: Record<string, string>) =>
          fetch(`${shared.baseUrl}${probe.path}`, {
            method: probe.method,
            headers: { ...(probe.body ? { 'content-type': 'application/json' } : {}), ...headers },
            ...(probe.body ? { body: JSON.stringify(probe.body) } : {}),
            redirect: 'manual',
          });
        const page = route.startsWith('GET /dashboard');
        for (const [who, headers] of [
          ["tenant B's token", { authorization: `Bearer ${tokenB}` }],
          ["tenant B's session", { cookie: cookieB }],
        ] as const) {
          const response = await request(headers);
          if (page) {
            assert.equal(response.status, 303, `${route} with ${who}`);
            assert.match(response.headers.get('location') ?? '', /error=forbidden/);
          } else {
            assert.equal(response.status, 403, `${route} with ${who}`);
            assert.equal(((await response.json()) as { error: string }).error, 'forbidden_tenant');
          }
          if (!response.bodyUsed) await response.body?.cancel();
        }
        const anonymous = await request({});
        assert.equal(anonymous.status, page ? 303 : 401, `${route} without credentials`);
        if (!anonymous.bodyUsed) await anonymous.body?.cancel();
        const own = await request({ authorization: `Bearer ${tokenA()}` });
        assert.ok(own.status !== 401 && own.status !== 403, `${route} with tenant A's own token answered ${own.status}`);
        if (!own.bodyUsed) await own.body?.cancel();
      }

      // And the data itself: tenant A's list never shows tenant B's call, nor can it open it.
      const listA = (await (await fetch(`${shared.baseUrl}/api/${a}/calls?limit=200`, { headers: { authorization: `Bearer ${tokenA()}` } })).json()) as { calls: Array<{ callId: string }> };
      assert.ok(listA.calls.some((call) => call.callId === `pbx:${callA.callId}`));
      assert.ok(!listA.calls.some((call) => call.callId === `pbx:${callB.callId}`));
      assert.equal((await fetch(`${shared.baseUrl}/api/${a}/calls/${encodeURIComponent(`pbx:${callB.callId}`)}`, { headers: { authorization: `Bearer ${tokenA()}` } })).status, 404);
    });
  });

  it('serves Prometheus metrics a text-format parser reads: ack latency by provider, accepted/rejected events, inbox depth', async () => {
    for (const event of pbxEvents(plan())) assert.equal((await world.postSigned('pbx', event)).status, 202);
    assert.equal((await fetch(`${world.api.baseUrl}/webhooks/${world.tenantId}/pbx`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).status, 401);
    const response = await fetch(`${world.api.baseUrl}/metrics`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/plain/);
    const families = await parsePrometheus(await response.text());
    const family = (name: string) => families.find((item) => item.name === name);
    const sample = (familyName: string, sampleName: string, labels: Record<string, string>) =>
      family(familyName)?.samples.find((item) => item.name === sampleName && Object.entries(labels).every(([key, value]) => item.labels[key] === value))?.value ?? 0;
    assert.equal(family('switchboard_webhook_ack_seconds')?.type, 'histogram');
    assert.ok(sample('switchboard_webhook_ack_seconds', 'switchboard_webhook_ack_seconds_count', { provider: 'pbx', status: '2xx' }) >= 3);
    assert.ok(sample('switchboard_webhook_ack_seconds', 'switchboard_webhook_ack_seconds_count', { provider: 'pbx', status: '4xx' }) >= 1);
    assert.ok(sample('switchboard_events', 'switchboard_events_total', { provider: 'pbx', outcome: 'accepted' }) >= 3);
    assert.ok(sample('switchboard_events', 'switchboard_events_total', { provider: 'pbx', outcome: 'rejected' }) >= 1);
    assert.equal(family('switchboard_inbox_depth')?.type, 'gauge');
    assert.equal(family('switchboard_inbox_lag_seconds')?.type, 'gauge');
    assert.ok(family('switchboard_api_process_resident_memory_bytes'));
  });

  it('describes the public API in OpenAPI 3.1 generated from the zod schemas, with a browsable page', async () => {
    const served = (await (await fetch(`${world.api.baseUrl}/openapi.json`)).json()) as ReturnType<typeof openApiDocument> & { paths: Record<string, Record<string, unknown>> };
    assert.equal(served.openapi, '3.1.0');
    const documented = new Set(Object.entries(served.paths).flatMap(([path, operations]) => Object.keys(operations).map((method) => `${method.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`)));
    const public_ = world.api.routes.filter((route) => !/^\w+ \/(dashboard|docs|openapi\.json)/.test(route) && route !== 'POST /webhooks/:tenant/:provider');
    for (const route of public_) assert.ok(documented.has(route), `${route} is documented`);
    for (const provider of ['pbx', 'twilio', 'voice-ai']) assert.ok(documented.has(`POST /webhooks/:tenant/${provider}`));
    const schemas = (served as unknown as { components: { schemas: Record<string, { properties?: Record<string, { enum?: string[] }>; required?: string[] }> } }).components.schemas;
    assert.deepEqual(schemas.PbxEvent?.properties?.event?.enum, [...pbxEventNames], 'the PBX schema comes from the zod schema');
    assert.ok(schemas.PbxEvent?.required?.includes('call_id'));
    const docs = await fetch(`${world.api.baseUrl}/docs`);
    assert.equal(docs.status, 200);
    assert.match(await docs.text(), /swagger-ui-bundle\.js/);
    assert.equal((await fetch(`${world.api.baseUrl}/docs/assets/swagger-ui-bundle.js`)).status, 200);
    const snapshot = (served.paths['/api/{tenant}/dashboard/snapshot']?.get as { responses: Record<string, { content: Record<string, { schema: { $ref: string } }> }> }).responses['200']?.content['application/json']?.schema.$ref;
    assert.equal(snapshot, '#/components/schemas/DashboardSnapshot');
    const snapshotSchema = schemas.DashboardSnapshot as { properties?: Record<string, { $ref?: string }> } | undefined;
    assert.equal(snapshotSchema?.properties?.ingestBacklog?.$ref, '#/components/schemas/IngestBacklog');
    assert.deepEqual(Object.keys(schemas.IngestBacklog?.properties ?? {}).sort(), ['deadLetters', 'oldestAgeSeconds', 'pending'], 'the backlog schema comes from the zod schema');
  });

  it('pushes dashboard updates over SSE as calls change, and catches a reconnecting client up', async () => {
    const token = world.tenant.secrets.operatorToken;
    const stream = await openDashboardStream(`${world.api.baseUrl}/api/${world.tenantId}/dashboard/stream`, token);
    const nextEvent = async (wanted: (event: StreamEvent) => boolean): Promise<StreamEvent> => {
      const event = await stream.next(wanted);
      assert.ok(event);
      return event;
    };
    const first = await nextEvent((event) => event.event === 'snapshot');
    const before = JSON.parse(first.data) as { today: { answered: number } };
    const call = plan();
    for (const event of pbxEvents(call)) await world.postSigned('pbx', event);
    const change = await nextEvent((event) => event.event === 'change' && event.data.includes(call.callId));
    assert.ok(change.id, 'changes carry an id for Last-Event-ID');
    type Snapshot = { today: { answered: number }; calls: { recent: Array<{ callId: string }> } };
    const updated = await nextEvent((event) => event.event === 'snapshot' && (JSON.parse(event.data) as Snapshot).calls.recent.some((item) => item.callId === `pbx:${call.callId}`));
    assert.ok((JSON.parse(updated.data) as Snapshot).today.answered >= before.today.answered + 1, 'the answered call is counted');
    stream.close();

    // Reconnect with the last id seen: the changes since then come first, then a fresh snapshot.
    const later = plan();
    for (const event of pbxEvents(later)) await world.postSigned('pbx', event);
    await world.waitForCall(`pbx:${later.callId}`, (snapshot) => snapshot.status === 'completed');
    const resumed = await fetch(`${world.api.baseUrl}/api/${world.tenantId}/dashboard/stream`, { headers: { authorization: `Bearer ${token}`, 'last-event-id': change.id ?? '' } });
    const text = new TextDecoder();
    const replay = resumed.body?.getReader();
    let seen = '';
    while (!seen.includes('event: snapshot')) {
      const chunk = await replay?.read();
      if (!chunk || chunk.done) break;
      seen += text.decode(chunk.value as Uint8Array, { stream: true });
    }
    await replay?.cancel();
    assert.ok(seen.indexOf(later.callId) >= 0 && seen.indexOf(later.callId) < seen.indexOf('event: snapshot'), 'missed changes are replayed before the snapshot');
  });

  it("reports the tenant's ingest backlog in the snapshot, and on the stream as it changes with no journal write", async () => {
    type Backlog = { pending: number; oldestAgeSeconds: number; deadLetters: number };
    const token = world.tenant.secrets.operatorToken;
    const snapshotBacklog = async (): Promise<Backlog> => {
      const response = await fetch(`${world.api.baseUrl}/api/${world.tenantId}/dashboard/snapshot`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(response.status, 200);
      return ((await response.json()) as { ingestBacklog: Backlog }).ingestBacklog;
    };
    // The earlier tests' webhooks have been forwarded (and their rows deleted) before counting from zero.
    await waitUntil(async () => (await inboxRowsOf(world.db, world.tenantId)) === 0, 30_000, "the tenant's webhook events never left the inbox");
    assert.deepEqual(await snapshotBacklog(), { pending: 0, oldestAgeSeconds: 0, deadLetters: 0 });

    const stream = await openDashboardStream(`${world.api.baseUrl}/api/${world.tenantId}/dashboard/stream`, token);
    const parked: Array<{ remove(): Promise<void> }> = [];
    try {
      const first = await stream.next((event) => event.event === 'snapshot', 10_000);
      assert.ok(first, 'a first snapshot');
      assert.deepEqual((JSON.parse(first.data) as { ingestBacklog: Backlog }).ingestBacklog, { pending: 0, oldestAgeSeconds: 0, deadLetters: 0 });

      // Two events waiting 40 s, one dead letter, and another tenant's waiting event that must not count.
      parked.push(await parkInboxRows(world.db, world.tenantId, { count: 2, ageSeconds: 40 }));
      parked.push(await parkInboxRows(world.db, world.tenantId, { count: 1, ageSeconds: 90, dead: true }));
      parked.push(await parkInboxRows(world.db, tenantB, { count: 3, ageSeconds: 600 }));
      const backlogEvent = (test: (backlog: Backlog) => boolean) => (event: StreamEvent) => event.event === 'backlog' && test((JSON.parse(event.data) as { ingestBacklog: Backlog }).ingestBacklog);
      const arrived = await stream.next(backlogEvent((backlog) => backlog.pending > 0), 10_000);
      assert.ok(arrived, 'the stream reported the backlog by itself (no journal change announced it)');
      const reported = JSON.parse(arrived.data) as { generatedAt: string; ingestBacklog: Backlog };
      assert.equal(reported.ingestBacklog.pending, 2);
      assert.equal(reported.ingestBacklog.deadLetters, 1);
      assert.ok(reported.ingestBacklog.oldestAgeSeconds >= 40 && reported.ingestBacklog.oldestAgeSeconds < 120, `oldest ${reported.ingestBacklog.oldestAgeSeconds} s`);
      assert.ok(!Number.isNaN(Date.parse(reported.generatedAt)));
      const fromSnapshot = await snapshotBacklog();
      assert.deepEqual({ ...fromSnapshot, oldestAgeSeconds: Math.round(fromSnapshot.oldestAgeSeconds / 10) }, { pending: 2, deadLetters: 1, oldestAgeSeconds: 4 });
      // While it waits, the oldest event ages: the stream keeps refreshing it.
      const aged = await stream.next(backlogEvent((backlog) => backlog.pending === 2 && backlog.oldestAgeSeconds >= reported.ingestBacklog.oldestAgeSeconds + 1), 10_000);
      assert.ok(aged, 'the backlog is refreshed while it lasts');

      for (const rows of parked.splice(0)) await rows.remove();
      const cleared = await stream.next(backlogEvent((backlog) => backlog.pending === 0), 10_000);
      assert.ok(cleared, 'the stream reported the backlog gone');
      assert.deepEqual((JSON.parse(cleared.data) as { ingestBacklog: Backlog }).ingestBacklog, { pending: 0, oldestAgeSeconds: 0, deadLetters: 0 });
      // Nothing changes any more, so nothing more is sent (several refresh periods).
      assert.equal(await stream.next((event) => event.event === 'backlog', 5_000), undefined, 'an unchanged backlog is not sent again');
    } finally {
      stream.close();
      for (const rows of parked) await rows.remove();
    }
  });

  it('lets go of a dashboard stream whose client left before the first snapshot', async () => {
    const openStreams = async (): Promise<number> => {
      const text = await (await fetch(`${world.api.baseUrl}/metrics`)).text();
      return Number(/^switchboard_dashboard_streams (\d+)$/m.exec(text)?.[1] ?? Number.NaN);
    };
    const before = await openStreams();
    assert.ok(Number.isInteger(before));
    // Leave as soon as the headers arrive, while the server is still reading the first snapshot.
    for (let index = 0; index < 5; index++) {
      const controller = new AbortController();
      await fetch(`${world.api.baseUrl}/api/${world.tenantId}/dashboard/stream`, { headers: { authorization: `Bearer ${world.tenant.secrets.operatorToken}` }, signal: controller.signal });
      controller.abort();
    }
    await waitUntil(async () => (await openStreams()) === before, 10_000, 'abandoned streams were never released').catch(async (error: unknown) => {
      assert.fail(`${(error as Error).message}: ${await openStreams()} open, ${before} before`);
    });
  });

  it('writes JSON logs with phone numbers and secrets redacted', () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const logger = createLogger({ name: 'redaction-test', destination });
    logger.info({ phone: '+14155550199', headers: { authorization: 'Bearer s3cret-token' }, databaseUrl: 'postgres://u:pw@db/x' }, 'call from +1 (415) 555-0199 via postgres://user:hunter2@db:5432/sb');
    logger.error({ err: new Error('Kommo refused +14155550199') }, 'failed');
    const text = lines.join('');
    for (const leaked of ['4155550199', '555-0199', 's3cret-token', 'hunter2', ':pw@']) assert.ok(!text.includes(leaked), `"${leaked}" is not in the logs`);
    const first = JSON.parse(lines[0] ?? '{}') as { level: string; service: string; msg: string };
    assert.equal(first.level, 'info');
    assert.equal(first.service, 'redaction-test');
    assert.match(first.msg, /call from \[phone …99\]/);
  });
});
