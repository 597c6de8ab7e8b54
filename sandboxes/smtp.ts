// SMTP sink: a real SMTP server that parses and keeps every message, plus an HTTP inspection port.
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Readable } from 'node:stream';
import { SMTPServer } from 'smtp-server';
import type { SMTPServerAddress, SMTPServerAuthentication, SMTPServerSession } from 'smtp-server';
import PostalMime from 'postal-mime';
import type { Address } from 'postal-mime';
import { controlRoutes, createApp, listen, OutageSwitch, RequestCounter, systemClock } from './http.js';
import type { Clock, RequestCounts } from './http.js';

export interface SmtpSandboxOptions {
  /** SMTP port (0 = ephemeral). */
  smtpPort?: number;
  /** Inspection HTTP port (0 = ephemeral). */
  httpPort?: number;
  /** Credentials required for AUTH PLAIN/LOGIN; without them no auth is needed (any offered is accepted). */
  auth?: { user: string; pass: string };
  clock?: Clock;
}

export interface SmtpMessage {
  messageId: string | null;
  /** Address from the From header, or the envelope sender when the header has none. */
  from: string | null;
  /** Envelope recipients (so Cc and Bcc show up too). */
  to: string[];
  subject: string | null;
  text: string | null;
  html: string | null;
  /** Lower-case header names; repeated headers are joined with ", ". */
  headers: Record<string, string>;
  receivedAt: string;
}

export interface SmtpState {
  messages: SmtpMessage[];
  /** SMTP commands seen, by command ("CONNECT", "AUTH", "MAIL", "RCPT", "DATA"). */
  requests: RequestCounts;
}

export interface SmtpSandbox {
  host: string;
  smtpPort: number;
  /** Inspection HTTP base URL. */
  url: string;
  state(): SmtpState;
  setOutage(down: boolean): void;
  stop(): Promise<void>;
}

function smtpError(message: string, responseCode: number): Error {
  return Object.assign(new Error(message), { responseCode });
}

function firstAddress(address: Address | undefined): string | undefined {
  if (!address) return undefined;
  return address.address ?? address.group[0]?.address;
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string));
  return Buffer.concat(chunks);
}

/**
 * smtp-server answers a domainless `RCPT TO:<nobody>` with 501 (syntax) before onRcptTo runs;
 * the contract, like real MTAs that reject non-qualified recipients, wants 550.
 */
class SinkServer extends SMTPServer {
  override connect(socket: Socket | TLSSocket, socketOptions?: Parameters<SMTPServer['connect']>[1]): void {
    super.connect(socket, socketOptions);
    const connection = [...this.connections].find((candidate) => candidate._socket === socket);
    if (!connection) return;
    const handleRcpt = connection.handler_RCPT.bind(connection);
    connection.handler_RCPT = (command, callback) => {
      const address = /^RCPT\s+TO:\s*<([^<>]*)>/i.exec(command.toString())?.[1];
      if (connection.session.envelope.mailFrom && address && !address.includes('@')) {
        this.emit('rcptRejected');
        connection.send(550, `<${address}>: Recipient address rejected: domain name required`);
        return callback();
      }
      handleRcpt(command, callback);
    };
  }
}

export async function startSmtpSandbox(options: SmtpSandboxOptions = {}): Promise<SmtpSandbox> {
  const clock = options.clock ?? systemClock;
  const messages: SmtpMessage[] = [];
  const counter = new RequestCounter();
  const outage = new OutageSwitch();
  const sockets = new Set<Socket>();

  const smtp = new SinkServer({
    logger: false,
    // Plain-text only: no STARTTLS means no self-signed certificate and AUTH works on loopback.
    disabledCommands: ['STARTTLS'],
    allowInsecureAuth: true,
    authMethods: ['PLAIN', 'LOGIN'],
    authOptional: options.auth === undefined,
    closeTimeout: 100,
    onConnect(_session: SMTPServerSession, callback: (err?: Error | null) => void) {
      counter.count('CONNECT');
      if (outage.down) return callback(smtpError('Service not available, closing transmission channel', 421));
      callback();
    },
    onAuth(auth: SMTPServerAuthentication, _session: SMTPServerSession, callback) {
      counter.count('AUTH');
      const expected = options.auth;
      if (expected && (auth.username !== expected.user || auth.password !== expected.pass)) {
        return callback(smtpError('Authentication credentials invalid', 535));
      }
      callback(null, { user: auth.username });
    },
    onMailFrom(_address: SMTPServerAddress, _session: SMTPServerSession, callback: (err?: Error | null) => void) {
      counter.count('MAIL');
      callback();
    },
    onRcptTo(address: SMTPServerAddress, _session: SMTPServerSession, callback: (err?: Error | null) => void) {
      counter.count('RCPT');
      if (!address.address.includes('@')) return callback(smtpError(`<${address.address}>: mailbox unavailable`, 550));
      callback();
    },
    onData(stream: Readable, session: SMTPServerSession, callback: (err?: Error | null) => void) {
      counter.count('DATA');
      readAll(stream)
        .then(async (raw) => {
          const email = await PostalMime.parse(raw);
          const headers: Record<string, string> = {};
          for (const { key, value } of email.headers) headers[key] = headers[key] === undefined ? value : `${headers[key]}, ${value}`;
          const envelopeFrom = session.envelope.mailFrom === false ? undefined : session.envelope.mailFrom.address;
          messages.push({
            messageId: email.messageId ?? null,
            from: firstAddress(email.from) ?? envelopeFrom ?? null,
            to: session.envelope.rcptTo.map((rcpt) => rcpt.address),
            subject: email.subject ?? null,
            text: email.text ?? null,
            html: email.html ?? null,
            headers,
            receivedAt: new Date(clock()).toISOString(),
          });
          callback();
        })
        .catch(() => callback(smtpError('Message could not be parsed', 451)));
    },
  });
  smtp.server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  smtp.on('rcptRejected', () => counter.count('RCPT'));
  smtp.on('error', () => {
    // Client-side resets surface here; a sink has nothing to do about them.
  });

  await new Promise<void>((resolve, reject) => {
    smtp.server.once('error', reject);
    smtp.listen(options.smtpPort ?? 0, '127.0.0.1', () => {
      smtp.server.off('error', reject);
      resolve();
    });
  });
  const address = smtp.server.address();
  if (address === null || typeof address === 'string') throw new Error('SMTP server has no TCP address');
  const smtpPort = address.port;

  const state = (): SmtpState => structuredClone({ messages, requests: counter.snapshot() });
  const app = createApp();
  controlRoutes(app, state, outage);
  app.use((_req, res) => {
    res.status(404).json({ error: 'not_found' });
  });
  let http;
  try {
    http = await listen(app, options.httpPort ?? 0);
  } catch (error) {
    smtp.close();
    throw error;
  }

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= Promise.all([
      new Promise<void>((resolve) => {
        smtp.close(resolve);
        // Open SMTP sessions would otherwise be given closeTimeout to finish.
        for (const socket of sockets) socket.destroy();
      }),
      http.stop(),
    ]).then(() => undefined));

  return {
    host: '127.0.0.1',
    smtpPort,
    url: http.url,
    state,
    setOutage: (down) => {
      outage.down = down;
    },
    stop,
  };
}
