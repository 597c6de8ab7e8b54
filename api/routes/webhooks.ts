/**
 * POST /webhooks/{tenant}/{provider}: verify the signature, safeParse, normalize, hand off to
 * Temporal, answer 202. Anything refused is answered 4xx with a machine-readable reason and
 * stored (raw body included) for inspection and replay.
 */
import express, { Router } from 'express';
import type { ErrorRequestHandler, Request, Response } from 'express';
import type { AppConfig } from '../../config/load.js';
import type { Db } from '../../db/pool.js';
import type { Logger } from '../../observability/logger.js';
import { callEventSchema, callIdOf, callProviders } from '../../shared/calls.js';
import type { CallProvider } from '../../shared/calls.js';
import { callDelivery } from '../call-delivery.js';
import type { HandOff, HandOffResult, WorkflowDelivery } from '../handoff.js';
import { callProviderAdapters } from '../providers/index.js';
import type { ProviderRequest } from '../providers/types.js';
import { Rejection, fieldErrors, storeRejection } from '../rejections.js';

export interface WebhookRouterDeps {
  config: AppConfig;
  db: Db;
  logger: Logger;
  handOff: HandOff;
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
  const tenant = config.tenants[tenantId];
  if (!tenant) throw new Rejection('unknown_tenant', `no tenant "${tenantId.slice(0, 64)}"`);
  const now = Date.now();
  return {
    tenantId,
    tenant,
    rawBody: Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0),
    headers: req.headers,
    signedUrls: signedUrlsOf(config, req),
    nowSeconds: Math.floor(now / 1000),
    receivedAt: new Date(now).toISOString(),
  };
}

/** Answers a refusal and keeps the request. Shared by every router that takes events. */
export async function refuse(deps: Pick<WebhookRouterDeps, 'db' | 'logger'>, req: Request, res: Response, source: string, rejection: Rejection): Promise<void> {
  res.locals.rejected = true;
  const tenantId = typeof req.params.tenant === 'string' ? req.params.tenant : 'unknown';
  await storeRejection(deps.db, deps.logger, {
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
 * Hands off; if neither Temporal nor the inbox can take the event, answers 503 so the sender
 * retries (every phone system here does) rather than losing it.
 */
export async function handOffOrUnavailable(
  deps: Pick<WebhookRouterDeps, 'handOff' | 'logger'>,
  res: Response,
  delivery: WorkflowDelivery,
): Promise<HandOffResult | undefined> {
  try {
    const result = await deps.handOff(delivery);
    if (result.via === 'inbox') res.locals.queued = true;
    return result;
  } catch (error) {
    deps.logger.error({ err: error, workflowId: delivery.workflowId }, 'neither Temporal nor the inbox took the event');
    res.status(503).set('Retry-After', '5').json({ error: 'temporarily_unavailable', message: 'The event could not be stored; retry later.' });
    return undefined;
  }
}

/** Body-parser failures (too large, aborted) become stored rejections too. */
export function bodyErrors(deps: Pick<WebhookRouterDeps, 'db' | 'logger'>, source: (req: Request) => string): ErrorRequestHandler {
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
      if (!(callProviders as readonly string[]).includes(req.params.provider)) {
        throw new Rejection('unknown_provider', `no webhook "${source}"`, { known: callProviders });
      }
      const provider = req.params.provider as CallProvider;
      const adapter = callProviderAdapters[provider];
      adapter.authenticate(request);
      const delivery = adapter.parse(request);
      // The adapter's output must be a valid canonical event (e.g. transcript limits).
      for (const event of delivery.events) {
        const check = callEventSchema.safeParse(event);
        if (!check.success) throw new Rejection('invalid_payload', 'the event exceeds what Switchboard accepts', { fields: fieldErrors(check.error.issues) });
      }
      const callId = callIdOf(provider, delivery.providerCallId);
      if (delivery.events.length === 0) {
        res.status(202).json({ status: 'accepted', callId, events: 0, queued: false });
        return;
      }
      const handedOff = await handOffOrUnavailable(deps, res, callDelivery(config, request.tenantId, provider, delivery.providerCallId, delivery.events));
      if (handedOff) res.status(202).json({ status: 'accepted', callId, events: delivery.events.length, queued: handedOff.via === 'inbox' });
    } catch (error) {
      if (error instanceof Rejection) return refuse(deps, req, res, source, error);
      throw error;
    }
  });
  router.use(bodyErrors(deps, (req) => String(req.params.provider ?? 'webhook')));
  return router;
}
