/**
 * Tracing end to end: one webhook, with tracing on and OTLP pointed at a receiver in this test,
 * yields one trace from the HTTP request through the inbox forwarder's signalWithStart into the
 * workflow, its activities and the CRM call they make; and nothing personal is exported.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readdir, readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@temporalio/client';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';
import { Worker } from '@temporalio/worker';
import { createApp } from '../../api/app.js';
import type { AppConfig } from '../../config/load.js';
import { tenantSchema } from '../../config/schema.js';
import { loadCall } from '../../db/call-journal.js';
import type { Db } from '../../db/pool.js';
import { startIngestion } from '../../ingestion/runtime.js';
import type { Ingestion } from '../../ingestion/runtime.js';
import { createLogger } from '../../observability/logger.js';
import { traceHttpRequests } from '../../observability/trace-context.js';
import { startTracing } from '../../observability/tracing.js';
import type { Tracing } from '../../observability/tracing.js';
import { startKommoSandbox } from '../../sandboxes/kommo.js';
import type { KommoSandbox } from '../../sandboxes/kommo.js';
import { signedJsonRequest } from '../../sandboxes/pbx-simulator.js';
import { temporalDataConverter } from '../../security/payload-codec.js';
import { waitUntil } from '../../stack/processes.js';
import { bundleWorkflows, createWorkers } from '../../workers/create-workers.js';
import { createIntegrations } from '../../workers/integrations.js';
import { testConfig } from '../harness/api.js';
import { createTestDatabase } from '../harness/postgres.js';
import { uniqueId } from '../harness/resources.js';

/** Random ids without digits: a run of 7 random digits would look like a phone number to the scrubber the test checks. */
const lettersOnly = (id: string): string => id.replace(/[0-9]/g, (digit) => 'ghijklmnop'.charAt(Number(digit)));
import { getDevServer } from '../harness/temporal.js';

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
  boolValue?: boolean;
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: Array<{ key: string; value: OtlpValue }>;
  links?: Array<{ traceId: string; spanId: string }>;
}
interface ReceivedSpan extends OtlpSpan {
  service: string;
}

