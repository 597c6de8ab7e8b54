// Twilio Programmable Messaging stand-in: Messages.json sends, signed status callbacks, inbound SMS and STOP handling (see CONTRACTS.md).
import { randomBytes } from 'node:crypto';
import express from 'express';
import type { NextFunction, Request, Response } from 'express';
import { twilioSignature } from '../security/signatures.js';
import { controlRoutes, CONTROL_PREFIX, createApp, isControlPath, isRecord, listen, OutageSwitch, RequestCounter } from './http.js';
import type { RequestCounts } from './http.js';

export const TWILIO_API_VERSION = '2010-04-01';

/** Twilio's default opt-out keywords (single word, any case, surrounding spaces ignored). */
export const TWILIO_OPT_OUT_KEYWORDS = ['STOP', 'STOPALL', 'UNSUBSCRIBE', 'CANCEL', 'END', 'QUIT'] as const;
/** Twilio's default opt-in keywords: the recipient is subscribed again. */
export const TWILIO_OPT_IN_KEYWORDS = ['START', 'YES', 'UNSTOP'] as const;

export type TwilioMessageStatus = 'accepted' | 'queued' | 'sending' | 'sent' | 'delivered' | 'undelivered' | 'failed' | 'received';

/** What becomes of messages to one recipient after they are queued. */
export interface TwilioDeliveryOutcome {
  status: 'undelivered' | 'failed';
  /** Twilio's code, e.g. 30003 (unreachable handset), 30005 (unknown destination), 30008 (unknown error). */
  errorCode: number;
}

export interface TwilioMessagingSandboxOptions {
  port?: number;
  accountSid: string;
  authToken: string;
  /** API keys that may authenticate instead of the auth token (Basic `SK…:secret`). */
  apiKeys?: Array<{ sid: string; secret: string }>;
  /** Our Twilio numbers (E.164): valid `From` values, and where inbound messages arrive. */
  phoneNumbers: string[];
  /** A Messaging Service whose sender pool is `phoneNumbers`. */
  messagingServiceSid?: string;
  /** Where inbound messages (replies, STOP) are posted, like a number's "A message comes in" webhook. */
  inboundWebhookUrl?: string;
  /** Recipients whose messages end undelivered or failed instead of delivered. */
  outcomes?: Record<string, TwilioDeliveryOutcome>;
  /** Deliver every status callback twice (Twilio may deliver a callback more than once). */
  duplicateCallbacks?: boolean;
  /**
   * Holds the answer to each accepted send this long, while the message is already created and its
   * status callbacks are on their way: for tests of a client that dies waiting for the answer.
   */
  responseDelayMs?: number;
}

export interface TwilioStoredMessage {
  sid: string;
  to: string;
  from: string;
  messagingServiceSid?: string;
  body: string;
  statusCallback?: string;
  /** Every status the message went through, in order (the first one, from the create, gets no callback). */
  statuses: TwilioMessageStatus[];
  errorCode?: number;
  createdAt: string;
}

export interface TwilioCallback {
  url: string;
  params: Record<string, string>;
  /** pending → delivered (a 2xx) | failed (any other answer, or no connection twice) | cancelled (stop()). */
  status: 'pending' | 'delivered' | 'failed' | 'cancelled';
  attempts: number;
  answeredWith?: number;
}

export interface TwilioMessagingState {
  messages: TwilioStoredMessage[];
  inbound: Array<{ sid: string; from: string; to: string; body: string }>;
  callbacks: TwilioCallback[];
  /** `<sender scope> <recipient>` pairs that replied STOP. */
  unsubscribed: string[];
  requests: RequestCounts;
}

export interface TwilioMessagingSandbox {
  url: string;
  state(): TwilioMessagingState;
  setOutage(down: boolean): void;
  setInboundWebhookUrl(url: string | undefined): void;
  /** Holds the answers to accepted sends this long from now on (0: answer at once). */
  setResponseDelay(ms: number): void;
  /** Makes coming messages to `to` end this way (also POST /_sandbox/outcomes). */
  setOutcome(to: string, outcome: TwilioDeliveryOutcome | undefined): void;
  /** The recipient texts one of our numbers (also POST /_sandbox/inbound); STOP unsubscribes them as Twilio does. */
  inbound(input: { from: string; body: string; to?: string }): Promise<void>;
  /** Resolves when every callback queued so far has been delivered or given up. */
  settle(): Promise<void>;
  stop(): Promise<void>;
}

const moreInfo = (code: number): string => `https://www.twilio.com/docs/errors/${code}`;

class TwilioError {
  constructor(
    readonly httpStatus: number,
    readonly code: number,
    readonly message: string,
  ) {}
}

function sendError(res: Response, error: TwilioError): void {
  res.status(error.httpStatus).json({ code: error.code, message: error.message, more_info: moreInfo(error.code), status: error.httpStatus });
}

