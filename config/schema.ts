import { z } from 'zod';
import { callPolicySchema } from '../shared/calls.js';
import { leadPolicySchema } from '../shared/leads.js';

/** Names Temporal accepts for custom search attribute types. */
export const searchAttributeTypes = ['Text', 'Keyword', 'Int', 'Double', 'Bool', 'Datetime', 'KeywordList'] as const;
export type SearchAttributeTypeName = (typeof searchAttributeTypes)[number];

const port = z.coerce.number().int().min(0).max(65_535);
const nonEmpty = z.string().trim().min(1, 'must not be empty');

const isValidTimeZone = (zone: string): boolean => {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
};

export const timeZoneSchema = nonEmpty.refine(isValidTimeZone, 'must be an IANA time zone such as Europe/Berlin');

export const postgresUrlSchema = nonEmpty.refine((value) => {
  try {
    const url = new URL(value);
    return (url.protocol === 'postgres:' || url.protocol === 'postgresql:') && url.hostname !== '';
  } catch {
    return false;
  }
}, 'must be a URL of the form postgres://user:password@host:port/database');

export const tenantIdSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be lower-case letters, digits and dashes (at most 63)');

export const tenantSecretsSchema = z.object({
  /** HMAC-SHA256 key for /pbx, /voice-ai and /crm webhooks. */
  webhookSigningSecret: nonEmpty,
  /** Twilio auth token; X-Twilio-Signature is computed with it. */
  twilioAuthToken: nonEmpty.optional(),
  /** Meta app secret; X-Hub-Signature-256 is computed with it. */
  whatsappAppSecret: nonEmpty.optional(),
  /** Bearer token operators use for this tenant's API and dashboard. */
  operatorToken: nonEmpty,
});

const httpUrl = z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' });

/** 32 bytes, written as base64 (44 characters, e.g. `openssl rand -base64 32`) or hex (64 characters). */
export function decodeTokenKey(value: string): Buffer | undefined {
  const text = value.trim();
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, 'hex');
  if (/^[A-Za-z0-9+/]{43}=$/.test(text)) return Buffer.from(text, 'base64');
  return undefined;
}

/**
 * Kommo OAuth 2.0 (public or private integration with a redirect): the access token comes from an
 * authorization code (`npm run cli -- kommo-authorize`), lives about a day and is renewed with the
 * refresh token, which rotates on every renewal. Tokens are kept in PostgreSQL, encrypted.
 */
export const kommoOAuthSchema = z.object({
  clientId: nonEmpty,
  clientSecret: nonEmpty,
  /** The redirect URI registered with the integration; Kommo checks it on the code exchange. */
  redirectUri: httpUrl,
  /** AES-256-GCM key for the stored tokens; in a config file write `tokenKey: ${SWITCHBOARD_TOKEN_KEY}`. */
  tokenKey: z
    .string({ error: 'must be set: the AES-256 key for stored tokens (tokenKey: ${SWITCHBOARD_TOKEN_KEY})' })
    .refine((value) => decodeTokenKey(value) !== undefined, 'must be 32 bytes as base64 or hex (openssl rand -base64 32)'),
  /** Renew this long before the access token expires, so calls in flight do not meet a 401. */
  refreshAheadSeconds: z.number().int().nonnegative().default(300),
});

export const kommoConfigSchema = z
  .object({
    kind: z.literal('kommo'),
    baseUrl: httpUrl,
    /** A long-lived token (private integrations only): used as is, never refreshed. */
    token: nonEmpty.optional(),
    oauth: kommoOAuthSchema.optional(),
    /** `source` on call notes and `source_name` on incoming leads. */
    source: nonEmpty.default('Switchboard'),
    /** Kommo allows 7 requests per second per account; stay under it (shared by every worker through PostgreSQL). */
    rateLimitPerSecond: z.number().positive().max(7).default(6),
    /** Hours until a missed-call call-back task is due. */
    callbackDueMinutes: z.number().int().positive().default(60),
    pipelineId: z.number().int().positive().optional(),
    /** How long a live call's contact lookup by phone is reused (default 30; 0: never); post-call logging always asks Kommo. */
    lookupCacheSeconds: z.number().nonnegative().optional(),
  })
  .refine((crm) => (crm.token === undefined) !== (crm.oauth === undefined), {
    error: 'set either token (a long-lived token) or oauth (client id, secret, redirect URI, token key), not both',
    path: ['token'],
  });

