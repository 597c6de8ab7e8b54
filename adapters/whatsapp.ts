/**
 * WhatsApp Business Cloud API: send text or template messages. The API takes no idempotency key;
 * the ledger above us provides exactly-once, and `biz_opaque_callback_data` carries our effect key
 * so status webhooks can tell which step a message was.
 */
import type { WhatsAppConfig } from '../config/schema.js';
import { OutsideSystemError, requestJson } from './http.js';

export type OutgoingMessage =
  | { type: 'text'; text: string }
  | { type: 'template'; template: { name: string; language: string; params: string[] } };

interface GraphError {
  error?: { code?: number; message?: string; error_subcode?: number };
}

/** Graph error codes that decide how a failed send is treated. */
function failureOf(error: OutsideSystemError): OutsideSystemError {
  const code = (error.body as GraphError | undefined)?.error?.code;
  const detail = `${error.message}${code ? ` (code ${code})` : ''}`;
  switch (code) {
    case 130429: // throughput limit of the business number
      return new OutsideSystemError('WhatsApp', 'rate_limited', detail, error.status, 1_000, error.body);
    case 131056: // pair rate limit: one message per recipient every few seconds
      return new OutsideSystemError('WhatsApp', 'rate_limited', detail, error.status, 6_000, error.body);
    case 190:
      return new OutsideSystemError('WhatsApp', 'unauthorized', detail, error.status, undefined, error.body);
    default:
      return new OutsideSystemError('WhatsApp', error.kind, detail, error.status, error.retryAfterMs, error.body);
  }
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
