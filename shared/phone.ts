import { parsePhoneNumberFromString } from 'libphonenumber-js/max';
import type { CountryCode } from 'libphonenumber-js/max';

/** What phone systems send when the caller id is hidden. */
const withheld = new Set(['', 'anonymous', 'unknown', 'private', 'restricted', 'unavailable', 'withheld']);

export type PhoneParse = { ok: true; e164: string | undefined } | { ok: false };

/**
 * Normalizes a phone number to E.164, reading national numbers in the tenant's region.
 * A withheld caller id is not an error: it yields `undefined`.
 */
export function normalizePhone(raw: string | undefined | null, defaultRegion: string): PhoneParse {
  if (raw === undefined || raw === null || withheld.has(raw.trim().toLowerCase())) return { ok: true, e164: undefined };
  const key = `${defaultRegion}\u0000${raw}`;
  const known = recentlyParsed.get(key);
  if (known) return known;
  const text = raw.trim().replace(/^00/, '+');
  const parsed = parsePhoneNumberFromString(text, defaultRegion as CountryCode);
  // isPossible (length and shape) rather than isValid: test and newly issued ranges are real calls too.
  const result: PhoneParse = !parsed || !parsed.isPossible() ? { ok: false } : { ok: true, e164: parsed.number };
  if (recentlyParsed.size >= recentlyParsedLimit) recentlyParsed.clear();
  recentlyParsed.set(key, result);
  return result;
}

/**
 * Parsing is a pure function of (region, text) and among the costliest steps of an ingest: every
 * event of a call names the same numbers, so recent answers are kept, a bounded number of them.
 */
const recentlyParsed = new Map<string, PhoneParse>();
const recentlyParsedLimit = 10_000;

/** The ISO 3166 region an E.164 number belongs to (undefined for non-geographic numbers such as +800). */
export function countryOfPhone(e164: string): string | undefined {
  return parsePhoneNumberFromString(e164)?.country;
}
