/**
 * Operator routes for calls: the manager's result form, journal search, one call's detail and
 * its recording (HTTP ranges). Tenant-scoped operator token; the recording also accepts the
 * signed link we give the CRM's player.
 */
import express, { Router } from 'express';
import type { Request, Response } from 'express';
import { z } from 'zod';
import type { AppConfig } from '../../config/load.js';
import { getCallDetail, listCalls } from '../../db/call-journal.js';
import type { Db } from '../../db/pool.js';
import { readRecordingRange, recordingInfo } from '../../db/recordings.js';
import type { Logger } from '../../observability/logger.js';
import { verifyRecordingLinkSignature } from '../../security/signatures.js';
import { callStatuses, dispositionSchema } from '../../shared/calls.js';
import { checkOperator, requireOperator } from '../auth.js';
import type { HandOff } from '../../ingestion/intake.js';
import { normalizePhone } from '../../shared/phone.js';
import { Rejection, fieldErrors } from '../../ingestion/rejections.js';
import { ingestCallResult } from '../../ingestion/ingest.js';
import { answerUnavailable, bodyErrors, handOffSummary, refuse } from './webhooks.js';

export interface CallsRouterDeps {
  config: AppConfig;
  db: Db;
  logger: Logger;
  handOff: HandOff;
}

export const listCallsQuerySchema = z.object({
  phone: z.string().max(64).optional(),
  status: z.enum(callStatuses).optional(),
  direction: z.enum(['inbound', 'outbound']).optional(),
  agent: z.string().max(200).optional(),
  disposition: dispositionSchema.optional(),
  from: z.iso.datetime({ offset: true }).optional(),
  to: z.iso.datetime({ offset: true }).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(500).optional(),
});

const cursorSchema = z.object({ startedAt: z.iso.datetime({ offset: true }), callId: z.string().min(1) });
const encodeCursor = (cursor: z.infer<typeof cursorSchema>): string => Buffer.from(JSON.stringify(cursor)).toString('base64url');
function decodeCursor(text: string): z.infer<typeof cursorSchema> {
  try {
    return cursorSchema.parse(JSON.parse(Buffer.from(text, 'base64url').toString('utf8')));
  } catch {
    throw new Rejection('invalid_payload', 'cursor is not one this API issued', { fields: { cursor: 'invalid cursor' } });
  }
}

function sendRejection(res: Response, rejection: Rejection): void {
  res.status(rejection.status).json({ error: rejection.reason, message: rejection.message, ...(rejection.details !== undefined ? { details: rejection.details } : {}) });
}

/** Parses `bytes=a-b`, `bytes=a-`, `bytes=-n`; undefined = serve the whole file; 'unsatisfiable' → 416. */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  if (!header) return undefined;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match) return undefined;
  const [, first = '', last = ''] = match;
  if (first === '' && last === '') return undefined;
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  if (start >= size || end < start) return 'unsatisfiable';
  return { start, end };
}

export function createCallsRouter(deps: CallsRouterDeps): Router {
  const { config, db } = deps;
  const router = Router();
  const operator = requireOperator(config);

  router.post('/api/:tenant/calls/:callId/result', express.raw({ type: () => true, limit: '64kb' }), async (req: Request<{ tenant: string; callId: string }>, res) => {
    try {
      checkOperator(config, req.params.tenant, req.headers.authorization, req.headers.cookie);
      const rawBody = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      const idempotencyKey = typeof req.headers['idempotency-key'] === 'string' ? req.headers['idempotency-key'].slice(0, 200) : undefined;
      const result = await answerUnavailable(deps, res, () => ingestCallResult(deps, req.params.tenant, req.params.callId, rawBody, idempotencyKey));
      if (result) res.status(202).json({ status: 'accepted', callId: result.callId, ...handOffSummary(result.handedOff) });
    } catch (error) {
      if (error instanceof Rejection) return refuse(deps, req, res, 'call-result', error);
      throw error;
    }
  });
  router.use('/api/:tenant/calls/:callId/result', bodyErrors(deps, () => 'call-result'));

  router.get('/api/:tenant/calls', operator, async (req: Request<{ tenant: string }>, res) => {
    const parsed = listCallsQuerySchema.safeParse(req.query);
    if (!parsed.success) return sendRejection(res, new Rejection('invalid_payload', 'invalid query parameters', { fields: fieldErrors(parsed.error.issues) }));
    const query = parsed.data;
    const tenant = config.tenants[req.params.tenant];
    let phone: string | undefined;
    if (query.phone && tenant) {
      const normalized = normalizePhone(query.phone, tenant.defaultRegion);
      if (!normalized.ok || !normalized.e164) return sendRejection(res, new Rejection('invalid_phone_number', 'phone is not a phone number', { field: 'phone' }));
      phone = normalized.e164;
    }
    try {
      const page = await listCalls(
        db,
        req.params.tenant,
        {
          ...(phone ? { phone } : {}),
          ...(query.status ? { status: query.status } : {}),
          ...(query.direction ? { direction: query.direction } : {}),
          ...(query.agent ? { agent: query.agent } : {}),
          ...(query.disposition ? { disposition: query.disposition } : {}),
          ...(query.from ? { from: query.from } : {}),
          ...(query.to ? { to: query.to } : {}),
        },
        { limit: query.limit, ...(query.cursor ? { after: decodeCursor(query.cursor) } : {}) },
      );
      res.json({ calls: page.calls, nextCursor: page.next ? encodeCursor(page.next) : null });
    } catch (error) {
      if (error instanceof Rejection) return sendRejection(res, error);
      throw error;
    }
  });

  router.get('/api/:tenant/calls/:callId', operator, async (req: Request<{ tenant: string; callId: string }>, res) => {
    const detail = await getCallDetail(db, req.params.tenant, req.params.callId);
    if (!detail) return void res.status(404).json({ error: 'call_not_found', message: 'No such call in the journal' });
    res.json(detail);
  });

  router.get('/api/:tenant/calls/:callId/recording', async (req: Request<{ tenant: string; callId: string }>, res) => {
    const { tenant: tenantId, callId } = req.params;
    const tenant = config.tenants[tenantId];
    const signature = typeof req.query.sig === 'string' ? req.query.sig : undefined;
    try {
      if (!(tenant && signature && verifyRecordingLinkSignature(tenant.secrets.webhookSigningSecret, tenantId, callId, signature))) {
        checkOperator(config, tenantId, req.headers.authorization, req.headers.cookie);
      }
    } catch (error) {
      if (error instanceof Rejection) return sendRejection(res, error);
      throw error;
    }
    const info = await recordingInfo(db, tenantId, callId);
    if (!info) return void res.status(404).json({ error: 'recording_not_found', message: 'No recording stored for this call (yet)' });
    res.set({ 'Accept-Ranges': 'bytes', 'Content-Type': info.contentType, 'Cache-Control': 'private, max-age=300' });
    const range = parseRange(req.headers.range, info.sizeBytes);
    if (range === 'unsatisfiable') {
      res.status(416).set('Content-Range', `bytes */${info.sizeBytes}`).end();
      return;
    }
    const { start, end } = range ?? { start: 0, end: info.sizeBytes - 1 };
    const chunk = info.sizeBytes === 0 ? Buffer.alloc(0) : await readRecordingRange(db, tenantId, callId, start, end);
    if (range) res.status(206).set('Content-Range', `bytes ${start}-${end}/${info.sizeBytes}`);
    res.set('Content-Length', String(chunk.length)).end(chunk);
  });

  return router;
}
