import { z } from 'zod';

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

export const tenantSchema = z.object({
  displayName: nonEmpty,
  /** ISO 3166 region used to read national phone numbers, e.g. US or DE. */
  defaultRegion: z.string().regex(/^[A-Z]{2}$/, 'must be a two-letter ISO 3166 region code such as US'),
  timeZone: timeZoneSchema,
  secrets: tenantSecretsSchema,
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
});
export type SwitchboardEnv = z.infer<typeof envSchema>;
