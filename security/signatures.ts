/** Webhook signatures: ours (PBX, voice-AI, CRM events), Twilio's and Meta's (WhatsApp). */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { parse as parseQuerystring, stringify as stringifyQuerystring } from 'node:querystring';

export type SignatureFailure = 'missing_signature' | 'invalid_signature' | 'invalid_timestamp' | 'stale_timestamp';
export type SignatureCheck = { ok: true } | { ok: false; reason: SignatureFailure };

/** Replay protection window for X-Switchboard-Timestamp. */
export const signatureToleranceSeconds = 300;

/** Compares two secrets in constant time (for equal lengths). */
export function safeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

/** `sha256=<hex HMAC-SHA256(secret, timestamp + "." + raw body)>` */
export function switchboardSignature(secret: string, timestamp: string | number, rawBody: Buffer | string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.`).update(rawBody).digest('hex')}`;
}

export function verifySwitchboardSignature(options: {
  /** Every key that may have signed it (two while one rotates). */
  secrets: readonly string[];
  timestamp: string | undefined;
  signature: string | undefined;
  rawBody: Buffer;
  nowSeconds: number;
}): SignatureCheck {
  const { timestamp, signature } = options;
  if (!timestamp || !signature) return { ok: false, reason: 'missing_signature' };
  if (!/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: 'invalid_timestamp' };
  // Verify first, so a forged request never learns whether its timestamp was acceptable.
  if (!options.secrets.some((secret) => safeEqual(signature, switchboardSignature(secret, timestamp, options.rawBody)))) return { ok: false, reason: 'invalid_signature' };
  if (Math.abs(options.nowSeconds - Number(timestamp)) > signatureToleranceSeconds) return { ok: false, reason: 'stale_timestamp' };
  return { ok: true };
}

/** Form parameters as Twilio signs them: each name once, with all its values. */
export type TwilioParams = URLSearchParams | Record<string, string | readonly string[]>;

function groupedParams(params: TwilioParams): Map<string, string[]> {
  const grouped = new Map<string, string[]>();
  const add = (name: string, value: string): void => {
    const values = grouped.get(name);
    if (values) values.push(value);
    else grouped.set(name, [value]);
  };
  if (params instanceof URLSearchParams) for (const [name, value] of params) add(name, value);
  else for (const [name, value] of Object.entries(params)) for (const one of typeof value === 'string' ? [value] : value) add(name, one);
  return grouped;
}

/**
 * Twilio: base64(HMAC-SHA1(auth token, URL + each parameter name and value)), names sorted and a
 * repeated name's distinct values sorted, as twilio-node's getExpectedTwilioSignature and
 * toFormUrlEncodedParam build it (default string order: UTF-16 code units).
 */
export function twilioSignature(authToken: string, url: string, params: TwilioParams): string {
  const grouped = groupedParams(params);
  const data = [...grouped.keys()].sort().reduce((text, name) => {
    const values = [...new Set(grouped.get(name) ?? [])].sort();
    return values.reduce((acc, value) => acc + name + value, text);
  }, url);
  return createHmac('sha1', authToken).update(Buffer.from(data, 'utf8')).digest('base64');
}

// The URL forms twilio-node's validateRequest tries (src/webhooks/webhooks.ts), ported as written:
// Twilio signs "inconsistently" with and without the default port, and with its legacy query encoding.
function withStandardPort(url: URL): string {
  if (url.port) return url.toString();
  const port = url.protocol === 'https:' ? ':443' : ':80';
  const credentials = url.username || url.password ? `${url.username}${url.password ? `:${url.password}` : ''}@` : '';
  return `${url.protocol}//${credentials}${url.host ? url.host + port : ''}${url.pathname}${url.search}${url.hash}`;
}

function withoutPort(url: URL): string {
  const copy = new URL(url);
  copy.port = '';
  return copy.toString();
}

function withLegacyQuerystring(url: string): string {
  const parsed = new URL(url);
  if (!parsed.search) return url;
  const query = parseQuerystring(parsed.search.slice(1));
  parsed.search = '';
  return `${parsed.toString()}?${stringifyQuerystring(query)}`;
}

