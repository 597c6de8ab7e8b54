/**
 * The codec server for the Temporal Web UI (Temporal's remote codec protocol): `POST /codec/decode`
 * and `POST /codec/encode` take and answer `{"payloads": [{"metadata": {k: base64}, "data": base64}]}`
 * and run them through the payload codec every client and worker uses. Browsers may call it only
 * from the configured UI origins (CORS with credentials), and only with an operator credential: a
 * bearer token, or the dashboard's session cookie (the UI's "Include cross-origin credentials").
 */
import express, { Router } from 'express';
import type { ErrorRequestHandler, NextFunction, Request, Response } from 'express';
import type { Payload } from '@temporalio/common';
import { z } from 'zod';
import type { AppConfig } from '../../config/load.js';
import { Rejection } from '../../ingestion/rejections.js';
import { PayloadDecryptionError, payloadCodecFor } from '../../security/payload-codec.js';
import type { Db } from '../../db/pool.js';
import { authenticateAnyOperator } from '../auth.js';
import { sendRejection } from '../rejection-response.js';

// Proto3 JSON bytes: standard base64, URL-safe accepted too.
const base64 = z.string().regex(/^[A-Za-z0-9+/_-]*={0,2}$/, 'must be base64');
export const codecPayloadSchema = z
  .object({
    metadata: z.record(z.string().min(1).max(256), base64).optional().describe('Metadata values, base64 (e.g. `encoding`, `encryption-key-id`)'),
    data: base64.optional().describe('The payload bytes, base64'),
  })
  .describe('A Temporal Payload in proto3 JSON');
export const codecPayloadsSchema = z.object({ payloads: z.array(codecPayloadSchema).max(10_000) });
type JsonPayload = z.infer<typeof codecPayloadSchema>;

/** Request headers the UI sends (Temporal UI `codeServerRequest`). */
export const codecAllowedHeaders = ['Content-Type', 'X-Namespace', 'Authorization', 'Authorization-Extras'];
export const codecBodyLimit = '8mb';

const fromJson = (payload: JsonPayload): Payload => ({
  metadata: Object.fromEntries(Object.entries(payload.metadata ?? {}).map(([key, value]) => [key, Buffer.from(value, 'base64')])),
  ...(payload.data !== undefined ? { data: Buffer.from(payload.data, 'base64') } : {}),
});

const toJson = (payload: Payload): JsonPayload => ({
  metadata: Object.fromEntries(Object.entries(payload.metadata ?? {}).map(([key, value]) => [key, Buffer.from(value ?? new Uint8Array()).toString('base64')])),
  data: Buffer.from(payload.data ?? new Uint8Array()).toString('base64'),
});

export function createCodecRouter(deps: { config: AppConfig; db: Db }): Router {
  const { config } = deps;
  const router = Router();
  const allowedOrigins = new Set(config.api.codecAllowedOrigins);
  const codec = payloadCodecFor(config.temporal.payloadEncryption);
  const paths = ['/codec/encode', '/codec/decode'];

  /** CORS for the UI's origins only; any other browser origin is refused before anything else. */
  const cors = (req: Request, res: Response, next: NextFunction): void => {
    res.vary('Origin');
    const origin = req.headers.origin;
    if (origin !== undefined) {
      if (!allowedOrigins.has(origin)) return sendRejection(res, new Rejection('forbidden_origin', 'this origin may not call the codec server (api.codecAllowedOrigins)'));
      res.set({ 'Access-Control-Allow-Origin': origin, 'Access-Control-Allow-Credentials': 'true' });
    }
    next();
  };

  const preflight = (_req: Request, res: Response): void => {
    res
      .set({
        Allow: 'POST, OPTIONS',
        'Access-Control-Allow-Methods': 'POST, OPTIONS',
        'Access-Control-Allow-Headers': codecAllowedHeaders.join(', '),
        'Access-Control-Max-Age': '600',
      })
      .status(204)
      .end();
  };

  /**
   * Any configured tenant's operator may decode (the namespace, and so the codec's keys, is shared by
   * every tenant; seeing a history needs the Temporal Web UI in the first place). Encoding is what
   * the UI does to signal or start a workflow, so it needs the operator role.
   */
  const authenticate = async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    try {
      await authenticateAnyOperator(deps, req.headers, req.path.endsWith('/encode') ? 'operator' : 'viewer');
    } catch (error) {
      if (error instanceof Rejection) return sendRejection(res, error);
      throw error;
    }
    if (!req.is('application/json')) return sendRejection(res, new Rejection('unsupported_media_type', 'send Content-Type: application/json'));
    const namespace = req.headers['x-namespace'];
    if (typeof namespace === 'string' && namespace !== config.temporal.namespace) {
      return sendRejection(res, new Rejection('unknown_namespace', `this codec serves the namespace "${config.temporal.namespace}" only`));
    }
    next();
  };

  const run = (direction: 'encode' | 'decode') => async (req: Request, res: Response) => {
    const parsed = codecPayloadsSchema.safeParse(req.body);
    if (!parsed.success) {
      const first = parsed.error.issues[0];
      return sendRejection(res, new Rejection('invalid_payload', 'expected {"payloads": [{"metadata": {…}, "data": "<base64>"}]}', { field: first ? first.path.join('.') : '', issue: first?.message }));
    }
    const payloads = parsed.data.payloads.map(fromJson);
    try {
      const result = direction === 'encode' ? await codec.encode(payloads) : await codec.decode(payloads);
      res.set('Cache-Control', 'no-store').json({ payloads: result.map(toJson) });
    } catch (error) {
      if (error instanceof PayloadDecryptionError) return sendRejection(res, new Rejection('undecodable_payload', error.message));
      throw error;
    }
  };

  const body = express.json({ limit: codecBodyLimit, type: 'application/json' });
  // One route per path (not a path array): the 405 handler reads string paths.
  for (const direction of ['encode', 'decode'] as const) {
    router.options(`/codec/${direction}`, cors, preflight);
    router.post(`/codec/${direction}`, cors, authenticate, body, run(direction));
  }
  // Body-parser refusals as machine-readable reasons (with the CORS headers already set).
  const onBodyError: ErrorRequestHandler = (error: unknown, _req, res, next) => {
    const type = typeof error === 'object' && error !== null && 'type' in error ? error.type : undefined;
    if (type === 'entity.too.large') return sendRejection(res, new Rejection('payload_too_large', `at most ${codecBodyLimit}`));
    if (type === 'entity.parse.failed') return sendRejection(res, new Rejection('malformed_json', 'the body is not JSON'));
    if (type === 'charset.unsupported' || type === 'encoding.unsupported') return sendRejection(res, new Rejection('unsupported_media_type', 'send UTF-8 JSON'));
    next(error);
  };
  router.use(paths, onBodyError);
  return router;
}
