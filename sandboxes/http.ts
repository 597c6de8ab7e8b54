// Shared plumbing for the sandbox servers: listening, rate limits, outage switch, request counts.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import type { Express, NextFunction, Request, RequestHandler, Response } from 'express';

/** Milliseconds since the epoch; injectable so tests can move time instead of sleeping. */
export type Clock = () => number;

export const systemClock: Clock = () => Date.now();

/** Prefix of the inspection and control endpoints, which are exempt from auth, limits, outages and counts. */
export const CONTROL_PREFIX = '/_sandbox/';

export function isControlPath(req: Request): boolean {
  return req.path.startsWith(CONTROL_PREFIX);
}

export interface RunningServer {
  url: string;
  port: number;
  server: http.Server;
  readonly stop: () => Promise<void>;
}

/** A bare express app with the settings every sandbox wants. */
export function createApp(): Express {
  const app = express();
  app.disable('x-powered-by');
  // Keep express's query parser simple: Kommo-style keys like filter[uid] must stay literal.
  app.set('query parser', 'simple');
  return app;
}

/** Listens on 127.0.0.1 (port 0 = ephemeral) and returns the base URL and an idempotent stop(). */
export async function listen(app: Express, port = 0): Promise<RunningServer> {
  const server = http.createServer(app);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= new Promise<void>((resolve, reject) => {
      server.close((error) => (error ? reject(error) : resolve()));
      // Keep-alive sockets (fetch pools them) would otherwise hold close() open.
      server.closeAllConnections();
    }));
  return { url: `http://127.0.0.1:${address.port}`, port: address.port, server, stop };
}

/** Timestamps of events inside a rolling window, per key. */
export class RollingWindow {
  private readonly hits = new Map<string, number[]>();

  constructor(
    readonly windowMs: number,
    private readonly now: Clock = systemClock,
  ) {}

  private live(key: string): number[] {
    const cutoff = this.now() - this.windowMs;
    const list = this.hits.get(key) ?? [];
    let expired = 0;
    while (expired < list.length && (list[expired] ?? 0) <= cutoff) expired++;
    if (expired > 0) list.splice(0, expired);
    if (list.length === 0) this.hits.delete(key);
    return list;
  }

  count(key = ''): number {
    return this.live(key).length;
  }

  record(key = ''): number {
    const list = this.live(key);
    list.push(this.now());
    this.hits.set(key, list);
    return list.length;
  }

  clear(key = ''): void {
    this.hits.delete(key);
  }

  /** Milliseconds until the oldest event leaves the window (0 when empty). */
  msUntilOldestExpires(key = ''): number {
    const oldest = this.live(key)[0];
    return oldest === undefined ? 0 : Math.max(0, oldest + this.windowMs - this.now());
  }
}

/** At most `limit` accepted requests in any rolling window; rejected requests do not use up the allowance. */
export class RollingWindowLimiter {
  private readonly window: RollingWindow;

  constructor(
    readonly limit: number,
    windowMs: number,
    now: Clock = systemClock,
  ) {
    this.window = new RollingWindow(windowMs, now);
  }

  tryAcquire(key = ''): boolean {
    if (this.window.count(key) >= this.limit) return false;
    this.window.record(key);
    return true;
  }

  /** Whole seconds (at least 1) until a request would be accepted again. */
  retryAfterSeconds(key = ''): number {
    return Math.max(1, Math.ceil(this.window.msUntilOldestExpires(key) / 1000));
  }
}

/** Token bucket: `burst` requests at once, refilled at `perSecond` (Slack's "1 per second, bursts allowed"). */
export class TokenBucket {
  // Kept in thousandths of a token so integer clocks give exact refills.
  private readonly buckets = new Map<string, { milliTokens: number; at: number }>();

  constructor(
    readonly burst: number,
    readonly perSecond: number,
    private readonly now: Clock = systemClock,
  ) {}

  tryTake(key = ''): boolean {
    const now = this.now();
    const capacity = this.burst * 1000;
    const bucket = this.buckets.get(key) ?? { milliTokens: capacity, at: now };
    bucket.milliTokens = Math.min(capacity, bucket.milliTokens + (now - bucket.at) * this.perSecond);
    bucket.at = now;
    this.buckets.set(key, bucket);
    if (bucket.milliTokens < 1000) return false;
    bucket.milliTokens -= 1000;
    return true;
  }
}

export interface RequestCounts {
  total: number;
  rateLimited: number;
  byRoute: Record<string, number>;
}

