import assert from 'node:assert/strict';
import net from 'node:net';
import nodemailer from 'nodemailer';
import type { Transporter } from 'nodemailer';
import { startSmtpSandbox } from '../../sandboxes/smtp.js';
import type { SmtpSandbox } from '../../sandboxes/smtp.js';

function transport(sink: SmtpSandbox, auth?: { user: string; pass: string }): Transporter {
  return nodemailer.createTransport({
    host: sink.host,
    port: sink.smtpPort,
    secure: false,
    ignoreTLS: true,
    ...(auth ? { auth } : {}),
  });
}

/** Reads the first reply line the server sends on connect. */
async function greeting(sink: SmtpSandbox): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(sink.smtpPort, sink.host);
    let buffer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      const end = buffer.indexOf('\r\n');
      if (end >= 0) {
        socket.destroy();
        resolve(buffer.slice(0, end));
      }
    });
    socket.on('error', reject);
  });
}

async function rejection(promise: Promise<unknown>): Promise<{ responseCode?: number; response?: string; message: string }> {
  try {
    await promise;
  } catch (error) {
    return error as { responseCode?: number; response?: string; message: string };
  }
  assert.fail('the message was accepted');
}

describe('SMTP sink sandbox (real SMTP via nodemailer)', () => {
  describe('without configured credentials', () => {
    let sink: SmtpSandbox;
    before(async () => {
      sink = await startSmtpSandbox({ smtpPort: 0, httpPort: 0 });
    });
    after(async () => {
      await sink.stop();
    });

    it('accepts mail without AUTH and keeps the parsed message', async () => {
      const mailer = transport(sink);
      const info = (await mailer.sendMail({
        from: '"Switchboard" <alerts@switchboard.test>',
        to: 'Ops <ops@example.com>',
        cc: 'lead@example.com',
        bcc: 'audit@example.com',
        subject: 'Missed call from +1 415 555 0100',
        text: 'Call back within 15 minutes.',
        html: '<p>Call back within <b>15</b> minutes.</p>',
        headers: { 'X-Switchboard-Tenant': 'demo' },
        messageId: '<call-123@switchboard.test>',
      })) as { accepted: string[]; rejected: string[] };
      mailer.close();
      assert.deepEqual(info.rejected, []);

      const [message] = sink.state().messages;
      assert.ok(message);
      assert.equal(message.messageId, '<call-123@switchboard.test>');
      assert.equal(message.from, 'alerts@switchboard.test');
      assert.deepEqual(message.to, ['ops@example.com', 'lead@example.com', 'audit@example.com']);
      assert.equal(message.subject, 'Missed call from +1 415 555 0100');
      assert.equal(message.text?.trim(), 'Call back within 15 minutes.');
      assert.equal(message.html?.trim(), '<p>Call back within <b>15</b> minutes.</p>');
      assert.equal(message.headers['x-switchboard-tenant'], 'demo');
      assert.equal(message.headers.subject, 'Missed call from +1 415 555 0100');
      assert.ok(!Number.isNaN(Date.parse(message.receivedAt)));

      const state = (await (await fetch(`${sink.url}/_sandbox/state`)).json()) as { messages: { messageId: string }[] };
      assert.deepEqual(state.messages.map((m) => m.messageId), ['<call-123@switchboard.test>']);
    });

    it('rejects recipients without @ with 550', async () => {
      const mailer = transport(sink);
      const error = await rejection(mailer.sendMail({ envelope: { from: 'a@switchboard.test', to: ['nobody'] }, from: 'a@switchboard.test', to: 'nobody', subject: 'x', text: 'x' }));
      assert.equal(error.responseCode, 550);

      const partial = (await mailer.sendMail({
        envelope: { from: 'a@switchboard.test', to: ['ok@example.com', 'nobody'] },
        from: 'a@switchboard.test',
        subject: 'partly delivered',
        text: 'x',
      })) as { accepted: string[]; rejected: string[]; rejectedErrors?: { responseCode?: number }[] };
      mailer.close();
      assert.deepEqual(partial.accepted, ['ok@example.com']);
      assert.deepEqual(partial.rejected, ['nobody']);
      assert.equal(partial.rejectedErrors?.[0]?.responseCode, 550);
      const stored = sink.state().messages.find((m) => m.subject === 'partly delivered');
      assert.deepEqual(stored?.to, ['ok@example.com']);
    });

    it('refuses connections with 421 during an outage (handle or HTTP control)', async () => {
      sink.setOutage(true);
      assert.match(await greeting(sink), /^421 /);
      const mailer = transport(sink);
      const error = await rejection(mailer.sendMail({ from: 'a@switchboard.test', to: 'b@example.com', subject: 'down', text: 'x' }));
      mailer.close();
      assert.match(String(error.response ?? error.message), /421/);
      sink.setOutage(false);
      assert.match(await greeting(sink), /^220 /);

      const toggled = await fetch(`${sink.url}/_sandbox/outage`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"down":true}' });
      assert.equal(toggled.status, 200);
      assert.match(await greeting(sink), /^421 /);
      await fetch(`${sink.url}/_sandbox/outage`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"down":false}' });
      assert.match(await greeting(sink), /^220 /);
      assert.ok(!sink.state().messages.some((m) => m.subject === 'down'));
      assert.ok((sink.state().requests.byRoute.CONNECT ?? 0) >= 5);
    });
  });

  describe('with configured credentials', () => {
    const auth = { user: 'mailer', pass: 's3cret' };
    let sink: SmtpSandbox;
    before(async () => {
      sink = await startSmtpSandbox({ smtpPort: 0, httpPort: 0, auth });
    });
    after(async () => {
      await sink.stop();
    });

    for (const method of ['PLAIN', 'LOGIN'] as const) {
      it(`accepts AUTH ${method} with the right credentials`, async () => {
        const mailer = nodemailer.createTransport({ host: sink.host, port: sink.smtpPort, secure: false, ignoreTLS: true, auth, authMethod: method });
        await mailer.sendMail({ from: 'a@switchboard.test', to: 'b@example.com', subject: `auth ${method}`, text: 'x' });
        mailer.close();
        assert.ok(sink.state().messages.some((m) => m.subject === `auth ${method}`));
      });
    }

    it('answers 535 to wrong credentials and 530 to mail without AUTH', async () => {
      const wrong = transport(sink, { user: 'mailer', pass: 'wrong' });
      const denied = await rejection(wrong.sendMail({ from: 'a@switchboard.test', to: 'b@example.com', subject: 'wrong', text: 'x' }));
      wrong.close();
      assert.equal(denied.responseCode, 535);

      const anonymous = transport(sink);
      const refused = await rejection(anonymous.sendMail({ from: 'a@switchboard.test', to: 'b@example.com', subject: 'anonymous', text: 'x' }));
      anonymous.close();
      assert.equal(refused.responseCode, 530);
      assert.ok(!sink.state().messages.some((m) => m.subject === 'wrong' || m.subject === 'anonymous'));
    });
  });

  it('stop() closes open SMTP sessions promptly', async () => {
    const sink = await startSmtpSandbox();
    const socket = net.connect(sink.smtpPort, sink.host);
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => undefined);
    await new Promise<void>((resolve) => socket.once('data', () => resolve()));
    const started = Date.now();
    await sink.stop();
    await closed;
    assert.ok(Date.now() - started < 1000, 'stop() waited for the idle session');
  });
});
