import type { WhatsAppAdapter, OutgoingMessage } from '../adapters/whatsapp.js';
import { OutsideSystemError } from '../adapters/http.js';
import { performOnce } from '../db/effects.js';
import { isSuppressed } from '../db/leads.js';
import type { Db } from '../db/pool.js';
import { messageForEffect, recordAcceptedMessage } from '../db/whatsapp.js';
import { callOutside } from './failures.js';
import { effectLeaseSeconds } from './lease.js';

export interface SendWhatsAppInput {
  tenantId: string;
  leadId: string;
  /** `wa:<lead>:<flow>:<step>[:<meeting>]`: one message per key, ever. */
  effectKey: string;
  to: string;
  message: OutgoingMessage;
}

export type SendWhatsAppOutcome = { status: 'sent'; wamid: string; kind: 'text' | 'template' } | { status: 'skipped'; reason: string };

/** WhatsApp reports an accepted message within seconds; wait that long before concluding a lost send never happened. */
export const statusWebhookGraceSeconds = 30;

export function createMessagingActivities(deps: { db: Db; whatsapp: (tenantId: string) => WhatsAppAdapter | undefined }) {
  return {
    /**
     * Sends one lead message exactly once per key: suppressed numbers are never messaged; a send
     * whose answer was lost is found again through its status webhook, not sent twice.
     */
    async sendWhatsApp(input: SendWhatsAppInput): Promise<SendWhatsAppOutcome> {
      const whatsapp = deps.whatsapp(input.tenantId);
      if (!whatsapp) return { status: 'skipped', reason: 'no WhatsApp number configured' };
      if (await isSuppressed(deps.db, input.tenantId, input.to)) return { status: 'skipped', reason: 'opted out' };
      const outcome = await callOutside(() =>
        performOnce(deps.db, {
          tenantId: input.tenantId,
          key: input.effectKey,
          kind: 'whatsapp',
          leaseSeconds: effectLeaseSeconds(),
          lookup: () => messageForEffect(deps.db, input.tenantId, input.effectKey),
          perform: async () => {
            const { wamid } = await whatsapp.send(input.to, input.message, input.effectKey);
            await recordAcceptedMessage(deps.db, {
              tenantId: input.tenantId,
              wamid,
              effectKey: input.effectKey,
              leadId: input.leadId,
              kind: input.message.type,
              ...(input.message.type === 'template' ? { templateName: input.message.template.name } : {}),
            });
            return { wamid, kind: input.message.type };
          },
          unknownOutcomeGraceSeconds: statusWebhookGraceSeconds,
          // WhatsApp answered with a refusal (4xx): nothing was sent.
          definiteFailure: (error) => error instanceof OutsideSystemError && error.status !== undefined && error.status < 500,
        }),
      );
      return { status: 'sent', wamid: outcome.result.wamid, kind: outcome.result.kind === 'text' ? 'text' : 'template' };
    },
  };
}
