// HubSpot CRM v3 stand-in: contacts, companies, calls, tasks, owners and CRM search (see CONTRACTS.md).
import { randomUUID } from 'node:crypto';
import express from 'express';
import type { Request, Response } from 'express';
import { parsePhoneNumberFromString } from 'libphonenumber-js/max';
import type { CountryCode } from 'libphonenumber-js/max';
import {
  bearerToken,
  controlRoutes,
  createApp,
  defaultRouteKey,
  isControlPath,
  isRecord,
  jsonBody,
  listen,
  OutageSwitch,
  RequestCounter,
  RollingWindow,
  systemClock,
} from './http.js';
import type { Clock, RequestCounts } from './http.js';

export type HubspotObjectType = 'contacts' | 'companies' | 'calls' | 'tasks';
const OBJECT_TYPES: readonly HubspotObjectType[] = ['contacts', 'companies', 'calls', 'tasks'];

export interface HubspotSandboxOptions {
  port?: number;
  /** The private app's access token, sent as `Authorization: Bearer <token>`. */
  token: string;
  /** Requests per rolling burst window per app and account (private apps on Free/Starter: 100 per 10 s). */
  burstLimit?: number;
  burstWindowMs?: number;
  /** Requests per day per account (Free/Starter: 250,000); counted from the sandbox's start. */
  dailyLimit?: number;
  /** CRM search requests per rolling second per account (documented as 4, later 5; the sandbox keeps 4). */
  searchPerSecond?: number;
  /** How long a created object stays invisible to CRM search ("may take a few moments"). */
  searchIndexDelayMs?: number;
  /** Country HubSpot reads national phone numbers in when it computes the searchable phone properties. */
  defaultCountry?: CountryCode;
  /** Custom properties the account has defined, per object type (e.g. `{ calls: ['switchboard_call_id'] }`). */
  customProperties?: Partial<Record<HubspotObjectType, string[]>>;
  clock?: Clock;
}

export interface HubspotAssociation {
  toObjectType: HubspotObjectType;
  toObjectId: string;
  associationTypeId: number;
}

/** An object as stored: what the API returns, plus its outgoing associations and when search sees it. */
export interface HubspotStoredObject {
  id: string;
  objectType: HubspotObjectType;
  properties: Record<string, string>;
  createdAt: string;
  updatedAt: string;
  archived: false;
  associations: HubspotAssociation[];
  /** Epoch milliseconds from which CRM search returns the object. */
  searchableFrom: number;
}

export interface HubspotOwner {
  id: string;
  email: string;
  firstName: string;
  lastName: string;
  userId: number;
  createdAt: string;
  updatedAt: string;
  archived: false;
}

export interface HubspotState {
  contacts: HubspotStoredObject[];
  companies: HubspotStoredObject[];
  calls: HubspotStoredObject[];
  tasks: HubspotStoredObject[];
  owners: HubspotOwner[];
  requests: RequestCounts & { searches: number; rateLimitedByPolicy: Record<string, number> };
}

export interface HubspotSeedContactInput {
  firstname: string;
  lastname?: string;
  phone?: string;
  mobilephone?: string;
  email?: string;
  /** Creates (or reuses) a company of this name as the contact's primary company. */
  company?: string;
  ownerId?: string;
}

export interface HubspotSandbox {
  url: string;
  state(): HubspotState;
  setOutage(down: boolean): void;
  /** A contact that existed before the test: searchable at once. */
  seedContact(input: HubspotSeedContactInput): HubspotStoredObject;
  seedOwner(input: { id?: string; email: string; firstName: string; lastName: string }): HubspotOwner;
  stop(): Promise<void>;
}

type PropertyType = 'string' | 'number' | 'datetime' | 'enumeration' | 'url' | 'owner';
interface PropertyDefinition {
  type: PropertyType;
  options?: readonly string[];
  readOnly?: boolean;
  required?: boolean;
}

const CALL_STATUSES = ['BUSY', 'CALLING_CRM_USER', 'CANCELED', 'COMPLETED', 'CONNECTING', 'FAILED', 'IN_PROGRESS', 'NO_ANSWER', 'QUEUED', 'RINGING'] as const;
/** The default call outcomes (hs_call_disposition takes their internal GUIDs). */
export const HUBSPOT_CALL_DISPOSITIONS = {
  busy: '9d9162e7-6cf3-4944-bf63-4dff82258764',
  connected: 'f240bbac-87c9-4f6e-bf70-924b57d47db7',
  leftLiveMessage: 'a4c4c377-d246-4b32-a13b-75a56a4cd0ff',
  leftVoicemail: 'b2cf5968-551e-4856-9783-52b3da59a7d0',
  noAnswer: '73a0d17f-1163-4015-bdd5-ec830791da20',
  wrongNumber: '17b47fee-58de-441e-a44c-c6300d46f273',
} as const;

