import { createHash } from 'node:crypto';
import type { Mailer } from '../adapters/mailer.js';
import { postToSlack } from '../adapters/slack.js';
import type { EmailConfig, SlackConfig } from '../config/schema.js';
import { performOnce } from '../db/effects.js';
import type { Db } from '../db/pool.js';
import type { EmailTemplate, SlackTrigger } from '../shared/call-outcomes.js';
import { callOutside } from './failures.js';
import { effectLeaseSeconds, whileHeartbeating } from './lease.js';

export interface SlackAlertInput {
  tenantId: string;
  callId: string;
  trigger: SlackTrigger;
  customerLabel: string;
  summary?: string;
  outcome?: string;
}

export interface FollowUpEmailInput {
  tenantId: string;
  callId: string;
  template: EmailTemplate;
  to?: string;
  customerName?: string;
  summary?: string;
}

export type NotificationOutcome = { state: 'done' } | { state: 'skipped'; reason: string };

export interface NotificationDeps {
  db: Db;
  slack: (tenantId: string) => SlackConfig | undefined;
  email: (tenantId: string) => { config: EmailConfig; mailer: Mailer } | undefined;
  displayName: (tenantId: string) => string;
}

const webhookFor: Record<SlackTrigger, keyof SlackConfig> = {
  transfer_requested: 'supportWebhookUrl',
  low_satisfaction: 'alertsWebhookUrl',
  vip: 'vipWebhookUrl',
};

export function slackText(input: SlackAlertInput): string {
  switch (input.trigger) {
    case 'transfer_requested':
      return `#support - Transfer requested by ${input.customerLabel} (call ${input.callId})`;
    case 'low_satisfaction':
      return `#alerts - Unhappy customer: ${input.summary ?? 'no summary'} (${input.customerLabel}, call ${input.callId})`;
    case 'vip':
      return `#vip - VIP call completed: ${input.outcome ?? 'outcome unknown'} (${input.customerLabel}, call ${input.callId})`;
  }
}

export function followUpEmail(input: FollowUpEmailInput, company: string, resourcesUrl: string): { subject: string; text: string } {
  const greeting = `Hello${input.customerName ? ` ${input.customerName}` : ''},`;
  switch (input.template) {
    case 'thank_you':
      return {
        subject: `Thank you for calling ${company}`,
        text: `${greeting}\n\nThank you for your call today. We are glad we could help.\n\n— ${company}`,
      };
    case 'apology_escalation':
      return {
        subject: `We're sorry about your call with ${company}`,
        text: `${greeting}\n\nWe're sorry your call did not go as it should have. A senior team member has been asked to follow up with you personally.${input.summary ? `\n\nWhat we understood: ${input.summary}` : ''}\n\n— ${company}`,
      };
    case 'additional_resources':
      return {
        subject: `More help with your question — ${company}`,
        text: `${greeting}\n\nWe could not fully resolve your question on the call. These resources may help while we follow up: ${resourcesUrl}\n\n— ${company}`,
      };
  }
}

export function createNotificationActivities(deps: NotificationDeps) {
  return {
    /**
     * Posts one alert per call and trigger. Slack's webhooks cannot be queried, so an attempt
     * whose outcome was lost is sent again: at least once, never twice otherwise.
     */
    async sendSlackAlert(input: SlackAlertInput): Promise<NotificationOutcome> {
      const url = deps.slack(input.tenantId)?.[webhookFor[input.trigger]];
      if (!url) return { state: 'skipped', reason: 'no_webhook_configured' };
      await whileHeartbeating(() => callOutside(() =>
        performOnce(deps.db, {
          tenantId: input.tenantId,
          key: `slack:${input.callId}:${input.trigger}`,
          kind: 'slack_alert',
          leaseSeconds: effectLeaseSeconds(),
          perform: async () => {
            await postToSlack(url, { text: slackText(input) });
            return { posted: true };
          },
        }),
      ));
      return { state: 'done' };
    },

    /** One follow-up e-mail per call, chosen by outcome. */
    async sendFollowUpEmail(input: FollowUpEmailInput): Promise<NotificationOutcome> {
      const email = deps.email(input.tenantId);
      if (!email) return { state: 'skipped', reason: 'no_email_configured' };
      if (!input.to) return { state: 'skipped', reason: 'no_email_address' };
      const to = input.to;
      const company = deps.displayName(input.tenantId);
      const { subject, text } = followUpEmail(input, company, email.config.resourcesUrl);
      const messageId = `<${createHash('sha256').update(`${input.tenantId}:${input.callId}`).digest('hex').slice(0, 24)}@switchboard>`;
      await whileHeartbeating(() => callOutside(() =>
        performOnce(deps.db, {
          tenantId: input.tenantId,
          key: `email:${input.callId}`,
          kind: 'follow_up_email',
          leaseSeconds: effectLeaseSeconds(),
          perform: () =>
            email.mailer.send({
              messageId,
              to,
              ...(input.template === 'apology_escalation' && email.config.escalationTo ? { cc: email.config.escalationTo } : {}),
              subject,
              text,
            }),
        }),
      ));
      return { state: 'done' };
    },
  };
}
