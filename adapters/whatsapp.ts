/**
 * WhatsApp Business Cloud API: send text or template messages. The API takes no idempotency key;
 * the ledger above us provides exactly-once, and `biz_opaque_callback_data` carries our effect key
 * so status webhooks can tell which step a message was.
 */
import type { WhatsAppConfig } from '../config/schema.js';
import { senderNumbers } from '../config/senders.js';
import type { SenderNumber } from '../config/senders.js';
import type { Db } from '../db/pool.js';
import { decideWhatsAppError, whatsappErrorTable, whatsappRetryDelayMs } from '../shared/whatsapp-errors.js';
import type { WhatsAppErrorDecision } from '../shared/whatsapp-errors.js';
import { OutsideSystemError } from './http.js';
import { requestJson } from './http.js';
import { RateBucket, RequestGate, slotsFrom } from './request-gate.js';

// The error table lives in shared/ (the lead workflow decides webhook failures by it too); kept
// reachable from here for callers of the adapter.
export { decideWhatsAppError, whatsappErrorTable, whatsappRetryDelayMs } from '../shared/whatsapp-errors.js';
export type { WhatsAppErrorDecision } from '../shared/whatsapp-errors.js';

export type OutgoingMessage =
  | { type: 'text'; text: string }
  | { type: 'template'; template: { name: string; language: string; params: string[] } };

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
  /** The name of the number it sends from (config/senders.ts). */
  readonly sender: string;
  send(to: string, message: OutgoingMessage, callbackData: string): Promise<{ wamid: string }>;
}

function defaultNumberOf(config: WhatsAppConfig): SenderNumber {
  const [main] = senderNumbers(config);
  if (!main) throw new Error('a WhatsApp account has at least its default number');
  return main;
}

export interface WhatsAppDeps {
  /** PostgreSQL: the number's throughput budget, shared by every worker. Without it (a test driving the adapter alone) it is this process's own. */
  db?: Db;
}

/** An adapter for one number of the account (`number`; default: the main one, `phoneNumberId`). */
export function createWhatsAppAdapter(config: WhatsAppConfig, deps: WhatsAppDeps = {}, number: SenderNumber = defaultNumberOf(config)): WhatsAppAdapter {
  const base = config.baseUrl.replace(/\/$/, '');
  const url = `${base}/${config.apiVersion}/${encodeURIComponent(number.phoneNumberId)}/messages`;
  // Throughput is the number's (130429 past it), whichever tenant, worker or task queue sends.
  // Slots spaced 1/rate apart let rate + 1 into a rolling second: pace one below the limit.
  const perSecond = number.messagesPerSecond - 1;
  const gate = new RequestGate('WhatsApp', slotsFrom(deps.db, [new RateBucket(`whatsapp:${base}/${number.phoneNumberId}`, perSecond)]), perSecond);
  return {
    sender: number.name,
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
        await gate.take();
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
