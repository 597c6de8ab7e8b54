import { z } from 'zod';
import { callPolicySchema } from '../shared/calls.js';
import { leadPolicySchema } from '../shared/leads.js';
import { defaultSenderName, senderQualityRatings } from '../shared/senders.js';
import { normalizeHostName } from '../security/network.js';

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

/**
 * A secret, or while it rotates `[new, old]`: a signature made with either is accepted and the first
 * is the one we use, so senders move to the new secret one by one and the old one is then dropped.
 */
export const rotatingSecretSchema = z.union([nonEmpty, z.tuple([nonEmpty, nonEmpty])], {
  error: 'must be a secret, or [new, old] while it rotates',
});
export type RotatingSecret = z.infer<typeof rotatingSecretSchema>;

/** The providers that sign with our HMAC scheme (X-Switchboard-Signature). */
export const switchboardSignedProviders = ['pbx', 'voice-ai', 'crm'] as const;
export type SwitchboardSignedProvider = (typeof switchboardSignedProviders)[number];

export const tenantSecretsSchema = z
  .object({
    /** HMAC-SHA256 key for the /pbx, /voice-ai and /crm webhooks that have no key of their own in `signingSecrets`. */
    webhookSigningSecret: rotatingSecretSchema.optional(),
    /** Each signed provider's own key, so one can be rotated or revoked without touching the others. */
    signingSecrets: z.strictObject({ pbx: rotatingSecretSchema.optional(), 'voice-ai': rotatingSecretSchema.optional(), crm: rotatingSecretSchema.optional() }).default({}),
    /** Twilio auth token, or `[primary, secondary]` while Twilio's secondary token is promoted; X-Twilio-Signature is computed with it. */
    twilioAuthToken: rotatingSecretSchema.optional(),
    /** Meta app secret (or `[new, old]`); X-Hub-Signature-256 is computed with it. */
    whatsappAppSecret: rotatingSecretSchema.optional(),
    /** Secret of the Twilio API key `sms.apiKeySid`, when SMS are sent with an API key instead of the auth token. */
    twilioApiKeySecret: nonEmpty.optional(),
    /** Bearer token operators use for this tenant's API and dashboard. */
    operatorToken: nonEmpty,
    /**
     * Signs the expiring recording links handed to the CRM's player (its own key: no webhook secret
     * opens recordings); `[new, old]` while it rotates. Unset: no links, recordings need an operator token.
     */
    recordingLinkSecret: rotatingSecretSchema.optional(),
  })
  .superRefine((secrets, context) => {
    for (const provider of switchboardSignedProviders) {
      if (secrets.signingSecrets[provider] === undefined && secrets.webhookSigningSecret === undefined) {
        context.addIssue({ code: 'custom', path: ['signingSecrets', provider], message: `needs a key: set signingSecrets.${provider} or webhookSigningSecret` });
      }
    }
  });
export type TenantSecrets = z.infer<typeof tenantSecretsSchema>;

/** A bare host name or IP address (no scheme, port or path), as URLs spell it. */
const hostNameSchema = z.string().transform((value, context) => {
  const host = normalizeHostName(value);
  if (host === undefined || host.includes('*')) {
    context.addIssue({ code: 'custom', message: 'must be a host name or IP address, without scheme, port or path (e.g. api.twilio.com)' });
    return z.NEVER;
  }
  return host;
});

