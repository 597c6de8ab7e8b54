// Who may call at all: the account's IP whitelist and the 7-per-second limit (docs/limitations).
import type { Request, RequestHandler } from 'express';
import { isControlPath, RollingWindow, RollingWindowLimiter } from '../http.js';
import type { Clock, RequestCounter } from '../http.js';
import { problem } from './errors.js';
import type { KommoSandboxOptions } from './handle.js';

export const addressOf = (req: Request): string => (req.socket.remoteAddress ?? 'unknown').replace(/^::ffff:/, '');

/** The account's IP whitelist: a refusal for good (error 113), whatever else the request carries. */
export function ipWhitelist(allowedIps: () => string[] | undefined): RequestHandler {
  return (req, res, next) => {
    const allowed = allowedIps();
    if (isControlPath(req) || !allowed || allowed.includes(addressOf(req))) return next();
    problem(res, 403, 'Forbidden', { detail: 'Access to the account is denied from this IP address', error_code: 113 });
  };
}

/** Rate limit; a client that keeps hammering is restricted for a while (answered 429 until then). */
export function rateLimit(options: KommoSandboxOptions, clock: Clock, counter: RequestCounter): RequestHandler {
  const limiter = new RollingWindowLimiter(options.rateLimitPerSecond ?? 7, options.rateLimitWindowMs ?? 1000, clock);
  const recent429s = new RollingWindow(options.blockWindowMs ?? 10_000, clock);
  const blockAfter = options.blockAfter429s ?? 30;
  const blockDurationMs = options.blockDurationMs ?? 30_000;
  const restrictedUntil = new Map<string, number>();
  return (req, res, next) => {
    if (isControlPath(req)) return next();
    const ip = addressOf(req);
    const until = restrictedUntil.get(ip);
    if (until !== undefined) {
      if (clock() < until) {
        counter.rateLimited();
        res.set('Retry-After', String(Math.max(1, Math.ceil((until - clock()) / 1000))));
        return problem(res, 429, 'Too Many Requests', { detail: 'Requests from this address are restricted' });
      }
      restrictedUntil.delete(ip);
    }
    if (limiter.tryAcquire()) return next();
    counter.rateLimited();
    if (recent429s.record(ip) > blockAfter) {
      restrictedUntil.set(ip, clock() + blockDurationMs);
      recent429s.clear(ip);
    }
    res.set('Retry-After', '1');
    problem(res, 429, 'Too Many Requests', { detail: 'Rate limit exceeded' });
  };
}
