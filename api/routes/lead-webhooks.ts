/**
 * POST /webhooks/{tenant}/crm: CRM lead and meeting events → the lead's workflow.
 * GET|POST /webhooks/{tenant}/whatsapp: Meta's verification handshake; statuses (deduplicated
 * per message and status, recorded in the ledger and the timeline) and inbound replies.
 */
import { Router } from 'express';
import type { Request, Response } from 'express';
import type { AppConfig } from '../../config/load.js';
import type { Db } from '../../db/pool.js';
import type { Logger } from '../../observability/logger.js';
import type { HandOff } from '../../ingestion/intake.js';
import { ingestCrmEvent, ingestWhatsApp } from '../../ingestion/ingest.js';
import { Rejection } from '../../ingestion/rejections.js';
import type { RejectionStore } from '../../ingestion/rejections.js';
import { tenantOf } from '../tenants.js';
import { answerUnavailable, bodyErrors, handOffSummary, providerRequest, rawBody, refuse } from './webhooks.js';

export interface LeadWebhookDeps {
  config: AppConfig;
  db: Db;
  logger: Logger;
  handOff: HandOff;
  rejections: RejectionStore;
}

export function createLeadWebhookRouter(deps: LeadWebhookDeps): Router {
  const { config } = deps;
  const router = Router();

  router.post('/webhooks/:tenant/crm', rawBody, async (req: Request<{ tenant: string }>, res) => {
    try {
      const request = providerRequest(config, req, req.params.tenant);
      const result = await answerUnavailable(deps, res, () => ingestCrmEvent(deps, request));
      if (result) res.status(202).json({ status: 'accepted', leadId: result.leadId, ...handOffSummary(result.handedOff) });
    } catch (error) {
      if (error instanceof Rejection) return refuse(deps, req, res, 'crm', error);
      throw error;
    }
  });

  router.get('/webhooks/:tenant/whatsapp', (req: Request<{ tenant: string }>, res: Response) => {
    const expected = tenantOf(config, req.params.tenant)?.whatsapp?.verifyToken;
    const { 'hub.mode': mode, 'hub.verify_token': token, 'hub.challenge': challenge } = req.query;
    if (expected && mode === 'subscribe' && token === expected && typeof challenge === 'string') {
      res.type('text/plain').send(challenge);
      return;
    }
    res.status(403).json({ error: 'verification_failed', message: 'hub.verify_token does not match' });
  });

  router.post('/webhooks/:tenant/whatsapp', rawBody, async (req: Request<{ tenant: string }>, res) => {
    try {
      const request = providerRequest(config, req, req.params.tenant);
      const result = await answerUnavailable(deps, res, () => ingestWhatsApp(deps, request));
      if (!result) return;
      for (const message of result.unmatched) {
        // Kept for inspection: a reply from a number no lead has.
        await deps.rejections.store({ tenantId: request.tenantId, source: 'whatsapp', rejection: new Rejection('unknown_recipient', `inbound message ${message.messageId} matches no lead`), req, rawBody: request.rawBody });
      }
      // Meta retries anything but a 2xx, so processed deliveries (and duplicates) are acknowledged.
      res.status(200).json({ status: 'ok', statuses: result.statuses, duplicates: result.duplicates, messages: result.messages, unmatched: result.unmatched.length });
    } catch (error) {
      if (error instanceof Rejection) return refuse(deps, req, res, 'whatsapp', error);
      throw error;
    }
  });

  router.use(bodyErrors(deps, (req) => (req.path.endsWith('/whatsapp') ? 'whatsapp' : 'crm')));
  return router;
}
