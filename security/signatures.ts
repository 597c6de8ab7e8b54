/** Webhook signatures: ours (PBX, voice-AI, CRM events), Twilio's and Meta's (WhatsApp). */
import { createHmac, timingSafeEqual } from 'node:crypto';

export type SignatureFailure = 'missing_signature' | 'invalid_signature' | 'invalid_timestamp' | 'stale_timestamp';
export type SignatureCheck = { ok: true } | { ok: false; reason: SignatureFailure };

/** Replay protection window for X-Switchboard-Timestamp. */
export const signatureToleranceSeconds = 300;

function safeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

/** `sha256=<hex HMAC-SHA256(secret, timestamp + "." + raw body)>` */
export function switchboardSignature(secret: string, timestamp: string | number, rawBody: Buffer | string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.`).update(rawBody).digest('hex')}`;
}

export function verifySwitchboardSignature(options: {
  secret: string;
  timestamp: string | undefined;
  signature: string | undefined;
  rawBody: Buffer;
  nowSeconds: number;
}): SignatureCheck {
  const { timestamp, signature } = options;
  if (!timestamp || !signature) return { ok: false, reason: 'missing_signature' };
  if (!/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: 'invalid_timestamp' };
  // Verify first, so a forged request never learns whether its timestamp was acceptable.
  if (!safeEqual(signature, switchboardSignature(options.secret, timestamp, options.rawBody))) return { ok: false, reason: 'invalid_signature' };
  if (Math.abs(options.nowSeconds - Number(timestamp)) > signatureToleranceSeconds) return { ok: false, reason: 'stale_timestamp' };
  return { ok: true };
}

/** Twilio: base64(HMAC-SHA1(auth token, full URL + each POST parameter's name and value, sorted by name)). */
export function twilioSignature(authToken: string, url: string, params: URLSearchParams | Record<string, string>): string {
  const entries = params instanceof URLSearchParams ? [...params.entries()] : Object.entries(params);
  const data = entries
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .reduce((text, [name, value]) => text + name + value, url);
  return createHmac('sha1', authToken).update(Buffer.from(data, 'utf8')).digest('base64');
}

/** Twilio signs the URL it was configured with; behind proxies that may differ in port, so try each candidate. */
export function verifyTwilioSignature(options: { authToken: string; signature: string | undefined; urls: string[]; params: URLSearchParams }): SignatureCheck {
  if (!options.signature) return { ok: false, reason: 'missing_signature' };
  const signature = options.signature;
  const matches = options.urls.some((url) => safeEqual(signature, twilioSignature(options.authToken, url, options.params)));
  return matches ? { ok: true } : { ok: false, reason: 'invalid_signature' };
}

/** Meta (WhatsApp Cloud API): `sha256=<hex HMAC-SHA256(app secret, raw body)>` in X-Hub-Signature-256. */
export function metaSignature(appSecret: string, rawBody: Buffer | string): string {
  return `sha256=${createHmac('sha256', appSecret).update(rawBody).digest('hex')}`;
}

export function verifyMetaSignature(options: { appSecret: string; signature: string | undefined; rawBody: Buffer }): SignatureCheck {
  if (!options.signature) return { ok: false, reason: 'missing_signature' };
  return safeEqual(options.signature, metaSignature(options.appSecret, options.rawBody)) ? { ok: true } : { ok: false, reason: 'invalid_signature' };
}

/**
 * Recording links handed to the CRM's player carry their own signature, so the player can fetch
 * the recording without an operator token, and nobody can guess another call's link.
 */
export function recordingLinkSignature(secret: string, tenantId: string, callId: string): string {
  return createHmac('sha256', secret).update(`recording:${tenantId}:${callId}`).digest('hex').slice(0, 32);
}

export function verifyRecordingLinkSignature(secret: string, tenantId: string, callId: string, signature: string | undefined): boolean {
  return signature !== undefined && safeEqual(signature, recordingLinkSignature(secret, tenantId, callId));
}

export function recordingLink(publicUrl: string, secret: string, tenantId: string, callId: string): string {
  const base = publicUrl.replace(/\/$/, '');
  return `${base}/api/${tenantId}/calls/${encodeURIComponent(callId)}/recording?sig=${recordingLinkSignature(secret, tenantId, callId)}`;
}