/** A host name, or `*.example.com` for every name below example.com. */
const hostPatternSchema = z.string().transform((value, context) => {
  const wildcard = value.trim().startsWith('*.');
  const host = normalizeHostName(wildcard ? value.trim().slice(2) : value);
  if (host === undefined || host.includes('*') || (wildcard && host.startsWith('['))) {
    context.addIssue({ code: 'custom', message: 'must be a host name or IP address (or *.example.com), without scheme, port or path' });
    return z.NEVER;
  }
  return wildcard ? `*.${host}` : host;
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

const senderNameSchema = z
  .string()
  .regex(/^[a-z][a-z0-9_-]{0,99}$/, 'sender names are lower-case letters, digits, - and _, starting with a letter');
const messagingLimitTierSchema = z.enum(['TIER_50', 'TIER_250', 'TIER_1K', 'TIER_10K', 'TIER_100K', 'TIER_UNLIMITED']);
const regionCodeSchema = z.string().regex(/^[A-Z]{2}$/, 'must be a two-letter ISO 3166 region code such as ES');

/** One more WhatsApp sender number: its id, its own throughput limit, and the leads it serves. */
export const senderNumberSchema = z.object({
  phoneNumberId: nonEmpty,
  /** This number's throughput limit; every worker keeps under it together (as for the default number). */
  messagesPerSecond: z.number().int().min(2).max(1000).default(80),
  qualityRating: z.enum(senderQualityRatings).default('UNKNOWN'),
  messagingLimitTier: messagingLimitTierSchema.optional(),
  countries: z.array(regionCodeSchema).default([]),
  teams: z.array(nonEmpty).default([]),
  owners: z.array(nonEmpty).default([]),
});
export type SenderNumberConfig = z.infer<typeof senderNumberSchema>;

export const whatsappConfigSchema = z.object({
  baseUrl: httpUrl.default('https://graph.facebook.com'),
  apiVersion: z.string().regex(/^v\d+\.\d+$/).default('v21.0'),
  phoneNumberId: nonEmpty,
  wabaId: nonEmpty,
  /** System-user access token for the Cloud API. */
  token: nonEmpty,
  /** The number's throughput limit (Meta: 80 messages per second by default, up to 1,000 once raised); every worker keeps under it together. */
  messagesPerSecond: z.number().int().min(2).max(1000).default(80),
  /** Echoed by Meta's webhook verification handshake (GET hub.verify_token). */
  verifyToken: nonEmpty.optional(),
  /** Meta's quality rating of the default number: a RED number takes no new leads. */
  qualityRating: z.enum(senderQualityRatings).default('UNKNOWN'),
  /** Meta's messaging limit tier (business-initiated conversations per 24 h), for operators; Meta enforces it. */
  messagingLimitTier: messagingLimitTierSchema.optional(),
  /**
   * More numbers of the same WhatsApp Business Account, by name (`default` is `phoneNumberId`). A
   * lead gets the first whose `owners` name its owner, else whose `teams` name its team, else whose
   * `countries` hold its phone number's region, else the default; it keeps that number.
   */
  senders: z.record(senderNameSchema, senderNumberSchema).default({}),
}).superRefine((whatsapp, context) => {
  const owners = new Map<string, string>([[whatsapp.phoneNumberId, 'phoneNumberId']]);
  for (const [name, sender] of Object.entries(whatsapp.senders)) {
    if (name === defaultSenderName) context.addIssue({ code: 'custom', path: ['senders', name], message: `"${defaultSenderName}" names the main number (phoneNumberId); give this one another name` });
    const holder = owners.get(sender.phoneNumberId);
    if (holder) context.addIssue({ code: 'custom', path: ['senders', name, 'phoneNumberId'], message: `is already configured as ${holder === 'phoneNumberId' ? 'phoneNumberId (the default number)' : `senders.${holder}`}` });
    owners.set(sender.phoneNumberId, name);
  }
});

/**
 * Twilio Programmable Messaging, for the SMS fallback of lead messages (`leads.smsFallback`):
 * `POST /2010-04-01/Accounts/{accountSid}/Messages.json` from `from` or through
 * `messagingServiceSid`, HTTP Basic with the account's auth token (`secrets.twilioAuthToken`, which
 * also signs the status callbacks and inbound messages) or with the API key `apiKeySid` and
 * `secrets.twilioApiKeySecret`.
 */
export const smsConfigSchema = z
  .object({
    baseUrl: httpUrl.default('https://api.twilio.com'),
    accountSid: z.string().regex(/^AC[0-9a-fA-F]{32}$/, 'must be a Twilio Account SID: AC and 32 hex digits'),
    from: z.string().regex(/^\+[1-9]\d{6,14}$/, 'must be an E.164 phone number such as +15005550006').optional(),
    messagingServiceSid: z.string().regex(/^MG[0-9a-fA-F]{32}$/, 'must be a Messaging Service SID: MG and 32 hex digits').optional(),
    apiKeySid: z.string().regex(/^SK[0-9a-fA-F]{32}$/, 'must be an API key SID: SK and 32 hex digits').optional(),
  })
  .refine((sms) => (sms.from === undefined) !== (sms.messagingServiceSid === undefined), { message: 'set exactly one of from and messagingServiceSid', path: ['from'] });
export type SmsConfig = z.infer<typeof smsConfigSchema>;

/**
 * How much of what untrusted senders send us a tenant keeps, and for how long (enforced by
 * ingestion/storage-bounds.ts): the newest refusals up to a quota, and dead letters (accepted events
 * Temporal refused for good). Whatever is dropped is counted (`switchboard_storage_dropped_total`).
 */
export const tenantStorageSchema = z.object({
  rejections: z
    .object({
      maxRows: z.number().int().positive().default(10_000),
      /** Raw bodies kept at most, in bytes; at least one webhook body (1 MiB). */
      maxBytes: z.number().int().min(1_048_576, 'must be at least 1048576 (one webhook body)').default(256 * 1_048_576),
      retentionDays: z.number().positive().default(30),
    })
    .prefault({}),
  deadLetters: z
    .object({
      maxRows: z.number().int().positive().default(10_000),
      /** Counted from the moment the event became a dead letter. */
      retentionDays: z.number().positive().default(30),
    })
    .prefault({}),
});
export type TenantStorageConfig = z.infer<typeof tenantStorageSchema>;

/**
 * How long a tenant keeps personal text (enforced by the retention workflow, which a Temporal
 * Schedule runs every hour: workers/retention-schedule.ts). Counted from the end of the call, or from
 * when the message arrived.
 */
export const tenantRetentionSchema = z.object({
  /** Call transcripts (journal, stored call events): cleared after this many days. */
  transcriptDays: z.number().positive().default(90),
  /** WhatsApp message text we hold (replies waiting or dead-lettered in the inbox, refused WhatsApp webhooks): cleared after this many days. */
  messageBodyDays: z.number().positive().default(30),
});
export type TenantRetentionConfig = z.infer<typeof tenantRetentionSchema>;

/**
 * Where recordings may be fetched from (adapters/recording-download.ts). A recording URL comes from a
 * webhook, so it is treated as untrusted: only these hosts, public addresses unless a host is named in
 * `privateNetworkHosts`, every redirect checked again, and a size cap while the body streams in.
 */
export const tenantRecordingsSchema = z.object({
  /**
   * Host names (or `*.example.com` for any name below it) recordings and their redirects may come from.
   * The hosts of `twilio.apiHost`, `pbxRecordingAuth.host` and `privateNetworkHosts` are allowed too.
   */
  allowedHosts: z.array(hostPatternSchema).default([]),
  /**
   * Hosts that may be, or resolve to, a loopback, private, link-local or other non-public address (an
   * on-premises PBX, a local sandbox). Nothing else may; cloud metadata addresses never.
   */
  privateNetworkHosts: z.array(hostPatternSchema).default([]),
  /** Accept plain http:// recording URLs and redirects (local sandboxes only); otherwise https:// only. */
  allowPlainHttp: z.boolean().default(false),
  /** A recording larger than this is refused, cut off as it streams in when no Content-Length is sent. */
  maxBytes: z.number().int().positive().max(2 * 1024 ** 3).default(200 * 1024 ** 2),
  maxRedirects: z.number().int().min(0).max(10).default(3),
  /** How long a signed recording link (the CRM player's) stays valid. */
  linkTtlHours: z.number().positive().max(24 * 366).default(24 * 7),
});
export type TenantRecordingsConfig = z.infer<typeof tenantRecordingsSchema>;

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
  /** Twilio account, for fetching recordings (HTTP Basic with the auth token, sent to `apiHost` only). */
  twilio: z.object({ accountSid: nonEmpty, apiHost: hostNameSchema.default('api.twilio.com') }).optional(),
  /** HTTP Basic credentials for fetching recordings from the PBX, sent to `host` only (never to a redirect elsewhere). */
  pbxRecordingAuth: z.object({ user: nonEmpty, pass: nonEmpty, host: hostNameSchema }).optional(),
  recordings: tenantRecordingsSchema.prefault({}),
  calls: callPolicySchema.prefault({}),
  dashboard: z
    .object({
      /** Service level: the share of inbound calls answered within this many seconds. */
      serviceLevelSeconds: z.number().int().positive().default(20),
    })
    .prefault({}),
  /** WhatsApp Business Cloud API number used for lead messaging (the app secret is in `secrets`). */
  whatsapp: whatsappConfigSchema.optional(),
  /** Twilio Messaging for the SMS fallback (leads.smsFallback); the auth token is `secrets.twilioAuthToken`. */
  sms: smsConfigSchema.optional(),
  leads: leadPolicySchema.prefault({}),
  storage: tenantStorageSchema.prefault({}),
  retention: tenantRetentionSchema.prefault({}),
}).superRefine((tenant, context) => {
  if (tenant.sms && tenant.secrets.twilioAuthToken === undefined) {
    context.addIssue({ code: 'custom', path: ['secrets', 'twilioAuthToken'], message: 'is required with sms: it signs the status callbacks and inbound messages' });
  }
  if (tenant.sms?.apiKeySid && tenant.secrets.twilioApiKeySecret === undefined) {
    context.addIssue({ code: 'custom', path: ['secrets', 'twilioApiKeySecret'], message: 'is required with sms.apiKeySid' });
  }
  if (tenant.leads.smsFallback.enabled && !tenant.sms) {
    context.addIssue({ code: 'custom', path: ['leads', 'smsFallback', 'enabled'], message: 'needs sms (the Twilio account to send from)' });
  }
});
export type TenantConfig = z.infer<typeof tenantSchema>;

