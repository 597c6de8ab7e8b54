// Reading one incoming SIP lead of a batch (kommo.com/developers/content/api_v4/incoming-leads).
import { isRecord } from '../http.js';
import { phoneKey } from './store.js';
import type { KommoUnsortedMetadata } from './types.js';
import { Checker, isInt } from './validation.js';

/** Phone keys that identify the caller of an incoming lead: its `from` and its contacts' phones. */
export const callerKeys = (from: string | undefined, embeddedPhones: string[]): string[] =>
  [...(from ? [phoneKey(from)] : []), ...embeddedPhones.map(phoneKey)].filter((key) => key.length > 0);

/** What the batch has claimed so far, counting the entries already waiting. */
export interface SeenInBatch {
  uniqs: Set<string>;
  callers: Set<string>;
}

function parseMetadata(check: Checker, rawMetadata: Record<string, unknown>, seen: SeenInBatch): KommoUnsortedMetadata | undefined {
  // Kommo accepts the phone as a number too.
  const phoneValue = typeof rawMetadata.phone === 'number' ? String(rawMetadata.phone) : rawMetadata.phone;
  const meta = new Checker({ ...rawMetadata, phone: phoneValue }, 'metadata.');
  const parsed = {
    uniq: meta.string('uniq', true),
    from: meta.string('from', true),
    phone: meta.string('phone', true),
    called_at: meta.int('called_at', true, 0),
    duration: meta.int('duration', true, 0),
    // Present but empty is how a call without a recording is sent.
    link: typeof rawMetadata.link === 'string' ? rawMetadata.link : meta.string('link', true),
    service_code: meta.string('service_code', true),
    is_call_event_needed: meta.bool('is_call_event_needed', true),
  };
  check.errors.push(...meta.errors);
  if (parsed.uniq !== undefined) {
    if (seen.uniqs.has(parsed.uniq)) {
      check.errors.push({ code: 'Duplicate', path: 'metadata.uniq', detail: 'An incoming lead with this call uniq already exists.' });
    }
    seen.uniqs.add(parsed.uniq);
  }
  return meta.errors.length === 0 ? (parsed as KommoUnsortedMetadata) : undefined;
}

/** The people come from `_embedded.contacts`, named by their first phone when they have no name. */
function parseContacts(check: Checker, embedded: Record<string, unknown>): { name: string; phones: string[] }[] {
  const rawContacts = Array.isArray(embedded.contacts) ? (embedded.contacts as unknown[]) : [];
  return rawContacts.flatMap((raw, position) => {
    if (!isRecord(raw)) {
      check.errors.push({ code: 'InvalidType', path: `_embedded.contacts.${position}`, detail: 'A contact should be an object.' });
      return [];
    }
    const fields = Array.isArray(raw.custom_fields_values) ? (raw.custom_fields_values as unknown[]) : [];
    const phones = fields
      .filter((field): field is Record<string, unknown> => isRecord(field) && field.field_code === 'PHONE' && Array.isArray(field.values))
      .flatMap((field) => (field.values as unknown[]).flatMap((value) => (isRecord(value) && (typeof value.value === 'string' || typeof value.value === 'number') ? [String(value.value)] : [])));
    return [{ name: typeof raw.name === 'string' && raw.name !== '' ? raw.name : (phones[0] ?? 'Contact'), phones }];
  });
}

export type ParsedUnsorted = ReturnType<typeof parseUnsorted>;

/** One entry of the batch; its problems go to `check.errors`. */
export function parseUnsorted(item: Record<string, unknown>, requestId: string, check: Checker, seen: SeenInBatch) {
  const sourceUid = check.string('source_uid', true);
  const sourceName = check.string('source_name', true);
  const pipelineId = check.int('pipeline_id', false) ?? null;
  const rawMetadata = check.object('metadata');
  const metadata = rawMetadata ? parseMetadata(check, rawMetadata, seen) : undefined;
  // The people and the deal come from `_embedded` (the PHP library's examples/unsorted_actions.php).
  const embedded = isRecord(item._embedded) ? item._embedded : {};
  const newContacts = parseContacts(check, embedded);
  const rawLead = Array.isArray(embedded.leads) && isRecord(embedded.leads[0]) ? embedded.leads[0] : undefined;
  // "There can't be 2 of the same entity in the Incoming leads": the stricter reading counts a
  // second waiting entry from the same caller (number or contact phone) as the same entity.
  const keys = callerKeys(metadata?.from, newContacts.flatMap((contact) => contact.phones));
  if (keys.some((key) => seen.callers.has(key))) {
    check.errors.push({ code: 'Duplicate', path: newContacts.length > 0 ? '_embedded.contacts.0' : 'metadata.from', detail: 'An incoming lead from this caller is already waiting.' });
  }
  keys.forEach((key) => seen.callers.add(key));
  return {
    requestId,
    sourceUid,
    sourceName,
    pipelineId,
    metadata,
    newContacts,
    leadName: rawLead && typeof rawLead.name === 'string' ? rawLead.name : undefined,
    price: rawLead && isInt(rawLead.price) ? rawLead.price : 0,
  };
}
