/**
 * Property-based fuzzing of the public API from its own /openapi.json with Schemathesis (provisioned
 * by `npm run provision`): requests valid and invalid by the document, against the real app over
 * real HTTP, PostgreSQL and Temporal. No answer may be a 5xx, and every answer must have a status,
 * content type and body (dashboard stream events included) the document declares; undeclared
 * methods must be 405 with Allow, and OPTIONS must list the declared ones.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { AppConfig } from '../../config/load.js';
import { recordCall } from '../../db/call-journal.js';
import type { TenantConfig } from '../../config/schema.js';
import { currentSecret, switchboardSigningSecret } from '../../security/secrets.js';
import { metaSignature, switchboardSignature, twilioSignature } from '../../security/signatures.js';
import { initialSnapshot } from '../../shared/call-state.js';
import { ensureSchemathesis } from '../../stack/provision.js';
import { startApi, testConfig } from '../harness/api.js';
import type { RunningApi } from '../harness/api.js';
import { createTestDatabase } from '../harness/postgres.js';
import { uniqueId } from '../harness/resources.js';
import { getDevServer } from '../harness/temporal.js';

/**
 * The bound of one run: deterministic generation (the same cases every run, so a failure here is
 * reproducible and no run is flaky), a fixed number of examples per operation in the fuzzing phase
 * (about 3,000 requests in all with the coverage and stateful phases, about 90 s on two cores), and a
 * hard cap past which the run is stopped and the test fails.
 */
const examplesPerOperation = 15;
const hardCapSeconds = 300;

async function runSchemathesis(executable: string, args: string[], cwd: string, timeoutMs: number): Promise<{ code: number | null; output: string }> {
  // Asynchronously: the API under test answers from this very process. In a folder of its own, so
  // nothing Schemathesis keeps lands in the working tree.
  const child = spawn(executable, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1', COLUMNS: '160' } });
  let output = '';
  const collect = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-200_000);
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const killer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', resolve);
    });
    return { code, output };
  } finally {
    clearTimeout(killer);
  }
}

/**
 * The tenant's phone systems, CRM and Meta in front of the API: a real HTTP hop that signs every
 * webhook the fuzzer sends the way its sender would (the fuzzer cannot), so the fuzz reaches parsing
 * and validation instead of stopping at 401. Everything else passes through untouched.
 */
