/**
 * Inbox-first ingestion over real HTTP, PostgreSQL and Temporal: an event is committed, answered,
 * then forwarded by a background forwarder. Each test takes a store away for real (a dev server
 * stopped and started again, PostgreSQL frozen behind a TCP hop, two API processes on one inbox,
 * an event Temporal refuses, a full backlog) and checks, in the workflows' own histories, that
 * every accepted event arrived exactly once and in order.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Client } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { createApiTemporalClient } from '../../workers/temporal-client.js';
import { loadConfig, repoRoot } from '../../config/load.js';
import type { AppConfig } from '../../config/load.js';
import { listDeadLetters } from '../../db/inbox.js';
import { createPool } from '../../db/pool.js';
import type { Db } from '../../db/pool.js';
import { callDelivery } from '../../ingestion/call-delivery.js';
import { startForwarder } from '../../ingestion/forwarder.js';
import { createLogger } from '../../observability/logger.js';
import { pbxEvents, signedJsonRequest } from '../../sandboxes/pbx-simulator.js';
import type { CallPlan } from '../../sandboxes/pbx-simulator.js';
import { callWorkflowId } from '../../shared/calls.js';
import { startDevServer } from '../../stack/temporal-dev-server.js';
import { switchboardSigningSecret } from '../../security/secrets.js';
import { payloadCodecFor, temporalDataConverter } from '../../security/payload-codec.js';
import type { RunningDevServer } from '../../stack/temporal-dev-server.js';
import { ensureTemporalCli } from '../../stack/provision.js';
import { spawnManaged, waitForPort, waitUntil } from '../../stack/processes.js';
import { Connection } from '@temporalio/client';
import type { ManagedProcess } from '../../stack/processes.js';
import { startApi, testConfig } from '../harness/api.js';
import type { RunningApi } from '../harness/api.js';
import { startCallWorld } from '../harness/call-world.js';
import { startFreezableLink } from '../harness/freezable-link.js';
import { waitForEmptyInbox } from '../harness/inbox.js';
import { createTestDatabase } from '../harness/postgres.js';
import { freePort, uniqueId } from '../harness/resources.js';
import { getDevServer } from '../harness/temporal.js';

const logger = createLogger({ name: 'ingestion-test', level: 'silent' });
const devSettings = loadConfig({}).devStack.temporal;

interface Accepted {
  status: string;
  via: 'inbox' | 'temporal';
  duplicates: number;
}

function plan(overrides: Partial<CallPlan> = {}): CallPlan {
  return {
    callId: uniqueId('ingest'),
    direction: 'inbound',
    customerPhone: '+14155550123',
    linePhone: '+12025550100',
    agentId: 'agent-7',
    outcome: 'answered',
    startedAt: new Date(Date.now() - 60_000),
    ringSeconds: 3,
    talkSeconds: 42,
    ...overrides,
  };
}

/** The canonical ids of a PBX call's events, in the order they are sent. */
const eventIdsOf = (call: CallPlan): string[] => pbxEvents(call).map((event) => `pbx:${String((event as { event_id: string }).event_id)}`);

async function postPbx(baseUrl: string, config: AppConfig, tenantId: string, event: unknown): Promise<Response> {
  const tenant = config.tenants[tenantId];
  const secret = tenant ? switchboardSigningSecret(tenant.secrets, 'pbx') : '';
  const request = signedJsonRequest(secret, event);
  return fetch(`${baseUrl}/webhooks/${tenantId}/pbx`, { method: 'POST', headers: request.headers, body: request.body });
}

/** Every event id the workflow was signaled with, in history order (duplicates included). */
async function signaledEventIds(client: Client, workflowId: string): Promise<string[]> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  // A raw history: its payloads are as stored, encrypted.
  const codec = payloadCodecFor(devSettings.payloadEncryption);
  const ids: string[] = [];
  for (const event of history.events ?? []) {
    const payload = event.workflowExecutionSignaledEventAttributes?.input?.payloads?.[0];
    if (!payload) continue;
    const [plain] = await codec.decode([payload]);
    const batch = defaultPayloadConverter.fromPayload<{ events: Array<{ eventId: string }> }>(plain ?? payload);
    ids.push(...batch.events.map((item) => item.eventId));
  }
  return ids;
}

