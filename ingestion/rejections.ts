/** Every refused or unprocessable request is answered with a machine-readable reason and kept for inspection and replay. */
import type { Request } from 'express';
import type { Db } from '../db/pool.js';
import { insertRejectedEvent } from '../db/rejections.js';
import type { Logger } from '../observability/logger.js';

export type RejectionReason =
  | 'unknown_tenant'
  | 'unknown_provider'
  | 'missing_signature'
  | 'invalid_signature'
  | 'invalid_timestamp'
  | 'stale_timestamp'
  | 'unsupported_media_type'
  | 'payload_too_large'
  | 'malformed_json'
  | 'malformed_form'
  | 'unknown_event_type'
  | 'invalid_payload'
  | 'invalid_phone_number'
  | 'invalid_call_id'
  | 'missing_token'
  | 'invalid_token'
  | 'forbidden_tenant'
  | 'not_configured'
  | 'unknown_recipient';

export const rejectionStatus: Record<RejectionReason, number> = {
  unknown_tenant: 404,
  unknown_provider: 404,
  missing_signature: 401,
  invalid_signature: 401,
  invalid_timestamp: 401,
  stale_timestamp: 401,
  unsupported_media_type: 415,
  payload_too_large: 413,
  malformed_json: 400,
  malformed_form: 400,
  unknown_event_type: 422,
  invalid_payload: 422,
  invalid_phone_number: 422,
  invalid_call_id: 400,
  missing_token: 401,
  invalid_token: 401,
  forbidden_tenant: 403,
  not_configured: 409,
  // Stored for inspection, yet answered 200: the sender did nothing wrong.
  unknown_recipient: 200,
};

export class Rejection extends Error {
  override readonly name = 'Rejection';
  constructor(
    readonly reason: RejectionReason,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
  get status(): number {
    return rejectionStatus[this.reason];
  }
}

// Credentials never go into the store; signatures do (they are needed to judge a replay).
const droppedHeaders = new Set(['authorization', 'cookie', 'proxy-authorization']);

export interface RejectionRecord {
  tenantId: string;
  source: string;
  rejection: Rejection;
  req: Request;
  rawBody: Buffer;
}

export async function storeRejection(db: Db, logger: Logger, record: RejectionRecord): Promise<void> {
  const headers = Object.fromEntries(Object.entries(record.req.headers).filter(([name]) => !droppedHeaders.has(name.toLowerCase())));
  try {
    await insertRejectedEvent(db, {
      tenantId: record.tenantId.slice(0, 100),
      source: record.source.slice(0, 100),
      reason: record.rejection.reason,
      detail: { message: record.rejection.message, details: record.rejection.details ?? null },
      httpStatus: record.rejection.status,
      method: record.req.method,
      path: record.req.originalUrl.slice(0, 2_000),
      headers,
      contentType: record.req.headers['content-type'] ?? null,
      rawBody: record.rawBody,
    });
  } catch (error) {
    logger.error({ err: error, reason: record.rejection.reason, source: record.source }, 'could not store a rejected event');
  }
}

/** zod issues as `{ "field.path": "message" }`, for the 4xx body. */
export function fieldErrors(issues: ReadonlyArray<{ path: ReadonlyArray<PropertyKey>; message: string }>): Record<string, string> {
  const errors: Record<string, string> = {};
  for (const issue of issues) {
    const field = issue.path.map(String).join('.') || '(body)';
    errors[field] ??= issue.message;
  }
  return errors;
}