const readOnly = (type: PropertyType = 'string'): PropertyDefinition => ({ type, readOnly: true });
const common: Record<string, PropertyDefinition> = { hs_object_id: readOnly('number') };
const engagementDates: Record<string, PropertyDefinition> = { hs_createdate: readOnly('datetime'), hs_lastmodifieddate: readOnly('datetime') };

/** The default properties the sandbox knows, per object type (a subset of HubSpot's, enough for calls and tasks). */
const DEFAULT_PROPERTIES: Record<HubspotObjectType, Record<string, PropertyDefinition>> = {
  contacts: {
    ...common,
    firstname: { type: 'string' },
    lastname: { type: 'string' },
    email: { type: 'string' },
    phone: { type: 'string' },
    mobilephone: { type: 'string' },
    company: { type: 'string' },
    associatedcompanyid: { type: 'number' },
    hubspot_owner_id: { type: 'owner' },
    lifecyclestage: { type: 'enumeration', options: ['subscriber', 'lead', 'marketingqualifiedlead', 'salesqualifiedlead', 'opportunity', 'customer', 'evangelist', 'other'] },
    hs_lead_status: { type: 'enumeration', options: ['NEW', 'OPEN', 'IN_PROGRESS', 'OPEN_DEAL', 'UNQUALIFIED', 'ATTEMPTED_TO_CONTACT', 'CONNECTED', 'BAD_TIMING'] },
    createdate: readOnly('datetime'),
    lastmodifieddate: readOnly('datetime'),
    hs_searchable_calculated_phone_number: readOnly(),
    hs_searchable_calculated_mobile_number: readOnly(),
  },
  companies: { ...common, name: { type: 'string' }, domain: { type: 'string' }, phone: { type: 'string' }, createdate: readOnly('datetime'), hs_lastmodifieddate: readOnly('datetime') },
  calls: {
    ...common,
    ...engagementDates,
    hs_timestamp: { type: 'datetime', required: true },
    hs_call_body: { type: 'string' },
    hs_call_callee_object_id: { type: 'number' },
    hs_call_callee_object_type: { type: 'string' },
    hs_call_direction: { type: 'enumeration', options: ['INBOUND', 'OUTBOUND'] },
    hs_call_disposition: { type: 'enumeration', options: Object.values(HUBSPOT_CALL_DISPOSITIONS) },
    hs_call_duration: { type: 'number' },
    hs_call_from_number: { type: 'string' },
    hs_call_recording_url: { type: 'url' },
    hs_call_status: { type: 'enumeration', options: CALL_STATUSES },
    hs_call_title: { type: 'string' },
    hs_call_source: { type: 'enumeration', options: ['INTEGRATIONS_PLATFORM'] },
    hs_call_to_number: { type: 'string' },
    hubspot_owner_id: { type: 'owner' },
    hs_activity_type: { type: 'string' },
    hs_attachment_ids: { type: 'string' },
  },
  tasks: {
    ...common,
    ...engagementDates,
    hs_timestamp: { type: 'datetime', required: true },
    hs_task_body: { type: 'string' },
    hubspot_owner_id: { type: 'owner' },
    hs_task_subject: { type: 'string' },
    // The tasks guide lists COMPLETED and NOT_STARTED (its own example uses WAITING): the sandbox takes only the two listed.
    hs_task_status: { type: 'enumeration', options: ['COMPLETED', 'NOT_STARTED'] },
    hs_task_priority: { type: 'enumeration', options: ['LOW', 'MEDIUM', 'HIGH'] },
    hs_task_type: { type: 'enumeration', options: ['EMAIL', 'CALL', 'TODO'] },
    hs_task_reminders: { type: 'number' },
  },
};

/** Properties a search or read returns when the request names none. */
const DEFAULT_RETURNED: Record<HubspotObjectType, string[]> = {
  contacts: ['createdate', 'email', 'firstname', 'hs_object_id', 'lastmodifieddate', 'lastname'],
  companies: ['createdate', 'domain', 'hs_lastmodifieddate', 'hs_object_id', 'name'],
  calls: ['hs_createdate', 'hs_lastmodifieddate', 'hs_object_id'],
  tasks: ['hs_createdate', 'hs_lastmodifieddate', 'hs_object_id'],
};

/** HubSpot-defined association types (the associations API's default type ids) between the sandbox's objects. */
const ASSOCIATION_TYPES: Record<HubspotObjectType, Partial<Record<number, HubspotObjectType>>> = {
  calls: { 194: 'contacts', 182: 'companies' },
  tasks: { 204: 'contacts', 192: 'companies' },
  contacts: { 1: 'companies', 279: 'companies', 193: 'calls', 203: 'tasks' },
  companies: { 280: 'contacts', 181: 'calls', 191: 'tasks' },
};
const SINGULAR: Record<HubspotObjectType, string> = { contacts: 'contact', companies: 'company', calls: 'call', tasks: 'task' };

