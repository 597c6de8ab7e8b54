/**
 * POST /webhooks/{tenant}/sms/status: Twilio message status callbacks of the SMS fallback (the URL
 * names the step's ledger key); POST /webhooks/{tenant}/sms: inbound text messages (replies, STOP).
 * Both verified with X-Twilio-Signature; the logic is in ingestion/sms.ts.
 */
import { Router } from 'express';
import type { Request } from 'express';
import { ingestSmsInbound, ingestSmsStatus } from '../../ingestion/sms.js';
import { Rejection } from '../../ingestion/rejections.js';
import type { LeadWebhookDeps } from './lead-webhooks.js';
import { answerUnavailable, bodyErrors, providerRequest, rawBody, refuse } from './webhooks.js';

/** An empty TwiML answer: no reply is sent (Twilio's own opt-out handling confirms a STOP). */
export const emptyTwiml = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>';

export function createSmsWebhookRouter(deps: LeadWebhookDeps): Router {
  const { config } = deps;
  const router = Router();

  router.post('/webhooks/:tenant/sms/status', rawBody, async (req: Request<{ tenant: string }>, res) => {
    try {
      const request = providerRequest(config, req, req.params.tenant);
      const query = new URL(req.originalUrl, 'http://switchboard.invalid').searchParams;
      const result = await answerUnavailable(deps, res, () => ingestSmsStatus(deps, request, query));
      if (!result) return;
      if (!result.matched) {
        // Kept for inspection: a status about a message no step sent.
        await deps.rejections.store({ tenantId: request.tenantId, source: 'sms-status', rejection: new Rejection('unknown_recipient', 'the status names no message Switchboard sent'), req, rawBody: request.rawBody });
      }
      if (result.duplicate) res.locals.outcome = 'duplicate';
      res.status(200).json({ status: 'ok', duplicate: result.duplicate, matched: result.matched });
    } catch (error) {
      if (error instanceof Rejection) return refuse(deps, req, res, 'sms-status', error);
      throw error;
    }
  });

  router.post('/webhooks/:tenant/sms', rawBody, async (req: Request<{ tenant: string }>, res) => {
    try {
      const request = providerRequest(config, req, req.params.tenant);
      const result = await answerUnavailable(deps, res, () => ingestSmsInbound(deps, request));
      if (!result) return;
      if (!result.leadId) {
        // Kept for inspection: a text from a number no lead has (an opt-out is suppressed all the same).
        await deps.rejections.store({ tenantId: request.tenantId, source: 'sms', rejection: new Rejection('unknown_recipient', 'the inbound message matches no lead'), req, rawBody: request.rawBody });
      }
      res.status(200).type('text/xml').send(emptyTwiml);
    } catch (error) {
      if (error instanceof Rejection) return refuse(deps, req, res, 'sms', error);
      throw error;
    }
  });

  router.use(bodyErrors(deps, (req) => (req.path.endsWith('/status') ? 'sms-status' : 'sms')));
  return router;
}
