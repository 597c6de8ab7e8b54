/**
 * Safe recording fetches (issue 13): the URL a webhook names reaches only the tenant's allowed hosts,
 * never a private, loopback, link-local or metadata address (by name, by literal or through a
 * redirect), credentials stay on their own host, the body is capped as it streams, and only audio is
 * kept and served (with nosniff). Recording links are signed with their own key and expire.
 * Real HTTP servers on loopback stand where a request would land, and prove none arrived.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { createRecordingActivities, recordingRefusedType } from '../../activities/recordings.js';
import type { FetchRecordingInput } from '../../activities/recordings.js';
import { tenantSchema } from '../../config/schema.js';
import type { TenantConfig } from '../../config/schema.js';
import { recordingInfo, storeRecording } from '../../db/recordings.js';
import { pbxEvents } from '../../sandboxes/pbx-simulator.js';
import { deterministicWav, startRecordingHost } from '../../sandboxes/recordings.js';
import type { RecordingHost } from '../../sandboxes/recordings.js';
import { recordingLink, recordingLinkSignature } from '../../security/signatures.js';
import { waitUntil } from '../../stack/processes.js';
import { startCallWorld } from '../harness/call-world.js';
import type { CallWorld } from '../harness/call-world.js';
import { uniqueId } from '../harness/resources.js';

interface SeenRequest {
  method: string;
  path: string;
  authorization: string | undefined;
}

/** A real HTTP server on 127.0.0.1 that notes every request it receives. */
interface Probe {
  port: number;
  /** `http://127.0.0.1:<port>` */
  url: string;
  seen: SeenRequest[];
  stop(): Promise<void>;
}

async function startProbe(handle: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => void res.writeHead(404).end()): Promise<Probe> {
  const seen: SeenRequest[] = [];
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method ?? '', path: req.url ?? '', authorization: req.headers.authorization });
    handle(req, res);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    seen,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const basic = (user: string, pass: string): string => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;

function tenantWith(recordings: Record<string, unknown>, extra: Record<string, unknown> = {}): TenantConfig {
  return tenantSchema.parse({
    displayName: 'Recordings Co',
    defaultRegion: 'US',
    timeZone: 'UTC',
    secrets: { webhookSigningSecret: 'webhook-secret', operatorToken: 'operator-token', twilioAuthToken: 'twilio-token' },
    pbxRecordingAuth: { user: 'pbx', pass: 'pbx-pass', host: '127.0.0.1' },
    recordings,
    ...extra,
  });
}

async function refusal(work: Promise<unknown>): Promise<ApplicationFailure> {
  const error = await work.then(
    () => assert.fail('expected the fetch to be refused'),
    (caught: unknown) => caught,
  );
  assert.ok(error instanceof ApplicationFailure, String(error));
  return error;
}