const encryptionKeyId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'must be letters, digits, ".", "_" or "-" (at most 64)');

/**
 * Keys of the Temporal payload codec (AES-256-GCM): `activeKeyId` encrypts, every key in `keys`
 * decrypts (keep a retired key until no history needs it). In a config file write each key as
 * `${SWITCHBOARD_PAYLOAD_KEY_...}`.
 */
export const payloadEncryptionSchema = z
  .object(
    {
      activeKeyId: encryptionKeyId,
      keys: z.record(
        encryptionKeyId,
        z.string({ error: 'must be a 32-byte key as base64 or hex (openssl rand -base64 32)' }).refine((value) => decodeTokenKey(value) !== undefined, 'must be 32 bytes as base64 or hex (openssl rand -base64 32)'),
      ),
    },
    { error: 'must be set: activeKeyId and keys (key id: 32-byte key, base64) for encrypting Temporal payloads' },
  )
  .refine((settings) => settings.keys[settings.activeKeyId] !== undefined, { error: 'must name one of temporal.payloadEncryption.keys', path: ['activeKeyId'] });
export type PayloadEncryptionConfig = z.infer<typeof payloadEncryptionSchema>;

/** An origin (`scheme://host[:port]`, no path), e.g. where the Temporal Web UI is served. */
const originSchema = z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// origin' }).refine((value) => {
  const url = new URL(value);
  return `${url.origin}` === value.replace(/\/$/, '');
}, 'must be an origin only (scheme://host:port, no path)');

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
  payloadEncryption: payloadEncryptionSchema,
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