/** HubSpot CRM v3 with a private app's access token (sandboxes/CONTRACTS.md lists what it calls). */
export const hubspotConfigSchema = z.object({
  kind: z.literal('hubspot'),
  baseUrl: httpUrl.default('https://api.hubapi.com'),
  /** Private app access token, sent as a Bearer token. */
  token: nonEmpty,
  /** Our share of the account's burst limit (private apps: 100 to 190 requests per 10 s per account). */
  rateLimitPerSecond: z.number().positive().max(19).default(9),
  /** The CRM search endpoints have a lower limit of their own (4 to 5 per second per account). */
  searchRateLimitPerSecond: z.number().positive().max(5).default(3),
  /**
   * Custom call property (single-line text) holding our call id: how a call is found again after a
   * lost answer, since HubSpot does not deduplicate calls. Create it once in the account.
   */
  callIdProperty: z.string().regex(/^[a-z][a-z0-9_]*$/, 'must be a HubSpot internal property name (lower case, digits, _)').default('switchboard_call_id'),
  /** An inbound caller no contact has becomes a contact in the lead stage; when false, the call is skipped. */
  createContactForUnknownCallers: z.boolean().default(true),
  /** Minutes until a missed-call call-back task is due. */
  callbackDueMinutes: z.number().int().positive().default(60),
  /** How long HubSpot's search may lag behind a write ("a few moments"); the ledger waits this long before re-sending. */
  searchIndexLagSeconds: z.number().nonnegative().max(600).default(10),
});

export const ticketingConfigSchema = z.object({
  baseUrl: httpUrl,
  token: nonEmpty,
  defaultQueue: nonEmpty.default('Support'),
  /** Issue type (from analytics) → queue. */
  queueByIssueType: z.record(z.string(), nonEmpty).default({}),
});

export const slackConfigSchema = z.object({
  /** Incoming-webhook URLs per channel purpose; a missing one disables that alert. */
  supportWebhookUrl: httpUrl.optional(),
  alertsWebhookUrl: httpUrl.optional(),
  vipWebhookUrl: httpUrl.optional(),
});

export const emailConfigSchema = z.object({
  /** smtp://user:pass@host:port or smtps://… */
  smtpUrl: z.url({ protocol: /^smtps?$/, error: 'must be an smtp:// or smtps:// URL' }),
  from: nonEmpty,
  /** Unhappy callers' apologies are copied here for escalation. */
  escalationTo: z.email().optional(),
  resourcesUrl: httpUrl.default('https://example.com/help'),
});

export const whatsappConfigSchema = z.object({
  baseUrl: httpUrl.default('https://graph.facebook.com'),
  apiVersion: z.string().regex(/^v\d+\.\d+$/).default('v21.0'),
  phoneNumberId: nonEmpty,
  wabaId: nonEmpty,
  /** System-user access token for the Cloud API. */
  token: nonEmpty,
  /** Echoed by Meta's webhook verification handshake (GET hub.verify_token). */
  verifyToken: nonEmpty.optional(),
});

export const tenantSchema = z.object({
  displayName: nonEmpty,
  /** ISO 3166 region used to read national phone numbers, e.g. US or DE. */
  defaultRegion: z.string().regex(/^[A-Z]{2}$/, 'must be a two-letter ISO 3166 region code such as US'),
  timeZone: timeZoneSchema,
  secrets: tenantSecretsSchema,
  /** Callers treated as VIP (E.164 or national numbers in the tenant's region). */
  vipPhones: z.array(nonEmpty).default([]),
  crm: z.discriminatedUnion('kind', [kommoConfigSchema, hubspotConfigSchema]).optional(),
  ticketing: ticketingConfigSchema.optional(),
  slack: slackConfigSchema.optional(),
  email: emailConfigSchema.optional(),
  /** Twilio account, for fetching recordings (HTTP Basic with the auth token). */
  twilio: z.object({ accountSid: nonEmpty }).optional(),
  /** HTTP Basic credentials for fetching recordings from the PBX. */
  pbxRecordingAuth: z.object({ user: nonEmpty, pass: nonEmpty }).optional(),
  calls: callPolicySchema.prefault({}),
  dashboard: z
    .object({
      /** Service level: the share of inbound calls answered within this many seconds. */
      serviceLevelSeconds: z.number().int().positive().default(20),
    })
    .prefault({}),
  /** WhatsApp Business Cloud API number used for lead messaging (the app secret is in `secrets`). */
  whatsapp: whatsappConfigSchema.optional(),
  leads: leadPolicySchema.prefault({}),
});
export type TenantConfig = z.infer<typeof tenantSchema>;

export const devTemporalSchema = z.object({
  cliVersion: nonEmpty.default('v1.5.1'),
  testServerVersion: nonEmpty.default('1.38.0'),
  namespace: nonEmpty.default('switchboard'),
  ip: nonEmpty.default('127.0.0.1'),
  frontendPort: port.default(7233),
  httpPort: port.default(7243),
  uiPort: port.default(8233),
  metricsPort: port.default(7235),
  dbFilename: nonEmpty.default('.data/temporal/switchboard.sqlite'),
  sqlitePragmas: z.record(z.string(), z.union([z.string(), z.number()])).default({}),
  searchAttributes: z.record(z.string().regex(/^[A-Za-z][A-Za-z0-9]*$/), z.enum(searchAttributeTypes)).default({}),
  dynamicConfig: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).default({}),
  taskQueues: z
    .object({
      calls: nonEmpty.default('switchboard-calls'),
      leads: nonEmpty.default('switchboard-leads'),
      messaging: nonEmpty.default('switchboard-messaging'),
      integrations: nonEmpty.default('switchboard-integrations'),
    })
    .prefault({}),
  messagingRatePerSecond: z.coerce.number().positive().default(80),
});
export type DevTemporalConfig = z.infer<typeof devTemporalSchema>;