const OPERATORS = ['EQ', 'NEQ', 'LT', 'LTE', 'GT', 'GTE', 'BETWEEN', 'IN', 'NOT_IN', 'HAS_PROPERTY', 'NOT_HAS_PROPERTY', 'CONTAINS_TOKEN', 'NOT_CONTAINS_TOKEN'] as const;
type Operator = (typeof OPERATORS)[number];

interface HubspotErrorBody {
  status: 'error';
  message: string;
  correlationId: string;
  category: string;
  errors?: Array<{ message: string; code?: string; in?: string; context?: Record<string, string[]> }>;
  context?: Record<string, string[]>;
}

function sendError(res: Response, status: number, category: string, message: string, extra: Partial<HubspotErrorBody> = {}): void {
  const body: HubspotErrorBody = { status: 'error', message, correlationId: randomUUID(), category, ...extra };
  res.status(status).json(body);
}

/** One invalid property value, as HubSpot lists them inside "Property values were not valid". */
interface PropertyProblem {
  isValid: false;
  message: string;
  error: string;
  name: string;
}

function propertyProblems(res: Response, problems: PropertyProblem[]): void {
  sendError(res, 400, 'VALIDATION_ERROR', `Property values were not valid: ${JSON.stringify(problems)}`);
}

/** Digits of the national number: HubSpot's calculated, formatting-free phone property. */
function searchablePhone(raw: string, country: CountryCode): string {
  const parsed = parsePhoneNumberFromString(raw.trim().replace(/^00/, '+'), country);
  if (parsed) return parsed.nationalNumber;
  return raw.replace(/\D/g, '').replace(/^0+/, '');
}

const isDateValue = (value: string): boolean => (/^\d{1,15}$/.test(value) ? true : /^\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(value) && !Number.isNaN(Date.parse(value)));
const toMillis = (value: string): number => (/^\d+$/.test(value) ? Number(value) : Date.parse(value));