describe('recording fetch: allowed hosts, public addresses, redirects, credentials, size cap, audio only', () => {
  let world: CallWorld;
  let sandbox: RecordingHost;
  const probes: Probe[] = [];
  const probe = async (handle?: (req: IncomingMessage, res: ServerResponse) => void): Promise<Probe> => {
    const started = await startProbe(handle);
    probes.push(started);
    return started;
  };
  const fetchWith = (tenant: TenantConfig, url: string, provider: FetchRecordingInput['provider'] = 'pbx') => {
    const activities = createRecordingActivities({ db: world.db, tenant: () => tenant });
    const input: FetchRecordingInput = { tenantId: uniqueId('rec').toLowerCase(), callId: `${provider}:${uniqueId('call')}`, provider, url };
    const done: ReturnType<typeof activities.fetchRecording> = new MockActivityEnvironment({}, { logger: new DefaultLogger('ERROR') }).run((value: FetchRecordingInput) => activities.fetchRecording(value), input);
    return { input, done };
  };

  before(async () => {
    world = await startCallWorld({ crm: false });
    sandbox = await startRecordingHost({ basicAuth: { user: 'pbx', pass: 'pbx-pass' } });
  });
  after(async () => {
    await Promise.all(probes.map((started) => started.stop()));
    await sandbox.stop();
    await world.stop();
  });

  it('fetches from the sandbox the tenant allows explicitly (loopback, plain http), with the PBX credentials', async () => {
    const wav = deterministicWav(1, 'allowed');
    const url = sandbox.put('/pbx/allowed.wav', wav, 'audio/wav');
    const { input, done } = fetchWith(tenantWith({ privateNetworkHosts: ['127.0.0.1'], allowPlainHttp: true }), url);
    assert.deepEqual(await done, { sizeBytes: wav.length, contentType: 'audio/wav' });
    assert.deepEqual(await recordingInfo(world.db, input.tenantId, input.callId), { contentType: 'audio/wav', sizeBytes: wav.length });
  });

  it('refuses a URL at a loopback address, by literal or by a name that resolves to one, and the server there gets no request', async () => {
    const target = await probe((_req, res) => void res.writeHead(200, { 'content-type': 'audio/wav' }).end(deterministicWav(0.1, 'x')));
    // The host is allowed; its address is not (no privateNetworkHosts).
    const tenant = tenantWith({ allowedHosts: ['127.0.0.1', 'localhost', '[::ffff:7f00:1]'], allowPlainHttp: true });
    for (const url of [`${target.url}/rec.wav`, `http://localhost:${target.port}/rec.wav`, `http://[::ffff:127.0.0.1]:${target.port}/rec.wav`]) {
      const failure = await refusal(fetchWith(tenant, url).done);
      assert.equal(failure.type, recordingRefusedType, url);
      assert.equal(failure.nonRetryable, true);
      assert.match(failure.message, /loopback address/, url);
      assert.doesNotMatch(failure.message, /rec\.wav|pbx-pass/, 'names no path and no secret');
    }
    assert.deepEqual(target.seen, [], 'nothing reached the loopback server');
  });

  it('refuses metadata, private and link-local addresses and hosts the tenant does not allow', async () => {
    const tenant = tenantWith({ allowedHosts: ['169.254.169.254', '10.0.0.8', '169.254.10.1', '[fd12::1]', '[fe80::1]'], allowPlainHttp: true, privateNetworkHosts: ['127.0.0.1'] });
    const cases: Array<[string, RegExp]> = [
      ['http://169.254.169.254/latest/meta-data/', /cloud metadata address/],
      ['http://10.0.0.8/rec.wav', /private address/],
      ['http://169.254.10.1/rec.wav', /link-local address/],
      ['http://[fd12::1]/rec.wav', /unique-local address/],
      ['http://[fe80::1]/rec.wav', /link-local address/],
      ['http://elsewhere.example/rec.wav', /host elsewhere\.example is not in the tenant's recordings\.allowedHosts/],
      ['https://user:secret@127.0.0.1/rec.wav', /the URL carries credentials/],
      ['ftp://127.0.0.1/rec.wav', /ftp:\/\/ is not allowed/],
    ];
    for (const [url, reason] of cases) {
      const failure = await refusal(fetchWith(tenant, url).done);
      assert.equal(failure.type, recordingRefusedType, url);
      assert.match(failure.message, reason, url);
      assert.doesNotMatch(failure.message, /secret/);
    }
    const httpsOnly = await refusal(fetchWith(tenantWith({ privateNetworkHosts: ['127.0.0.1'] }), `${sandbox.url}/pbx/allowed.wav`).done);
    assert.match(httpsOnly.message, /http:\/\/ is not allowed \(only https:\/\/\)/);
    // Twilio tenants may fetch from Twilio's API host without listing it; its address is public, so only the allowance is shown here.
    const twilio = await refusal(fetchWith(tenantWith({}, { twilio: { accountSid: 'AC1' } }), 'https://api.twilio.com.evil.example/rec.wav', 'twilio').done);
    assert.match(twilio.message, /host api\.twilio\.com\.evil\.example is not in/);
  });

  it('re-checks every redirect: to a loopback address, to the metadata address, to a host not allowed; the targets get no request', async () => {
    const target = await probe((_req, res) => void res.writeHead(200, { 'content-type': 'audio/wav' }).end(deterministicWav(0.1, 'target')));
    const redirects: Record<string, string> = {
      '/to-loopback': `${target.url}/secret.wav`,
      '/to-metadata': 'http://169.254.169.254/latest/meta-data/iam/security-credentials/',
      '/to-elsewhere': 'http://elsewhere.example/rec.wav',
      '/loop': '/loop',
    };
    const front = await probe((req, res) => void res.writeHead(302, { location: redirects[req.url ?? ''] ?? '/' }).end());
    // The front server is reached by the name `localhost`, the only name allowed a private address;
    // 127.0.0.1 is an allowed host, but not one that may be private.
    const tenant = tenantWith({ allowedHosts: ['127.0.0.1', '169.254.169.254'], privateNetworkHosts: ['localhost'], allowPlainHttp: true, maxRedirects: 3 });
    const expectations: Array<[string, RegExp]> = [
      ['/to-loopback', /host 127\.0\.0\.1 is a loopback address/],
      ['/to-metadata', /cloud metadata address/],
      ['/to-elsewhere', /host elsewhere\.example is not in/],
      ['/loop', /more than recordings\.maxRedirects \(3\) redirects/],
    ];
    for (const [path, reason] of expectations) {
      const failure = await refusal(fetchWith(tenant, `http://localhost:${front.port}${path}`).done);
      assert.equal(failure.type, recordingRefusedType, path);
      assert.match(failure.message, reason, path);
    }
    assert.deepEqual(target.seen, [], 'the redirect target never received a request');
    assert.equal(front.seen.filter((seen) => seen.path === '/loop').length, 4, 'the first request and three redirects, no more');
  });

  it('sends the credentials to their own host only, never across a redirect to another host', async () => {
    const wav = deterministicWav(0.5, 'redirected');
    const media = await probe((_req, res) => void res.writeHead(200, { 'content-type': 'audio/x-wav' }).end(wav));
    // Like Twilio with HTTP auth on media: the API host checks the credentials, then redirects to a short-lived media URL elsewhere.
    const api = await probe((req, res) => {
      if (req.headers.authorization !== basic('pbx', 'pbx-pass')) return void res.writeHead(401).end();
      res.writeHead(302, { location: `http://localhost:${media.port}/media/rec.wav?Expires=1&Signature=abc` }).end();
    });
    const tenant = tenantWith({ privateNetworkHosts: ['127.0.0.1', 'localhost'], allowPlainHttp: true });
    const { input, done } = fetchWith(tenant, `${api.url}/recordings/rec.wav`);
    assert.deepEqual(await done, { sizeBytes: wav.length, contentType: 'audio/wav' });
    assert.deepEqual(api.seen.map((seen) => seen.authorization), [basic('pbx', 'pbx-pass')], 'the configured host got the credentials');
    assert.deepEqual(media.seen, [{ method: 'GET', path: '/media/rec.wav?Expires=1&Signature=abc', authorization: undefined }], 'the other host did not');
    assert.equal((await recordingInfo(world.db, input.tenantId, input.callId))?.sizeBytes, wav.length);

    // A URL on a host other than pbxRecordingAuth.host never carries them either.
    const other = await probe((_req, res) => void res.writeHead(200, { 'content-type': 'audio/wav' }).end(wav));
    assert.equal((await fetchWith(tenant, `http://localhost:${other.port}/rec.wav`).done).sizeBytes, wav.length);
    assert.deepEqual(other.seen.map((seen) => seen.authorization), [undefined]);
  });

  it('cuts off a body over recordings.maxBytes sent without Content-Length, and refuses a declared one before reading it', async () => {
    let streamClosed = false;
    let bytesSent = 0;
    // An endless chunked body: only the cap ends this download.
    const endless = await probe((_req, res) => {
      res.writeHead(200, { 'content-type': 'audio/wav' });
      const chunk = Buffer.alloc(16 * 1024, 1);
      const pump = (): void => {
        while (!res.destroyed && res.write(chunk)) bytesSent += chunk.length;
        if (!res.destroyed) res.once('drain', pump);
      };
      res.once('close', () => {
        streamClosed = true;
      });
      pump();
    });
    const tenant = tenantWith({ privateNetworkHosts: ['127.0.0.1'], allowPlainHttp: true, maxBytes: 256 * 1024 });
    const { input, done } = fetchWith(tenant, `${endless.url}/endless.wav`);
    const failure = await refusal(done);
    assert.equal(failure.type, recordingRefusedType);
    assert.match(failure.message, /more than recordings\.maxBytes \(262144\) bytes; the download was cut off/);
    await waitUntil(() => Promise.resolve(streamClosed), 10_000, 'the client hung up on the endless body');
    assert.ok(bytesSent < 64 * 1024 * 1024, `the server was stopped early (${bytesSent} bytes written)`);
    assert.equal(await recordingInfo(world.db, input.tenantId, input.callId), undefined, 'nothing stored');

    const declared = await probe((_req, res) => void res.writeHead(200, { 'content-type': 'audio/wav', 'content-length': String(10 * 1024 * 1024) }).end());
    const tooLarge = await refusal(fetchWith(tenant, `${declared.url}/big.wav`).done);
    assert.match(tooLarge.message, /the recording is 10485760 bytes, more than recordings\.maxBytes \(262144\)/);
  });

  it('keeps audio only: an HTML answer is refused, generic binary is typed by its bytes', async () => {
    const wav = deterministicWav(0.2, 'typed');
    const host = await probe((req, res) => {
      if (req.url === '/page') return void res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end('<script>alert(1)</script>');
      if (req.url === '/octets.wav') return void res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(wav);
      res.writeHead(200).end(Buffer.from('not audio at all'));
    });
    const tenant = tenantWith({ privateNetworkHosts: ['127.0.0.1'], allowPlainHttp: true });
    const html = fetchWith(tenant, `${host.url}/page`);
    const failure = await refusal(html.done);
    assert.equal(failure.type, recordingRefusedType);
    assert.match(failure.message, /answered with text\/html, not audio/);
    assert.equal(await recordingInfo(world.db, html.input.tenantId, html.input.callId), undefined);
    assert.equal((await fetchWith(tenant, `${host.url}/octets.wav`).done).contentType, 'audio/wav', 'sniffed from RIFF/WAVE');
    assert.equal((await fetchWith(tenant, `${host.url}/unknown`).done).contentType, 'application/octet-stream');
  });

  it('a call whose recording URL points at a refused address records the refusal; the server there gets no request', async () => {
    const target = await probe((_req, res) => void res.writeHead(200, { 'content-type': 'audio/wav' }).end(deterministicWav(0.1, 'never')));
    const callId = uniqueId('refused');
    // The test tenant allows its sandbox on 127.0.0.1, not `localhost`.
    const recordingUrl = `http://localhost:${target.port}/recordings/${callId}.wav`;
    const events = pbxEvents({ callId, direction: 'inbound', customerPhone: '+14155550123', linePhone: '+12025550100', agentId: 'agent-1', outcome: 'answered', startedAt: new Date(), ringSeconds: 2, talkSeconds: 30, recordingUrl });
    for (const event of events) assert.equal((await world.postSigned('pbx', event)).status, 202);
    const call = await world.waitForCall(`pbx:${callId}`, (snapshot) => snapshot.recording?.error !== undefined);
    assert.equal(call.recording?.stored, false);
    assert.match(call.recording?.error ?? '', /^recording refused: host localhost is not in the tenant's recordings\.allowedHosts/);
    assert.deepEqual(target.seen, []);
  });

  describe('serving and signed links', () => {
    const path = (callId: string): string => `/api/${world.tenantId}/calls/${encodeURIComponent(callId)}/recording`;
    const wav = deterministicWav(0.5, 'served');

    it('serves an audio type with nosniff; a stored type that is not audio goes out as an opaque download', async () => {
      await storeRecording(world.db, { tenantId: world.tenantId, callId: 'pbx:served-wav', contentType: 'audio/x-wav', bytes: wav, sourceUrl: 'https://pbx.example/1.wav' });
      // A row from before fetches checked the type, as the host declared it.
      await storeRecording(world.db, { tenantId: world.tenantId, callId: 'pbx:served-html', contentType: 'text/html', bytes: Buffer.from('<script>alert(1)</script>'), sourceUrl: 'https://pbx.example/2' });
      const audio = await world.operatorGet(path('pbx:served-wav'));
      assert.equal(audio.status, 200);
      assert.equal(audio.headers.get('content-type'), 'audio/wav');
      assert.equal(audio.headers.get('x-content-type-options'), 'nosniff');
      assert.equal(audio.headers.get('content-disposition'), null);
      assert.deepEqual(Buffer.from(await audio.arrayBuffer()), wav);
      const part = await world.operatorGet(path('pbx:served-wav'), { range: 'bytes=0-3' });
      assert.equal(part.status, 206);
      assert.equal(part.headers.get('x-content-type-options'), 'nosniff');

      const opaque = await world.operatorGet(path('pbx:served-html'));
      assert.equal(opaque.status, 200);
      assert.equal(opaque.headers.get('content-type'), 'application/octet-stream');
      assert.equal(opaque.headers.get('content-disposition'), 'attachment');
      assert.equal(opaque.headers.get('x-content-type-options'), 'nosniff');
      await opaque.arrayBuffer();
    });

    it('opens with a signed, unexpired link; refuses an expired, altered, webhook-signed or old-style link with a 4xx reason', async () => {
      const callId = 'pbx:served-wav';
      const now = Math.floor(Date.now() / 1000);
      const linkSecret = 'test-recording-link-secret';
      const get = (url: string): Promise<Response> => fetch(url, { headers: { range: 'bytes=0-3' } });
      const valid = await get(recordingLink(world.api.baseUrl, linkSecret, world.tenantId, callId, now + 600));
      assert.equal(valid.status, 206);
      assert.equal(Buffer.from(await valid.arrayBuffer()).toString('ascii'), 'RIFF');

      const refusedWith = async (url: string, status: number, reason: string): Promise<void> => {
        const response = await get(url);
        assert.equal(response.status, status, url);
        assert.equal(((await response.json()) as { error: string }).error, reason, url);
      };
      await refusedWith(recordingLink(world.api.baseUrl, linkSecret, world.tenantId, callId, now - 1), 403, 'expired_link');
      const signature = recordingLinkSignature(linkSecret, world.tenantId, callId, now + 600);
      await refusedWith(`${world.api.baseUrl}${path(callId)}?expires=${now + 7 * 86_400}&sig=${signature}`, 401, 'invalid_link');
      await refusedWith(`${world.api.baseUrl}${path('pbx:served-html')}?expires=${now + 600}&sig=${signature}`, 401, 'invalid_link');
      await refusedWith(recordingLink(world.api.baseUrl, 'test-webhook-secret', world.tenantId, callId, now + 600), 401, 'invalid_link');
      await refusedWith(`${world.api.baseUrl}${path(callId)}?sig=${signature.slice(0, 32)}`, 401, 'invalid_link');
      await refusedWith(`${world.api.baseUrl}${path(callId)}?expires=soon&sig=${signature}`, 401, 'invalid_link');
      // An operator's own token still opens the recording whatever the link says.
      const withToken = await world.operatorGet(`${path(callId)}?expires=${now - 1}&sig=${signature}`);
      assert.equal(withToken.status, 200);
      await withToken.arrayBuffer();
    });
  });
});
