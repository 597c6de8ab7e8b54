/**
 * POST /webhooks/{tenant}/{provider}: verify the signature, safeParse, normalize, commit to the
 * inbox, answer 202 (the forwarder takes it to Temporal). Anything refused is answered 4xx with a machine-readable reason and
 * stored (raw body included, within the tenant's storage bounds) for inspection and replay; for a
 * tenant that is not configured it is only counted and sampled.
 */
import express, { Router } from 'express';
import type { ErrorRequestHandler, Request, Response } from 'express';
import type { AppConfig } from '../../config/load.js';
import type { Db } from '../../db/pool.js';
import type { Logger } from '../../observability/logger.js';
import { BacklogFull, IntakeUnavailable } from '../../ingestion/intake.js';
import type { HandOff, HandOffResult } from '../../ingestion/intake.js';
import { ingestCallWebhook } from '../../ingestion/ingest.js';
import type { ProviderRequest } from '../../ingestion/providers/types.js';
import { Rejection } from '../../ingestion/rejections.js';
import type { RejectionStore } from '../../ingestion/rejections.js';
import { tenantOf } from '../tenants.js';

export interface WebhookRouterDeps {
  config: AppConfig;
  db: Db;
  logger: Logger;
  handOff: HandOff;
  /** Where refusals are kept (within each tenant's storage bounds). */
  rejections: RejectionStore;
}

export const webhookBodyLimit = '1mb';

/** Raw bytes for every content type: signatures are computed over the exact body. */
export const rawBody = express.raw({ type: () => true, limit: webhookBodyLimit });

/** The URLs a sender may have signed: our public URL, and the one the request itself names. */
export function signedUrlsOf(config: AppConfig, req: Request): string[] {
  const fromPublic = `${config.api.publicUrl.replace(/\/$/, '')}${req.originalUrl}`;
  const fromHost = `${req.protocol}://${req.get('host') ?? 'localhost'}${req.originalUrl}`;
  return [...new Set([fromPublic, fromHost])];
}

export function providerRequest(config: AppConfig, req: Request, tenantId: string): ProviderRequest {
  const tenant = tenantOf(config, tenantId);
  if (!tenant) throw new Rejection('unknown_tenant', `no tenant "${tenantId.slice(0, 64)}"`);
  const now = Date.now();
  let signedUrls: string[] | undefined;
  return {
    tenantId,
    tenant,
    rawBody: Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0),
    headers: req.headers,
    // Only URL-signing providers (Twilio) read these; the proxy-aware host and protocol cost every other request.
    get signedUrls() {
      return (signedUrls ??= signedUrlsOf(config, req));
    },
    nowSeconds: Math.floor(now / 1000),
    receivedAt: new Date(now).toISOString(),
  };
}

// The tenant a path names, also where no route params are set (body-parser errors).
const tenantInPath = /^\/(?:webhooks|api)\/([^/]+)\//;

/** Answers a refusal and keeps the request. Shared by every router that takes events. */
export async function refuse(deps: Pick<WebhookRouterDeps, 'rejections'>, req: Request, res: Response, source: string, rejection: Rejection): Promise<void> {
  res.locals.rejected = true;
  const tenantId = typeof req.params.tenant === 'string' ? req.params.tenant : (tenantInPath.exec(req.path)?.[1] ?? 'unknown');
  await deps.rejections.store({
    tenantId,
    source,
    rejection,
    req,
    rawBody: Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0),
  });
  res.status(rejection.status).json({
    error: rejection.reason,
    message: rejection.message,
    ...(rejection.details !== undefined ? { details: rejection.details } : {}),
  });
}

/**
 * Runs an ingestion and answers what the sender must do when it could not be stored: past the
 * backlog bound, or with neither PostgreSQL nor Temporal answering, 503 with Retry-After (every
 * phone system here retries on it) rather than losing the event. Such answers are not stored as
 * rejections: the bound exists to protect the disk. Refusals (Rejection) pass through to the caller.
 */
export async function answerUnavailable<T>(deps: Pick<WebhookRouterDeps, 'logger'>, res: Response, ingest: () => Promise<T>): Promise<T | undefined> {
  try {
    const result = await ingest();
    const handedOff = (result as { handedOff?: HandOffResult }).handedOff;
    res.locals.outcome = !handedOff ? 'accepted' : handedOff.via === 'temporal' ? 'direct' : handedOff.inserted === 0 ? 'duplicate' : 'accepted';
    return result;
  } catch (error) {
    if (error instanceof BacklogFull) {
      res.locals.outcome = 'backlog_full';
      res.status(503).set('Retry-After', String(error.retryAfterSeconds)).json({ error: 'backlog_full', message: `${error.message}; retry later`, details: { retryAfterSeconds: error.retryAfterSeconds, limit: error.limit } });
      return undefined;
    }
    if (error instanceof IntakeUnavailable) {
      res.locals.outcome = 'unavailable';
      res.status(503).set('Retry-After', '5').json({ error: 'temporarily_unavailable', message: 'The event could not be stored; retry later.' });
      return undefined;
    }
    throw error;
  }
}

/** What a 202 says about the hand-off: `via` inbox (forwarded in the background) or temporal (PostgreSQL was slow). */
export function handOffSummary(handedOff: HandOffResult | undefined): { via: 'inbox' | 'temporal'; duplicates: number } {
  if (!handedOff) return { via: 'inbox', duplicates: 0 };
  return handedOff.via === 'inbox' ? { via: 'inbox', duplicates: handedOff.duplicates } : { via: 'temporal', duplicates: 0 };
}

/** Body-parser failures (too large, aborted) become stored rejections too. */
export function bodyErrors(deps: Pick<WebhookRouterDeps, 'rejections'>, source: (req: Request) => string): ErrorRequestHandler {
  return (error: unknown, req, res, next) => {
    const type = (error as { type?: string }).type;
    if (type === 'entity.too.large') return void refuse(deps, req, res, source(req), new Rejection('payload_too_large', `the body is larger than ${webhookBodyLimit}`));
    if (type === 'request.aborted' || type === 'entity.verify.failed' || type === 'encoding.unsupported') {
      return void refuse(deps, req, res, source(req), new Rejection('malformed_json', 'the body could not be read'));
    }
    next(error);
  };
}

export function createWebhookRouter(deps: WebhookRouterDeps): Router {
  const router = Router();
  const { config } = deps;

  router.post('/webhooks/:tenant/:provider', rawBody, async (req: Request<{ tenant: string; provider: string }>, res) => {
    const source = req.params.provider.slice(0, 50);
    try {
      const request = providerRequest(config, req, req.params.tenant);
      const result = await answerUnavailable(deps, res, () => ingestCallWebhook(deps, req.params.provider, request));
      if (result) res.status(202).json({ status: 'accepted', callId: result.callId, events: result.events, ...handOffSummary(result.handedOff) });
    } catch (error) {
      if (error instanceof Rejection) return refuse(deps, req, res, source, error);
      throw error;
    }
  });
  router.use(bodyErrors(deps, (req) => String(req.params.provider ?? 'webhook')));
  return router;
}