export async function startHubspotSandbox(options: HubspotSandboxOptions): Promise<HubspotSandbox> {
  const clock = options.clock ?? systemClock;
  const iso = (at = clock()): string => new Date(at).toISOString();
  const country = options.defaultCountry ?? 'US';
  const indexDelayMs = options.searchIndexDelayMs ?? 2_000;
  const burstLimit = options.burstLimit ?? 100;
  const burstWindowMs = options.burstWindowMs ?? 10_000;
  const dailyLimit = options.dailyLimit ?? 250_000;

  const objects: Record<HubspotObjectType, HubspotStoredObject[]> = { contacts: [], companies: [], calls: [], tasks: [] };
  const owners: HubspotOwner[] = [];
  // HubSpot ids are numeric strings from one account-wide sequence.
  let nextId = 10_001;
  let nextOwnerId = 700_001;

  const propertiesOf = (type: HubspotObjectType): Record<string, PropertyDefinition> => {
    const custom = Object.fromEntries((options.customProperties?.[type] ?? []).map((name): [string, PropertyDefinition] => [name, { type: 'string' }]));
    return { ...DEFAULT_PROPERTIES[type], ...custom };
  };

  const counter = new RequestCounter(defaultRouteKey);
  const outage = new OutageSwitch();
  const burst = new RollingWindow(burstWindowMs, clock);
  const searchWindow = new RollingWindow(1_000, clock);
  const searchPerSecond = options.searchPerSecond ?? 4;
  let dailyUsed = 0;
  let searches = 0;
  const rateLimitedByPolicy: Record<string, number> = {};

  const find = (type: HubspotObjectType, id: unknown): HubspotStoredObject | undefined =>
    typeof id === 'string' || typeof id === 'number' ? objects[type].find((object) => object.id === String(id)) : undefined;

  /** Stores an object with HubSpot's system properties; `searchableFrom` models the search index lag. */
  function store(type: HubspotObjectType, properties: Record<string, string>, associations: HubspotAssociation[], searchableFrom: number): HubspotStoredObject {
    const now = clock();
    const id = String(nextId++);
    const system: Record<string, string> =
      type === 'contacts' || type === 'companies'
        ? { createdate: iso(now), [type === 'contacts' ? 'lastmodifieddate' : 'hs_lastmodifieddate']: iso(now) }
        : { hs_createdate: iso(now), hs_lastmodifieddate: iso(now) };
    const all: Record<string, string> = { ...properties, ...system, hs_object_id: id };
    if (type === 'contacts') {
      if (all.phone) all.hs_searchable_calculated_phone_number = searchablePhone(all.phone, country);
      if (all.mobilephone) all.hs_searchable_calculated_mobile_number = searchablePhone(all.mobilephone, country);
    }
    const object: HubspotStoredObject = { id, objectType: type, properties: all, createdAt: iso(now), updatedAt: iso(now), archived: false, associations, searchableFrom };
    objects[type].push(object);
    return object;
  }

  /** Associations of an object in both directions, as `{ toObjectType: [ids] }`. */
  function associationsOf(object: HubspotStoredObject, toType: HubspotObjectType): Array<{ id: string; type: string }> {
    const found = new Map<string, string>();
    for (const association of object.associations) {
      if (association.toObjectType === toType) found.set(association.toObjectId, `${SINGULAR[object.objectType]}_to_${SINGULAR[toType]}`);
    }
    for (const other of objects[toType]) {
      if (other.associations.some((association) => association.toObjectType === object.objectType && association.toObjectId === object.id)) {
        found.set(other.id, `${SINGULAR[object.objectType]}_to_${SINGULAR[toType]}`);
      }
    }
    return [...found].map(([id, type]) => ({ id, type }));
  }

  function seedOwner(input: { id?: string; email: string; firstName: string; lastName: string }): HubspotOwner {
    const owner: HubspotOwner = { id: input.id ?? String(nextOwnerId++), email: input.email, firstName: input.firstName, lastName: input.lastName, userId: 9_000_000 + owners.length, createdAt: iso(), updatedAt: iso(), archived: false };
    owners.push(owner);
    return { ...owner };
  }

  function seedContact(input: HubspotSeedContactInput): HubspotStoredObject {
    const properties: Record<string, string> = { firstname: input.firstname };
    if (input.lastname !== undefined) properties.lastname = input.lastname;
    if (input.phone !== undefined) properties.phone = input.phone;
    if (input.mobilephone !== undefined) properties.mobilephone = input.mobilephone;
    if (input.email !== undefined) properties.email = input.email;
    if (input.ownerId !== undefined) properties.hubspot_owner_id = input.ownerId;
    const associations: HubspotAssociation[] = [];
    if (input.company !== undefined) {
      const company = objects.companies.find((item) => item.properties.name === input.company) ?? store('companies', { name: input.company }, [], clock());
      properties.company = input.company;
      properties.associatedcompanyid = company.id;
      associations.push({ toObjectType: 'companies', toObjectId: company.id, associationTypeId: 1 });
    }
    // Seeded data existed before the test, so the search index already has it.
    return structuredClone(store('contacts', properties, associations, clock()));
  }

  const state = (): HubspotState =>
    structuredClone({ ...objects, owners, requests: { ...counter.snapshot(), searches, rateLimitedByPolicy } });

  /** The object as the API shows it: the requested properties (null when unset), or the defaults. */
  function present(object: HubspotStoredObject, requested: string[] | undefined, associationTypes: HubspotObjectType[] = []): Record<string, unknown> {
    const names = requested && requested.length > 0 ? [...new Set([...requested, ...DEFAULT_RETURNED[object.objectType]])] : DEFAULT_RETURNED[object.objectType];
    const known = propertiesOf(object.objectType);
    const properties: Record<string, string | null> = {};
    // A requested property the account does not define is left out; a defined one without a value is null.
    for (const name of names) if (name in known) properties[name] = object.properties[name] ?? null;
    const shown: Record<string, unknown> = { id: object.id, properties, createdAt: object.createdAt, updatedAt: object.updatedAt, archived: false };
    const associations: Record<string, unknown> = {};
    for (const type of associationTypes) {
      const results = associationsOf(object, type);
      if (results.length > 0) associations[type] = { results };
    }
    if (Object.keys(associations).length > 0) shown.associations = associations;
    return shown;
  }

  const app = createApp();
  controlRoutes(app, state, outage);
  app.post('/_sandbox/contacts', express.json(), (req: Request, res: Response) => {
    const body: unknown = req.body;
    if (!isRecord(body) || typeof body.firstname !== 'string') {
      res.status(400).json({ error: 'expected {firstname, lastname?, phone?, mobilephone?, email?, company?, ownerId?}' });
      return;
    }
    const text = (key: string): string | undefined => (typeof body[key] === 'string' ? body[key] : undefined);
    const input: HubspotSeedContactInput = { firstname: body.firstname };
    for (const key of ['lastname', 'phone', 'mobilephone', 'email', 'company', 'ownerId'] as const) {
      const value = text(key);
      if (value !== undefined) input[key] = value;
    }
    res.status(201).json(seedContact(input));
  });
  app.post('/_sandbox/owners', express.json(), (req: Request, res: Response) => {
    const body: unknown = req.body;
    if (!isRecord(body) || typeof body.email !== 'string' || typeof body.firstName !== 'string' || typeof body.lastName !== 'string') {
      res.status(400).json({ error: 'expected {id?, email, firstName, lastName}' });
      return;
    }
    res.status(201).json(seedOwner({ email: body.email, firstName: body.firstName, lastName: body.lastName, ...(typeof body.id === 'string' ? { id: body.id } : {}) }));
  });

  app.use(counter.middleware());
  app.use(outage.middleware((res) => sendError(res, 503, 'SERVICE_UNAVAILABLE', 'Service Unavailable')));
  app.use((req, res, next) => {
    if (isControlPath(req)) return next();
    if (bearerToken(req) === options.token) return next();
    sendError(
      res,
      401,
      'INVALID_AUTHENTICATION',
      'Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview',
    );
  });

  const isSearch = (req: Request): boolean => req.method === 'POST' && /^\/crm\/v3\/objects\/[a-z_]+\/search$/.test(req.path);
  // Private-app rate limits: a daily cap and a rolling burst window, plus the search endpoints' own per-second limit.
  app.use((req, res, next) => {
    if (isControlPath(req)) return next();
    const limitHeaders = (): void => {
      res.set('X-HubSpot-RateLimit-Daily', String(dailyLimit));
      res.set('X-HubSpot-RateLimit-Daily-Remaining', String(Math.max(0, dailyLimit - dailyUsed)));
      res.set('X-HubSpot-RateLimit-Interval-Milliseconds', String(burstWindowMs));
      res.set('X-HubSpot-RateLimit-Max', String(burstLimit));
    };
    const refuse = (policyName: string, message: string, headers: boolean): void => {
      counter.rateLimited();
      rateLimitedByPolicy[policyName] = (rateLimitedByPolicy[policyName] ?? 0) + 1;
      if (headers) {
        limitHeaders();
        res.set('X-HubSpot-RateLimit-Remaining', '0');
      }
      res.status(429).json({ status: 'error', message, errorType: 'RATE_LIMIT', correlationId: randomUUID(), policyName, requestId: randomUUID() });
    };
    const searching = isSearch(req);
    if (dailyUsed >= dailyLimit) return refuse('DAILY', 'You have reached your daily limit.', !searching);
    if (searching && searchWindow.count() >= searchPerSecond) return refuse('SECONDLY', 'You have reached your secondly limit.', false);
    if (burst.count() >= burstLimit) return refuse('TEN_SECONDLY_ROLLING', 'You have reached your ten_secondly_rolling limit.', !searching);
    // Refused requests do not use up the allowance.
    burst.record();
    dailyUsed++;
    if (searching) {
      // Search answers carry no rate-limit headers; the other endpoints do.
      searchWindow.record();
      searches++;
    } else {
      limitHeaders();
      res.set('X-HubSpot-RateLimit-Remaining', String(Math.max(0, burstLimit - burst.count())));
    }
    next();
  });

  const json = jsonBody((res, status) =>
    status === 413 ? sendError(res, 413, 'VALIDATION_ERROR', 'Request body too large') : sendError(res, 400, 'VALIDATION_ERROR', 'Invalid input JSON: the request body could not be parsed'),
  );
  const objectType = (req: Request): HubspotObjectType | undefined => {
    const raw = req.params.objectType;
    return OBJECT_TYPES.find((type) => type === raw);
  };
  const listParam = (req: Request, key: string): string[] | undefined => {
    const raw = req.query[key];
    if (typeof raw !== 'string') return undefined;
    return raw.split(',').map((part) => part.trim()).filter((part) => part !== '');
  };

  /** Checks a create's properties against the account's definitions; returns the stored string values. */
  function checkProperties(type: HubspotObjectType, raw: unknown): { values: Record<string, string>; problems: PropertyProblem[] } {
    const problems: PropertyProblem[] = [];
    const values: Record<string, string> = {};
    const definitions = propertiesOf(type);
    const given = isRecord(raw) ? raw : {};
    for (const [name, value] of Object.entries(given)) {
      const definition = definitions[name];
      const problem = (error: string, message: string): void => {
        problems.push({ isValid: false, message, error, name });
      };
      if (!definition) {
        problem('PROPERTY_DOESNT_EXIST', `Property "${name}" does not exist`);
        continue;
      }
      if (definition.readOnly) {
        problem('READ_ONLY_VALUE', `"${name}" is a read only property; its value cannot be set.`);
        continue;
      }
      if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
        problem('INVALID_TYPE', `${JSON.stringify(value)} is not a valid value for ${name}`);
        continue;
      }
      const text = String(value);
      if (text === '') continue;
      if (definition.type === 'number' && !Number.isFinite(Number(text))) problem('INVALID_INTEGER', `${text} is not a valid number`);
      else if (definition.type === 'datetime' && !isDateValue(text)) problem('INVALID_DATE', `${text} is not a valid date: use epoch milliseconds or an ISO 8601 UTC time`);
      else if (definition.type === 'enumeration' && !(definition.options ?? []).includes(text)) {
        problem('INVALID_OPTION', `${text} was not one of the allowed options: ${(definition.options ?? []).join(', ')}`);
      } else if (definition.type === 'owner' && !owners.some((owner) => owner.id === text)) problem('INVALID_OPTION', `${text} is not a valid owner id`);
      else if (definition.type === 'url' && !/^https:\/\/[^\s]+$/.test(text)) problem('INVALID_URL', `${name} only accepts secure (https://) URLs`);
      else values[name] = text;
    }
    for (const [name, definition] of Object.entries(definitions)) {
      if (definition.required && values[name] === undefined && !problems.some((item) => item.name === name)) {
        problems.push({ isValid: false, message: `${name} is required`, error: 'REQUIRED', name });
      }
    }
    return { values, problems };
  }

  /** Parses `associations` of a create: each needs an existing target and a type id valid from this object type. */
  function checkAssociations(type: HubspotObjectType, raw: unknown): { associations: HubspotAssociation[]; errors: string[] } {
    const associations: HubspotAssociation[] = [];
    const errors: string[] = [];
    if (raw === undefined) return { associations, errors };
    if (!Array.isArray(raw)) return { associations, errors: ['associations must be an array'] };
    for (const [index, item] of raw.entries()) {
      const to: unknown = isRecord(item) ? item.to : undefined;
      const types: unknown = isRecord(item) ? item.types : undefined;
      const toId = isRecord(to) && (typeof to.id === 'string' || typeof to.id === 'number') ? String(to.id) : undefined;
      if (toId === undefined || !Array.isArray(types) || types.length === 0) {
        errors.push(`associations[${index}]: to.id and a non-empty types array are required`);
        continue;
      }
      for (const spec of types) {
        const category = isRecord(spec) ? spec.associationCategory : undefined;
        const typeId = isRecord(spec) ? spec.associationTypeId : undefined;
        if (category !== 'HUBSPOT_DEFINED' && category !== 'USER_DEFINED' && category !== 'INTEGRATOR_DEFINED') {
          errors.push(`associations[${index}]: associationCategory must be HUBSPOT_DEFINED, USER_DEFINED or INTEGRATOR_DEFINED`);
          continue;
        }
        const target = typeof typeId === 'number' && category === 'HUBSPOT_DEFINED' ? ASSOCIATION_TYPES[type][typeId] : undefined;
        if (target === undefined || typeof typeId !== 'number') {
          errors.push(`associations[${index}]: ${String(typeId)} is not a valid association type id from ${SINGULAR[type]} (${category as string})`);
          continue;
        }
        if (!find(target, toId)) {
          errors.push(`associations[${index}]: no ${SINGULAR[target]} with id ${toId} exists`);
          continue;
        }
        associations.push({ toObjectType: target, toObjectId: toId, associationTypeId: typeId });
      }
    }
    return { associations, errors };
  }

  app.post('/crm/v3/objects/:objectType/search', json, (req, res) => {
    const type = objectType(req);
    if (!type) return sendError(res, 404, 'OBJECT_NOT_FOUND', `Unable to infer object type from: ${String(req.params.objectType)}`);
    const body: unknown = req.body ?? {};
    if (!isRecord(body)) return sendError(res, 400, 'VALIDATION_ERROR', 'The request body must be a JSON object');
    if (JSON.stringify(body).length > 3_000) return sendError(res, 400, 'VALIDATION_ERROR', 'The search request exceeds 3,000 characters');
    const limit = body.limit === undefined ? 10 : body.limit;
    if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 0 || limit > 200) {
      return sendError(res, 400, 'VALIDATION_ERROR', 'limit must be an integer from 0 to 200');
    }
    const after = body.after === undefined ? 0 : Number(body.after);
    if (!Number.isInteger(after) || after < 0) return sendError(res, 400, 'VALIDATION_ERROR', 'after must be a paging cursor from a previous page');
    if (after + limit > 10_000) return sendError(res, 400, 'VALIDATION_ERROR', 'Search results are limited to 10,000 per query');
    const definitions = propertiesOf(type);
    const groups = body.filterGroups === undefined ? [] : body.filterGroups;
    if (!Array.isArray(groups)) return sendError(res, 400, 'VALIDATION_ERROR', 'filterGroups must be an array');
    if (groups.length > 5) return sendError(res, 400, 'VALIDATION_ERROR', 'A search can have at most 5 filterGroups');
    type Filter = { propertyName: string; operator: Operator; value?: string; highValue?: string; values?: string[] };
    const parsedGroups: Filter[][] = [];
    let total = 0;
    for (const group of groups) {
      const filters: unknown = isRecord(group) ? group.filters : undefined;
      if (!Array.isArray(filters)) return sendError(res, 400, 'VALIDATION_ERROR', 'Each filter group needs a filters array');
      if (filters.length > 10) return sendError(res, 400, 'VALIDATION_ERROR', 'A filter group can have at most 10 filters');
      total += filters.length;
      const parsed: Filter[] = [];
      for (const filter of filters) {
        if (!isRecord(filter) || typeof filter.propertyName !== 'string' || !OPERATORS.includes(filter.operator as Operator)) {
          return sendError(res, 400, 'VALIDATION_ERROR', `Each filter needs a propertyName and an operator (${OPERATORS.join(', ')})`);
        }
        const association = /^associations\.(contact|company|call|task)$/.exec(filter.propertyName);
        if (!association && !(filter.propertyName in definitions)) {
          return sendError(res, 400, 'VALIDATION_ERROR', `There was a problem with the request: property ${filter.propertyName} does not exist on ${type}`);
        }
        const asText = (value: unknown): string | undefined => (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' ? String(value) : undefined);
        const values = Array.isArray(filter.values) ? filter.values.map(asText).filter((value): value is string => value !== undefined) : undefined;
        const operator = filter.operator as Operator;
        const value = asText(filter.value);
        const highValue = asText(filter.highValue);
        const needsValue = !['HAS_PROPERTY', 'NOT_HAS_PROPERTY', 'IN', 'NOT_IN'].includes(operator);
        if ((needsValue && value === undefined) || ((operator === 'IN' || operator === 'NOT_IN') && !values) || (operator === 'BETWEEN' && highValue === undefined)) {
          return sendError(res, 400, 'VALIDATION_ERROR', `Filter on ${filter.propertyName}: ${operator} needs ${operator === 'BETWEEN' ? 'value and highValue' : operator.endsWith('IN') ? 'values' : 'a value'}`);
        }
        parsed.push({ propertyName: filter.propertyName, operator, ...(value !== undefined ? { value } : {}), ...(highValue !== undefined ? { highValue } : {}), ...(values ? { values } : {}) });
      }
      parsedGroups.push(parsed);
    }
    if (total > 25) return sendError(res, 400, 'VALIDATION_ERROR', 'A search can have at most 25 filters in total');
    const properties = Array.isArray(body.properties) ? body.properties.filter((name): name is string => typeof name === 'string') : undefined;
    const query = typeof body.query === 'string' ? body.query.toLowerCase() : undefined;

    const numeric = (name: string): boolean => ['number', 'datetime'].includes(definitions[name]?.type ?? '');
    const matches = (object: HubspotStoredObject, filter: Filter): boolean => {
      const association = /^associations\.(contact|company|call|task)$/.exec(filter.propertyName)?.[1];
      const actual = association
        ? associationsOf(object, (OBJECT_TYPES.find((candidate) => SINGULAR[candidate] === association) ?? 'contacts')).map((item) => item.id)
        : object.properties[filter.propertyName] !== undefined && object.properties[filter.propertyName] !== ''
          ? [object.properties[filter.propertyName] as string]
          : [];
      const isNumeric = !association && numeric(filter.propertyName);
      const comparable = (text: string): number | string => (isNumeric ? toMillis(text) : text.toLowerCase());
      const compare = (left: string, right: string): number => {
        const [a, b] = [comparable(left), comparable(right)];
        return a < b ? -1 : a > b ? 1 : 0;
      };
      const tokens = (text: string): string[] => text.toLowerCase().split(/[^a-z0-9]+/).filter(Boolean);
      const containsToken = (text: string, wanted: string): boolean => {
        const needle = wanted.toLowerCase();
        if (needle.startsWith('*')) return text.toLowerCase().endsWith(needle.slice(1));
        return tokens(text).includes(needle);
      };
      switch (filter.operator) {
        case 'HAS_PROPERTY':
          return actual.length > 0;
        case 'NOT_HAS_PROPERTY':
          return actual.length === 0;
        case 'EQ':
          return actual.some((item) => compare(item, filter.value ?? '') === 0);
        case 'NEQ':
          return !actual.some((item) => compare(item, filter.value ?? '') === 0);
        case 'LT':
          return actual.some((item) => compare(item, filter.value ?? '') < 0);
        case 'LTE':
          return actual.some((item) => compare(item, filter.value ?? '') <= 0);
        case 'GT':
          return actual.some((item) => compare(item, filter.value ?? '') > 0);
        case 'GTE':
          return actual.some((item) => compare(item, filter.value ?? '') >= 0);
        case 'BETWEEN':
          return actual.some((item) => compare(item, filter.value ?? '') >= 0 && compare(item, filter.highValue ?? '') <= 0);
        case 'IN':
          // String values of IN must be lower case (the search guide): they match as given.
          return actual.some((item) => (filter.values ?? []).includes(isNumeric ? item : item.toLowerCase()));
        case 'NOT_IN':
          return !actual.some((item) => (filter.values ?? []).includes(isNumeric ? item : item.toLowerCase()));
        case 'CONTAINS_TOKEN':
          return actual.some((item) => containsToken(item, filter.value ?? ''));
        case 'NOT_CONTAINS_TOKEN':
          return !actual.some((item) => containsToken(item, filter.value ?? ''));
      }
    };
    const now = clock();
    const textProperties = Object.keys(definitions).filter((name) => definitions[name]?.type === 'string');
    let found = objects[type]
      .filter((object) => object.searchableFrom <= now)
      .filter((object) => parsedGroups.length === 0 || parsedGroups.some((group) => group.every((filter) => matches(object, filter))))
      .filter((object) => query === undefined || textProperties.some((name) => (object.properties[name] ?? '').toLowerCase().includes(query)));
    const sorts: unknown[] = Array.isArray(body.sorts) ? (body.sorts as unknown[]) : [];
    const sort = sorts[0];
    const sortName = typeof sort === 'string' ? sort.replace(/^-/, '') : isRecord(sort) && typeof sort.propertyName === 'string' ? sort.propertyName : undefined;
    if (sortName !== undefined) {
      const descending = typeof sort === 'string' ? sort.startsWith('-') : isRecord(sort) && sort.direction === 'DESCENDING';
      const key = (object: HubspotStoredObject): number | string => {
        const value = object.properties[sortName] ?? '';
        return numeric(sortName) ? toMillis(value) : value.toLowerCase();
      };
      found = [...found].sort((a, b) => {
        const [x, y] = [key(a), key(b)];
        const order = x < y ? -1 : x > y ? 1 : Number(a.id) - Number(b.id);
        return descending ? -order : order;
      });
    }
    const page = found.slice(after, after + limit);
    res.json({
      total: found.length,
      results: page.map((object) => present(object, properties)),
      ...(after + limit < found.length ? { paging: { next: { after: String(after + limit), link: `?after=${after + limit}` } } } : {}),
    });
  });

  app.post('/crm/v3/objects/:objectType/batch/read', json, (req, res) => {
    const type = objectType(req);
    if (!type) return sendError(res, 404, 'OBJECT_NOT_FOUND', `Unable to infer object type from: ${String(req.params.objectType)}`);
    const body: unknown = req.body;
    const inputs: unknown = isRecord(body) ? body.inputs : undefined;
    if (!Array.isArray(inputs) || inputs.length > 100) return sendError(res, 400, 'VALIDATION_ERROR', 'inputs must be an array of at most 100 {id}');
    const properties = isRecord(body) && Array.isArray(body.properties) ? body.properties.filter((name): name is string => typeof name === 'string') : undefined;
    const startedAt = iso();
    const results: Record<string, unknown>[] = [];
    const missing: string[] = [];
    for (const input of inputs) {
      const id = isRecord(input) ? input.id : undefined;
      const object = find(type, id);
      if (object) results.push(present(object, properties));
      else missing.push(String(id));
    }
    const answer = { status: 'COMPLETE', results, startedAt, completedAt: iso() };
    if (missing.length === 0) return void res.json(answer);
    res.status(207).json({
      ...answer,
      numErrors: 1,
      errors: [{ status: 'error', category: 'OBJECT_NOT_FOUND', message: `Could not get some ${SINGULAR[type].toUpperCase()} objects, they may be deleted or not exist. Check that ids are valid.`, context: { ids: missing } }],
    });
  });

  app.get('/crm/v3/objects/:objectType/:id', (req, res) => {
    const type = objectType(req);
    if (!type) return sendError(res, 404, 'OBJECT_NOT_FOUND', `Unable to infer object type from: ${String(req.params.objectType)}`);
    const object = find(type, req.params.id);
    if (!object) return sendError(res, 404, 'OBJECT_NOT_FOUND', 'Object not found.  objectId are usually numeric.', { context: { id: [String(req.params.id)] } });
    const associationTypes = (listParam(req, 'associations') ?? []).map((name) => OBJECT_TYPES.find((candidate) => candidate === name || SINGULAR[candidate] === name)).filter((name): name is HubspotObjectType => name !== undefined);
    res.json(present(object, listParam(req, 'properties'), associationTypes));
  });

  app.post('/crm/v3/objects/:objectType', json, (req, res) => {
    const type = objectType(req);
    if (!type) return sendError(res, 404, 'OBJECT_NOT_FOUND', `Unable to infer object type from: ${String(req.params.objectType)}`);
    const body: unknown = req.body;
    if (!isRecord(body) || !isRecord(body.properties)) return sendError(res, 400, 'VALIDATION_ERROR', 'The request body needs a properties object');
    const { values, problems } = checkProperties(type, body.properties);
    if (problems.length > 0) return propertyProblems(res, problems);
    const { associations, errors } = checkAssociations(type, body.associations);
    if (errors.length > 0) return sendError(res, 400, 'VALIDATION_ERROR', 'One or more associations are invalid', { errors: errors.map((message) => ({ message, code: 'INVALID_ASSOCIATION' })) });
    if (type === 'contacts' && values.email !== undefined) {
      const existing = objects.contacts.find((contact) => contact.properties.email?.toLowerCase() === values.email?.toLowerCase());
      if (existing) return sendError(res, 409, 'CONFLICT', `Contact already exists. Existing ID: ${existing.id}`);
    }
    const created = store(type, values, associations, clock() + indexDelayMs);
    res.status(201).json(present(created, Object.keys(values)));
  });

  app.get('/crm/v3/owners/:ownerId', (req, res) => {
    const owner = owners.find((item) => item.id === req.params.ownerId);
    if (!owner) return sendError(res, 404, 'OBJECT_NOT_FOUND', `Owner ${String(req.params.ownerId)} not found`);
    res.json(owner);
  });

  app.use((_req, res) => sendError(res, 404, 'OBJECT_NOT_FOUND', 'resource not found'));

  const server = await listen(app, options.port ?? 0);
  return {
    url: server.url,
    state,
    setOutage: (down) => {
      outage.down = down;
    },
    seedContact,
    seedOwner,
    stop: server.stop,
  };
}