/** Route key with numeric path segments folded, e.g. "GET /api/v4/contacts/:id/notes". */
export function defaultRouteKey(req: Request): string {
  const path = req.path
    .split('/')
    .map((segment) => (/^\d+$/.test(segment) ? ':id' : segment))
    .join('/');
  return `${req.method} ${path}`;
}

export class RequestCounter {
  private counts: RequestCounts = { total: 0, rateLimited: 0, byRoute: {} };

  constructor(private readonly routeKey: (req: Request) => string = defaultRouteKey) {}

  /** Counts every non-control request as it arrives, whatever it is answered. */
  middleware(): RequestHandler {
    return (req, _res, next) => {
      if (!isControlPath(req)) this.count(this.routeKey(req));
      next();
    };
  }

  count(route: string): void {
    this.counts.total++;
    this.counts.byRoute[route] = (this.counts.byRoute[route] ?? 0) + 1;
  }

  rateLimited(): void {
    this.counts.rateLimited++;
  }

  snapshot(): RequestCounts {
    return structuredClone(this.counts);
  }
}

export class OutageSwitch {
  down = false;

  /** While down, answers every non-control request with `respond`. */
  middleware(respond: (res: Response) => void): RequestHandler {
    return (req, res, next) => {
      if (this.down && !isControlPath(req)) respond(res);
      else next();
    };
  }
}

/**
 * A slow outside system: while `delayMs` is above 0, every non-control request is handled at once
 * (the system acts) and answered only after the delay, which is how a slow server looks to a
 * client whose timeout runs out first: the effect happened, the answer never came.
 */
export class ResponseDelay {
  delayMs = 0;

  middleware(): RequestHandler {
    return (req, res, next) => {
      const delayMs = this.delayMs;
      if (delayMs > 0 && !isControlPath(req)) {
        const end = res.end.bind(res) as (...args: unknown[]) => Response;
        res.end = ((...args: unknown[]) => {
          setTimeout(() => end(...args), delayMs).unref();
          return res;
        }) as Response['end'];
      }
      next();
    };
  }
}

/**
 * JSON body parser that hands malformed or oversized bodies to `onInvalid`
 * so each sandbox can answer in its own system's error format.
 */
export function jsonBody(onInvalid: (res: Response, status: number) => void, limit = '1mb'): RequestHandler {
  const parse = express.json({ limit });
  return (req: Request, res: Response, next: NextFunction) => {
    parse(req, res, (error?: unknown) => {
      if (error === undefined || error === null) return next();
      const status = typeof error === 'object' && 'status' in error && typeof error.status === 'number' ? error.status : 400;
      onInvalid(res, status);
    });
  };
}

/** Registers GET /_sandbox/state, POST /_sandbox/outage {"down":bool} and, given a delay, POST /_sandbox/slow {"delayMs":n}. */
export function controlRoutes(app: Express, state: () => unknown, outage: OutageSwitch, slow?: ResponseDelay): void {
  app.get(`${CONTROL_PREFIX}state`, (_req, res) => {
    res.json(state());
  });
  app.post(`${CONTROL_PREFIX}outage`, express.json(), (req: Request, res: Response) => {
    const body: unknown = req.body;
    if (typeof body !== 'object' || body === null || !('down' in body) || typeof body.down !== 'boolean') {
      res.status(400).json({ error: 'expected {"down": boolean}' });
      return;
    }
    outage.down = body.down;
    res.json({ down: outage.down });
  });
  if (!slow) return;
  app.post(`${CONTROL_PREFIX}slow`, express.json(), (req: Request, res: Response) => {
    const body: unknown = req.body;
    if (typeof body !== 'object' || body === null || !('delayMs' in body) || typeof body.delayMs !== 'number' || !(body.delayMs >= 0)) {
      res.status(400).json({ error: 'expected {"delayMs": number >= 0}' });
      return;
    }
    slow.delayMs = body.delayMs;
    res.json({ delayMs: slow.delayMs });
  });
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The token of an `Authorization: Bearer <token>` header, if any. */
export function bearerToken(req: Request): string | undefined {
  const match = /^Bearer\s+(.+)$/i.exec(req.get('authorization') ?? '');
  return match?.[1]?.trim();
}

/** All values of a query parameter, accepting `key=a,b`, repeated keys, `key[]=` and `key[0]=` forms. */
export function queryValues(req: Request, key: string): string[] {
  const params = new URL(req.originalUrl, 'http://sandbox.invalid').searchParams;
  const values: string[] = [];
  for (const [name, value] of params) {
    if (name === key || name === `${key}[]` || (name.startsWith(`${key}[`) && /^\[\d+\]$/.test(name.slice(key.length)))) {
      values.push(...value.split(',').map((part) => part.trim()).filter((part) => part !== ''));
    }
  }
  return values;
}