/**
 * A config whose commits are never given up on for Temporal directly (as they are when PostgreSQL
 * is slow, which a loaded CI machine can be), so histories show what the forwarder sent and nothing else.
 */
function inboxOnly(base: AppConfig, env: Partial<AppConfig['env']> = {}): AppConfig {
  return { ...base, env: { ...base.env, INGEST_COMMIT_DEADLINE_MS: 30_000, ...env } };
}

async function inboxCount(db: Db): Promise<number> {
  return (await db.query<{ count: number }>('SELECT count(*)::int AS count FROM event_inbox')).rows[0]?.count ?? 0;
}

describe('ingestion: commit first, answer, forward in the background', function () {
  this.timeout(240_000);
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  });

  it('acknowledges events while Temporal is stopped; they reach their workflows, once each and in order, when it is back', async () => {
    const cli = await ensureTemporalCli({ version: devSettings.cliVersion, progress: () => undefined });
    if (!cli) throw new Error('this test needs the Temporal CLI (npm run provision)');
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'switchboard-outage-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const settings = { ...devSettings, dbFilename: path.join(dataDir, 'temporal.sqlite'), frontendPort: await freePort(), httpPort: await freePort(), uiPort: await freePort(), metricsPort: await freePort() };
    let server: RunningDevServer = await startDevServer(cli, settings, () => undefined);
    cleanups.push(() => server.process.stop(5_000));
    const { url, db } = await createTestDatabase('ingest-outage');
    const config = inboxOnly(testConfig({ databaseUrl: url, address: server.address, namespace: settings.namespace }));
    const temporal = createApiTemporalClient(config.temporal);
    cleanups.push(() => temporal.connection.close());
    const api = await startApi({ config, db, connection: temporal.connection });
    cleanups.push(() => api.close());

    await server.process.stop(5_000);
    const calls = [plan(), plan({ outcome: 'missed' })];
    for (const call of calls) {
      for (const event of pbxEvents(call)) {
        const response = await postPbx(api.baseUrl, config, 'demo', event);
        assert.equal(response.status, 202, await response.clone().text());
        assert.equal(((await response.json()) as Accepted).via, 'inbox');
      }
    }
    const sent = calls.flatMap(eventIdsOf).length;
    assert.equal(await inboxCount(db), sent, 'every acknowledged event waits in the inbox');

    server = await startDevServer(cli, settings, () => undefined);
    await waitForEmptyInbox(db);
    for (const call of calls) {
      assert.deepEqual(await signaledEventIds(temporal.client, callWorkflowId('demo', `pbx:${call.callId}`)), eventIdsOf(call));
    }
  });

  it('answers while PostgreSQL is frozen, by handing events to Temporal; they are journaled once when it is back', async () => {
    const world = await startCallWorld();
    cleanups.push(() => world.stop());
    const database = new URL(world.config.database.url);
    const link = await startFreezableLink({ host: database.hostname, port: Number(database.port) });
    cleanups.push(() => link.close());
    const proxied = new URL(database);
    proxied.host = `127.0.0.1:${link.port}`;
    const proxiedConfig: AppConfig = { ...world.config, database: { url: proxied.toString(), embedded: false } };
    const proxiedDb = createPool(proxied.toString(), { max: 10, applicationName: 'switchboard-frozen-test', queryTimeoutMs: 60_000 });
    cleanups.push(() => proxiedDb.end());
    const temporal = await getDevServer();
    const directHandOffs: string[] = [];
    const api = await startApi({ config: proxiedConfig, db: proxiedDb, connection: temporal.connection, intakeObserver: { direct: (result) => directHandOffs.push(result) } });
    cleanups.push(async () => {
      link.thaw();
      await api.close();
    });

    const call = plan();
    link.freeze();
    const answers: Accepted[] = [];
    for (const event of pbxEvents(call)) {
      const response = await postPbx(api.baseUrl, proxiedConfig, world.tenantId, event);
      assert.equal(response.status, 202, await response.clone().text());
      answers.push((await response.json()) as Accepted);
    }
    assert.deepEqual(
      answers.map((answer) => answer.via),
      ['temporal', 'temporal', 'temporal'],
      'with PostgreSQL frozen the events went to Temporal directly',
    );
    assert.deepEqual(directHandOffs, ['taken', 'taken', 'taken'], 'and the intake counted each direct hand-off');
    const journaled = await world.waitForCall(`pbx:${call.callId}`, (snapshot) => snapshot.status === 'completed');
    assert.equal(journaled.disposition, 'answered');
    link.thaw();
    // The commits held while frozen land now and are forwarded again: the workflow drops the copies.
    await waitForEmptyInbox(world.db, world.tenantId);
    const events = await world.db.query<{ event_id: string }>('SELECT event_id FROM call_events WHERE tenant_id = $1 AND call_id = $2 ORDER BY event_id', [world.tenantId, `pbx:${call.callId}`]);
    assert.deepEqual(
      events.rows.map((row) => row.event_id),
      [...eventIdsOf(call)].sort(),
    );
    const rows = await world.db.query('SELECT 1 FROM calls WHERE tenant_id = $1 AND call_id = $2', [world.tenantId, `pbx:${call.callId}`]);
    assert.equal(rows.rowCount, 1);
  });

  it('with PostgreSQL gone, more events than the cap on direct hand-offs all go to Temporal, even while Temporal is slow', async () => {
    const world = await startCallWorld();
    cleanups.push(() => world.stop());
    const database = new URL(world.config.database.url);
    const databaseLink = await startFreezableLink({ host: database.hostname, port: Number(database.port) });
    cleanups.push(() => databaseLink.close());
    const proxied = new URL(database);
    proxied.host = `127.0.0.1:${databaseLink.port}`;
    const proxiedConfig: AppConfig = { ...world.config, database: { url: proxied.toString(), embedded: false } };
    const proxiedDb = createPool(proxied.toString(), { max: 10, applicationName: 'switchboard-gone-test', queryTimeoutMs: 60_000 });
    cleanups.push(() => proxiedDb.end());
    // Temporal behind a hop of its own, held while the events arrive: its answers come late, all at once.
    const [temporalHost, temporalPort] = (await getDevServer()).address.split(':');
    const temporalLink = await startFreezableLink({ host: temporalHost ?? '127.0.0.1', port: Number(temporalPort) });
    cleanups.push(() => temporalLink.close());
    const connection = await Connection.connect({ address: `127.0.0.1:${temporalLink.port}` });
    cleanups.push(() => connection.close());
    const results: string[] = [];
    let offered = 0;
    const api = await startApi({ config: proxiedConfig, db: proxiedDb, connection, intakeObserver: { direct: (result) => results.push(result), offered: () => offered++ } });
    cleanups.push(async () => {
      databaseLink.thaw();
      temporalLink.thaw();
      await api.close();
    });

    // 20 calls' first events at once, more than the 8 direct hand-offs allowed while PostgreSQL still commits.
    const calls = Array.from({ length: 20 }, () => plan());
    databaseLink.freeze();
    temporalLink.freeze();
    const answers = calls.map(async (call) => {
      const [first] = pbxEvents(call);
      const response = await postPbx(api.baseUrl, proxiedConfig, world.tenantId, first);
      return { status: response.status, body: (await response.json()) as Accepted };
    });
    // Every event has chosen its path (a direct hand-off, or waiting for its commit) before Temporal answers.
    await waitUntil(() => Promise.resolve(offered + results.filter((result) => result === 'no_room').length >= calls.length), 30_000, 'not every event chose a path');
    temporalLink.thaw();
    const answered = await Promise.all(answers);
    assert.deepEqual(
      answered.map((answer) => `${answer.status} ${answer.body.via}`),
      calls.map(() => '202 temporal'),
      'every event was answered by Temporal, none waited for the frozen commit',
    );
    assert.equal(results.filter((result) => result === 'no_room').length, 0, `direct hand-offs: ${results.join(', ')}`);
    for (const call of calls) {
      assert.deepEqual(await signaledEventIds(world.client, callWorkflowId(world.tenantId, `pbx:${call.callId}`)), eventIdsOf(call).slice(0, 1), 'once, before the held commits land');
    }
    databaseLink.thaw();
    await waitForEmptyInbox(world.db, world.tenantId);
  });

  it('two API processes forwarding one inbox send each event exactly once, in order for each workflow', async () => {
    const temporal = await getDevServer();
    const { url, db } = await createTestDatabase('ingest-shared');
    const config = loadConfig({});
    const processes: Array<{ process: ManagedProcess; port: number }> = [];
    for (let index = 0; index < 2; index++) {
      const port = await freePort();
      const output: string[] = [];
      const child = spawnManaged(`api-${index}`, process.execPath, ['--import', 'tsx', path.join(repoRoot, 'api/main.ts')], {
        cwd: repoRoot,
        env: {
          ...process.env,
          DATABASE_URL: url,
          TEMPORAL_ADDRESS: temporal.connection.options.address,
          TEMPORAL_NAMESPACE: temporal.client.options.namespace,
          API_HOST: '127.0.0.1',
          API_PORT: String(port),
          SWITCHBOARD_DEMO: '0',
          LOG_LEVEL: 'warn',
          // Every event through the inbox (none handed to Temporal directly on a slow commit), so the
          // histories show what the forwarders sent, and nothing else.
          INGEST_COMMIT_DEADLINE_MS: '30000',
        },
        onOutput: (line) => output.push(line),
      });
      cleanups.push(() => child.stop(5_000));
      await waitForPort('127.0.0.1', port, 60_000).catch((error: unknown) => {
        throw new Error(`API process ${index} did not start: ${(error as Error).message}\n${output.join('\n')}`);
      });
      processes.push({ process: child, port });
    }

    // Each call's events in order, each to the other process than the one before; calls side by side.
    const calls = Array.from({ length: 12 }, (_, index) => plan({ outcome: index % 3 === 0 ? 'missed' : 'answered' }));
    await Promise.all(
      calls.map(async (call, callIndex) => {
        let index = callIndex;
        for (const event of pbxEvents(call)) {
          const target = processes[index++ % processes.length];
          const response = await postPbx(`http://127.0.0.1:${target?.port}`, config, 'demo', event);
          assert.equal(response.status, 202, await response.clone().text());
          assert.equal(((await response.json()) as Accepted).via, 'inbox');
        }
      }),
    );
    await waitForEmptyInbox(db);
    for (const call of calls) {
      assert.deepEqual(await signaledEventIds(temporal.client, callWorkflowId('demo', `pbx:${call.callId}`)), eventIdsOf(call), `call ${call.callId}`);
    }
    const forwardedBy = await Promise.all(
      processes.map(async ({ port }) => {
        const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
        return Number(/^switchboard_inbox_forwarded_total (\d+)/m.exec(text)?.[1] ?? 0);
      }),
    );
    assert.equal(
      forwardedBy.reduce((sum, count) => sum + count, 0),
      calls.flatMap(eventIdsOf).length,
      `forwarded by each process: ${forwardedBy.join(', ')}`,
    );
    assert.ok(
      forwardedBy.every((count) => count > 0),
      `both processes forwarded: ${forwardedBy.join(', ')}`,
    );
  });

  it('moves an event Temporal refuses for good to dead letter after N tries; the events behind it still flow', async () => {
    const temporal = await getDevServer();
    const { url, db } = await createTestDatabase('ingest-poison');
    const config = inboxOnly(testConfig({ databaseUrl: url }), { INGEST_MAX_REFUSALS: 3 });
    const api = await startApi({ config, db, connection: temporal.connection });
    cleanups.push(() => api.close());

    const call = plan();
    // Over Temporal's 2 MB blob limit: no retry can make Temporal take it.
    const poison = { eventId: 'pbx:oversized', type: 'call.ringing', occurredAt: new Date().toISOString(), padding: 'x'.repeat(2_500_000) };
    const delivery = callDelivery(config, 'demo', 'pbx', call.callId, [poison as never]);
    assert.equal((await api.ingestion.handOff(delivery)).via, 'inbox');
    for (const event of pbxEvents(call)) assert.equal((await postPbx(api.baseUrl, config, 'demo', event)).status, 202);

    await waitForEmptyInbox(db);
    const client = new Client({ connection: temporal.connection, namespace: config.temporal.namespace, dataConverter: temporalDataConverter(config.temporal.payloadEncryption) });
    assert.deepEqual(await signaledEventIds(client, callWorkflowId('demo', `pbx:${call.callId}`)), eventIdsOf(call));
    const dead = await listDeadLetters(db, 'demo');
    assert.equal(dead.length, 1);
    assert.equal(dead[0]?.eventId, 'pbx:oversized');
    assert.equal(dead[0]?.attempts, 3);
    assert.match(dead[0]?.reason ?? '', /size|limit/i);
  });

  it('keeps one inbox row for a repeated delivery, and past the backlog bound answers 503 with Retry-After without losing what it accepted', async () => {
    const temporal = await getDevServer();
    const { url, db } = await createTestDatabase('ingest-bound');
    const config = inboxOnly(testConfig({ databaseUrl: url }), { INGEST_MAX_BACKLOG_EVENTS: 4 });
    // Nobody forwards while the backlog builds up.
    const api: RunningApi = await startApi({ config, db, connection: temporal.connection, forward: false });
    cleanups.push(() => api.close());
    const [first, second] = [plan(), plan()];
    const events = [...pbxEvents(first), ...pbxEvents(second)];

    const answers: Accepted[] = [];
    for (const event of events.slice(0, 3)) answers.push((await (await postPbx(api.baseUrl, config, 'demo', event)).json()) as Accepted);
    const repeated = (await (await postPbx(api.baseUrl, config, 'demo', events[0])).json()) as Accepted;
    assert.deepEqual(
      answers.map((answer) => answer.duplicates),
      [0, 0, 0],
    );
    assert.equal(repeated.duplicates, 1, `the repeated delivery is recognized: ${JSON.stringify(repeated)}`);
    assert.equal(await inboxCount(db), 3);

    assert.equal((await postPbx(api.baseUrl, config, 'demo', events[3])).status, 202);
    const refused = await postPbx(api.baseUrl, config, 'demo', events[4]);
    assert.equal(refused.status, 503);
    assert.ok(Number(refused.headers.get('retry-after')) >= 1, `Retry-After: ${refused.headers.get('retry-after')}`);
    assert.equal(((await refused.json()) as { error: string }).error, 'backlog_full');
    assert.equal(await inboxCount(db), 4, 'the refused event was not stored');
    const stored = await db.query('SELECT 1 FROM rejected_events');
    assert.equal(stored.rowCount, 0, 'a 503 is not a refusal of the event: nothing fills the rejection store');

    const client = new Client({ connection: temporal.connection, namespace: config.temporal.namespace, dataConverter: temporalDataConverter(config.temporal.payloadEncryption) });
    const forwarder = startForwarder({ db, temporal: client, connection: temporal.connection, logger, autoStart: false });
    assert.equal(await forwarder.drainOnce(), 4);
    await forwarder.stop();
    assert.deepEqual(await signaledEventIds(client, callWorkflowId('demo', `pbx:${first?.callId}`)), eventIdsOf(first));
    assert.deepEqual(await signaledEventIds(client, callWorkflowId('demo', `pbx:${second?.callId}`)), eventIdsOf(second).slice(0, 1));

    await api.ingestion.backlog.refresh();
    assert.equal((await postPbx(api.baseUrl, config, 'demo', events[4])).status, 202, 'with room again, the retry is accepted');
  });
});
