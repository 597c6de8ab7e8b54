/**
 * POST /webhooks/{tenant}/crm: CRM lead and meeting events → the lead's workflow.
 * GET|POST /webhooks/{tenant}/whatsapp: Meta's verification handshake; statuses (deduplicated
 * per message and status, recorded in the ledger and the timeline) and inbound replies.
 */
import { Router } from 'express';
import type { Request, Response } from 'express';
import type { AppConfig } from '../../config/load.js';
import { appendTimeline, findLeadIdByPhone, suppress } from '../../db/leads.js';
import type { Db } from '../../db/pool.js';
import { recordStatus } from '../../db/whatsapp.js';
import type { Logger } from '../../observability/logger.js';
import { isOptOutText } from '../../shared/lead-plan.js';
import type { LeadEvent } from '../../shared/leads.js';
import type { HandOff } from '../handoff.js';
import { leadDelivery } from '../lead-delivery.js';
import { parseCrmEvent } from '../providers/crm-events.js';
import { authenticateSwitchboardSignature } from '../providers/pbx.js';
import { authenticateWhatsApp, inboundText, parseWhatsAppWebhook } from '../providers/whatsapp-webhook.js';
import { Rejection, storeRejection } from '../rejections.js';
import { bodyErrors, handOffOrUnavailable, providerRequest, rawBody, refuse } from './webhooks.js';

export interface LeadWebhookDeps {
  config: AppConfig;
  db: Db;
  logger: Logger;
  handOff: HandOff;
}

const statusTimelineKind = { sent: undefined, delivered: 'delivered', read: 'read', failed: 'failed' } as const;

export function createLeadWebhookRouter(deps: LeadWebhookDeps): Router {
  const { config, db } = deps;
  const router = Router();

  router.post('/webhooks/:tenant/crm', rawBody, async (req: Request<{ tenant: string }>, res) => {
    try {
      const request = providerRequest(config, req, req.params.tenant);
      authenticateSwitchboardSignature(request);
      const { leadId, event } = parseCrmEvent(request);
      const handedOff = await handOffOrUnavailable(deps, res, leadDelivery(config, request.tenantId, leadId, [event]));
      if (handedOff) res.status(202).json({ status: 'accepted', leadId, queued: handedOff.via === 'inbox' });
    } catch (error) {
      if (error instanceof Rejection) return refuse(deps, req, res, 'crm', error);
      throw error;
    }
  });

  router.get('/webhooks/:tenant/whatsapp', (req: Request<{ tenant: string }>, res: Response) => {
    const expected = config.tenants[req.params.tenant]?.whatsapp?.verifyToken;
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
      authenticateWhatsApp(request);
      const { statuses, messages } = parseWhatsAppWebhook(request);
      const tenantId = request.tenantId;
      let duplicates = 0;
      for (const status of statuses) {
        if (status.status !== 'sent' && status.status !== 'delivered' && status.status !== 'read' && status.status !== 'failed') continue;
        const error = status.errors?.[0];
        const occurredAt = new Date(Number(status.timestamp) * 1000).toISOString();
        const recorded = await recordStatus(db, {
          tenantId,
          wamid: status.id,
          status: status.status,
          occurredAt,
          ...(status.biz_opaque_callback_data ? { effectKey: status.biz_opaque_callback_data } : {}),
          ...(error ? { errorCode: error.code, ...(error.title ? { errorTitle: error.title } : {}) } : {}),
          payload: status,
        });
        if (!recorded.fresh) {
          duplicates++;
          continue;
        }
        const kind = statusTimelineKind[status.status];
        if (!recorded.leadId || !kind) continue;
        const step = recorded.effectKey?.replace(/^wa:[^:]*:/, '');
        await appendTimeline(db, tenantId, recorded.leadId, [
          { entryKey: `status:${status.id}:${status.status}`, at: occurredAt, kind, cause: `WhatsApp status ${status.status}${error ? ` (error ${error.code})` : ''}`, detail: { messageId: status.id, ...(step ? { key: step } : {}), ...(error ? { errorCode: error.code } : {}) } },
        ], true);
        if (status.status === 'failed' && recorded.effectKey) {
          const failed: LeadEvent = {
            eventId: `wa-failed:${status.id}`,
            type: 'whatsapp.failed',
            occurredAt,
            messageId: status.id,
            effectKey: recorded.effectKey,
            errorCode: error?.code ?? 0,
            ...(error?.title ? { errorTitle: error.title } : {}),
          };
          await deps.handOff(leadDelivery(config, tenantId, recorded.leadId, [failed]));
        }
      }
      let unmatched = 0;
      for (const message of messages) {
        const from = `+${message.from}`;
        const leadId = await findLeadIdByPhone(db, tenantId, from);
        const text = inboundText(message);
        if (isOptOutText(text)) await suppress(db, tenantId, from, 'replied STOP');
        if (!leadId) {
          // Kept for inspection: a reply from a number no lead has.
          unmatched++;
          await storeRejection(db, deps.logger, { tenantId, source: 'whatsapp', rejection: new Rejection('unknown_recipient', `inbound message ${message.id} matches no lead`), req, rawBody: request.rawBody });
          continue;
        }
        const reply: LeadEvent = { eventId: `wa:${message.id}`, type: 'whatsapp.reply', occurredAt: new Date(Number(message.timestamp) * 1000).toISOString(), messageId: message.id, text };
        await deps.handOff(leadDelivery(config, tenantId, leadId, [reply]));
      }
      // Meta retries anything but a 2xx, so processed deliveries (and duplicates) are acknowledged.
      res.status(200).json({ status: 'ok', statuses: statuses.length, duplicates, messages: messages.length, unmatched });
    } catch (error) {
      if (error instanceof Rejection) return refuse(deps, req, res, 'whatsapp', error);
      throw error;
    }
  });

  router.use(bodyErrors(deps, (req) => (req.path.endsWith('/whatsapp') ? 'whatsapp' : 'crm')));
  return router;
}
