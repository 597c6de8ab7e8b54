/**
 * Input rules the routes share beyond their zod schemas: what PostgreSQL cannot store (U+0000 in
 * text and jsonb) and which instants it can compare (years 1 to 9999 after the offset is applied).
 */
import { z } from 'zod';
import { callProviders } from '../shared/calls.js';
import { isTimeZone } from '../shared/vocabulary.js';

/** Text PostgreSQL can store: anything but U+0000. */
// eslint-disable-next-line no-control-regex -- U+0000 is exactly what PostgreSQL cannot store
export const storableTextPattern = /^[^\u0000]*$/;
export const storableText = (max: number) => z.string().max(max).regex(storableTextPattern, 'must not contain U+0000');

/** `<provider>:<provider call id>`: the providers' call ids are 1 to 200 characters, without control characters. */
export const callIdParamSchema = z
  .string()
  .regex(new RegExp(`^(?:${callProviders.join('|')}):[^\\u0000-\\u001f\\u007f]{1,200}$`), 'must be <provider>:<provider call id>, e.g. pbx:abc123')
  .describe(`\`<provider>:<provider call id>\`, e.g. \`pbx:abc123\`; provider is one of ${callProviders.map((name) => `\`${name}\``).join(', ')}. Anything else is \`400 invalid_call_id\`.`);

/** A lead id as CRMs send it (`lead_id` of a CRM event). */
export const leadIdParamSchema = z
  .string()
  // eslint-disable-next-line no-control-regex -- control characters are what the pattern refuses
  .regex(/^[^\u0000-\u001f\u007f]{1,200}$/, 'must be 1 to 200 characters without control characters')
  .describe('The CRM lead id: 1 to 200 characters, without control characters. Anything else is `400 invalid_lead_id`.');

const earliest = Date.parse('0001-01-01T00:00:00.000Z');
const latest = Date.parse('9999-12-31T23:59:59.999Z');

/**
 * An RFC 3339 instant as PostgreSQL takes it: UTC, clamped to years 1 to 9999. Any offset RFC 3339
 * allows (up to ±23:59) is valid input, but PostgreSQL refuses offsets past ±15:59 and years
 * outside 1 to 9999; no call starts outside that range, so clamping keeps every filter's meaning.
 */
export function storableInstant(iso: string): string | undefined {
  const millis = Date.parse(iso);
  if (!Number.isFinite(millis)) return undefined;
  const clamped = new Date(Math.min(latest, Math.max(earliest, millis)));
  // Year 1 prints as 0001 from toISOString; nothing here reaches a six-digit year.
  return clamped.toISOString();
}

/** The IANA zone names this runtime knows (canonical ones, and UTC), as the OpenAPI document lists them. */
export const timeZoneNames = [...new Set([...Intl.supportedValuesOf('timeZone'), 'UTC'])].filter(isTimeZone).sort() as [string, ...string[]];
export const timeZoneNameSchema = z.enum(timeZoneNames).describe('An IANA time zone name, e.g. `Europe/Berlin`');

/** A per-parse zod error map: a missing field is "required", not "expected string, received undefined". */
export const missingIsRequired: z.core.$ZodErrorMap = (issue) => (issue.code === 'invalid_type' && issue.input === undefined ? 'required' : undefined);
