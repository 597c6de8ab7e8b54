/**
 * HubSpot CRM v3 with a private app's access token. HubSpot does not attach a call by phone
 * number and does not deduplicate calls: we find (or, when configured, create) the contact
 * ourselves, create the call with its association in the same request, and keep our call id in a
 * custom call property, which is how a call is found again after a lost answer. CRM search is
 * eventually consistent ("may take a few moments" after a write), so the ledger waits that long
 * before it concludes an earlier attempt never created anything.
 *
 * Pacing: HubSpot's limits are per app and account, so with a database every worker takes its
 * slots from the same two buckets in PostgreSQL (all requests, and searches), keyed by the account's
 * URL and a fingerprint of the token (one private app of one account); live calls' lookups first.
 */
import { createHash } from 'node:crypto';
import { parsePhoneNumberFromString } from 'libphonenumber-js/max';
import type { HubspotConfig } from '../../config/schema.js';
import type { Db } from '../../db/pool.js';
import type { CrmEntity } from '../../shared/calls.js';
import { OutsideSystemError, RequestNotSentError, requestJson } from '../http.js';
import type { JsonRequest, JsonResponse } from '../http.js';
import { RateBucket, RequestGate, slotsFrom } from '../request-gate.js';
import type { Priority } from '../request-gate.js';
import type { CrmAdapter, CrmCall, CrmContact, IncomingLead, LoggedCall, LookupOptions } from './types.js';

interface HubspotObject {
  id: string;
  properties: Record<string, string | null | undefined>;
  associations?: Partial<Record<string, { results?: Array<{ id: string; type?: string }> }>>;
}
interface SearchAnswer {
  total: number;
  results: HubspotObject[];
}
interface HubspotOwner {
  id: string;
  email?: string;
  firstName?: string;
  lastName?: string;
}

/** HubSpot-defined association type ids (associations API defaults). */
export const HUBSPOT_ASSOCIATION_TYPES = {
  callToContact: 194,
  callToCompany: 182,
  taskToContact: 204,
  taskToCompany: 192,
} as const;

/** Internal values of HubSpot's default call outcomes (hs_call_disposition). */
const DISPOSITIONS = {
  busy: '9d9162e7-6cf3-4944-bf63-4dff82258764',
  connected: 'f240bbac-87c9-4f6e-bf70-924b57d47db7',
  leftVoicemail: 'b2cf5968-551e-4856-9783-52b3da59a7d0',
  noAnswer: '73a0d17f-1163-4015-bdd5-ec830791da20',
  wrongNumber: '17b47fee-58de-441e-a44c-c6300d46f273',
} as const;

const CONTACT_PROPERTIES = ['firstname', 'lastname', 'email', 'phone', 'mobilephone', 'company', 'associatedcompanyid', 'hubspot_owner_id'];

/** From our status (Kommo's call_status codes, see activities/crm.ts) to hs_call_status and the default outcome. */
export function hubspotCallOutcome(call: CrmCall): { status: string; disposition?: string } {
  switch (call.status) {
    case 4:
      return { status: 'COMPLETED', disposition: DISPOSITIONS.connected };
    case 1:
      return { status: 'COMPLETED', disposition: DISPOSITIONS.leftVoicemail };
    case 5:
      return { status: 'COMPLETED', disposition: DISPOSITIONS.wrongNumber };
    case 7:
      return { status: 'BUSY', disposition: DISPOSITIONS.busy };
    case 6:
      return { status: 'FAILED' };
    default:
      return call.answered ? { status: 'COMPLETED', disposition: DISPOSITIONS.connected } : { status: 'NO_ANSWER', disposition: DISPOSITIONS.noAnswer };
  }
}

/** The subject holds the call id: how a task created before a crash is found again. */
export function hubspotCallbackSubject(call: CrmCall): string {
  return `Call back: missed ${call.direction} call [${call.callId}]`;
}