const e164 = /^\+[1-9]\d{6,14}$/;
const rfc2822 = (ms: number): string => new Date(ms).toUTCString().replace('GMT', '+0000');

function sid(prefix: string): string {
  return `${prefix}${randomBytes(16).toString('hex')}`;
}

function basicCredentials(req: Request): { user: string; password: string } | undefined {
  const match = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(req.get('authorization') ?? '');
  if (!match?.[1]) return undefined;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? undefined : { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

export function isTwilioOptOutKeyword(body: string): boolean {
  return (TWILIO_OPT_OUT_KEYWORDS as readonly string[]).includes(body.trim().toUpperCase());
}

export async function startTwilioMessagingSandbox(options: TwilioMessagingSandboxOptions): Promise<TwilioMessagingSandbox> {
  const numbers = new Set(options.phoneNumbers);
  const apiKeys = new Map((options.apiKeys ?? []).map((key) => [key.sid, key.secret]));
  const outcomes = new Map(Object.entries(options.outcomes ?? {}));
  let inboundWebhookUrl = options.inboundWebhookUrl;
  let responseDelayMs = options.responseDelayMs ?? 0;
  const messages: TwilioStoredMessage[] = [];
  const inboundMessages: TwilioMessagingState['inbound'] = [];
  const callbacks: TwilioCallback[] = [];
  const unsubscribed = new Set<string>();
  const counter = new RequestCounter();
  const outage = new OutageSwitch();
  const stopping = new AbortController();
  let chain: Promise<void> = Promise.resolve();

  // Opt-outs apply to the Messaging Service's whole sender pool, or to the one number without one.
  const scopeOf = (sender: string): string => options.messagingServiceSid ?? sender;

  /** Posts one form-encoded request, signed as Twilio signs it; a failed connection is retried once (Twilio's default `rp=ct`). */
  async function post(callback: TwilioCallback): Promise<void> {
    const body = new URLSearchParams(callback.params).toString();
    const signature = twilioSignature(options.authToken, callback.url, callback.params);
    while (callback.attempts < 2 && !stopping.signal.aborted) {
      callback.attempts++;
      try {
        const response = await fetch(callback.url, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': signature, 'user-agent': 'TwilioProxy/1.1', 'i-twilio-idempotency-token': randomBytes(16).toString('hex') },
          body,
          signal: AbortSignal.any([stopping.signal, AbortSignal.timeout(15_000)]),
        });
        await response.arrayBuffer();
        callback.answeredWith = response.status;
        callback.status = response.ok ? 'delivered' : 'failed';
        return;
      } catch {
        // No connection: retried once, as Twilio does by default.
      }
    }
    callback.status = stopping.signal.aborted ? 'cancelled' : 'failed';
  }

  /** Queues callbacks to go out one after another, after the current answer is written. */
  function enqueue(url: string | undefined, paramsList: Array<Record<string, string>>): void {
    if (url === undefined) return;
    for (const params of paramsList) {
      for (let copy = 0; copy < (options.duplicateCallbacks ? 2 : 1); copy++) {
        const callback: TwilioCallback = { url, params, status: 'pending', attempts: 0 };
        callbacks.push(callback);
        chain = chain.then(async () => {
          await new Promise((resolve) => setImmediate(resolve));
          if (stopping.signal.aborted) callback.status = 'cancelled';
          else await post(callback);
        });
      }
    }
  }

  function statusParams(message: TwilioStoredMessage, status: TwilioMessageStatus): Record<string, string> {
    return {
      AccountSid: options.accountSid,
      ApiVersion: TWILIO_API_VERSION,
      From: message.from,
      MessageSid: message.sid,
      MessageStatus: status,
      SmsSid: message.sid,
      SmsStatus: status,
      To: message.to,
      ...(message.messagingServiceSid ? { MessagingServiceSid: message.messagingServiceSid } : {}),
      ...((status === 'undelivered' || status === 'failed') && message.errorCode !== undefined ? { ErrorCode: String(message.errorCode) } : {}),
    };
  }

  function messageJson(message: TwilioStoredMessage, status: TwilioMessageStatus, nowMs: number): Record<string, unknown> {
    return {
      account_sid: options.accountSid,
      api_version: TWILIO_API_VERSION,
      body: message.body,
      date_created: rfc2822(nowMs),
      date_sent: null,
      date_updated: rfc2822(nowMs),
      direction: 'outbound-api',
      error_code: null,
      error_message: null,
      from: message.messagingServiceSid ? null : message.from,
      messaging_service_sid: message.messagingServiceSid ?? null,
      num_media: '0',
      // Through a Messaging Service no sender is assigned yet.
      num_segments: message.messagingServiceSid ? '0' : String(Math.max(1, Math.ceil(message.body.length / 153))),
      price: null,
      price_unit: 'USD',
      sid: message.sid,
      status,
      subresource_uris: { media: `/${TWILIO_API_VERSION}/Accounts/${options.accountSid}/Messages/${message.sid}/Media.json` },
      to: message.to,
      uri: `/${TWILIO_API_VERSION}/Accounts/${options.accountSid}/Messages/${message.sid}.json`,
    };
  }

  function validate(form: Record<string, unknown>): TwilioError | { to: string; from: string; body: string; statusCallback?: string; messagingServiceSid?: string } {
    const text = (name: string): string | undefined => {
      const value = form[name];
      return typeof value === 'string' ? value : undefined;
    };
    const to = text('To');
    const from = text('From');
    const messagingServiceSid = text('MessagingServiceSid');
    const body = text('Body');
    const statusCallback = text('StatusCallback');
    if (!to) return new TwilioError(400, 21604, "A 'To' phone number is required.");
    if (!from && !messagingServiceSid) return new TwilioError(400, 21603, "A 'From' phone number is required.");
    if (!body) return new TwilioError(400, 21602, 'Message body is required.');
    if (body.length > 1600) return new TwilioError(400, 21617, 'The concatenated message body exceeds the 1600 character limit.');
    if (!e164.test(to)) return new TwilioError(400, 21211, `The 'To' number ${to} is not a valid phone number.`);
    if (messagingServiceSid !== undefined && messagingServiceSid !== options.messagingServiceSid) {
      // (stricter) A service of another account reads as one that does not exist.
      return new TwilioError(404, 20404, `The requested resource /Services/${messagingServiceSid} was not found`);
    }
    if (from !== undefined && messagingServiceSid === undefined && !numbers.has(from)) {
      return new TwilioError(400, 21606, `The From phone number ${from} is not a valid, SMS-capable inbound phone number or short code for your account.`);
    }
    if (statusCallback !== undefined) {
      let valid: boolean;
      try {
        const url = new URL(statusCallback);
        valid = (url.protocol === 'http:' || url.protocol === 'https:') && !url.hostname.includes('_');
      } catch {
        valid = false;
      }
      if (!valid) return new TwilioError(400, 21609, 'The StatusCallback URL is not valid.');
    }
    const sender = from ?? [...numbers][0] ?? '';
    return { to, from: sender, body, ...(statusCallback ? { statusCallback } : {}), ...(messagingServiceSid ? { messagingServiceSid } : {}) };
  }

  async function handleSend(req: Request, res: Response): Promise<void> {
    if (req.params.accountSid !== options.accountSid) return sendError(res, new TwilioError(404, 20404, `The requested resource /${TWILIO_API_VERSION}/Accounts/${String(req.params.accountSid)}/Messages.json was not found`));
    const parsed = validate(isRecord(req.body) ? req.body : {});
    if (parsed instanceof TwilioError) return sendError(res, parsed);
    if (unsubscribed.has(`${scopeOf(parsed.from)} ${parsed.to}`)) return sendError(res, new TwilioError(400, 21610, 'Attempt to send to unsubscribed recipient'));
    const nowMs = Date.now();
    const message: TwilioStoredMessage = {
      sid: sid('SM'),
      to: parsed.to,
      from: parsed.from,
      ...(parsed.messagingServiceSid ? { messagingServiceSid: parsed.messagingServiceSid } : {}),
      body: parsed.body,
      ...(parsed.statusCallback ? { statusCallback: parsed.statusCallback } : {}),
      statuses: [],
      createdAt: new Date(nowMs).toISOString(),
    };
    const outcome = outcomes.get(parsed.to);
    if (outcome) message.errorCode = outcome.errorCode;
    // No callback for the initial status; through a Messaging Service it is `accepted`, then `queued`.
    const initial: TwilioMessageStatus = parsed.messagingServiceSid ? 'accepted' : 'queued';
    const later: TwilioMessageStatus[] = [
      ...(parsed.messagingServiceSid ? (['queued'] as const) : []),
      ...(outcome?.status === 'failed' ? (['failed'] as const) : outcome?.status === 'undelivered' ? (['sent', 'undelivered'] as const) : (['sent', 'delivered'] as const)),
    ];
    message.statuses = [initial, ...later];
    messages.push(message);
    enqueue(message.statusCallback, later.map((status) => statusParams(message, status)));
    if (responseDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, responseDelayMs).unref());
    if (!res.writableEnded && !res.destroyed) res.status(201).json(messageJson(message, initial, nowMs));
  }

  async function inbound(input: { from: string; body: string; to?: string }): Promise<void> {
    const to = input.to ?? [...numbers][0] ?? '';
    const keyword = input.body.trim().toUpperCase();
    const scope = `${scopeOf(to)} ${input.from}`;
    let optOutType: string | undefined;
    if (isTwilioOptOutKeyword(input.body)) {
      unsubscribed.add(scope);
      optOutType = 'STOP';
    } else if ((TWILIO_OPT_IN_KEYWORDS as readonly string[]).includes(keyword)) {
      unsubscribed.delete(scope);
      optOutType = 'START';
    } else if (keyword === 'HELP' || keyword === 'INFO') {
      optOutType = 'HELP';
    }
    const messageSid = sid('SM');
    inboundMessages.push({ sid: messageSid, from: input.from, to, body: input.body });
    // Twilio forwards opt-out keywords to the webhook too (with OptOutType under Advanced Opt-Out).
    enqueue(inboundWebhookUrl, [
      {
        ToCountry: 'US',
        SmsMessageSid: messageSid,
        NumMedia: '0',
        SmsSid: messageSid,
        SmsStatus: 'received',
        Body: input.body,
        To: to,
        NumSegments: '1',
        MessageSid: messageSid,
        AccountSid: options.accountSid,
        From: input.from,
        ApiVersion: TWILIO_API_VERSION,
        ...(options.messagingServiceSid ? { MessagingServiceSid: options.messagingServiceSid } : {}),
        ...(options.messagingServiceSid && optOutType ? { OptOutType: optOutType } : {}),
      },
    ]);
    await Promise.resolve();
  }

  const state = (): TwilioMessagingState =>
    structuredClone({ messages, inbound: inboundMessages, callbacks, unsubscribed: [...unsubscribed], requests: counter.snapshot() });

  const app = createApp();
  controlRoutes(app, state, outage);
  app.post(`${CONTROL_PREFIX}inbound`, express.json(), async (req: Request, res: Response) => {
    const body: unknown = req.body;
    if (!isRecord(body) || typeof body.from !== 'string' || typeof body.body !== 'string' || (body.to !== undefined && typeof body.to !== 'string')) {
      res.status(400).json({ error: 'expected {from, body, to?}' });
      return;
    }
    await inbound({ from: body.from, body: body.body, ...(typeof body.to === 'string' ? { to: body.to } : {}) });
    res.json({ ok: true });
  });
  app.post(`${CONTROL_PREFIX}outcomes`, express.json(), (req: Request, res: Response) => {
    const body: unknown = req.body;
    if (!isRecord(body) || typeof body.to !== 'string' || (body.status !== 'undelivered' && body.status !== 'failed') || typeof body.errorCode !== 'number') {
      res.status(400).json({ error: 'expected {to, status: undelivered|failed, errorCode}' });
      return;
    }
    outcomes.set(body.to, { status: body.status, errorCode: body.errorCode });
    res.json({ ok: true });
  });

  app.use(counter.middleware());
  app.use(outage.middleware((res) => sendError(res, new TwilioError(503, 20503, 'Service Unavailable'))));
  app.use((req, res, next) => {
    if (isControlPath(req)) return next();
    const credentials = basicCredentials(req);
    const valid =
      credentials !== undefined &&
      ((credentials.user === options.accountSid && credentials.password === options.authToken) || (apiKeys.has(credentials.user) && apiKeys.get(credentials.user) === credentials.password));
    if (valid) return next();
    res.set('WWW-Authenticate', 'Basic realm="Twilio API"');
    sendError(res, new TwilioError(401, 20003, 'Authenticate'));
  });
  app.post(`/${TWILIO_API_VERSION}/Accounts/:accountSid/Messages.json`, express.urlencoded({ extended: false, limit: '64kb' }), handleSend);
  app.use((req, res) => sendError(res, new TwilioError(404, 20404, `The requested resource ${req.path} was not found`)));
  app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const status = isRecord(error) && typeof error.status === 'number' ? error.status : 500;
    if (status === 413) return sendError(res, new TwilioError(413, 21617, 'The concatenated message body exceeds the 1600 character limit.'));
    if (status >= 400 && status < 500) return sendError(res, new TwilioError(400, 21602, 'Message body is required.'));
    sendError(res, new TwilioError(500, 20500, 'Internal Server Error'));
  });

  const server = await listen(app, options.port ?? 0);
  return {
    url: server.url,
    state,
    setOutage: (down) => {
      outage.down = down;
    },
    setResponseDelay: (ms) => {
      responseDelayMs = ms;
    },
    setInboundWebhookUrl: (url) => {
      inboundWebhookUrl = url;
    },
    setOutcome: (to, outcome) => {
      if (outcome) outcomes.set(to, outcome);
      else outcomes.delete(to);
    },
    inbound,
    settle: async () => {
      // Callbacks queued while waiting join the chain: wait until it stops growing.
      for (;;) {
        const current = chain;
        await current;
        if (current === chain) return;
      }
    },
    stop: async () => {
      stopping.abort();
      await Promise.all([server.stop(), chain]);
    },
  };
}
