// Slack incoming-webhook stand-in: plain-text answers ("ok", "no_service", ...) exactly like Slack's.
import express from 'express';
import type { Request, Response } from 'express';
import { controlRoutes, createApp, isRecord, listen, OutageSwitch, RequestCounter, systemClock, TokenBucket } from './http.js';
import type { Clock, RequestCounts } from './http.js';

export interface SlackSandboxOptions {
  port?: number;
  /** Known webhook paths, e.g. '/services/T1/B1/abc'. */
  webhooks: string[];
  /** Messages a webhook may send at once (5). */
  burst?: number;
  /** Sustained messages per second per webhook (1). */
  perSecond?: number;
  clock?: Clock;
}

export interface SlackMessage {
  path: string;
  text: string | null;
  blocks: unknown[] | null;
  channel: string | null;
  receivedAt: string;
}

export interface SlackState {
  messages: SlackMessage[];
  requests: RequestCounts;
}

export interface SlackSandbox {
  url: string;
  state(): SlackState;
  setOutage(down: boolean): void;
  stop(): Promise<void>;
}

function plain(res: Response, status: number, body: string): void {
  res.status(status).type('text/html').send(body);
}

/** Slack takes JSON or a form field `payload` holding JSON. */
function payloadOf(req: Request): Record<string, unknown> | undefined {
  let body: unknown = req.body;
  if (isRecord(body) && typeof body.payload === 'string' && req.is('application/x-www-form-urlencoded')) {
    try {
      body = JSON.parse(body.payload);
    } catch {
      return undefined;
    }
  }
  return isRecord(body) ? body : undefined;
}

export async function startSlackSandbox(options: SlackSandboxOptions): Promise<SlackSandbox> {
  const clock = options.clock ?? systemClock;
  const known = new Set(options.webhooks);
  const messages: SlackMessage[] = [];
  const counter = new RequestCounter((req) => `${req.method} ${known.has(req.path) ? req.path : '/services/:unknown'}`);
  const outage = new OutageSwitch();
  const bucket = new TokenBucket(options.burst ?? 5, options.perSecond ?? 1, clock);
  const state = (): SlackState => structuredClone({ messages, requests: counter.snapshot() });

  const app = createApp();
  controlRoutes(app, state, outage);
  app.use(counter.middleware());
  app.use(outage.middleware((res) => plain(res, 503, 'service_unavailable')));

  const parseJson = express.json({ type: () => true, limit: '1mb' });
  const parseForm = express.urlencoded({ extended: false, limit: '1mb' });
  app.post('/services/*rest', (req, res, next) => {
    if (!known.has(req.path)) return plain(res, 404, 'no_service');
    const parser = req.is('application/x-www-form-urlencoded') ? parseForm : parseJson;
    parser(req, res, (error?: unknown) => {
      if (error) return plain(res, 400, 'invalid_payload');
      next();
    });
  });
  app.post('/services/*rest', (req, res) => {
    const payload = payloadOf(req);
    const text = typeof payload?.text === 'string' && payload.text !== '' ? payload.text : null;
    const blocks = Array.isArray(payload?.blocks) && payload.blocks.length > 0 ? (payload.blocks as unknown[]) : null;
    if (!payload || (text === null && blocks === null)) return plain(res, 400, 'invalid_payload');
    if (!bucket.tryTake(req.path)) {
      counter.rateLimited();
      res.set('Retry-After', '1');
      return plain(res, 429, 'rate_limited');
    }
    const channel = typeof payload.channel === 'string' ? payload.channel : null;
    messages.push({ path: req.path, text, blocks, channel, receivedAt: new Date(clock()).toISOString() });
    plain(res, 200, 'ok');
  });
  app.use((_req, res) => plain(res, 404, 'no_service'));

  const server = await listen(app, options.port ?? 0);
  return {
    url: server.url,
    state,
    setOutage: (down) => {
      outage.down = down;
    },
    stop: server.stop,
  };
}
