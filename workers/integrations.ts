/** Builds each tenant's outside-system adapters once, from configuration. */
import { createHubspotAdapter } from '../adapters/crm/hubspot.js';
import { createKommoAdapter } from '../adapters/crm/kommo.js';
import type { CrmAdapter } from '../adapters/crm/types.js';
import { createMailer } from '../adapters/mailer.js';
import type { Mailer } from '../adapters/mailer.js';
import { createTicketingAdapter } from '../adapters/ticketing.js';
import { createWhatsAppAdapter } from '../adapters/whatsapp.js';
import { createSmsAdapter } from '../adapters/sms.js';
import type { SmsAdapter } from '../adapters/sms.js';
import type { WhatsAppAdapter } from '../adapters/whatsapp.js';
import type { TicketingAdapter } from '../adapters/ticketing.js';
import { normalizePhone } from '../shared/phone.js';
import { defaultSenderName } from '../shared/senders.js';
import { senderNumbers } from '../config/senders.js';
import type { AppConfig } from '../config/load.js';
import type { EmailConfig, SlackConfig, TenantConfig } from '../config/schema.js';
import type { Db } from '../db/pool.js';

export interface Integrations {
  tenant: (tenantId: string) => TenantConfig;
  crm: (tenantId: string) => CrmAdapter | undefined;
  ticketing: (tenantId: string) => TicketingAdapter | undefined;
  slack: (tenantId: string) => SlackConfig | undefined;
  email: (tenantId: string) => { config: EmailConfig; mailer: Mailer } | undefined;
  /** The adapter of one of the tenant's numbers (shared/senders.ts), by name; the default number for one no longer configured. */
  whatsapp: (tenantId: string, sender?: string) => WhatsAppAdapter | undefined;
  /** Twilio Messaging, for the lead flows' SMS fallback. */
  sms: (tenantId: string) => SmsAdapter | undefined;
  isVipPhone: (tenantId: string, phone: string) => boolean;
  close: () => void;
}

function memo<T>(build: (tenantId: string) => T): (tenantId: string) => T {
  const cache = new Map<string, T>();
  return (tenantId) => {
    if (!cache.has(tenantId)) cache.set(tenantId, build(tenantId));
    return cache.get(tenantId) as T;
  };
}

/** A CRM kind the schema let through but no adapter exists for: never silently "no CRM". */
function unsupportedCrm(tenantId: string, crm: never): never {
  throw new Error(`tenant ${tenantId}: CRM kind "${String((crm as { kind?: unknown }).kind)}" is not supported (supported: kommo, hubspot)`);
}

/** `db`: the CRM and WhatsApp adapters keep their shared request budgets (and Kommo its OAuth tokens) there; without it, budgets are per process and Kommo takes long-lived tokens only. */
export function createIntegrations(config: AppConfig, deps: { db?: Db } = {}): Integrations {
  // Fail at start-up, not at a tenant's first call, when its CRM is one we have no adapter for.
  for (const [tenantId, settings] of Object.entries(config.tenants)) {
    if (settings.crm && settings.crm.kind !== 'kommo' && settings.crm.kind !== 'hubspot') unsupportedCrm(tenantId, settings.crm);
  }
  const tenant = (tenantId: string): TenantConfig => {
    const found = config.tenants[tenantId];
    if (!found) throw new Error(`unknown tenant ${tenantId}`);
    return found;
  };
  const mailers: Mailer[] = [];
  // One adapter per number: each has its own throughput budget, shared by every worker through PostgreSQL.
  const whatsappNumbers = memo((tenantId) => {
    const whatsapp = tenant(tenantId).whatsapp;
    if (!whatsapp) return new Map<string, WhatsAppAdapter>();
    return new Map(senderNumbers(whatsapp).map((number) => [number.name, createWhatsAppAdapter(whatsapp, deps.db ? { db: deps.db } : {}, number)]));
  });
  const vipSets = memo((tenantId) => {
    const settings = tenant(tenantId);
    return new Set(settings.vipPhones.flatMap((raw) => {
      const parsed = normalizePhone(raw, settings.defaultRegion);
      return parsed.ok && parsed.e164 ? [parsed.e164] : [];
    }));
  });
  return {
    tenant,
    crm: memo((tenantId): CrmAdapter | undefined => {
      const crm = tenant(tenantId).crm;
      if (!crm) return undefined;
      switch (crm.kind) {
        case 'kommo':
          return createKommoAdapter(crm, { ...(deps.db ? { db: deps.db } : {}), tenantId });
        case 'hubspot':
          return createHubspotAdapter(crm, deps.db ? { db: deps.db } : {});
        default:
          return unsupportedCrm(tenantId, crm);
      }
    }),
    ticketing: memo((tenantId) => {
      const ticketing = tenant(tenantId).ticketing;
      return ticketing ? createTicketingAdapter(ticketing) : undefined;
    }),
    slack: (tenantId) => tenant(tenantId).slack,
    email: memo((tenantId) => {
      const email = tenant(tenantId).email;
      if (!email) return undefined;
      const mailer = createMailer(email);
      mailers.push(mailer);
      return { config: email, mailer };
    }),
    whatsapp: (tenantId, sender = defaultSenderName) => whatsappNumbers(tenantId).get(sender) ?? whatsappNumbers(tenantId).get(defaultSenderName),
    sms: memo((tenantId) => {
      const { sms, secrets } = tenant(tenantId);
      return sms ? createSmsAdapter(sms, secrets) : undefined;
    }),
    isVipPhone: (tenantId, phone) => vipSets(tenantId).has(phone),
    close: () => mailers.forEach((mailer) => mailer.close()),
  };
}
