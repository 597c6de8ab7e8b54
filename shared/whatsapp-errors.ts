/**
 * What a WhatsApp error code means for the message, decided once for both ways an error arrives:
 * as the answer to the send (Graph error, HTTP 4xx) or in a `failed` status webhook. Meta:
 * "Cloud API errors are returned either synchronously as a Graph API response, asynchronously via
 * Webhook, or sometimes through both methods", and handling should key on `code`, not on the HTTP
 * status or the title (developers.facebook.com, WhatsApp error codes).
 *
 * Pure (no Node built-ins, no I/O): the send adapter, the webhook ingestion and the lead workflow
 * all decide by this one table.
 */

export type WhatsAppErrorDecision =
  /** Free text outside the 24 h customer service window: send the approved template instead. */
  | { action: 'resend_as_template'; code: number; reason: string }
  /** Per-user marketing cap: the same message may go a day later, not before. */
  | { action: 'retry_after_24h'; code: number; reason: string }
  /** Throttling: temporary; retry the same send with exponential backoff from `minDelayMs`. */
  | { action: 'retry'; code: number; reason: string; minDelayMs: number }
  /** Nothing will make this message go through; `kind` is how the failure is typed. */
  | { action: 'permanent'; code: number; reason: string; kind: 'rejected' | 'unauthorized' };

export type WhatsAppRetryDecision = Extract<WhatsAppErrorDecision, { action: 'retry' }>;

type Decided = { action: 'resend_as_template' | 'retry_after_24h'; reason: string } | { action: 'retry'; reason: string; minDelayMs: number } | { action: 'permanent'; reason: string; kind: 'rejected' | 'unauthorized' };

const second = 1_000;
const minute = 60 * second;

/**
 * The table. The backoff floors are ours (Meta names no wait): the throughput limit is per second,
 * the pair limit about one message per 6 s, and the app, account and spam limits are long windows.
 */
export const whatsappErrorTable: Readonly<Record<number, Decided>> = {
  131047: { action: 'resend_as_template', reason: 're-engagement: more than 24 h since the customer last wrote' },
  131049: { action: 'retry_after_24h', reason: 'per-user marketing limit: not delivered to keep ecosystem engagement healthy' },
  130429: { action: 'retry', reason: 'throughput limit of the business number', minDelayMs: second },
  131056: { action: 'retry', reason: '(business, consumer) pair rate limit', minDelayMs: 6 * second },
  131048: { action: 'retry', reason: 'spam rate limit of the business number', minDelayMs: minute },
  4: { action: 'retry', reason: 'app API call limit', minDelayMs: minute },
  80007: { action: 'retry', reason: 'WhatsApp Business Account rate limit', minDelayMs: minute },
  131026: { action: 'permanent', reason: 'undeliverable: the recipient cannot receive this message', kind: 'rejected' },
  190: { action: 'permanent', reason: 'access token invalid or expired', kind: 'unauthorized' },
};

/** The decision for a code; any code not in the table fails that message for good, naming the code. */
export function decideWhatsAppError(code: number, unknownKind: 'rejected' | 'unauthorized' = 'rejected'): WhatsAppErrorDecision {
  const decided = whatsappErrorTable[code];
  return decided ? { ...decided, code } : { action: 'permanent', code, reason: `WhatsApp error ${code}`, kind: unknownKind };
}

/** The first retry waits the floor, each further one twice as long, at most 5 minutes (the workflows' own cap). */
export function whatsappRetryDelayMs(decision: WhatsAppRetryDecision, attempt: number, retryAfterMs?: number): number {
  const backoff = Math.min(decision.minDelayMs * 2 ** Math.max(0, attempt - 1), 5 * minute);
  return Math.max(backoff, retryAfterMs ?? 0);
}