/** HubSpot ids are numeric strings; ours are numbers (they stay well below 2^53). */
function numericId(id: string | null | undefined): number | undefined {
  if (!id || !/^\d+$/.test(id)) return undefined;
  const value = Number(id);
  return Number.isSafeInteger(value) && value > 0 ? value : undefined;
}

const text = (value: string | null | undefined): string | undefined => (value === null || value === undefined || value === '' ? undefined : value);

function policyOf(error: OutsideSystemError): string | undefined {
  const body = error.body;
  return typeof body === 'object' && body !== null && 'policyName' in body && typeof body.policyName === 'string' ? body.policyName : undefined;
}

/**
 * Answers that prove HubSpot did not act: it refused the request (auth, validation, rate limit),
 * or the request never left (cancelled before it was sent). Timeouts, dropped connections and
 * 5xx leave the outcome unknown.
 */
export function hubspotDidNotAct(error: unknown): boolean {
  if (error instanceof RequestNotSentError) return true;
  return error instanceof OutsideSystemError && error.status !== undefined && error.status >= 400 && error.status < 500 && error.status !== 408;
}

export interface HubspotDeps {
  /** PostgreSQL: the account's request budgets, shared by every worker. Without it (a test driving the adapter alone) they are this process's own. */
  db?: Db;
}