/**
 * Storage bounds that are not a tenant's: requests naming a tenant that is not configured are
 * counted, and only a few of them kept, truncated (anyone can send them), and how often the
 * retention and quota cleanup runs in each API process.
 */
export const storageSchema = z.object({
  cleanupIntervalSeconds: z.number().positive().default(300),
  unknownTenants: z
    .object({
      /** Samples each API process keeps per minute; the rest are only counted. */
      samplesPerMinute: z.number().int().nonnegative().default(10),
      /** A sample keeps at most this much of the body. */
      sampleBodyBytes: z.number().int().nonnegative().max(65_536).default(1_024),
      /** Samples kept at most, all unknown tenants together (also rows of tenants no longer configured). */
      maxRows: z.number().int().nonnegative().default(1_000),
      retentionDays: z.number().positive().default(7),
    })
    .prefault({}),
});
export type StorageConfig = z.infer<typeof storageSchema>;

/** The YAML file (temporal-dev.yaml in development). */
export const configFileSchema = z.object({
  // Without a temporal section the defaults apply, and the missing payloadEncryption is named.
  temporal: devTemporalSchema.prefault({} as z.input<typeof devTemporalSchema>),
  postgres: z.object({ embedded: embeddedPostgresSchema.prefault({}) }).prefault({}),
  api: z
    .object({
      host: nonEmpty.default('0.0.0.0'),
      port: port.default(3000),
      publicUrl: z.url().optional(),
      /** Browser origins allowed to call the codec server (/codec); default: the Temporal Web UI's. */
      codecAllowedOrigins: z.array(originSchema).optional(),
    })
    .prefault({}),
  demo: demoSchema.prefault({}),
  storage: storageSchema.prefault({}),
  tenants: z
    .record(tenantIdSchema, tenantSchema)
    .refine((tenants) => Object.keys(tenants).length > 0, 'at least one tenant must be configured'),
});
export type ConfigFile = z.infer<typeof configFileSchema>;

