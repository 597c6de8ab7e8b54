/**
 * Every refused or unprocessable request is answered with a machine-readable reason. A configured
 * tenant's are kept for inspection and replay (within its storage bounds); a request for any other
 * tenant is counted and at most sampled, since anyone can send it.
 */
import type { Request } from 'express';
import type { AppConfig } from '../config/load.js';
import type { Db } from '../db/pool.js';
import { insertRejectedEvent } from '../db/rejections.js';
import { hasNul } from '../shared/storable.js';
import type { Logger } from '../observability/logger.js';
import { trimTenantRejections } from './storage-bounds.js';
import type { StorageObserver } from './storage-bounds.js';

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
  | 'insufficient_role'
  | 'too_many_attempts'
  | 'invalid_link'
  | 'expired_link'
  | 'not_configured'
  | 'forbidden_origin'
  | 'unknown_namespace'
  | 'undecodable_payload'
  | 'unknown_recipient'
  | 'unknown_phone_number_id';

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
  // An operator whose role is below what the route needs (viewer < operator < admin).
  insufficient_role: 403,
  // Sign-in attempts past the limit per tenant and address (api/auth.ts).
  too_many_attempts: 429,
  // Signed recording links (the CRM player's): a forged or altered one, and one past its expiry.
  invalid_link: 401,
  expired_link: 403,
  not_configured: 409,
  // The codec server (/codec): a browser origin not allowed, another namespace, a payload it cannot decrypt.
  forbidden_origin: 403,
  unknown_namespace: 400,
  undecodable_payload: 422,
  // Stored for inspection, yet answered 200: the sender did nothing wrong.
  unknown_recipient: 200,
  // A WhatsApp webhook for a business number the tenant does not own (kept, so it can be replayed once the number is configured).
  unknown_phone_number_id: 403,
};

/** A string with U+0000 anywhere: PostgreSQL could store neither the event nor its journal rows. */
export function refuseUnstorable(value: unknown): void {
  if (hasNul(value)) throw new Rejection('invalid_payload', 'strings must not contain U+0000', { fields: { '(body)': 'must not contain U+0000' } });
}

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
// A sample (unknown tenant) is never replayed, so it keeps only what helps tell what is sending it.
const sampleHeaders = new Set(['content-type', 'content-length', 'user-agent']);

export interface RejectionRecord {
  tenantId: string;
  source: string;
  rejection: Rejection;
  req: Request;
  rawBody: Buffer;
}

export interface RejectionStore {
  /**
   * Keeps a refusal: in full for a configured tenant (its oldest past its quota are then dropped),
   * as a counted, truncated sample (at most `samplesPerMinute` per process) for any other.
   * Never throws: a refusal that cannot be stored is logged.
   */
  store(record: RejectionRecord): Promise<void>;
}

export interface RejectionStoreDeps {
  config: Pick<AppConfig, 'tenants' | 'storage'>;
  db: Db;
  logger: Logger;
  observer?: StorageObserver;
  /** A tenant's quota is re-applied at most this often after its refusals are stored (default 1 s). */
  trimIntervalMs?: number;
}

