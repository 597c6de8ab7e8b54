/**
 * Operator routes for calls: the manager's result form, journal search, one call's detail and
 * its recording (HTTP ranges). Tenant-scoped operator token; the recording also accepts the
 * signed link we give the CRM's player.
 */
import express, { Router } from 'express';
import type { Request } from 'express';
import { z } from 'zod';
import type { AppConfig } from '../../config/load.js';
import { getCallDetail, listCalls } from '../../db/call-journal.js';
import type { CallListItem } from '../../db/call-journal.js';
import type { Db } from '../../db/pool.js';
import { readRecordingRange, recordingInfo } from '../../db/recordings.js';
import type { Logger } from '../../observability/logger.js';
import { acceptedSecrets } from '../../security/secrets.js';
import { verifyRecordingLink } from '../../security/signatures.js';
import { opaqueRecordingType, servableAudioType } from '../../shared/audio-types.js';
import { callProviders, callStatuses, dispositionSchema } from '../../shared/calls.js';
import { authenticateOperator, checkSameOrigin, requireOperator } from '../auth.js';
import { sendRejection } from '../rejection-response.js';
import type { HandOff } from '../../ingestion/intake.js';
import { normalizePhone } from '../../shared/phone.js';
import { Rejection, fieldErrors } from '../../ingestion/rejections.js';
import type { RejectionStore } from '../../ingestion/rejections.js';
import { ingestCallResult } from '../../ingestion/ingest.js';
import { tenantOf } from '../tenants.js';
import { callIdParamSchema, storableInstant, storableText } from '../validation.js';
import { answerUnavailable, bodyErrors, handOffSummary, refuse } from './webhooks.js';

export interface CallsRouterDeps {
  config: AppConfig;
  db: Db;
  logger: Logger;
  handOff: HandOff;
  rejections: RejectionStore;
}

const instant = z.iso.datetime({ offset: true });

