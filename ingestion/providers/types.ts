import type { IncomingHttpHeaders } from 'node:http';
import type { z } from 'zod';
import type { TenantConfig } from '../../config/schema.js';
import type { CallEvent, CallProvider } from '../../shared/calls.js';
import { normalizePhone } from '../../shared/phone.js';
import { Rejection, fieldErrors } from '../rejections.js';

export interface ProviderRequest {
  tenantId: string;
  tenant: TenantConfig;
  rawBody: Buffer;
  headers: IncomingHttpHeaders;
  /** URLs the sender may have signed (Twilio signs the full URL it called). */
  signedUrls: string[];
  nowSeconds: number;
  receivedAt: string;
}

/** What one webhook delivery means: which call, and which canonical events. */
export interface ProviderDelivery {
  providerCallId: string;
  events: CallEvent[];
}

/**
 * One file per phone system: authenticate the request, then map its payload onto the canonical
 * call events. Adding a provider means adding one of these and registering it in index.ts.
 */
export interface CallProviderAdapter {
  readonly provider: CallProvider;
  authenticate(request: ProviderRequest): void;
  parse(request: ProviderRequest): ProviderDelivery;
}

const header = (headers: IncomingHttpHeaders, name: string): string | undefined => {
  const value = headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
};
export { header };

export function contentTypeOf(request: ProviderRequest): string {
  return (header(request.headers, 'content-type') ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
}

export function readJson(request: ProviderRequest): unknown {
  const type = contentTypeOf(request);
  if (type !== '' && type !== 'application/json' && !type.endsWith('+json')) {
    throw new Rejection('unsupported_media_type', `expected application/json, got ${type}`);
  }
  try {
    return JSON.parse(request.rawBody.toString('utf8')) as unknown;
  } catch {
    throw new Rejection('malformed_json', 'the body is not valid JSON');
  }
}

/** safeParse, with the failure turned into a 422 that lists each bad field. */
export function validate<T>(schema: z.ZodType<T>, value: unknown): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new Rejection('invalid_payload', 'the payload does not match the schema', { fields: fieldErrors(parsed.error.issues) });
  return parsed.data;
}

export function phone(raw: string | undefined | null, request: ProviderRequest, field: string): string | undefined {
  const parsed = normalizePhone(raw, request.tenant.defaultRegion);
  if (!parsed.ok) throw new Rejection('invalid_phone_number', `${field} is not a phone number`, { field });
  return parsed.e164;
}

/** Unix seconds, unix milliseconds or ISO 8601 → ISO 8601 (the fallback for a time no Date can hold, as for one that does not parse). */
export function isoTime(value: number | string | undefined, fallback: string): string {
  if (value === undefined) return fallback;
  if (typeof value === 'number') {
    const date = new Date(value > 1e12 ? value : value * 1000);
    return Number.isNaN(date.getTime()) ? fallback : date.toISOString();
  }
  const parsed = Date.parse(value);
  return Number.isNaN(parsed) ? fallback : new Date(parsed).toISOString();
}
