/**
 * WhatsApp Business Cloud API: send text or template messages. The API takes no idempotency key;
 * the ledger above us provides exactly-once, and `biz_opaque_callback_data` carries our effect key
 * so status webhooks can tell which step a message was.
 */
import type { WhatsAppConfig } from '../config/schema.js';
import { OutsideSystemError } from './http.js';
import type { FailureKind } from './http.js';
import { requestJson } from './http.js';

export type OutgoingMessage =
  | { type: 'text'; text: string }
  | { type: 'template'; template: { name: string; language: string; params: string[] } };

/**
 * What a WhatsApp error code means for the message, decided once for both ways an error arrives:
 * as the answer to the send (Graph error, HTTP 4xx) or in a `failed` status webhook. Meta:
 * "Cloud API errors are returned either synchronously as a Graph API response, asynchronously via
 * Webhook, or sometimes through both methods", and handling should key on `code`, not on the HTTP
 * status or the title (developers.facebook.com, WhatsApp error codes).
 */
export type WhatsAppErrorDecision =
  /** Free text outside the 24 h customer service window: send the approved template instead. */
  | { action: 'resend_as_template'; code: number; reason: string }
  /** Per-user marketing cap: the same message may go a day later, not before. */
  | { action: 'retry_after_24h'; code: number; reason: string }
  /** Throttling: temporary; retry the same send with exponential backoff from `minDelayMs`. */
  | { action: 'retry'; code: number; reason: string; minDelayMs: number }
  /** Nothing will make this message go through; `kind` is how the failure is typed. */
  | { action: 'permanent'; code: number; reason: string; kind: Extract<FailureKind, 'rejected' | 'unauthorized'> };

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
export function whatsappRetryDelayMs(decision: Extract<WhatsAppErrorDecision, { action: 'retry' }>, attempt: number, retryAfterMs?: number): number {
  const backoff = Math.min(decision.minDelayMs * 2 ** Math.max(0, attempt - 1), 5 * minute);
  return Math.max(backoff, retryAfterMs ?? 0);
}

interface GraphError {
  error?: { code?: number; message?: string; error_subcode?: number; error_data?: { details?: string }; fbtrace_id?: string };
}

/** A send WhatsApp answered with a Graph error: its code and what the table decided for it. */
export class WhatsAppSendError extends OutsideSystemError {
  /** Meta's trace id of the refused request, for support (a refused send has no message id). */
  readonly fbtraceId?: string;
  /** The Graph error's message, which carries the code's title. */
  readonly title?: string;
  constructor(
    readonly decision: WhatsAppErrorDecision,
    message: string,
    answer: { status?: number; retryAfterMs?: number; body?: unknown; fbtraceId?: string; title?: string },
  ) {
    const kind = decision.action === 'retry' ? 'rate_limited' : decision.action === 'permanent' ? decision.kind : 'rejected';
    super('WhatsApp', kind, message, answer.status, answer.retryAfterMs, answer.body);
    if (answer.fbtraceId !== undefined) this.fbtraceId = answer.fbtraceId;
    if (answer.title !== undefined) this.title = answer.title;
  }

  /** The same refusal, to be retried after the backoff for this attempt. */
  withBackoff(attempt: number): WhatsAppSendError {
    if (this.decision.action !== 'retry') return this;
    const retryAfterMs = whatsappRetryDelayMs(this.decision, attempt, this.retryAfterMs);
    return new WhatsAppSendError(this.decision, this.message.replace(/^WhatsApp: /, ''), {
      ...(this.status !== undefined ? { status: this.status } : {}),
      retryAfterMs,
      body: this.body,
      ...(this.fbtraceId !== undefined ? { fbtraceId: this.fbtraceId } : {}),
      ...(this.title !== undefined ? { title: this.title } : {}),
    });
  }
}

/**
 * A refused send, decided by its Graph code. 5xx answers stay outages whatever their code (Graph
 * codes 1 and 2 are "possible server error" and "downtime"), and so does a 429 with a code the
 * table does not know.
 */
function failureOf(error: OutsideSystemError): OutsideSystemError {
  const graph = (error.body as GraphError | undefined)?.error;
  const code = graph?.code;
  if (typeof code !== 'number' || (error.status !== undefined && error.status >= 500)) return error;
  if (whatsappErrorTable[code] === undefined && error.retryable) return error;
  const decision = decideWhatsAppError(code, error.kind === 'unauthorized' ? 'unauthorized' : 'rejected');
  const details = graph?.error_data?.details;
  const where = error.message.replace(/^WhatsApp: /, '');
  // Meta's details name the condition, not the recipient (and activity failures scrub phone numbers anyway).
  const message = `${where} (code ${code}: ${decision.reason}${details ? `; ${details.slice(0, 200)}` : ''})`;
  return new WhatsAppSendError(decision, message, {
    ...(error.status !== undefined ? { status: error.status } : {}),
    ...(error.retryAfterMs !== undefined ? { retryAfterMs: error.retryAfterMs } : {}),
    body: error.body,
    ...(graph?.fbtrace_id ? { fbtraceId: graph.fbtrace_id } : {}),
    ...(graph?.message ? { title: graph.message } : {}),
  });
}

export interface WhatsAppAdapter {
  send(to: string, message: OutgoingMessage, callbackData: string): Promise<{ wamid: string }>;
}

export function createWhatsAppAdapter(config: WhatsAppConfig): WhatsAppAdapter {
  const url = `${config.baseUrl.replace(/\/$/, '')}/${config.apiVersion}/${config.phoneNumberId}/messages`;
  return {
    async send(to, message, callbackData) {
      const body = {
        messaging_product: 'whatsapp',
        recipient_type: 'individual',
        to: to.replace(/^\+/, ''),
        type: message.type,
        ...(message.type === 'text'
          ? { text: { body: message.text, preview_url: false } }
          : {
              template: {
                name: message.template.name,
                language: { code: message.template.language },
                ...(message.template.params.length > 0
                  ? { components: [{ type: 'body', parameters: message.template.params.map((text) => ({ type: 'text', text })) }] }
                  : {}),
              },
            }),
        biz_opaque_callback_data: callbackData,
      };
      try {
        const response = await requestJson<{ messages?: Array<{ id: string }> }>({
          system: 'WhatsApp',
          method: 'POST',
          url,
          headers: { authorization: `Bearer ${config.token}` },
          json: body,
          timeoutMs: 15_000,
        });
        const wamid = response.body?.messages?.[0]?.id;
        if (!wamid) throw new OutsideSystemError('WhatsApp', 'unavailable', 'send answered without a message id');
        return { wamid };
      } catch (error) {
        throw error instanceof OutsideSystemError ? failureOf(error) : error;
      }
    },
  };
}