/** Every URL string a Twilio signature for `url` may have been computed over (no more than twilio-node accepts). */
export function twilioSignedUrlVariants(url: string): string[] {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return [];
  }
  const bare = withoutPort(parsed);
  const ported = withStandardPort(parsed);
  return [...new Set([bare, ported, withLegacyQuerystring(bare), withLegacyQuerystring(ported)])];
}

/**
 * Twilio signs the URL it was configured with; we know it as our public URL (or the one the request
 * names), each tried in every form twilio-node tries. JSON bodies signed through `bodySHA256` do not
 * reach this: status callbacks are form-encoded and the route refuses other content types first.
 */
export function verifyTwilioSignature(options: { authTokens: readonly string[]; signature: string | undefined; urls: string[]; params: TwilioParams }): SignatureCheck {
  if (!options.signature) return { ok: false, reason: 'missing_signature' };
  const signature = options.signature;
  const candidates = [...new Set(options.urls.flatMap(twilioSignedUrlVariants))];
  const matches = options.authTokens.some((authToken) => candidates.some((url) => safeEqual(signature, twilioSignature(authToken, url, options.params))));
  return matches ? { ok: true } : { ok: false, reason: 'invalid_signature' };
}

/** Meta (WhatsApp Cloud API): `sha256=<hex HMAC-SHA256(app secret, raw body)>` in X-Hub-Signature-256. */
export function metaSignature(appSecret: string, rawBody: Buffer | string): string {
  return `sha256=${createHmac('sha256', appSecret).update(rawBody).digest('hex')}`;
}

export function verifyMetaSignature(options: { appSecrets: readonly string[]; signature: string | undefined; rawBody: Buffer }): SignatureCheck {
  const signature = options.signature;
  if (!signature) return { ok: false, reason: 'missing_signature' };
  return options.appSecrets.some((appSecret) => safeEqual(signature, metaSignature(appSecret, options.rawBody))) ? { ok: true } : { ok: false, reason: 'invalid_signature' };
}

/**
 * Recording links handed to the CRM's player carry their own signature and an expiry, so the player
 * can fetch the recording without an operator token, nobody can guess another call's link, and a
 * link that leaked stops working. Signed with the tenant's `recordingLinkSecret`, never a webhook key.
 */
export function recordingLinkSignature(secret: string, tenantId: string, callId: string, expiresAt: number): string {
  return createHmac('sha256', secret).update(`recording-link:v2:${tenantId}:${callId}:${expiresAt}`).digest('hex');
}

export type RecordingLinkCheck = { ok: true } | { ok: false; reason: 'invalid_link' | 'expired_link' };

export function verifyRecordingLink(options: {
  /** Every key that may have signed it (two while one rotates). */
  secrets: readonly string[];
  tenantId: string;
  callId: string;
  expires: string | undefined;
  signature: string | undefined;
  nowSeconds: number;
}): RecordingLinkCheck {
  const { expires, signature } = options;
  if (!expires || !signature || !/^\d{1,12}$/.test(expires)) return { ok: false, reason: 'invalid_link' };
  const expiresAt = Number(expires);
  // Verify first, so a forged link never learns whether its expiry was acceptable.
  const signed = options.secrets.some((secret) => safeEqual(signature, recordingLinkSignature(secret, options.tenantId, options.callId, expiresAt)));
  if (!signed) return { ok: false, reason: 'invalid_link' };
  if (expiresAt < options.nowSeconds) return { ok: false, reason: 'expired_link' };
  return { ok: true };
}

/** `<public URL>/api/<tenant>/calls/<call id>/recording?expires=<unix seconds>&sig=<hex HMAC-SHA256>` */
export function recordingLink(publicUrl: string, secret: string, tenantId: string, callId: string, expiresAt: number): string {
  const base = publicUrl.replace(/\/$/, '');
  const signature = recordingLinkSignature(secret, tenantId, callId, expiresAt);
  return `${base}/api/${encodeURIComponent(tenantId)}/calls/${encodeURIComponent(callId)}/recording?expires=${expiresAt}&sig=${signature}`;
}
