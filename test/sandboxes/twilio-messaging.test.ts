import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { startTwilioMessagingSandbox } from '../../sandboxes/twilio-messaging.js';
import type { TwilioMessagingSandbox } from '../../sandboxes/twilio-messaging.js';
import { verifyTwilioSignature } from '../../security/signatures.js';

const ACCOUNT = `AC${'a'.repeat(32)}`;
const TOKEN = 'twilio-auth-token';
const KEY = { sid: `SK${'b'.repeat(32)}`, secret: 'api-key-secret' };
const SERVICE = `MG${'c'.repeat(32)}`;
const OURS = '+15005550006';

interface Received {
  url: string;
  params: URLSearchParams;
  signature: string | undefined;
}

/** A webhook receiver: records every form POST and answers `status`. */
async function receiver(status = 200): Promise<{ url: string; received: Received[]; close(): Promise<void> }> {
  const received: Received[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const signature = req.headers['x-twilio-signature'];
      received.push({ url: req.url ?? '/', params: new URLSearchParams(Buffer.concat(chunks).toString('utf8')), signature: Array.isArray(signature) ? signature[0] : signature });
      res.writeHead(status).end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, received, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('Twilio Messaging sandbox (real HTTP)', () => {
  let twilio: TwilioMessagingSandbox;
  let hooks: Awaited<ReturnType<typeof receiver>>;
  before(async () => {
    hooks = await receiver();
    twilio = await startTwilioMessagingSandbox({
      accountSid: ACCOUNT,
      authToken: TOKEN,
      apiKeys: [KEY],
      phoneNumbers: [OURS],
      messagingServiceSid: SERVICE,
      inboundWebhookUrl: `${hooks.url}/inbound`,
      outcomes: { '+15005550009': { status: 'undelivered', errorCode: 30003 } },
    });
  });
  after(async () => {
    await twilio.stop();
    await hooks.close();
  });

  const send = (form: Record<string, string>, authorization = basic(ACCOUNT, TOKEN), account = ACCOUNT): Promise<Response> =>
    fetch(`${twilio.url}/2010-04-01/Accounts/${account}/Messages.json`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization }, body: new URLSearchParams(form).toString() });
  const errorOf = async (response: Response): Promise<{ code: number; message: string; more_info: string; status: number }> => (await response.json()) as { code: number; message: string; more_info: string; status: number };

  it('refuses bad credentials with 401 20003, and takes the auth token or an API key', async () => {
    const form = { To: '+14155550100', From: OURS, Body: 'hi' };
    for (const authorization of ['', basic(ACCOUNT, 'wrong'), basic(KEY.sid, 'wrong'), `Bearer ${TOKEN}`]) {
      const response = await send(form, authorization);
      assert.equal(response.status, 401, authorization);
      assert.deepEqual(await errorOf(response), { code: 20003, message: 'Authenticate', more_info: 'https://www.twilio.com/docs/errors/20003', status: 401 });
    }
    assert.equal((await send(form)).status, 201);
    assert.equal((await send(form, basic(KEY.sid, KEY.secret))).status, 201);
    assert.equal((await send(form, basic(ACCOUNT, TOKEN), `AC${'d'.repeat(32)}`)).status, 404);
  });

  it('validates the form: 21604 no To, 21603 no sender, 21602 no Body, 21211 an invalid To, 21606 a From not ours, 21609 a bad StatusCallback', async () => {
    const cases: Array<[Record<string, string>, number]> = [
      [{ From: OURS, Body: 'hi' }, 21604],
      [{ To: '+14155550100', Body: 'hi' }, 21603],
      [{ To: '+14155550100', From: OURS }, 21602],
      [{ To: '555-0100', From: OURS, Body: 'hi' }, 21211],
      [{ To: '+14155550100', From: '+14155550199', Body: 'hi' }, 21606],
      [{ To: '+14155550100', From: OURS, Body: 'hi', StatusCallback: 'not a url' }, 21609],
      [{ To: '+14155550100', From: OURS, Body: 'x'.repeat(1601) }, 21617],
    ];
    for (const [form, code] of cases) {
      const response = await send(form);
      assert.equal(response.status, 400, JSON.stringify(form));
      const error = await errorOf(response);
      assert.equal(error.code, code);
      assert.equal(error.status, 400);
      assert.equal(error.more_info, `https://www.twilio.com/docs/errors/${code}`);
    }
  });

  it('answers 201 with the Message resource, then posts signed status callbacks (no callback for the initial status)', async () => {
    const callback = `${hooks.url}/status?key=${encodeURIComponent('wa:l1:welcome:message#sms')}`;
    const before = hooks.received.length;
    const response = await send({ To: '+14155550100', MessagingServiceSid: SERVICE, Body: 'Hello', StatusCallback: callback });
    assert.equal(response.status, 201);
    const message = (await response.json()) as Record<string, unknown>;
    assert.match(String(message.sid), /^SM[0-9a-f]{32}$/);
    assert.equal(message.status, 'accepted', 'through a Messaging Service the first status is accepted');
    assert.equal(message.account_sid, ACCOUNT);
    assert.equal(message.messaging_service_sid, SERVICE);
    assert.equal(message.error_code, null);
    assert.equal(message.direction, 'outbound-api');
    await twilio.settle();
    const got = hooks.received.slice(before);
    assert.deepEqual(got.map((one) => one.params.get('MessageStatus')), ['queued', 'sent', 'delivered']);
    for (const one of got) {
      assert.equal(one.params.get('MessageSid'), message.sid);
      assert.equal(one.params.get('SmsStatus'), one.params.get('MessageStatus'));
      assert.equal(one.params.get('AccountSid'), ACCOUNT);
      assert.equal(one.params.get('ErrorCode'), null);
      const check = verifyTwilioSignature({ authTokens: [TOKEN], signature: one.signature, urls: [`${hooks.url}${one.url}`], params: one.params });
      assert.deepEqual(check, { ok: true }, 'signed over the full URL (query included) and the sorted parameters');
      assert.deepEqual(verifyTwilioSignature({ authTokens: ['other-token'], signature: one.signature, urls: [`${hooks.url}${one.url}`], params: one.params }), { ok: false, reason: 'invalid_signature' });
    }
  });

  it('reports an undeliverable number as undelivered with its ErrorCode', async () => {
    const before = hooks.received.length;
    const response = await send({ To: '+15005550009', From: OURS, Body: 'Hello', StatusCallback: `${hooks.url}/status` });
    assert.equal(((await response.json()) as { status: string }).status, 'queued');
    await twilio.settle();
    const got = hooks.received.slice(before);
    assert.deepEqual(got.map((one) => [one.params.get('MessageStatus'), one.params.get('ErrorCode')]), [['sent', null], ['undelivered', '30003']]);
  });

  it('forwards inbound messages to the webhook, and after STOP refuses sends to that recipient with 21610 until START', async () => {
    const lead = '+14155550123';
    assert.equal((await send({ To: lead, MessagingServiceSid: SERVICE, Body: 'one' })).status, 201);
    const before = hooks.received.length;
    await twilio.inbound({ from: lead, body: ' stop ' });
    await twilio.settle();
    const forwarded = hooks.received.slice(before);
    assert.equal(forwarded.length, 1);
    assert.equal(forwarded[0]?.url, '/inbound');
    assert.equal(forwarded[0]?.params.get('Body'), ' stop ');
    assert.equal(forwarded[0]?.params.get('From'), lead);
    assert.equal(forwarded[0]?.params.get('To'), OURS);
    assert.equal(forwarded[0]?.params.get('OptOutType'), 'STOP');
    assert.match(forwarded[0]?.params.get('MessageSid') ?? '', /^SM[0-9a-f]{32}$/);
    assert.deepEqual(verifyTwilioSignature({ authTokens: [TOKEN], signature: forwarded[0]?.signature, urls: [`${hooks.url}/inbound`], params: forwarded[0]?.params ?? {} }), { ok: true });
    const refused = await send({ To: lead, MessagingServiceSid: SERVICE, Body: 'two' });
    assert.equal(refused.status, 400);
    assert.deepEqual(await errorOf(refused), { code: 21610, message: 'Attempt to send to unsubscribed recipient', more_info: 'https://www.twilio.com/docs/errors/21610', status: 400 });
    await twilio.inbound({ from: lead, body: 'START' });
    assert.equal((await send({ To: lead, MessagingServiceSid: SERVICE, Body: 'three' })).status, 201);
    assert.deepEqual(twilio.state().messages.filter((message) => message.to === lead).map((message) => message.body), ['one', 'three']);
  });

  it('answers 503 during an outage and counts requests', async () => {
    twilio.setOutage(true);
    const response = await send({ To: '+14155550100', From: OURS, Body: 'hi' });
    assert.equal(response.status, 503);
    assert.equal((await errorOf(response)).status, 503);
    twilio.setOutage(false);
    assert.ok(twilio.state().requests.total > 0);
  });
});
