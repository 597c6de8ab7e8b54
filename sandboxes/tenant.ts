/**
 * Sandboxes listening at the URLs a tenant's configuration names for its outside systems, so the
 * product talks to them exactly as it would to the real ones. Only URLs on this machine get one.
 * Used by the demo (`npm start`) and by the benchmark.
 */
import type { TenantConfig } from '../config/schema.js';
import { currentSecret } from '../security/secrets.js';
import { startHubspotSandbox } from './hubspot.js';
import type { HubspotSandbox } from './hubspot.js';
import { startKommoSandbox } from './kommo.js';
import type { KommoSandbox } from './kommo.js';
import { startSlackSandbox } from './slack.js';
import { startSmtpSandbox } from './smtp.js';
import { startTicketingSandbox } from './ticketing.js';
import type { TicketingSandbox } from './ticketing.js';
import { startTwilioMessagingSandbox } from './twilio-messaging.js';
import type { TwilioMessagingSandbox } from './twilio-messaging.js';
import { startWhatsAppSandbox } from './whatsapp.js';
import type { WhatsAppSandbox } from './whatsapp.js';
import { templateVersions } from '../shared/templates.js';

export interface TenantSandboxOptions {
  /** Where the WhatsApp sandbox posts its webhooks: the API's base URL. */
  apiUrl: string;
  /** Lift the sandboxes' own rate limits (ticketing, Slack, WhatsApp): a benchmark measures us, not them. Kommo keeps its limit. */
  unlimited?: boolean;
  /** Inspection port of the SMTP sandbox (default: any free port). */
  smtpInspectionPort?: number;
  /** Let the WhatsApp sandbox mark delivered messages read, as a person would. */
  autoRead?: boolean;
}

export interface TenantSandboxes {
  kommo?: KommoSandbox;
  hubspot?: HubspotSandbox;
  ticketing?: TicketingSandbox;
  whatsapp?: WhatsAppSandbox;
  twilio?: TwilioMessagingSandbox;
  urls: Record<string, string>;
  stop(): Promise<void>;
}

const httpOf = (url: string): URL => new URL(url.replace(/^smtps?:/, 'http:'));
const portOf = (url: string): number => Number(httpOf(url).port || (url.startsWith('https') ? 443 : 80));
const isLocal = (url: string): boolean => ['127.0.0.1', 'localhost'].includes(httpOf(url).hostname);

export async function startTenantSandboxes(tenantId: string, tenant: TenantConfig, options: TenantSandboxOptions): Promise<TenantSandboxes> {
  const unlimited = options.unlimited ?? false;
  const stops: Array<() => Promise<void>> = [];
  const urls: Record<string, string> = {};
  const sandboxes: Omit<TenantSandboxes, 'urls' | 'stop'> = {};

  if (tenant.crm?.kind === 'kommo' && isLocal(tenant.crm.baseUrl)) {
    const kommo = await startKommoSandbox({ port: portOf(tenant.crm.baseUrl), token: tenant.crm.token });
    stops.push(() => kommo.stop());
    urls.kommo = kommo.url;
    sandboxes.kommo = kommo;
  }
  if (tenant.crm?.kind === 'hubspot' && isLocal(tenant.crm.baseUrl)) {
    const hubspot = await startHubspotSandbox({ port: portOf(tenant.crm.baseUrl), token: tenant.crm.token, customProperties: { calls: [tenant.crm.callIdProperty] } });
    stops.push(() => hubspot.stop());
    urls.hubspot = hubspot.url;
    sandboxes.hubspot = hubspot;
  }
  if (tenant.ticketing && isLocal(tenant.ticketing.baseUrl)) {
    const ticketing = await startTicketingSandbox({ port: portOf(tenant.ticketing.baseUrl), token: tenant.ticketing.token, ...(unlimited ? { rateLimit: 1_000_000 } : {}) });
    stops.push(() => ticketing.stop());
    urls.ticketing = ticketing.url;
    sandboxes.ticketing = ticketing;
  }
  const slackUrls = Object.values(tenant.slack ?? {}).filter((url): url is string => typeof url === 'string' && isLocal(url));
  const [firstSlack] = slackUrls;
  if (firstSlack) {
    const slack = await startSlackSandbox({ port: portOf(firstSlack), webhooks: slackUrls.map((url) => new URL(url).pathname), ...(unlimited ? { burst: 1_000_000, perSecond: 1_000_000 } : {}) });
    stops.push(() => slack.stop());
    urls.slack = slack.url;
  }
  if (tenant.email && isLocal(tenant.email.smtpUrl)) {
    const smtp = await startSmtpSandbox({ smtpPort: portOf(tenant.email.smtpUrl), ...(options.smtpInspectionPort !== undefined ? { httpPort: options.smtpInspectionPort } : {}) });
    stops.push(() => smtp.stop());
    urls.smtp = smtp.url;
  }
  if (tenant.whatsapp && isLocal(tenant.whatsapp.baseUrl)) {
    const whatsapp = await startWhatsAppSandbox({
      port: portOf(tenant.whatsapp.baseUrl),
      token: tenant.whatsapp.token,
      appSecret: currentSecret(tenant.secrets.whatsappAppSecret) ?? `${tenantId}-whatsapp-app-secret`,
      phoneNumberId: tenant.whatsapp.phoneNumberId,
      wabaId: tenant.whatsapp.wabaId,
      // The approved templates the tenant's flows use.
      templates: Object.values(tenant.leads.messages).flatMap((message) =>
        templateVersions(message.template).map(([language, version]) => ({
          name: message.template.name,
          language,
          category: message.template.category,
          body: `${(version.text ?? message.text).replace(/\{\{\w+\}\}/g, '…')} ${version.placeholders.map((_, index) => `{{${index + 1}}}`).join(' ')}`,
        })),
      ),
      webhookUrl: `${options.apiUrl}/webhooks/${tenantId}/whatsapp`,
      ...(options.autoRead ? { autoRead: true } : {}),
      ...(unlimited ? { messagesPerSecond: 1_000 } : {}),
    });
    stops.push(() => whatsapp.stop());
    urls.whatsapp = whatsapp.url;
    sandboxes.whatsapp = whatsapp;
  }
  const authToken = currentSecret(tenant.secrets.twilioAuthToken);
  if (tenant.sms && authToken && isLocal(tenant.sms.baseUrl)) {
    const twilio = await startTwilioMessagingSandbox({
      port: portOf(tenant.sms.baseUrl),
      accountSid: tenant.sms.accountSid,
      authToken,
      ...(tenant.sms.apiKeySid && tenant.secrets.twilioApiKeySecret ? { apiKeys: [{ sid: tenant.sms.apiKeySid, secret: tenant.secrets.twilioApiKeySecret }] } : {}),
      phoneNumbers: tenant.sms.from ? [tenant.sms.from] : ['+15005550006'],
      ...(tenant.sms.messagingServiceSid ? { messagingServiceSid: tenant.sms.messagingServiceSid } : {}),
      inboundWebhookUrl: `${options.apiUrl}/webhooks/${tenantId}/sms`,
    });
    stops.push(() => twilio.stop());
    urls.twilio = twilio.url;
    sandboxes.twilio = twilio;
  }
  return {
    ...sandboxes,
    urls,
    async stop() {
      for (const stop of stops.reverse()) await stop();
    },
  };
}