export const listCallsQuerySchema = z.object({
  phone: z
    .string()
    .max(64)
    .regex(/^\+?\(?[0-9][0-9 ()./-]*$/, 'must be a phone number: digits, an optional leading +, spaces, dots, dashes, slashes and parentheses')
    .optional()
    .describe("The caller's number, E.164 (`+14155550150`) or national in the tenant's region (`(415) 555-0150`), normalized to E.164 before matching. One that is no possible number there is `422 invalid_phone_number`."),
  status: z.enum(callStatuses).optional(),
  direction: z.enum(['inbound', 'outbound']).optional(),
  agent: storableText(200).optional(),
  disposition: dispositionSchema.optional(),
  from: instant.optional().describe('Calls that started at or after this instant (RFC 3339, any offset)'),
  to: instant.optional().describe('Calls that started before this instant (RFC 3339, any offset)'),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z
    .string()
    .max(500)
    .regex(/^[A-Za-z0-9_-]*$/, 'must be a nextCursor this API returned')
    .optional()
    .describe('`nextCursor` of the previous page; anything else is `422 invalid_payload`'),
});

/** A call in lists (search, the dashboard), as db/call-journal.ts's toListItem writes it. */
export const callListItemSchema = z.object({
  callId: z.string(),
  provider: z.string(),
  status: z.string(),
  direction: z.string().nullable(),
  customerPhone: z.string().nullable(),
  agentId: z.string().nullable(),
  startedAt: instant,
  answeredAt: instant.nullable(),
  endedAt: instant.nullable(),
  durationSeconds: z.number().nullable(),
  disposition: z.string().nullable(),
  enrichmentState: z.string(),
  crmSyncState: z.string(),
}) satisfies z.ZodType<CallListItem>;

export const callPageSchema = z.object({
  calls: z.array(callListItemSchema),
  nextCursor: z.string().nullable().describe('Pass as `cursor` for the next page; null on the last'),
});

const cursorSchema = z.object({ startedAt: instant, callId: callIdParamSchema });
const encodeCursor = (cursor: z.infer<typeof cursorSchema>): string => Buffer.from(JSON.stringify(cursor)).toString('base64url');
function decodeCursor(text: string): z.infer<typeof cursorSchema> {
  try {
    const cursor = cursorSchema.parse(JSON.parse(Buffer.from(text, 'base64url').toString('utf8')));
    return { ...cursor, startedAt: instantFilter(cursor.startedAt, 'cursor') };
  } catch {
    throw new Rejection('invalid_payload', 'cursor is not one this API issued', { fields: { cursor: 'invalid cursor' } });
  }
}

/** An instant of a filter as PostgreSQL compares it (see storableInstant). */
function instantFilter(iso: string, field: string): string {
  const instant = storableInstant(iso);
  if (instant === undefined) throw new Rejection('invalid_payload', `${field} is not an instant`, { fields: { [field]: 'not an instant' } });
  return instant;
}

/** `400 invalid_call_id` unless the path names a call the way this API does. */
function checkCallId(callId: string): void {
  if (!callIdParamSchema.safeParse(callId).success) throw new Rejection('invalid_call_id', 'callId must be <provider>:<provider call id>, e.g. pbx:abc123', { providers: callProviders });
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
  const operator = requireOperator(deps);

  router.post('/api/:tenant/calls/:callId/result', express.raw({ type: () => true, limit: '64kb' }), async (req: Request<{ tenant: string; callId: string }>, res) => {
    try {
      // The form's author is whoever signed it in, never what the body claims.
      const submitter = await authenticateOperator(deps, req.params.tenant, req.headers, 'operator');
      if (submitter.via === 'session') checkSameOrigin(config, req.headers);
      checkCallId(req.params.callId);
      const rawBody = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      const idempotencyKey = typeof req.headers['idempotency-key'] === 'string' ? req.headers['idempotency-key'].slice(0, 200) : undefined;
      const result = await answerUnavailable(deps, res, () => ingestCallResult(deps, req.params.tenant, req.params.callId, rawBody, idempotencyKey, submitter.name));
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
    const tenant = tenantOf(config, req.params.tenant);
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
          ...(query.from ? { from: instantFilter(query.from, 'from') } : {}),
          ...(query.to ? { to: instantFilter(query.to, 'to') } : {}),
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
    if (!callIdParamSchema.safeParse(req.params.callId).success) return sendRejection(res, new Rejection('invalid_call_id', 'callId must be <provider>:<provider call id>, e.g. pbx:abc123', { providers: callProviders }));
    const detail = await getCallDetail(db, req.params.tenant, req.params.callId);
    if (!detail) return void res.status(404).json({ error: 'call_not_found', message: 'No such call in the journal' });
    res.json(detail);
  });

  router.get('/api/:tenant/calls/:callId/recording', async (req: Request<{ tenant: string; callId: string }>, res) => {
    const { tenant: tenantId, callId } = req.params;
    const tenant = tenantOf(config, tenantId);
    const signature = typeof req.query.sig === 'string' ? req.query.sig : undefined;
    const expires = typeof req.query.expires === 'string' ? req.query.expires : undefined;
    try {
      if (tenant && (signature !== undefined || expires !== undefined)) {
        // The CRM player's signed link; an operator's own credentials still open it when the link does not.
        const link = verifyRecordingLink({ secrets: acceptedSecrets(tenant.secrets.recordingLinkSecret), tenantId, callId, expires, signature, nowSeconds: Math.floor(Date.now() / 1000) });
        if (!link.ok) {
          const refusal =
            link.reason === 'expired_link'
              ? new Rejection('expired_link', 'this recording link has expired; open the recording from the call in Switchboard')
              : new Rejection('invalid_link', 'the recording link is not valid (altered, or signed with a key this tenant no longer has)');
          if (!req.headers.authorization && !req.headers.cookie) throw refusal;
          try {
            await authenticateOperator(deps, tenantId, req.headers);
          } catch (error) {
            throw error instanceof Rejection ? refusal : error;
          }
        }
      } else {
        await authenticateOperator(deps, tenantId, req.headers);
      }
      checkCallId(callId);
    } catch (error) {
      if (error instanceof Rejection) return sendRejection(res, error);
      throw error;
    }
    const info = await recordingInfo(db, tenantId, callId);
    if (!info) return void res.status(404).json({ error: 'recording_not_found', message: 'No recording stored for this call (yet)' });
    // Only audio types go out (a stored type that is not one is served as an opaque download), and never sniffed.
    const audioType = servableAudioType(info.contentType);
    res.set({
      'Accept-Ranges': 'bytes',
      'Content-Type': audioType ?? opaqueRecordingType,
      'X-Content-Type-Options': 'nosniff',
      'Cache-Control': 'private, max-age=300',
      ...(audioType ? {} : { 'Content-Disposition': 'attachment' }),
    });
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