export function createHubspotAdapter(config: HubspotConfig, deps: HubspotDeps = {}): CrmAdapter {
  const base = config.baseUrl.replace(/\/$/, '');
  const property = config.callIdProperty;
  const perSecond = Math.max(1, Math.floor(config.rateLimitPerSecond));
  const searchesPerSecond = Math.max(1, Math.floor(config.searchRateLimitPerSecond));
  // The limits are the private app's in its account: the token names both (its fingerprint, never the token, names the bucket).
  const account = `${base}#${createHash('sha256').update(config.token).digest('hex').slice(0, 16)}`;
  const requests = new RateBucket(`hubspot:${account}`, perSecond);
  const general = new RequestGate('HubSpot', slotsFrom(deps.db, [requests]), perSecond);
  // A search counts against both limits: it goes when both allow it (one slot in each, at the same moment).
  const searches = new RequestGate('HubSpot', slotsFrom(deps.db, [requests, new RateBucket(`hubspot-search:${account}`, searchesPerSecond)]), searchesPerSecond);

  const send = async <T>(request: Omit<JsonRequest, 'system' | 'url'> & { path: string; search?: boolean; priority?: Priority }): Promise<JsonResponse<T>> => {
    const { path, search, priority = 'background', ...rest } = request;
    await (search ? searches : general).take(priority);
    try {
      // The caller names the body type it expects from this path.
      return await requestJson<T>({ ...rest, system: 'HubSpot', url: `${base}${path}`, headers: { authorization: `Bearer ${config.token}` } });
    } catch (error) {
      throw explain(error);
    }
  };

  /** Gives a 429 the wait its policy calls for, and names a missing custom property. */
  const explain = (error: unknown): unknown => {
    if (!(error instanceof OutsideSystemError)) return error;
    if (error.status === 429) {
      const policy = policyOf(error);
      // TEN_SECONDLY_ROLLING: the burst window (10 s); the search limit is per second; the daily
      // cap resets at midnight in the account's time zone, which we do not know: try again hourly.
      const waitMs = policy === 'DAILY' ? 3_600_000 : policy === 'TEN_SECONDLY_ROLLING' ? 10_000 : 1_000;
      return new OutsideSystemError('HubSpot', 'rate_limited', `${error.message.replace(/^HubSpot: /, '')} (${policy ?? 'rate limit'})`, 429, error.retryAfterMs ?? waitMs, error.body);
    }
    const message = typeof error.body === 'object' && error.body !== null && 'message' in error.body ? String(error.body.message) : '';
    if (error.status === 400 && message.includes('PROPERTY_DOESNT_EXIST') && message.includes(property)) {
      return new OutsideSystemError('HubSpot', 'rejected', `the account has no custom property "${property}"; create it (single-line text) on calls`, 400, undefined, error.body);
    }
    return error;
  };

  const search = async (objectType: string, body: Record<string, unknown>, priority: Priority = 'background'): Promise<HubspotObject[]> => {
    const response = await send<SearchAnswer>({ method: 'POST', path: `/crm/v3/objects/${objectType}/search`, json: body, search: true, priority });
    return response.body?.results ?? [];
  };

  const owners = new Map<number, { id: number; name?: string; email?: string }>();

  const toContact = (object: HubspotObject): CrmContact | undefined => {
    const id = numericId(object.id);
    if (id === undefined) return undefined;
    const p = object.properties;
    const name = [text(p.firstname), text(p.lastname)].filter(Boolean).join(' ');
    const companyId = numericId(p.associatedcompanyid);
    const ownerId = numericId(p.hubspot_owner_id);
    const phone = text(p.phone) ?? text(p.mobilephone);
    return {
      id,
      ...(name ? { name } : {}),
      ...(text(p.email) ? { email: text(p.email) } : {}),
      ...(phone ? { phone } : {}),
      ...(companyId ? { company: { id: companyId, ...(text(p.company) ? { name: text(p.company) } : {}) } } : {}),
      ...(ownerId ? { responsibleUserId: ownerId } : {}),
    };
  };

  /** Formats HubSpot keeps a phone in are free text: match on the national number, then check the whole number. */
  const findContactByPhone = async (phone: string, options?: LookupOptions): Promise<CrmContact | undefined> => {
    const parsed = parsePhoneNumberFromString(phone);
    if (!parsed) return undefined;
    const e164 = parsed.number;
    const national = parsed.nationalNumber;
    const eq = (propertyName: string, value: string) => ({ filters: [{ propertyName, operator: 'EQ', value }] });
    const results = await search('contacts', {
      filterGroups: [eq('phone', e164), eq('mobilephone', e164), eq('hs_searchable_calculated_phone_number', national), eq('hs_searchable_calculated_mobile_number', national)],
      properties: CONTACT_PROPERTIES,
      sorts: [{ propertyName: 'createdate', direction: 'ASCENDING' }],
      limit: 20,
    }, options?.live ? 'live' : 'background');
    // The national number alone matches other countries' numbers too.
    const same = (raw: string | null | undefined): boolean => {
      const value = text(raw);
      return value !== undefined && parsePhoneNumberFromString(value.replace(/^00/, '+'), parsed.country ?? 'US')?.number === e164;
    };
    const match = results.find((object) => same(object.properties.phone) || same(object.properties.mobilephone));
    return match ? toContact(match) : undefined;
  };

  const associationFor = (entity: CrmEntity, kind: 'call' | 'task'): number => {
    if (entity.type === 'contacts') return kind === 'call' ? HUBSPOT_ASSOCIATION_TYPES.callToContact : HUBSPOT_ASSOCIATION_TYPES.taskToContact;
    if (entity.type === 'companies') return kind === 'call' ? HUBSPOT_ASSOCIATION_TYPES.callToCompany : HUBSPOT_ASSOCIATION_TYPES.taskToCompany;
    throw new OutsideSystemError('HubSpot', 'rejected', `a ${kind} is logged on a contact or a company, not on "${entity.type}"`);
  };

  const associate = (entity: CrmEntity, kind: 'call' | 'task') => [
    { to: { id: String(entity.id) }, types: [{ associationCategory: 'HUBSPOT_DEFINED', associationTypeId: associationFor(entity, kind) }] },
  ];

  const callProperties = (call: CrmCall): Record<string, string> => {
    const outcome = hubspotCallOutcome(call);
    const inbound = call.direction === 'inbound';
    const [from, to] = inbound ? [call.customerPhone, call.linePhone] : [call.linePhone, call.customerPhone];
    return {
      hs_timestamp: new Date(call.startedAt).toISOString(),
      hs_call_title: `${inbound ? 'Inbound' : 'Outbound'} call`,
      hs_call_direction: inbound ? 'INBOUND' : 'OUTBOUND',
      hs_call_duration: String(Math.round(call.durationSeconds * 1000)),
      hs_call_status: outcome.status,
      ...(outcome.disposition ? { hs_call_disposition: outcome.disposition } : {}),
      ...(from ? { hs_call_from_number: from } : {}),
      ...(to ? { hs_call_to_number: to } : {}),
      ...(call.resultText ? { hs_call_body: call.resultText } : {}),
      // HubSpot takes only https recording URLs; a local http link is left out.
      ...(call.recordingLink?.startsWith('https://') ? { hs_call_recording_url: call.recordingLink } : {}),
      ...(call.responsibleUserId ? { hubspot_owner_id: String(call.responsibleUserId) } : {}),
      [property]: call.callId,
    };
  };

  const createdId = (response: JsonResponse<HubspotObject>, what: string): number => {
    const id = numericId(response.body?.id);
    if (id === undefined) throw new OutsideSystemError('HubSpot', 'rejected', `${what} response had no id`);
    return id;
  };

  const adapter: CrmAdapter = {
    name: 'hubspot',
    createsIncomingLeads: config.createContactForUnknownCallers,
    ledger: { unknownOutcomeGraceSeconds: config.searchIndexLagSeconds, definiteFailure: hubspotDidNotAct },

    findContactByPhone,

    async enrich(contact, options) {
      const priority: Priority = options?.live ? 'live' : 'background';
      const read = await send<HubspotObject>({ path: `/crm/v3/objects/contacts/${contact.id}?associations=calls&properties=firstname`, accept: [404], priority });
      const callIds = read.status === 200 ? (read.body?.associations?.calls?.results ?? []).map((item) => item.id) : [];
      // Newest ten: ids grow with creation.
      const latest = [...new Set(callIds)].sort((a, b) => Number(b) - Number(a)).slice(0, 10);
      let calls: HubspotObject[] = [];
      if (latest.length > 0) {
        const batch = await send<{ results?: HubspotObject[] }>({
          method: 'POST',
          path: '/crm/v3/objects/calls/batch/read',
          json: { inputs: latest.map((id) => ({ id })), properties: ['hs_timestamp', 'hs_call_direction', 'hs_call_body'] },
          accept: [207],
          priority,
        });
        calls = batch.body?.results ?? [];
      }
      let representative = contact.responsibleUserId ? owners.get(contact.responsibleUserId) : undefined;
      if (contact.responsibleUserId && !representative) {
        const owner = await send<HubspotOwner>({ path: `/crm/v3/owners/${contact.responsibleUserId}`, accept: [404], priority });
        const ownerId = numericId(owner.body?.id);
        if (owner.status === 200 && owner.body && ownerId) {
          const name = [owner.body.firstName, owner.body.lastName].filter(Boolean).join(' ');
          representative = { id: ownerId, ...(name ? { name } : {}), ...(owner.body.email ? { email: owner.body.email } : {}) };
          owners.set(ownerId, representative);
        }
      }
      const at = (object: HubspotObject): number => {
        const raw = object.properties.hs_timestamp ?? '';
        return /^\d+$/.test(raw) ? Number(raw) : Date.parse(raw);
      };
      return {
        contact: { id: contact.id, ...(contact.name ? { name: contact.name } : {}) },
        ...(contact.company ? { account: contact.company } : {}),
        previousInteractions: calls
          .filter((object) => Number.isFinite(at(object)))
          .sort((a, b) => at(b) - at(a))
          .map((object) => ({
            at: new Date(at(object)).toISOString(),
            type: object.properties.hs_call_direction === 'OUTBOUND' ? 'call_out' : 'call_in',
            ...(text(object.properties.hs_call_body) ? { summary: text(object.properties.hs_call_body) } : {}),
          })),
        ...(representative ? { assignedRepresentative: representative } : {}),
      };
    },

    async logCall(call, entity) {
      let target = entity;
      if (!target) {
        const contact = await findContactByPhone(call.customerPhone);
        if (!contact) return undefined;
        target = { type: 'contacts', id: contact.id };
      }
      const response = await send<HubspotObject>({
        method: 'POST',
        path: '/crm/v3/objects/calls',
        json: { properties: callProperties(call), associations: associate(target, 'call') },
      });
      return { noteId: createdId(response, 'call'), entity: target } satisfies LoggedCall;
    },

    async findLoggedCall(call, entity) {
      const [found] = await search('calls', {
        filterGroups: [{ filters: [{ propertyName: property, operator: 'EQ', value: call.callId }] }],
        properties: [property],
        sorts: [{ propertyName: 'hs_createdate', direction: 'ASCENDING' }],
        limit: 1,
      });
      const noteId = numericId(found?.id);
      if (!found || noteId === undefined) return undefined;
      if (entity) return { noteId, entity };
      const read = await send<HubspotObject>({ path: `/crm/v3/objects/calls/${found.id}?associations=contacts,companies` });
      const contactId = numericId(read.body?.associations?.contacts?.results?.[0]?.id);
      if (contactId) return { noteId, entity: { type: 'contacts', id: contactId } };
      const companyId = numericId(read.body?.associations?.companies?.results?.[0]?.id);
      if (companyId) return { noteId, entity: { type: 'companies', id: companyId } };
      // Logging it again would duplicate it; an operator has to look at a call someone detached.
      throw new OutsideSystemError('HubSpot', 'rejected', `call ${found.id} holds this call id but is associated with no contact or company`);
    },

    /** HubSpot has no incoming ("unsorted") lead: an unknown caller becomes a contact in the lead stage. */
    async createIncomingLead(call) {
      if (!config.createContactForUnknownCallers) {
        throw new OutsideSystemError('HubSpot', 'rejected', 'creating contacts for unknown callers is turned off (createContactForUnknownCallers)');
      }
      const parsed = parsePhoneNumberFromString(call.customerPhone);
      const response = await send<HubspotObject>({
        method: 'POST',
        path: '/crm/v3/objects/contacts',
        json: { properties: { phone: parsed?.number ?? call.customerPhone, lifecyclestage: 'lead', hs_lead_status: 'NEW' } },
      });
      const id = createdId(response, 'contact');
      return { uid: String(id), leadId: id, contactId: id, entity: { type: 'contacts', id } } satisfies IncomingLead;
    },

    async findIncomingLead(call) {
      const contact = await findContactByPhone(call.customerPhone);
      return contact ? { uid: String(contact.id), leadId: contact.id, contactId: contact.id, entity: { type: 'contacts', id: contact.id } } : undefined;
    },

    async createCallbackTask(call, entity, dueAt) {
      const response = await send<HubspotObject>({
        method: 'POST',
        path: '/crm/v3/objects/tasks',
        json: {
          properties: {
            hs_timestamp: dueAt.toISOString(),
            hs_task_subject: hubspotCallbackSubject(call),
            hs_task_body: `Missed ${call.direction} call at ${new Date(call.startedAt).toISOString()}.`,
            hs_task_status: 'NOT_STARTED',
            hs_task_type: 'CALL',
            hs_task_priority: 'HIGH',
            ...(call.responsibleUserId ? { hubspot_owner_id: String(call.responsibleUserId) } : {}),
          },
          associations: associate(entity, 'task'),
        },
      });
      return { taskId: createdId(response, 'task') };
    },

    async findCallbackTask(call) {
      const [task] = await search('tasks', {
        filterGroups: [{ filters: [{ propertyName: 'hs_task_subject', operator: 'EQ', value: hubspotCallbackSubject(call) }] }],
        properties: ['hs_task_subject'],
        limit: 1,
      });
      const taskId = numericId(task?.id);
      return taskId ? { taskId } : undefined;
    },
  };
  return adapter;
}
