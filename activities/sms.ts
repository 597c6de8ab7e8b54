import { ApplicationFailure } from '@temporalio/activity';
import { OutsideSystemError, RequestNotSentError } from '../adapters/http.js';
import { SmsSendError } from '../adapters/sms.js';
import type { SmsAdapter } from '../adapters/sms.js';
import type { AppConfig } from '../config/load.js';
import { performOnce } from '../db/effects.js';
import { notifyInbox } from '../db/inbox.js';
import { isSuppressed, suppress } from '../db/leads.js';
import type { Db } from '../db/pool.js';
import { recordAcceptedSms, smsForEffect } from '../db/sms.js';
import { commitToInbox } from '../ingestion/intake.js';
import { leadDelivery } from '../ingestion/lead-delivery.js';
import type { LeadEvent, SkipReason } from '../shared/leads.js';
import { toActivityFailure } from './failures.js';
import { effectLeaseSeconds, whileHeartbeating } from './lease.js';

export interface SendSmsInput {
  tenantId: string;
  leadId: string;
  /** `wa:<lead>:<flow>:<step>[:<meeting>]#sms`: the WhatsApp step's key with the channel suffix; one SMS per key, ever. */
  effectKey: string;
  to: string;
  body: string;
}

export type SendSmsOutcome = { status: 'sent'; sid: string } | { status: 'skipped'; reason: string; code: SkipReason };

/** Twilio reports a queued message within seconds; wait that long before concluding a lost send never happened. */
export const smsStatusCallbackGraceSeconds = 30;

/** Where Twilio reports what becomes of a message: our status route, naming the step's key (Twilio signs the whole URL). */
export function smsStatusCallbackUrl(publicUrl: string, tenantId: string, effectKey: string): string {
  return `${publicUrl.replace(/\/$/, '')}/webhooks/${encodeURIComponent(tenantId)}/sms/status?key=${encodeURIComponent(effectKey)}`;
}

export function createSmsActivities(deps: { db: Db; config: AppConfig; sms: (tenantId: string) => SmsAdapter | undefined }) {
  /** Twilio says the recipient replied STOP to our sender (21610): the lead's workflow opts it out, like a STOP we received. */
  const reportOptOut = async (input: SendSmsInput): Promise<void> => {
    const event: LeadEvent = { eventId: `sms-unsubscribed:${input.effectKey}`, type: 'lead.opted_out', occurredAt: new Date().toISOString(), reason: 'Twilio 21610: the recipient unsubscribed (STOP)' };
    await commitToInbox(deps.db, leadDelivery(deps.config, input.tenantId, input.leadId, [event], 'sms'));
    await notifyInbox(deps.db).catch(() => undefined); // forwarders also poll
  };

  return {
    /**
     * Sends one SMS exactly once per key: suppressed numbers are never messaged; a send whose answer
     * was lost is found again through its status callback (which names the key), not sent twice.
     * A number Twilio says cannot get SMS, or that unsubscribed, is a skip with the reason.
     */
    async sendSms(input: SendSmsInput): Promise<SendSmsOutcome> {
      const sms = deps.sms(input.tenantId);
      if (!sms) return { status: 'skipped', reason: 'no Twilio account configured for SMS', code: 'no_sender' };
      if (await isSuppressed(deps.db, input.tenantId, input.to)) return { status: 'skipped', reason: 'opted out', code: 'opted_out' };
      try {
        const outcome = await whileHeartbeating(() =>
          performOnce(deps.db, {
            tenantId: input.tenantId,
            key: input.effectKey,
            kind: 'sms',
            leaseSeconds: effectLeaseSeconds(),
            lookup: () => smsForEffect(deps.db, input.tenantId, input.effectKey),
            perform: async () => {
              const { sid, status } = await sms.send(input.to, input.body, smsStatusCallbackUrl(deps.config.api.publicUrl, input.tenantId, input.effectKey));
              await recordAcceptedSms(deps.db, { tenantId: input.tenantId, sid, effectKey: input.effectKey, leadId: input.leadId, status });
              return { sid, status };
            },
            unknownOutcomeGraceSeconds: smsStatusCallbackGraceSeconds,
            // Twilio answered with a refusal (4xx), or the request never left: nothing was sent.
            definiteFailure: (error) => error instanceof RequestNotSentError || (error instanceof OutsideSystemError && error.status !== undefined && error.status < 500),
          }),
        );
        return { status: 'sent', sid: outcome.result.sid };
      } catch (error) {
        if (error instanceof SmsSendError) {
          const { refusal } = error;
          if (refusal.action === 'opted_out') {
            await suppress(deps.db, input.tenantId, input.to, 'twilio_unsubscribed');
            await reportOptOut(input);
            return { status: 'skipped', reason: `opted out: Twilio ${refusal.code} (${refusal.reason})`, code: 'opted_out' };
          }
          if (refusal.action === 'invalid_number') return { status: 'skipped', reason: `Twilio ${refusal.code}: ${refusal.reason}`, code: 'invalid_number' };
          throw ApplicationFailure.nonRetryable(`Twilio ${refusal.code}: ${refusal.reason}`, refusal.kind === 'unauthorized' ? 'Unauthorized' : 'Rejected');
        }
        return toActivityFailure(error);
      }
    },
  };
}