export const embeddedPostgresSchema = z.object({
  dataDir: nonEmpty.default('.data/postgres'),
  port: port.default(54329),
  user: nonEmpty.default('switchboard'),
  password: nonEmpty.default('switchboard-dev'),
  database: nonEmpty.default('switchboard'),
});
export type EmbeddedPostgresConfig = z.infer<typeof embeddedPostgresSchema>;

/**
 * Demo mode (npm start): sandbox servers stand in for the demo tenant's outside systems, at the
 * URLs its configuration names, and a PBX simulator sends it calls.
 */
export const demoSchema = z.object({
  enabled: z.boolean().default(false),
  tenant: tenantIdSchema.default('demo'),
  callsPerMinute: z.number().positive().default(6),
  leadsPerMinute: z.number().nonnegative().default(2),
  recordingsPort: port.default(7306),
  smtpInspectionPort: port.default(7305),
});
export type DemoConfig = z.infer<typeof demoSchema>;

/** The YAML file (temporal-dev.yaml in development). */
export const configFileSchema = z.object({
  temporal: devTemporalSchema.prefault({}),
  postgres: z.object({ embedded: embeddedPostgresSchema.prefault({}) }).prefault({}),
  api: z
    .object({
      host: nonEmpty.default('0.0.0.0'),
      port: port.default(3000),
      publicUrl: z.url().optional(),
    })
    .prefault({}),
  demo: demoSchema.prefault({}),
  tenants: z
    .record(tenantIdSchema, tenantSchema)
    .refine((tenants) => Object.keys(tenants).length > 0, 'at least one tenant must be configured'),
});
export type ConfigFile = z.infer<typeof configFileSchema>;

/** Environment variables Switchboard reads itself (Temporal's own are read by @temporalio/envconfig). */
export const envSchema = z.object({
  SWITCHBOARD_CONFIG: nonEmpty.optional(),
  DATABASE_URL: postgresUrlSchema.optional(),
  API_HOST: nonEmpty.optional(),
  API_PORT: port.optional(),
  PUBLIC_URL: z.url().optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  SHUTDOWN_GRACE_SECONDS: z.coerce.number().positive().default(10),
  WORKER_MAX_CACHED_WORKFLOWS: z.coerce.number().int().nonnegative().default(500),
  /** How long a webhook waits for its inbox commit before handing the event to Temporal directly. */
  INGEST_COMMIT_DEADLINE_MS: z.coerce.number().int().positive().default(150),
  /** How long that direct hand-off may wait for Temporal (PostgreSQL slow or down) before answering 503. */
  TEMPORAL_HANDOFF_TIMEOUT_MS: z.coerce.number().int().positive().default(1_500),
  /** Waiting events past which webhooks are answered 503 with Retry-After (protects the database disk). */
  INGEST_MAX_BACKLOG_EVENTS: z.coerce.number().int().positive().default(100_000),
  /** Age of the oldest waiting event past which webhooks are answered 503 with Retry-After. */
  INGEST_MAX_BACKLOG_AGE_SECONDS: z.coerce.number().positive().default(900),
  /** Whether this API process also forwards the inbox to Temporal (`0` when a separate `npm run forwarder` does). */
  INGEST_FORWARDER: z.enum(['0', '1', 'true', 'false']).default('1').transform((value) => value === '1' || value === 'true'),
  /** Workflows one forwarder sends side by side. */
  INGEST_FORWARD_CONCURRENCY: z.coerce.number().int().positive().max(512).default(32),
  /** Times Temporal may refuse an event for good before it becomes a dead letter. */
  INGEST_MAX_REFUSALS: z.coerce.number().int().positive().default(5),
  /** Where operators open the Temporal Web UI (links from the dashboard's detail pages). */
  TEMPORAL_WEB_UI_URL: z.url().optional(),
  /** Where the worker serves Temporal SDK metrics for Prometheus (host:port; empty = off). */
  WORKER_METRICS_ADDRESS: z.string().regex(/^$|^[^\s:]+:\d{1,5}$/, 'must be host:port, e.g. 0.0.0.0:9464').default('127.0.0.1:9464'),
  /** Overrides `demo.enabled` in the config file. */
  SWITCHBOARD_DEMO: z.enum(['0', '1', 'true', 'false']).optional(),
});
export type SwitchboardEnv = z.infer<typeof envSchema>;

export type KommoConfig = z.infer<typeof kommoConfigSchema>;
export type HubspotConfig = z.infer<typeof hubspotConfigSchema>;
export type TicketingConfig = z.infer<typeof ticketingConfigSchema>;
export type SlackConfig = z.infer<typeof slackConfigSchema>;
export type EmailConfig = z.infer<typeof emailConfigSchema>;

export type WhatsAppConfig = z.infer<typeof whatsappConfigSchema>;