export function createRejectionStore(deps: RejectionStoreDeps): RejectionStore {
  const { db, logger, config } = deps;
  const trimIntervalMs = deps.trimIntervalMs ?? 1_000;
  const unknown = config.storage.unknownTenants;
  let sampleWindowStart = Number.NEGATIVE_INFINITY;
  let samplesInWindow = 0;

  // The quota is applied after the answer, never on its path: tenants with new refusals are marked,
  // and one trim pass per interval deletes what is past their quotas, so a flood overshoots a quota
  // by at most one interval's refusals.
  const untrimmed = new Set<string>();
  let trimTimer: NodeJS.Timeout | undefined;
  let lastTrimAt = 0;
  const scheduleTrim = (tenantId: string): void => {
    untrimmed.add(tenantId);
    if (trimTimer) return;
    trimTimer = setTimeout(() => void trimPass(), Math.max(0, lastTrimAt + trimIntervalMs - Date.now()));
    trimTimer.unref();
  };
  const trimPass = async (): Promise<void> => {
    const tenants = [...untrimmed];
    untrimmed.clear();
    for (const tenantId of tenants) {
      try {
        await trimTenantRejections(deps, tenantId);
      } catch (error) {
        logger.warn({ err: error, tenantId }, 'could not apply the refusal quota; the next cleanup will');
      }
    }
    lastTrimAt = Date.now();
    trimTimer = undefined;
    const next = untrimmed.values().next();
    if (!next.done) scheduleTrim(next.value);
  };

  // A minute starts with its first sample: the first `samplesPerMinute` of a burst are kept, whenever it comes.
  const takeSample = (): boolean => {
    const now = Date.now();
    if (now - sampleWindowStart >= 60_000) {
      sampleWindowStart = now;
      samplesInWindow = 0;
    }
    if (samplesInWindow >= unknown.samplesPerMinute) return false;
    samplesInWindow++;
    return true;
  };

  return {
    async store(record) {
      const { req, rejection } = record;
      const known = Object.hasOwn(config.tenants, record.tenantId);
      const sampled = !known;
      if (sampled) {
        const kept = takeSample();
        deps.observer?.unknownTenant(record.source, kept);
        if (!kept) return;
      }
      const headers = Object.fromEntries(Object.entries(req.headers).filter(([name]) => (sampled ? sampleHeaders.has(name.toLowerCase()) : !droppedHeaders.has(name.toLowerCase()))));
      try {
        await insertRejectedEvent(db, {
          tenantId: record.tenantId.slice(0, sampled ? 64 : 100),
          source: record.source.slice(0, 100),
          reason: rejection.reason,
          detail: { message: rejection.message, details: rejection.details ?? null },
          httpStatus: rejection.status,
          method: req.method,
          // A sample's query string is not kept: whatever a stranger put there is not ours to keep.
          path: (sampled ? req.path : req.originalUrl).slice(0, 2_000),
          headers,
          contentType: req.headers['content-type']?.slice(0, 200) ?? null,
          rawBody: sampled ? record.rawBody.subarray(0, unknown.sampleBodyBytes) : record.rawBody,
          bodyBytes: record.rawBody.length,
          sampled,
        });
        if (known) scheduleTrim(record.tenantId);
      } catch (error) {
        logger.error({ err: error, reason: rejection.reason, source: record.source }, 'could not store a rejected event');
      }
    },
  };
}

/**
 * zod issues as `{ "field.path": "message" }`, for the 4xx body. A strict object's unknown keys
 * (one zod issue for them all) are named one by one, each as the field it is.
 */
export function fieldErrors(issues: ReadonlyArray<{ path: ReadonlyArray<PropertyKey>; message: string; code?: string; keys?: readonly string[] }>): Record<string, string> {
  const errors: Record<string, string> = {};
  const name = (path: ReadonlyArray<PropertyKey>): string => path.map(String).join('.') || '(body)';
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys' && issue.keys && issue.keys.length > 0) {
      for (const key of issue.keys) errors[name([...issue.path, key])] ??= 'unknown field';
      continue;
    }
    errors[name(issue.path)] ??= issue.message;
  }
  return errors;
}

/** Field errors as one line for a message: `step: …; bogus: unknown field`. */
export function describeFieldErrors(fields: Record<string, string>): string {
  return Object.entries(fields)
    .map(([field, message]) => `${field}: ${message}`)
    .join('; ');
}

/** The 422 for input that failed its schema: `not <what>: <field>: <problem>; …`, with the fields. */
export function invalidPayload(what: string, fields: Record<string, string>): Rejection {
  return new Rejection('invalid_payload', `not ${what}: ${describeFieldErrors(fields)}`, { fields });
}