/** A stand-in OTLP/HTTP collector: keeps every JSON export request it is sent. */
async function startOtlpReceiver(): Promise<{ url: string; bodies: string[]; spans(): ReceivedSpan[]; close(): Promise<void> }> {
  const bodies: string[] = [];
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      if (request.method === 'POST' && request.url === '/v1/traces') bodies.push(Buffer.concat(chunks).toString('utf8'));
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1/traces`,
    bodies,
    spans: () =>
      bodies.flatMap((body) => {
        const request = JSON.parse(body) as { resourceSpans: Array<{ resource: { attributes: Array<{ key: string; value: OtlpValue }> }; scopeSpans: Array<{ spans: OtlpSpan[] }> }> };
        return request.resourceSpans.flatMap((resourceSpans) => {
          const service = resourceSpans.resource.attributes.find((attribute) => attribute.key === 'service.name')?.value.stringValue ?? '';
          return resourceSpans.scopeSpans.flatMap((scope) => scope.spans.map((span) => ({ ...span, service })));
        });
      }),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const attribute = (span: OtlpSpan, key: string): OtlpValue | undefined => span.attributes?.find((entry) => entry.key === key)?.value;

const historiesDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'histories');

describe('tracing from the webhook to the activities', function () {
  this.timeout(120_000);
  let receiver: Awaited<ReturnType<typeof startOtlpReceiver>>;
  let tracing: Tracing;
  let kommo: KommoSandbox;
  let config: AppConfig;
  let db: Db;
  let workers: Worker[] = [];
  let running: Array<Promise<void>> = [];
  let ingestion: Ingestion;
  let server: Server;
  let baseUrl: string;
  let workflowBundle: Awaited<ReturnType<typeof bundleWorkflows>>;
  let integrations: ReturnType<typeof createIntegrations>;
  const tenantId = lettersOnly(uniqueId('tr').toLowerCase());
  const webhookSecret = 'tracing-webhook-secret';

  before(async () => {
    receiver = await startOtlpReceiver();
    tracing = await startTracing({ tracesUrl: receiver.url, serviceName: 'switchboard-test', sampleRatio: 1, exportDelayMs: 50 });
    const temporal = await getDevServer();
    const database = await createTestDatabase('tracing');
    db = database.db;
    kommo = await startKommoSandbox({ token: 'kommo-tracing-token' });
    const base = testConfig({ databaseUrl: database.url, address: temporal.connection.options.address, namespace: temporal.client.options.namespace });
    config = {
      ...base,
      tenants: {
        [tenantId]: tenantSchema.parse({
          displayName: 'Trace Co',
          defaultRegion: 'US',
          timeZone: 'America/New_York',
          secrets: { webhookSigningSecret: webhookSecret, operatorToken: `operator-${tenantId}` },
          crm: { kind: 'kommo', baseUrl: kommo.url, token: 'kommo-tracing-token' },
        }),
      },
    };
    const logger = createLogger({ name: 'tracing-test', level: 'silent' });
    // The bundle a worker with tracing on builds for itself: with the workflow interceptors.
    workflowBundle = await bundleWorkflows({ tracing: true });
    integrations = createIntegrations(config, { db });
    workers = await createWorkers({ config, connection: temporal.nativeConnection, db, logger, integrations, workflowBundle, tracing });
    running = workers.map((worker) => worker.run());
    // The API as api/main.ts builds it with tracing on: a traced client, and a span per request.
    const client = new Client({ connection: temporal.connection, namespace: config.temporal.namespace, dataConverter: temporalDataConverter(config.temporal.payloadEncryption), interceptors: tracing.clientInterceptors });
    ingestion = startIngestion({ config, db, temporal: client, connection: temporal.connection, logger, forward: true, pollIntervalMs: 200 });
    const app = createApp({ config, db, temporal: client, temporalConnection: temporal.connection, handOff: ingestion.handOff, backlog: ingestion.backlog, logger });
    server = createServer(traceHttpRequests(app)).listen(0, '127.0.0.1');
    await once(server, 'listening');
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    await ingestion?.stop();
    await new Promise<void>((resolve) => {
      if (!server) return resolve();
      server.closeAllConnections();
      server.close(() => resolve());
    });
    for (const worker of workers) if (worker.getState() === 'RUNNING') worker.shutdown();
    await Promise.allSettled(running);
    integrations?.close();
    await tracing?.shutdown();
    await Promise.all([kommo?.stop(), receiver?.close()]);
  });

  it('exports one trace covering the HTTP request, the forward and its signalWithStart, the workflow, an activity and its CRM call', async () => {
    kommo.seedContact({ name: 'Ada Lovelace', phone: '+1 (415) 555-0142', company: 'Analytical Engines' });
    const providerCallId = lettersOnly(uniqueId('trace'));
    const event = { event_id: `${providerCallId}-ring`, event: 'call.ringing', call_id: providerCallId, timestamp: new Date().toISOString(), direction: 'inbound', from: '415-555-0142', to: '+12025550100' };
    const request = signedJsonRequest(webhookSecret, event);
    const response = await fetch(`${baseUrl}/webhooks/${tenantId}/pbx`, { method: 'POST', headers: request.headers, body: request.body });
    const answer = (await response.json()) as { via?: string };
    assert.equal(response.status, 202, JSON.stringify(answer));
    assert.equal(answer.via, 'inbox', 'the event went through the inbox, so the forwarder had to carry the trace');
    await waitUntil(async () => (await loadCall(db, tenantId, `pbx:${providerCallId}`))?.enrichmentState === 'done', 60_000, 'the call was never enriched');

    // Workflow spans leave through the sink after their activation, so wait for the whole chain.
    const chainOf = (spans: ReceivedSpan[]) => {
      const webhook = spans.find((span) => span.name === 'POST /webhooks/:tenant/:provider' && span.kind === 2);
      const inTrace = spans.filter((span) => span.traceId === webhook?.traceId);
      const named = (prefix: string) => inTrace.filter((span) => span.name.startsWith(prefix));
      const runEnrich = named('RunActivity:enrichCall')[0];
      return {
        webhook,
        inTrace,
        forward: named('forward callWorkflow')[0],
        signalWithStart: named('SignalWithStartWorkflow:callWorkflow')[0],
        handleSignal: named('HandleSignal:')[0],
        startEnrich: named('StartActivity:enrichCall')[0],
        runEnrich,
        crmCall: inTrace.find((span) => span.kind === 3 && span.parentSpanId === runEnrich?.spanId),
      };
    };
    let chain = chainOf([]);
    await waitUntil(
      async () => {
        await tracing.flush();
        chain = chainOf(receiver.spans());
        return Object.values(chain).every((part) => part !== undefined);
      },
      30_000,
      'the trace never covered the whole path',
    ).catch((error: unknown) => {
      throw new Error(`${(error as Error).message}: ${JSON.stringify({ ...chain, inTrace: chain.inTrace.map((span) => span.name) })}`);
    });
    const { webhook, forward, signalWithStart, handleSignal, startEnrich, runEnrich, crmCall } = chain as { [K in keyof typeof chain]-?: NonNullable<(typeof chain)[K]> };

    // One trace, parent by parent: request → forward → signalWithStart → workflow → activity → CRM call.
    assert.equal(webhook.parentSpanId ?? '', '', 'a webhook starts its own trace');
    assert.equal(forward.parentSpanId, webhook.spanId, 'the forwarder continued the trace it found in the inbox row');
    assert.equal(signalWithStart.parentSpanId, forward.spanId);
    assert.equal(handleSignal.parentSpanId, signalWithStart.spanId, 'the workflow continued the trace from the signal headers');
    assert.equal(runEnrich.parentSpanId, startEnrich.spanId, 'the activity continued the trace of the workflow that scheduled it');
    assert.equal(attribute(webhook, 'http.route')?.stringValue, '/webhooks/:tenant/:provider');
    assert.equal(Number(attribute(webhook, 'http.response.status_code')?.intValue), 202);
    assert.equal(attribute(signalWithStart, 'temporalWorkflowId')?.stringValue, `call:${tenantId}:pbx:${providerCallId}`);
    assert.equal(attribute(crmCall, 'url.full')?.stringValue, new URL(kommo.url).origin, 'an outside call keeps its origin only');
    assert.equal(attribute(crmCall, 'url.query'), undefined);
    assert.equal(attribute(crmCall, 'url.path'), undefined);
    assert.ok(chain.inTrace.every((span) => span.service === 'switchboard-test'));

    // Nothing personal or secret in any export: not the phone (in any spelling), the name, a token or a secret.
    const exported = receiver.bodies.join('\n');
    assert.doesNotMatch(exported, /4\D{0,3}1\D{0,3}5\D{0,3}5\D{0,3}5\D{0,3}5\D{0,3}0\D{0,3}1\D{0,3}4\D{0,3}2/, 'no phone number');
    for (const secret of ['Ada Lovelace', 'Lovelace', 'Analytical', 'kommo-tracing-token', webhookSecret, `operator-${tenantId}`]) {
      assert.ok(!exported.includes(secret), `"${secret}" is not exported`);
    }
  });

  it('keeps the workflows deterministic: recorded histories replay on the bundle with the tracing interceptors', async () => {
    const files = (await readdir(historiesDir)).filter((file) => file.endsWith('.json')).sort();
    assert.ok(files.length >= 3, 'histories are recorded');
    const histories = await Promise.all(files.map(async (file) => ({ workflowId: file, history: historyFromJSON(JSON.parse(await readFile(path.join(historiesDir, file), 'utf8'))) })));
    const failures: string[] = [];
    const replayOptions = { workflowBundle, dataConverter: temporalDataConverter(config.temporal.payloadEncryption), interceptors: tracing.workerInterceptors, sinks: tracing.workflowSinks };
    for await (const result of Worker.runReplayHistories(replayOptions, histories)) {
      if (result.error) failures.push(`${result.workflowId}: ${result.error.message}`);
    }
    assert.deepEqual(failures, []);
  });
});