/** An optional URL setting where an empty value (`NAME=` in a compose file) means unset. */
const optionalHttpUrl = z.preprocess((value) => (value === '' ? undefined : value), httpUrl.optional());

/**
 * Tracing (observability/tracing.ts), under the standard OpenTelemetry names. Off unless an OTLP
 * endpoint is set: then spans go there over OTLP/HTTP (JSON). The exporter itself also reads
 * OTEL_EXPORTER_OTLP_HEADERS (a collector's credentials) and OTEL_EXPORTER_OTLP_TIMEOUT.
 */
export const tracingEnvSchema = z.object({
  /** The collector's base URL, e.g. http://otel-collector:4318: spans are sent to <url>/v1/traces. */
  OTEL_EXPORTER_OTLP_ENDPOINT: optionalHttpUrl,
  /** The traces URL in full; wins over OTEL_EXPORTER_OTLP_ENDPOINT. */
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: optionalHttpUrl,
  /** `true`: no tracing, even with an endpoint set. */
  OTEL_SDK_DISABLED: z.preprocess((value) => (value === '' ? undefined : value), z.enum(['true', 'false']).optional()),
  /** Share of new traces kept, 0 to 1 (a webhook's trace is kept or dropped whole, downstream processes follow its choice). */
  OTEL_TRACES_SAMPLER_ARG: z.preprocess((value) => (value === '' ? undefined : value), z.coerce.number().min(0).max(1).default(1)),
  /** Overrides the service name each process reports (switchboard-api, switchboard-forwarder, switchboard-worker). */
  OTEL_SERVICE_NAME: z.preprocess((value) => (value === '' ? undefined : value), nonEmpty.optional()),
});
export type TracingEnv = z.infer<typeof tracingEnvSchema>;

/** Environment variables Switchboard reads itself (Temporal's own are read by @temporalio/envconfig). */
export const envSchema = z.object({
  SWITCHBOARD_CONFIG: nonEmpty.optional(),
  DATABASE_URL: postgresUrlSchema.optional(),
  API_HOST: nonEmpty.optional(),
  API_PORT: port.optional(),
  PUBLIC_URL: z.url().optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** `pretty` (readable lines) or `json` (one object per line); unset: pretty when stdout is a terminal, else JSON. */
  LOG_FORMAT: z.enum(['json', 'pretty']).optional(),
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
  ...tracingEnvSchema.shape,
});
export type SwitchboardEnv = z.infer<typeof envSchema>;

export type KommoConfig = z.infer<typeof kommoConfigSchema>;
export type HubspotConfig = z.infer<typeof hubspotConfigSchema>;
export type TicketingConfig = z.infer<typeof ticketingConfigSchema>;
export type SlackConfig = z.infer<typeof slackConfigSchema>;
export type EmailConfig = z.infer<typeof emailConfigSchema>;

export type WhatsAppConfig = z.infer<typeof whatsappConfigSchema>;