async function startSigningProxy(targetUrl: string, tenant: TenantConfig): Promise<{ url: string; close(): Promise<void> }> {
  const target = new URL(targetUrl);
  const signatureHeaders = (method: string, url: string, body: Buffer): Record<string, string> => {
    const match = /^\/webhooks\/[^/]+\/(pbx|voice-ai|crm|twilio|whatsapp|sms|sms\/status)(?:\?|$)/.exec(url);
    if (method !== 'POST' || !match) return {};
    const provider = match[1];
    if (provider === 'pbx' || provider === 'voice-ai' || provider === 'crm') {
      const timestamp = String(Math.floor(Date.now() / 1000));
      return { 'x-switchboard-timestamp': timestamp, 'x-switchboard-signature': switchboardSignature(switchboardSigningSecret(tenant.secrets, provider), timestamp, body) };
    }
    if (provider === 'whatsapp') {
      const appSecret = currentSecret(tenant.secrets.whatsappAppSecret);
      return appSecret ? { 'x-hub-signature-256': metaSignature(appSecret, body) } : {};
    }
    const authToken = currentSecret(tenant.secrets.twilioAuthToken);
    return authToken ? { 'x-twilio-signature': twilioSignature(authToken, `${target.origin}${url}`, new URLSearchParams(body.toString('utf8'))) } : {};
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const url = req.url ?? '/';
      const headers = { ...req.headers, host: target.host, ...signatureHeaders(req.method ?? 'GET', url, body) };
      const upstream = http.request(new URL(url, target), { method: req.method, headers }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      upstream.on('error', () => res.destroy());
      // The fuzzer closes an event stream once it has read enough: so does the hop.
      res.on('close', () => upstream.destroy());
      upstream.end(body);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('API fuzzing from /openapi.json (Schemathesis)', function () {
  this.timeout((hardCapSeconds + 60) * 1000);
  let api: RunningApi;
  let proxy: { url: string; close(): Promise<void> };
  let config: AppConfig;
  let reportDir: string;
  const tenantId = uniqueId('fuzz').toLowerCase();
  const token = `operator-${tenantId}`;

  before(async () => {
    const database = await createTestDatabase('fuzz');
    const base = testConfig({ databaseUrl: database.url });
    const demo = base.tenants[base.demo.tenant];
    assert.ok(demo, 'the development configuration has the demo tenant');
    // With a Twilio Messaging account, so the SMS webhooks are fuzzed past `not_configured`.
    const sms = { baseUrl: 'http://127.0.0.1:9', accountSid: `AC${'0'.repeat(32)}`, from: '+15005550006' };
    config = { ...base, tenants: { [tenantId]: { ...demo, sms, secrets: { ...demo.secrets, operatorToken: token } } } };
    // Forwarding off and no workers: what the fuzzer gets accepted stays in this test's own inbox,
    // so no URL it made up (a recording link, say) is ever fetched.
    api = await startApi({ config, db: database.db, connection: (await getDevServer()).connection, forward: false, liveFeed: true });
    const tenant = config.tenants[tenantId];
    assert.ok(tenant);
    proxy = await startSigningProxy(api.baseUrl, tenant);
    // A journaled call, so the lists and the snapshot answer with rows to check against their schemas.
    const startedAt = new Date(Date.now() - 60_000).toISOString();
    await recordCall(database.db, { ...initialSnapshot(tenantId, 'pbx', 'fuzz-seed'), version: 1, status: 'in_progress', direction: 'inbound', customerPhone: '+14155550150', startedAt, answeredAt: startedAt }, []);
    reportDir = await mkdtemp(path.join(os.tmpdir(), 'switchboard-fuzz-'));
  });
  after(async () => {
    await proxy.close();
    await api.close();
    await rm(reportDir, { recursive: true, force: true });
  });

  it('finds no 5xx, no undeclared status, content type or body, and 405 with Allow for undeclared methods', async () => {
    const executable = await ensureSchemathesis();
    assert.ok(executable, 'Schemathesis is provisioned (npm run provision)');
    const junit = path.join(reportDir, 'junit.xml');
    const configFile = path.join(reportDir, 'schemathesis.toml');
    await writeFile(
      configFile,
      [
        // Every operator request as this tenant's operator, so validation is reached, not only 401.
        `headers = { Authorization = "Bearer ${token}" }`,
        `parameters = { "path.tenant" = "${tenantId}" }`,
        // An event stream never ends: its first event (the snapshot) is read and checked against the
        // event schema, then the stream is closed. Its other events are checked in api-contract.test.ts.
        '[[operations]]',
        'include-path = "/api/{tenant}/dashboard/stream"',
        'max-stream-events = 1',
        'request-timeout = 5',
        'generation = { max-examples = 3 }',
        '',
      ].join('\n'),
    );
    const args = [
      '--config-file',
      configFile,
      'run',
      `${proxy.url}/openapi.json`,
      '--checks',
      'not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,unsupported_method,allow_header_conformance',
      '--mode',
      'all',
      '--max-examples',
      String(examplesPerOperation),
      // The same cases every run (and so no example database kept between runs).
      '--generation-deterministic',
      // Hypothesis's guards on how fast data is generated depend on the machine's load, not on the
      // API: on a busy two-core CI machine they would fail a run whose every answer was right.
      '--suppress-health-check',
      'all',
      '--request-timeout',
      '10',
      '--workers',
      '1',
      '--report',
      'junit',
      '--report-junit-path',
      junit,
    ];
    const started = Date.now();
    const { code, output } = await runSchemathesis(executable, args, reportDir, hardCapSeconds * 1000);
    const seconds = Math.round((Date.now() - started) / 1000);
    const summary = output.slice(output.lastIndexOf('FAILURES') >= 0 ? output.lastIndexOf('FAILURES') : Math.max(0, output.length - 6_000)).slice(0, 20_000);
    assert.equal(code, 0, `Schemathesis found failures (exit ${code}, ${seconds} s):\n${summary}`);
    const report = await readFile(junit, 'utf8');
    const fuzzed = new Set([...report.matchAll(/<testcase name="([^"]+)"/g)].map((match) => match[1]));
    const document = (await (await fetch(`${api.baseUrl}/openapi.json`)).json()) as { paths: Record<string, Record<string, unknown>> };
    // Schemathesis leaves out the document it reads (`GET /openapi.json`).
    const operations = Object.entries(document.paths)
      .flatMap(([template, item]) => Object.keys(item).map((method) => `${method.toUpperCase()} ${template}`))
      .filter((operation) => operation !== 'GET /openapi.json');
    assert.deepEqual(operations.filter((operation) => !fuzzed.has(operation)), [], 'every documented operation was fuzzed');
  });
});
