import { ApplicationFailure, Context } from '@temporalio/activity';
import type { WhatsAppAdapter, OutgoingMessage } from '../adapters/whatsapp.js';
import { WhatsAppSendError } from '../adapters/whatsapp.js';
import { OutsideSystemError, RequestNotSentError } from '../adapters/http.js';
import type { AppConfig } from '../config/load.js';
import { performOnce } from '../db/effects.js';
import { notifyInbox } from '../db/inbox.js';
import { isSuppressed } from '../db/leads.js';
import type { Db } from '../db/pool.js';
import { messageForEffect, recordAcceptedMessage } from '../db/whatsapp.js';
import type { SkipReason } from '../shared/leads.js';
import { templateMessageProblem, templateMismatchFailureType } from '../shared/templates.js';
import { commitToInbox } from '../ingestion/intake.js';
import { leadDelivery } from '../ingestion/lead-delivery.js';
import { whatsappFailedEvent } from '../ingestion/providers/whatsapp-webhook.js';
import { callOutside } from './failures.js';
import { effectLeaseSeconds, whileHeartbeating } from './lease.js';

export interface SendWhatsAppInput {
  tenantId: string;
  leadId: string;
  /** `wa:<lead>:<flow>:<step>[:<meeting>]`: one message per key, ever. */
  effectKey: string;
  to: string;
  message: OutgoingMessage;
  /** The language the message is in (a template's is also in the message), for the ledger; absent from sends planned before it. */
  language?: string;
  /** The name of the number to send from (shared/senders.ts); absent from sends planned before senders: the default. */
  sender?: string;
}

/** A skip names its reason as text (the timeline's cause) and as a code (`detail.reason`; absent from results recorded before it). */
/** `sender`: the number it went from (absent from results recorded before senders). */
export type SendWhatsAppOutcome = { status: 'sent'; wamid: string; kind: 'text' | 'template'; sender?: string } | { status: 'skipped'; reason: string; code?: SkipReason };

/** WhatsApp reports an accepted message within seconds; wait that long before concluding a lost send never happened. */
export const statusWebhookGraceSeconds = 30;

/** This attempt's number and when Temporal scheduled it (its clock, which tests may skip ahead); outside a worker, 1 and now. */
function attemptInfo(): { attempt: number; scheduledAtMs: number } {
  try {
    const { info } = Context.current();
    return { attempt: info.attempt, scheduledAtMs: info.currentAttemptScheduledTimestampMs };
  } catch {
    return { attempt: 1, scheduledAtMs: Date.now() };
  }
}

export function createMessagingActivities(deps: { db: Db; config: AppConfig; whatsapp: (tenantId: string, sender?: string) => WhatsAppAdapter | undefined }) {
  /**
   * A refusal of the message itself goes to the lead's workflow as the event a `failed` status
   * webhook makes (same id, so a refusal reported both ways counts once), through the inbox like
   * every webhook event: the workflow decides per code there (131047: the template instead;
   * 131049: again in 24 h). Throttling is retried here instead, and a bad token is no news about the lead.
   */
  const reportRefusal = async (input: SendWhatsAppInput, error: WhatsAppSendError, occurredAtMs: number): Promise<void> => {
    if (error.decision.action === 'retry' || error.kind === 'unauthorized') return;
    const event = whatsappFailedEvent({
      effectKey: input.effectKey,
      messageId: `refused:${error.fbtraceId ?? 'no-trace-id'}`,
      errorCode: error.decision.code,
      errorTitle: error.title ?? error.decision.reason,
      occurredAt: new Date(occurredAtMs).toISOString(),
    });
    const delivery = leadDelivery(deps.config, input.tenantId, input.leadId, [event], 'whatsapp');
    await commitToInbox(deps.db, delivery);
    await notifyInbox(deps.db).catch(() => undefined); // forwarders also poll
  };

  return {
    /**
     * Sends one lead message exactly once per key: suppressed numbers are never messaged; a send
     * whose answer was lost is found again through its status webhook, not sent twice. A refused
     * send is decided by its error code (shared/whatsapp-errors.ts), like a failure reported by webhook.
     */
    async sendWhatsApp(input: SendWhatsAppInput): Promise<SendWhatsAppOutcome> {
      const whatsapp = deps.whatsapp(input.tenantId, input.sender);
      if (!whatsapp) return { status: 'skipped', reason: 'no WhatsApp number configured', code: 'no_sender' };
      if (input.message.type === 'template') {
        // Checked against the tenant's registration as it is now (the workflow plans with the policy
        // it started with): a language Meta does not have would be refused with 132001, a parameter
        // count other than the placeholders with 132000. Retrying cannot fix configuration, so the
        // step fails for good, before anything is claimed or sent.
        const registered = Object.values(deps.config.tenants[input.tenantId]?.leads.messages ?? {}).map((flow) => flow.template);
        const problem = templateMessageProblem(registered, input.message.template);
        if (problem) {
          throw ApplicationFailure.create({ message: `not sent: ${problem}`, type: templateMismatchFailureType, nonRetryable: true, details: [{ template: input.message.template.name, language: input.message.template.language }] });
        }
      }
      if (await isSuppressed(deps.db, input.tenantId, input.to)) return { status: 'skipped', reason: 'opted out', code: 'opted_out' };
      const { attempt, scheduledAtMs } = attemptInfo();
      const outcome = await whileHeartbeating(() => callOutside(async () => {
        try {
          return await performOnce(deps.db, {
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
                sender: whatsapp.sender,
                ...(input.message.type === 'template' ? { templateName: input.message.template.name } : {}),
                ...(input.message.type === 'template' ? { language: input.message.template.language } : input.language !== undefined ? { language: input.language } : {}),
              });
              return { wamid, kind: input.message.type, sender: whatsapp.sender };
            },
            unknownOutcomeGraceSeconds: statusWebhookGraceSeconds,
            // WhatsApp answered with a refusal (4xx), or the request never left: nothing was sent.
            definiteFailure: (error) => error instanceof RequestNotSentError || (error instanceof OutsideSystemError && error.status !== undefined && error.status < 500),
          });
        } catch (error) {
          if (!(error instanceof WhatsAppSendError)) throw error;
          await reportRefusal(input, error, scheduledAtMs);
          throw error.withBackoff(attempt);
        }
      }));
      // A send found again through its status webhook knows no sender: the one asked for.
      return { status: 'sent', wamid: outcome.result.wamid, kind: outcome.result.kind === 'text' ? 'text' : 'template', sender: outcome.result.sender ?? whatsapp.sender };
    },
  };
}
