// Kommo (amoCRM) API v4 stand-in: OAuth 2.0, contacts, companies, leads, call notes, incoming
// (unsorted) SIP leads and tasks (see CONTRACTS.md).
import { randomBytes } from 'node:crypto';
import express from 'express';
import type { Request, Response } from 'express';
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
  ResponseDelay,
  queryValues,
  RequestCounter,
  RollingWindow,
  RollingWindowLimiter,
  systemClock,
} from './http.js';
import type { Clock, RequestCounts } from './http.js';

/** An OAuth 2.0 integration registered with the account (developers.kommo.com/reference/get-token). */
export interface KommoSandboxOAuth {
  clientId: string;
  clientSecret: string;
  redirectUri: string;
  /** Kommo: 86400 (a day). */
  accessTokenLifetimeSeconds?: number;
  /** Kommo: three months; every refresh token works once. */
  refreshTokenLifetimeSeconds?: number;
  /** Kommo: 20 minutes; every code works once. */
  codeLifetimeSeconds?: number;
}

export interface KommoSandboxOptions {
  port?: number;
  /** A long-lived token (private integrations): valid until the sandbox stops, never refreshed. */
  token?: string;
  oauth?: KommoSandboxOAuth;
  /** The account's IP whitelist; requests from other addresses are refused with 403 (code 113). */
  allowedIps?: string[];
  /** Requests allowed per rolling window (Kommo: 7 per second). */
  rateLimitPerSecond?: number;
  /** Length of the rate-limit window; 1000 ms in the real API. */
  rateLimitWindowMs?: number;
  /** A client is restricted once it has received more than this many 429s within `blockWindowMs` (30). */
  blockAfter429s?: number;
  blockWindowMs?: number;
  blockDurationMs?: number;
  /** Time source for the windows, the block and timestamps. */
  clock?: Clock;
}

export interface KommoPhoneField {
  field_code: 'PHONE' | 'EMAIL';
  values: { value: string }[];
}

export interface KommoContact {
  id: number;
  name: string;
  responsible_user_id: number | null;
  custom_fields_values: KommoPhoneField[];
  _embedded: { companies: { id: number; name: string }[]; leads: { id: number }[] };
}

export interface KommoCompany {
  id: number;
  name: string;
  custom_fields_values: KommoPhoneField[];
  _embedded: { leads: { id: number }[] };
}

/** Lead statuses: incoming leads sit in their own stage until accepted; 142 won and 143 lost are closed. */
export const KOMMO_STATUS = { incoming: 1, firstStage: 2, won: 142, lost: 143 } as const;

export interface KommoLead {
  id: number;
  name: string;
  price: number;
  pipeline_id: number | null;
  status_id: number;
  created_at: number;
  _embedded: { contacts: { id: number }[]; companies: { id: number }[] };
}

export interface KommoUnsortedMetadata {
  uniq: string;
  from: string;
  phone: string;
  called_at: number;
  duration: number;
  link: string;
  service_code: string;
  is_call_event_needed: boolean;
}

export interface KommoUnsorted {
  uid: string;
  source_uid: string;
  source_name: string;
  category: 'sip';
  pipeline_id: number | null;
  created_at: number;
  metadata: KommoUnsortedMetadata;
  _embedded: { leads: { id: number }[]; contacts: { id: number }[] };
}

export interface KommoNoteParams {
  uniq: string | null;
  duration: number;
  source: string;
  link: string | null;
  phone: string;
  call_result: string | null;
  call_status: number | null;
}

export interface KommoNote {
  id: number;
  entity_id: number;
  note_type: 'call_in' | 'call_out';
  created_at: number;
  params: KommoNoteParams;
}

/** A note as stored; `entity_type` says which card it hangs on. */
export interface KommoStoredNote extends KommoNote {
  entity_type: 'contacts' | 'leads' | 'companies';
  responsible_user_id: number | null;
  created_by: number | null;
}

export interface KommoTask {
  id: number;
  text: string;
  complete_till: number;
  entity_id: number | null;
  entity_type: 'contacts' | 'leads' | null;
  task_type_id: number;
  responsible_user_id: number | null;
  is_completed: boolean;
  created_at: number;
  request_id: string;
}

export interface KommoUser {
  id: number;
  name: string;
  email: string;
}

export interface KommoOAuthState {
  /** Successful token grants by type. */
  granted: { authorization_code: number; refresh_token: number };
  /** Refused grants, with the reason's hint (e.g. a refresh token used twice: "Token has been revoked"). */
  refused: Array<{ grant: string; hint: string }>;
}

export interface KommoState {
  contacts: KommoContact[];
  companies: KommoCompany[];
  leads: KommoLead[];
  /** Incoming leads still waiting (accepted ones leave the list). */
  unsorted: KommoUnsorted[];
  notes: KommoStoredNote[];
  tasks: KommoTask[];
  users: KommoUser[];
  oauth: KommoOAuthState;
  requests: RequestCounts;
}

export interface SeedContactInput {
  name: string;
  phone: string;
  email?: string;
  company?: string;
  responsibleUserId?: number;
}

export interface SeedCompanyInput {
  name: string;
  phone?: string;
}

export interface SeedLeadInput {
  name: string;
  contactId?: number;
  companyId?: number;
  /** A won or lost lead: not active, so calls are not placed on it. */
  closed?: boolean;
}

export interface SeedUserInput {
  id?: number;
  name: string;
  email: string;
}

export interface KommoSandbox {
  url: string;
  state(): KommoState;
  setOutage(down: boolean): void;
  /** Acts on every request at once but answers it only after `ms` (0: at once), as a slow account does (also POST /_sandbox/slow {"delayMs":n}). */
  setResponseDelay(ms: number): void;
  seedContact(input: SeedContactInput): KommoContact;
  /** Not in the brief's handle list: lets tests exercise the "else a company" match. */
  seedCompany(input: SeedCompanyInput): KommoCompany;
  seedUser(input: SeedUserInput): KommoUser;
  /** A lead linked to a contact or company (an active one is where Kommo places that caller's calls). */
  seedLead(input: SeedLeadInput): KommoLead;
  /** Stands in for the user granting access in Kommo: a fresh authorization code for `oauth`. */
  authorize(): string;
  /** Every access token issued so far stops working, as if its lifetime had passed. */
  expireAccessTokens(): void;
  /** Replaces the IP whitelist (undefined: none). */
  setAllowedIps(ips: string[] | undefined): void;
  stop(): Promise<void>;
}

interface FieldError {
  code: 'FieldMissing' | 'InvalidType' | 'NotSupportedChoice' | 'Duplicate';
  path: string;
  detail: string;
}

interface ValidationError {
  request_id: string;
  errors: FieldError[];
}

/** Kommo's matching rule: the last 10 digits, digits only. */
export function phoneKey(phone: string): string {
  return phone.replace(/\D/g, '').slice(-10);
}

function phonesOf(entity: { custom_fields_values: KommoPhoneField[] }): string[] {
  return entity.custom_fields_values.filter((field) => field.field_code === 'PHONE').flatMap((field) => field.values.map((v) => v.value));
}

function matchesPhone(entity: { custom_fields_values: KommoPhoneField[] }, key: string): boolean {
  return key !== '' && phonesOf(entity).some((phone) => phoneKey(phone) === key);
}

function problem(res: Response, status: number, title: string, extra: Record<string, unknown> = {}): void {
  res.status(status).type('application/problem+json').send(JSON.stringify({ title, status, ...extra }));
}

function badRequest(res: Response, errors: ValidationError[]): void {
  problem(res, 400, 'Bad Request', { 'validation-errors': errors });
}

/** The OAuth server's error body (as seen from Kommo: a problem+json with a `hint`). */
function oauthProblem(res: Response, status: number, title: string, detail: string, hint?: string): void {
  problem(res, status, title, { type: 'https://developers.amocrm.ru/v3/errors/OAuthProblemJson', detail, ...(hint ? { hint } : {}) });
}

const singularOf = { contacts: 'contact', leads: 'lead', companies: 'company' } as const;

const isInt = (value: unknown): value is number => typeof value === 'number' && Number.isInteger(value);

/** Collects field errors for one entity of a batch. */
class Checker {
  readonly errors: FieldError[] = [];

  constructor(private readonly body: Record<string, unknown>, private readonly prefix = '') {}

  private fail(code: FieldError['code'], field: string, detail: string): undefined {
    this.errors.push({ code, path: `${this.prefix}${field}`, detail });
    return undefined;
  }

  string(field: string, required: boolean): string | undefined {
    const value = this.body[field];
    if (value === undefined || value === null || value === '') {
      return required ? this.fail('FieldMissing', field, 'This field is missing.') : undefined;
    }
    return typeof value === 'string' ? value : this.fail('InvalidType', field, 'This value should be of type string.');
  }

  int(field: string, required: boolean, min?: number, max?: number): number | undefined {
    const value = this.body[field];
    if (value === undefined || value === null) return required ? this.fail('FieldMissing', field, 'This field is missing.') : undefined;
    if (!isInt(value)) return this.fail('InvalidType', field, 'This value should be of type int.');
    if ((min !== undefined && value < min) || (max !== undefined && value > max)) {
      return this.fail('NotSupportedChoice', field, `The value you selected is not a valid choice (${min ?? '-∞'}..${max ?? '∞'}).`);
    }
    return value;
  }

  choice<T extends string>(field: string, choices: readonly T[], required: boolean): T | undefined {
    const value = this.string(field, required);
    if (value === undefined) return undefined;
    return (choices as readonly string[]).includes(value)
      ? (value as T)
      : this.fail('NotSupportedChoice', field, `The value you selected is not a valid choice (${choices.join(', ')}).`);
  }

  bool(field: string, required: boolean): boolean | undefined {
    const value = this.body[field];
    if (value === undefined || value === null) return required ? this.fail('FieldMissing', field, 'This field is missing.') : undefined;
    return typeof value === 'boolean' ? value : this.fail('InvalidType', field, 'This value should be of type bool.');
  }

  object(field: string): Record<string, unknown> | undefined {
    const value = this.body[field];
    if (value === undefined || value === null) return this.fail('FieldMissing', field, 'This field is missing.');
    return isRecord(value) ? value : this.fail('InvalidType', field, 'This value should be of type object.');
  }
}

/** The batch endpoints take a non-empty JSON array; anything else is one validation error. */
function batchOf(req: Request, res: Response): unknown[] | undefined {
  const body: unknown = req.body;
  if (Array.isArray(body) && body.length > 0) return body as unknown[];
  badRequest(res, [
    { request_id: '0', errors: [{ code: 'InvalidType', path: '', detail: 'The request body should be a non-empty array.' }] },
  ]);
  return undefined;
}

function requestIdOf(item: unknown, index: number): string {
  return isRecord(item) && typeof item.request_id === 'string' && item.request_id !== '' ? item.request_id : String(index);
}

/** Page and limit of a list request: Kommo pages start at 1, `limit` defaults to 50 and may not exceed 250. */
function paging(req: Request): { page: number; limit: number } | ValidationError {
  const page = req.query.page === undefined ? 1 : Number(req.query.page);
  const limit = req.query.limit === undefined ? 50 : Number(req.query.limit);
  const errors: FieldError[] = [];
  if (!Number.isInteger(page) || page < 1) errors.push({ code: 'InvalidType', path: 'page', detail: 'This value should be a positive integer.' });
  if (!Number.isInteger(limit) || limit < 1 || limit > 250) errors.push({ code: 'NotSupportedChoice', path: 'limit', detail: 'The limit must be between 1 and 250.' });
  return errors.length > 0 ? { request_id: '0', errors } : { page, limit };
}

/** Answers one page of `items` under `_embedded[key]` with `_page` and `_links` (next only when more follow), or 204 past the end. */
function sendPage(req: Request, res: Response, key: string, items: unknown[]): void {
  const paged = paging(req);
  if ('errors' in paged) return badRequest(res, [paged]);
  const slice = items.slice((paged.page - 1) * paged.limit, paged.page * paged.limit);
  if (slice.length === 0) return void res.status(204).end();
  const href = (page: number): string => {
    const url = new URL(req.originalUrl, `http://${req.get('host') ?? '127.0.0.1'}`);
    url.searchParams.set('page', String(page));
    url.searchParams.set('limit', String(paged.limit));
    return url.toString();
  };
  const more = paged.page * paged.limit < items.length;
  res.json({ _page: paged.page, _links: { self: { href: href(paged.page) }, ...(more ? { next: { href: href(paged.page + 1) } } : {}) }, _embedded: { [key]: slice } });
}

const withValues = (req: Request): string[] => queryValues(req, 'with');
const newToken = (): string => randomBytes(24).toString('hex');
const addressOf = (req: Request): string => (req.socket.remoteAddress ?? 'unknown').replace(/^::ffff:/, '');

export async function startKommoSandbox(options: KommoSandboxOptions): Promise<KommoSandbox> {
  const clock = options.clock ?? systemClock;
  const nowSeconds = (): number => Math.floor(clock() / 1000);

  const contacts: KommoContact[] = [];
  const companies: KommoCompany[] = [];
  const leads: KommoLead[] = [];
  const unsorted: KommoUnsorted[] = [];
  const notes: KommoStoredNote[] = [];
  const tasks: KommoTask[] = [];
  const users: KommoUser[] = [];
  // Contacts of incoming leads not yet accepted: "unavailable in the Lists section" (so unsearchable).
  const pendingContacts = new Set<number>();
  const seq = { contact: 0, company: 0, lead: 0, unsorted: 0, note: 0, task: 0, user: 0 };

  const oauth = options.oauth;
  const codes = new Map<string, { expiresAt: number; used: boolean }>();
  const accessTokens = new Map<string, { expiresAt: number }>();
  const refreshTokens = new Map<string, { expiresAt: number; used: boolean }>();
  const oauthState: KommoOAuthState = { granted: { authorization_code: 0, refresh_token: 0 }, refused: [] };
  let allowedIps = options.allowedIps;

  const counter = new RequestCounter(defaultRouteKey);
  const outage = new OutageSwitch();
  const slow = new ResponseDelay();
  const limiter = new RollingWindowLimiter(options.rateLimitPerSecond ?? 7, options.rateLimitWindowMs ?? 1000, clock);
  const recent429s = new RollingWindow(options.blockWindowMs ?? 10_000, clock);
  const blockAfter = options.blockAfter429s ?? 30;
  const blockDurationMs = options.blockDurationMs ?? 30_000;
  const restrictedUntil = new Map<string, number>();

  function companyNamed(name: string): KommoCompany {
    const existing = companies.find((company) => company.name === name);
    if (existing) return existing;
    const company: KommoCompany = { id: ++seq.company, name, custom_fields_values: [], _embedded: { leads: [] } };
    companies.push(company);
    return company;
  }

  function createContact(name: string, phones: string[], responsibleUserId: number | null, company?: KommoCompany): KommoContact {
    const contact: KommoContact = {
      id: ++seq.contact,
      name,
      responsible_user_id: responsibleUserId,
      custom_fields_values: phones.length > 0 ? [{ field_code: 'PHONE', values: phones.map((value) => ({ value })) }] : [],
      _embedded: { companies: company ? [{ id: company.id, name: company.name }] : [], leads: [] },
    };
    contacts.push(contact);
    return contact;
  }

  function createLead(name: string, statusId: number, pipelineId: number | null, price = 0): KommoLead {
    const lead: KommoLead = { id: ++seq.lead, name, price, pipeline_id: pipelineId, status_id: statusId, created_at: nowSeconds(), _embedded: { contacts: [], companies: [] } };
    leads.push(lead);
    return lead;
  }

  function seedContact(input: SeedContactInput): KommoContact {
    const company = input.company === undefined ? undefined : companyNamed(input.company);
    const contact = createContact(input.name, [input.phone], input.responsibleUserId ?? null, company);
    if (input.email !== undefined) contact.custom_fields_values.push({ field_code: 'EMAIL', values: [{ value: input.email }] });
    return structuredClone(contact);
  }

  function seedCompany(input: SeedCompanyInput): KommoCompany {
    const company = companyNamed(input.name);
    if (input.phone !== undefined) company.custom_fields_values.push({ field_code: 'PHONE', values: [{ value: input.phone }] });
    return structuredClone(company);
  }

  function seedUser(input: SeedUserInput): KommoUser {
    const id = input.id ?? seq.user + 1;
    seq.user = Math.max(seq.user, id);
    const user: KommoUser = { id, name: input.name, email: input.email };
    const index = users.findIndex((existing) => existing.id === id);
    if (index >= 0) users[index] = user;
    else users.push(user);
    return { ...user };
  }

  function seedLead(input: SeedLeadInput): KommoLead {
    const contact = input.contactId === undefined ? undefined : contacts.find((c) => c.id === input.contactId);
    const company = input.companyId === undefined ? undefined : companies.find((c) => c.id === input.companyId);
    if ((input.contactId !== undefined && !contact) || (input.companyId !== undefined && !company)) throw new Error('seedLead: unknown contact or company');
    const lead = createLead(input.name, input.closed ? KOMMO_STATUS.won : KOMMO_STATUS.firstStage, null);
    if (contact) {
      lead._embedded.contacts.push({ id: contact.id });
      contact._embedded.leads.push({ id: lead.id });
    }
    if (company) {
      lead._embedded.companies.push({ id: company.id });
      company._embedded.leads.push({ id: lead.id });
    }
    return structuredClone(lead);
  }

  const isActive = (lead: KommoLead): boolean => lead.status_id !== KOMMO_STATUS.won && lead.status_id !== KOMMO_STATUS.lost && lead.status_id !== KOMMO_STATUS.incoming;
  const leadById = (id: number): KommoLead | undefined => leads.find((lead) => lead.id === id);
  const listedContact = (id: number | undefined): KommoContact | undefined => contacts.find((c) => c.id === id && !pendingContacts.has(c.id));

  /** What the API shows of a contact: linked leads only with `with=leads`. */
  const contactView = (contact: KommoContact, req: Request): KommoContact =>
    withValues(req).includes('leads') ? contact : { ...contact, _embedded: { ...contact._embedded, leads: [] } };
  const companyView = (company: KommoCompany, req: Request): KommoCompany =>
    withValues(req).includes('leads') ? company : { ...company, _embedded: { leads: [] } };

  const state = (): KommoState =>
    structuredClone({ contacts, companies, leads, unsorted, notes, tasks, users, oauth: oauthState, requests: counter.snapshot() });

  const app = createApp();
  controlRoutes(app, state, outage, slow);
  app.post('/_sandbox/contacts', express.json(), (req: Request, res: Response) => {
    const body: unknown = req.body;
    if (!isRecord(body) || typeof body.name !== 'string' || typeof body.phone !== 'string') {
      res.status(400).json({ error: 'expected {name, phone, company?, responsible_user_id?}' });
      return;
    }
    res.status(201).json(
      seedContact({
        name: body.name,
        phone: body.phone,
        ...(typeof body.email === 'string' ? { email: body.email } : {}),
        ...(typeof body.company === 'string' ? { company: body.company } : {}),
        ...(isInt(body.responsible_user_id) ? { responsibleUserId: body.responsible_user_id } : {}),
      }),
    );
  });
  app.post('/_sandbox/companies', express.json(), (req: Request, res: Response) => {
    const body: unknown = req.body;
    if (!isRecord(body) || typeof body.name !== 'string') {
      res.status(400).json({ error: 'expected {name, phone?}' });
      return;
    }
    res.status(201).json(seedCompany({ name: body.name, ...(typeof body.phone === 'string' ? { phone: body.phone } : {}) }));
  });
  app.post('/_sandbox/users', express.json(), (req: Request, res: Response) => {
    const body: unknown = req.body;
    if (!isRecord(body) || typeof body.name !== 'string' || typeof body.email !== 'string') {
      res.status(400).json({ error: 'expected {id?, name, email}' });
      return;
    }
    res.status(201).json(seedUser({ name: body.name, email: body.email, ...(isInt(body.id) ? { id: body.id } : {}) }));
  });
  app.post('/_sandbox/authorize', (_req: Request, res: Response) => {
    if (!oauth) return void res.status(400).json({ error: 'no oauth integration configured' });
    res.status(201).json({ code: authorize() });
  });

  function authorize(): string {
    if (!oauth) throw new Error('the sandbox has no oauth integration configured');
    const code = newToken();
    codes.set(code, { expiresAt: clock() + (oauth.codeLifetimeSeconds ?? 1200) * 1000, used: false });
    return code;
  }

  app.use(counter.middleware());
  app.use(outage.middleware((res) => problem(res, 503, 'Service Unavailable')));
  app.use(slow.middleware());
  // The account's IP whitelist: a refusal for good (error 113), whatever else the request carries.
  app.use((req, res, next) => {
    if (isControlPath(req) || !allowedIps || allowedIps.includes(addressOf(req))) return next();
    problem(res, 403, 'Forbidden', { detail: 'Access to the account is denied from this IP address', error_code: 113 });
  });
  // Rate limit; a client that keeps hammering is restricted for a while (answered 429 until then).
  app.use((req, res, next) => {
    if (isControlPath(req)) return next();
    const ip = addressOf(req);
    const until = restrictedUntil.get(ip);
    if (until !== undefined) {
      if (clock() < until) {
        counter.rateLimited();
        res.set('Retry-After', String(Math.max(1, Math.ceil((until - clock()) / 1000))));
        return problem(res, 429, 'Too Many Requests', { detail: 'Requests from this address are restricted' });
      }
      restrictedUntil.delete(ip);
    }
    if (limiter.tryAcquire()) return next();
    counter.rateLimited();
    if (recent429s.record(ip) > blockAfter) {
      restrictedUntil.set(ip, clock() + blockDurationMs);
      recent429s.clear(ip);
    }
    res.set('Retry-After', '1');
    problem(res, 429, 'Too Many Requests', { detail: 'Rate limit exceeded' });
  });

  // OAuth 2.0 token endpoint (JSON as in Kommo's docs, or a form as OAuth client libraries send it).
  app.post('/oauth2/access_token', express.urlencoded({ extended: false }), jsonBody((res) => oauthProblem(res, 400, 'Bad Request', 'Malformed request body')), (req, res) => {
    const body: unknown = req.body;
    const field = (name: string): string | undefined => (isRecord(body) && typeof body[name] === 'string' && body[name] !== '' ? body[name] : undefined);
    const grant = field('grant_type') ?? '';
    const refuse = (status: number, title: string, detail: string, hint: string): void => {
      oauthState.refused.push({ grant, hint });
      oauthProblem(res, status, title, detail, hint);
    };
    if (!oauth) return refuse(401, 'Invalid client', 'Client authentication failed', 'No integration is registered');
    if (field('client_id') !== oauth.clientId || field('client_secret') !== oauth.clientSecret) {
      return refuse(401, 'Invalid client', 'Client authentication failed', 'Unknown client or wrong secret');
    }
    const invalid = 'The request is missing a required parameter, includes an invalid parameter value, or is otherwise malformed';
    const now = clock();
    if (grant === 'authorization_code') {
      const code = field('code');
      if (!code) return refuse(400, 'Invalid request', invalid, 'Check the `code` parameter');
      if (field('redirect_uri') !== oauth.redirectUri) return refuse(401, 'Invalid client', 'Client authentication failed', 'The redirect URI does not match');
      const issued = codes.get(code);
      if (!issued || issued.used) return refuse(400, 'Invalid request', invalid, 'Authorization code has been revoked');
      if (issued.expiresAt <= now) return refuse(400, 'Invalid request', invalid, 'Authorization code has expired');
      issued.used = true;
    } else if (grant === 'refresh_token') {
      const token = field('refresh_token');
      if (!token) return refuse(400, 'Invalid request', invalid, 'Check the `refresh_token` parameter');
      const issued = refreshTokens.get(token);
      // A refresh token works once: the answer carries its replacement.
      if (!issued || issued.used) return refuse(401, 'Invalid request', invalid, 'Token has been revoked');
      if (issued.expiresAt <= now) return refuse(401, 'Invalid request', invalid, 'Token has expired');
      issued.used = true;
      // The access tokens issued before this one stop working too (the stricter reading: see CONTRACTS.md).
      accessTokens.clear();
    } else {
      return refuse(400, 'Invalid request', invalid, 'Check the `grant_type` parameter');
    }
    const lifetime = oauth.accessTokenLifetimeSeconds ?? 86_400;
    const accessToken = newToken();
    const refreshToken = newToken();
    accessTokens.set(accessToken, { expiresAt: now + lifetime * 1000 });
    refreshTokens.set(refreshToken, { expiresAt: now + (oauth.refreshTokenLifetimeSeconds ?? 90 * 86_400) * 1000, used: false });
    oauthState.granted[grant === 'authorization_code' ? 'authorization_code' : 'refresh_token']++;
    res.json({ token_type: 'Bearer', expires_in: lifetime, server_time: Math.floor(now / 1000), access_token: accessToken, refresh_token: refreshToken });
  });

  app.use((req, res, next) => {
    if (isControlPath(req)) return next();
    const token = bearerToken(req);
    if (token !== undefined && options.token !== undefined && token === options.token) return next();
    const access = token === undefined ? undefined : accessTokens.get(token);
    if (access && access.expiresAt > clock()) return next();
    problem(res, 401, 'Unauthorized');
  });
  const json = jsonBody((res, status) =>
    status === 413 ? problem(res, 413, 'Payload Too Large') : problem(res, 400, 'Bad Request', { detail: 'Malformed JSON body' }),
  );

  const idParam = (req: Request): number | undefined => {
    const raw = req.params.id;
    return typeof raw === 'string' && /^\d+$/.test(raw) ? Number(raw) : undefined;
  };
  const notFound = (res: Response): void => problem(res, 404, 'Not Found');

  app.get('/api/v4/contacts', (req, res) => {
    const query = typeof req.query.query === 'string' ? req.query.query : undefined;
    const key = query === undefined ? undefined : phoneKey(query);
    const listed = contacts.filter((contact) => !pendingContacts.has(contact.id));
    const found = key === undefined ? listed : listed.filter((contact) => matchesPhone(contact, key));
    sendPage(req, res, 'contacts', found.map((contact) => contactView(contact, req)));
  });

  app.get('/api/v4/contacts/:id', (req, res) => {
    const contact = listedContact(idParam(req));
    if (!contact) return notFound(res);
    res.json(contactView(contact, req));
  });

  app.get('/api/v4/companies', (req, res) => {
    const query = typeof req.query.query === 'string' ? req.query.query : undefined;
    const key = query === undefined ? undefined : phoneKey(query);
    const found = key === undefined ? companies : companies.filter((company) => matchesPhone(company, key));
    sendPage(req, res, 'companies', found.map((company) => companyView(company, req)));
  });

  app.get('/api/v4/companies/:id', (req, res) => {
    const company = companies.find((c) => c.id === idParam(req));
    if (!company) return notFound(res);
    res.json(companyView(company, req));
  });

  const listNotes = (entityType: 'contacts' | 'leads' | 'companies') => (req: Request, res: Response) => {
    const id = idParam(req);
    const exists =
      entityType === 'contacts' ? listedContact(id) !== undefined : entityType === 'leads' ? leadById(id ?? 0) !== undefined : companies.some((c) => c.id === id);
    if (!exists) return notFound(res);
    const types = queryValues(req, 'filter[note_type]');
    const found = notes
      .filter((note) => note.entity_type === entityType && note.entity_id === id)
      .filter((note) => types.length === 0 || types.includes(note.note_type))
      .sort((a, b) => b.created_at - a.created_at || b.id - a.id)
      .map(({ id: noteId, entity_id, note_type, created_at, params }): KommoNote => ({ id: noteId, entity_id, note_type, created_at, params }));
    sendPage(req, res, 'notes', found);
  };
  app.get('/api/v4/contacts/:id/notes', listNotes('contacts'));
  app.get('/api/v4/leads/:id/notes', listNotes('leads'));
  app.get('/api/v4/companies/:id/notes', listNotes('companies'));

  app.get('/api/v4/users/:id', (req, res) => {
    const user = users.find((u) => u.id === idParam(req));
    if (!user) return notFound(res);
    res.json(user);
  });

  app.post('/api/v4/calls', json, (req, res) => {
    const batch = batchOf(req, res);
    if (!batch) return;
    const invalid: ValidationError[] = [];
    const calls = batch.map((item, index) => {
      const requestId = requestIdOf(item, index);
      if (!isRecord(item)) {
        invalid.push({ request_id: requestId, errors: [{ code: 'InvalidType', path: '', detail: 'A call should be an object.' }] });
        return undefined;
      }
      const check = new Checker(item);
      const call = {
        requestId,
        direction: check.choice('direction', ['inbound', 'outbound'] as const, true),
        duration: check.int('duration', true, 0),
        source: check.string('source', true),
        phone: check.string('phone', true),
        uniq: check.string('uniq', false) ?? null,
        link: check.string('link', false) ?? null,
        callResult: check.string('call_result', false) ?? null,
        callStatus: check.int('call_status', false, 1, 7) ?? null,
        responsibleUserId: check.int('responsible_user_id', false) ?? null,
        createdBy: check.int('created_by', false) ?? null,
      };
      if (check.errors.length > 0) invalid.push({ request_id: requestId, errors: check.errors });
      return call;
    });
    if (invalid.length > 0) return badRequest(res, invalid);

    const added: { id: number; entity_id: number; entity_type: 'contact' | 'lead' | 'company'; request_id: string }[] = [];
    const errors: { request_id: string; status: 'entity_not_found' }[] = [];
    for (const call of calls) {
      if (!call || call.direction === undefined || call.duration === undefined || call.source === undefined || call.phone === undefined) continue;
      const key = phoneKey(call.phone);
      const contact = contacts.find((c) => !pendingContacts.has(c.id) && matchesPhone(c, key));
      const company = contact ? undefined : companies.find((c) => matchesPhone(c, key));
      const owner = contact ? { id: contact.id, type: 'contacts' as const, leads: contact._embedded.leads } : company ? { id: company.id, type: 'companies' as const, leads: company._embedded.leads } : undefined;
      if (!owner) {
        // Kommo silently drops calls it cannot attach; only this error entry tells the client.
        errors.push({ request_id: call.requestId, status: 'entity_not_found' });
        continue;
      }
      // Kommo's placement: the one active lead of the contact (or company) gets the call; with
      // none or several, the contact (company) card does.
      const active = owner.leads.map((link) => leadById(link.id)).filter((lead): lead is KommoLead => lead !== undefined && isActive(lead));
      const [onlyLead] = active.length === 1 ? active : [];
      const entity = onlyLead ? { id: onlyLead.id, type: 'leads' as const } : { id: owner.id, type: owner.type };
      const note: KommoStoredNote = {
        id: ++seq.note,
        entity_id: entity.id,
        entity_type: entity.type,
        note_type: call.direction === 'inbound' ? 'call_in' : 'call_out',
        created_at: nowSeconds(),
        responsible_user_id: call.responsibleUserId,
        created_by: call.createdBy,
        params: {
          uniq: call.uniq,
          duration: call.duration,
          source: call.source,
          link: call.link,
          phone: call.phone,
          call_result: call.callResult,
          call_status: call.callStatus,
        },
      };
      notes.push(note);
      // The calls answer names the entity in the singular (the PHP library accepts both forms).
      added.push({ id: note.id, entity_id: entity.id, entity_type: singularOf[entity.type], request_id: call.requestId });
    }
    res.json({ _embedded: { calls: added }, ...(errors.length > 0 ? { errors } : {}) });
  });

  /** Phone keys that identify the caller of an incoming lead: its `from` and its contacts' phones. */
  const callerKeys = (from: string | undefined, embeddedPhones: string[]): string[] =>
    [...(from ? [phoneKey(from)] : []), ...embeddedPhones.map(phoneKey)].filter((key) => key.length > 0);
  const pendingCallerKeys = (entry: KommoUnsorted): string[] =>
    callerKeys(
      entry.metadata.from,
      entry._embedded.contacts.flatMap((link) => contacts.find((c) => c.id === link.id)).flatMap((contact) => (contact ? phonesOf(contact) : [])),
    );

  app.post('/api/v4/leads/unsorted/sip', json, (req, res) => {
    const batch = batchOf(req, res);
    if (!batch) return;
    const invalid: ValidationError[] = [];
    const seenUniqs = new Set(unsorted.map((u) => u.metadata.uniq));
    const seenCallers = new Set(unsorted.flatMap(pendingCallerKeys));
    const entries = batch.map((item, index) => {
      const requestId = requestIdOf(item, index);
      if (!isRecord(item)) {
        invalid.push({ request_id: requestId, errors: [{ code: 'InvalidType', path: '', detail: 'An unsorted lead should be an object.' }] });
        return undefined;
      }
      const check = new Checker(item);
      const sourceUid = check.string('source_uid', true);
      const sourceName = check.string('source_name', true);
      const pipelineId = check.int('pipeline_id', false) ?? null;
      const rawMetadata = check.object('metadata');
      let metadata: KommoUnsortedMetadata | undefined;
      if (rawMetadata) {
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
        if (meta.errors.length === 0) metadata = parsed as KommoUnsortedMetadata;
        if (parsed.uniq !== undefined) {
          if (seenUniqs.has(parsed.uniq)) {
            check.errors.push({ code: 'Duplicate', path: 'metadata.uniq', detail: 'An incoming lead with this call uniq already exists.' });
          }
          seenUniqs.add(parsed.uniq);
        }
      }
      // The people and the deal come from `_embedded` (the PHP library's examples/unsorted_actions.php).
      const embedded = isRecord(item._embedded) ? item._embedded : {};
      const rawContacts = Array.isArray(embedded.contacts) ? (embedded.contacts as unknown[]) : [];
      const newContacts = rawContacts.flatMap((raw, position) => {
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
      const rawLead = Array.isArray(embedded.leads) && isRecord(embedded.leads[0]) ? embedded.leads[0] : undefined;
      // "There can't be 2 of the same entity in the Incoming leads": the stricter reading counts a
      // second waiting entry from the same caller (number or contact phone) as the same entity.
      const keys = callerKeys(metadata?.from, newContacts.flatMap((contact) => contact.phones));
      if (keys.some((key) => seenCallers.has(key))) {
        check.errors.push({ code: 'Duplicate', path: newContacts.length > 0 ? '_embedded.contacts.0' : 'metadata.from', detail: 'An incoming lead from this caller is already waiting.' });
      }
      keys.forEach((key) => seenCallers.add(key));
      if (check.errors.length > 0) invalid.push({ request_id: requestId, errors: check.errors });
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
    });
    // All or nothing: a rejected batch must not leave half-created leads behind.
    if (invalid.length > 0) return badRequest(res, invalid);

    const created = entries.map((entry) => {
      if (!entry?.metadata || entry.sourceUid === undefined || entry.sourceName === undefined) throw new Error('unreachable: validated');
      const { metadata } = entry;
      const lead = createLead(entry.leadName ?? `Incoming call from ${metadata.from}`, KOMMO_STATUS.incoming, entry.pipelineId, entry.price);
      const linked = entry.newContacts.map((input) => {
        const contact = createContact(input.name, input.phones, null);
        pendingContacts.add(contact.id);
        contact._embedded.leads.push({ id: lead.id });
        lead._embedded.contacts.push({ id: contact.id });
        return { id: contact.id };
      });
      if (metadata.is_call_event_needed) {
        // The incoming call's event on the lead card, added by Kommo itself.
        notes.push({
          id: ++seq.note,
          entity_id: lead.id,
          entity_type: 'leads',
          note_type: 'call_in',
          created_at: nowSeconds(),
          responsible_user_id: null,
          created_by: null,
          params: { uniq: metadata.uniq, duration: metadata.duration, source: metadata.service_code, link: metadata.link === '' ? null : metadata.link, phone: metadata.from, call_result: null, call_status: null },
        });
      }
      const record: KommoUnsorted = {
        uid: (++seq.unsorted).toString(16).padStart(32, '0'),
        source_uid: entry.sourceUid,
        source_name: entry.sourceName,
        category: 'sip',
        pipeline_id: entry.pipelineId,
        created_at: nowSeconds(),
        metadata,
        _embedded: { leads: [{ id: lead.id }], contacts: linked },
      };
      unsorted.push(record);
      return { uid: record.uid, request_id: entry.requestId, _embedded: record._embedded };
    });
    res.json({ _embedded: { unsorted: created } });
  });

  app.get('/api/v4/leads/unsorted', (req, res) => {
    const uids = queryValues(req, 'filter[uid]');
    const categories = queryValues(req, 'filter[category]');
    const order = req.query['order[created_at]'];
    if (order !== undefined && order !== 'asc' && order !== 'desc') {
      return badRequest(res, [{ request_id: '0', errors: [{ code: 'NotSupportedChoice', path: 'order', detail: 'Sort by created_at, asc or desc.' }] }]);
    }
    const found = unsorted
      .filter((u) => uids.length === 0 || uids.includes(u.uid))
      .filter((u) => categories.length === 0 || categories.includes(u.category))
      .sort((a, b) => (a.created_at - b.created_at || a.uid.localeCompare(b.uid)) * (order === 'desc' ? -1 : 1));
    sendPage(req, res, 'unsorted', found);
  });

  // A manager accepts an incoming lead: it leaves the list, its lead moves to the pipeline's first
  // stage and its contacts become available in the Lists section.
  app.post('/api/v4/leads/unsorted/:uid/accept', json, (req, res) => {
    const index = unsorted.findIndex((entry) => entry.uid === req.params.uid);
    const entry = unsorted[index];
    if (!entry) return notFound(res);
    unsorted.splice(index, 1);
    for (const link of entry._embedded.leads) {
      const lead = leadById(link.id);
      if (lead) lead.status_id = KOMMO_STATUS.firstStage;
    }
    for (const link of entry._embedded.contacts) pendingContacts.delete(link.id);
    res.json({ uid: entry.uid, _embedded: { leads: entry._embedded.leads, contacts: entry._embedded.contacts } });
  });

  // Notes added straight to an entity (how a call is noted on an entity its phone does not match).
  app.post('/api/v4/:entityType/notes', json, (req, res) => {
    const entityType = req.params.entityType;
    if (entityType !== 'contacts' && entityType !== 'leads' && entityType !== 'companies') return notFound(res);
    const batch = batchOf(req, res);
    if (!batch) return;
    const invalid: ValidationError[] = [];
    const parsed = batch.map((item, index) => {
      const requestId = requestIdOf(item, index);
      if (!isRecord(item)) {
        invalid.push({ request_id: requestId, errors: [{ code: 'InvalidType', path: '', detail: 'A note should be an object.' }] });
        return undefined;
      }
      const check = new Checker(item);
      const note = {
        requestId,
        entityId: check.int('entity_id', true, 1),
        noteType: check.choice('note_type', ['call_in', 'call_out', 'common'] as const, true),
        params: isRecord(item.params) ? item.params : {},
      };
      const known =
        entityType === 'contacts' ? contacts.some((c) => c.id === note.entityId) : entityType === 'leads' ? leads.some((l) => l.id === note.entityId) : companies.some((c) => c.id === note.entityId);
      if (note.entityId !== undefined && !known) check.errors.push({ code: 'InvalidType', path: 'entity_id', detail: 'Entity not found.' });
      if (check.errors.length > 0) invalid.push({ request_id: requestId, errors: check.errors });
      return note;
    });
    if (invalid.length > 0) return badRequest(res, invalid);
    const created = parsed.flatMap((note) => {
      if (!note || note.entityId === undefined || note.noteType === undefined) return [];
      const params = note.params;
      const text = (key: string): string | null => (typeof params[key] === 'string' ? params[key] : null);
      const int = (key: string): number | null => (isInt(params[key]) ? params[key] : null);
      const stored: KommoStoredNote = {
        id: ++seq.note,
        entity_id: note.entityId,
        entity_type: entityType,
        note_type: note.noteType === 'common' ? 'call_in' : note.noteType,
        created_at: nowSeconds(),
        responsible_user_id: null,
        created_by: null,
        params: {
          uniq: text('uniq'),
          duration: int('duration') ?? 0,
          source: text('source') ?? '',
          link: text('link'),
          phone: text('phone') ?? '',
          call_result: text('call_result'),
          call_status: int('call_status'),
        },
      };
      notes.push(stored);
      return [{ id: stored.id, entity_id: stored.entity_id, request_id: note.requestId }];
    });
    res.json({ _embedded: { notes: created } });
  });

  app.post('/api/v4/tasks', json, (req, res) => {
    const batch = batchOf(req, res);
    if (!batch) return;
    const invalid: ValidationError[] = [];
    const parsed = batch.map((item, index) => {
      const requestId = requestIdOf(item, index);
      if (!isRecord(item)) {
        invalid.push({ request_id: requestId, errors: [{ code: 'InvalidType', path: '', detail: 'A task should be an object.' }] });
        return undefined;
      }
      const check = new Checker(item);
      const task = {
        requestId,
        text: check.string('text', true),
        completeTill: check.int('complete_till', true, 0),
        entityId: check.int('entity_id', false, 1) ?? null,
        entityType: check.choice('entity_type', ['contacts', 'leads'] as const, false) ?? null,
        taskTypeId: check.int('task_type_id', false, 1) ?? 1,
        responsibleUserId: check.int('responsible_user_id', false) ?? null,
      };
      if (task.entityId !== null && task.entityType === null && item.entity_type === undefined) {
        check.errors.push({ code: 'FieldMissing', path: 'entity_type', detail: 'entity_type is required with entity_id.' });
      }
      if (task.entityType !== null && task.entityId === null && item.entity_id === undefined) {
        check.errors.push({ code: 'FieldMissing', path: 'entity_id', detail: 'entity_id is required with entity_type.' });
      }
      if (check.errors.length > 0) invalid.push({ request_id: requestId, errors: check.errors });
      return task;
    });
    if (invalid.length > 0) return badRequest(res, invalid);

    const created = parsed.map((task) => {
      if (!task || task.text === undefined || task.completeTill === undefined) throw new Error('unreachable: validated');
      const stored: KommoTask = {
        id: ++seq.task,
        text: task.text,
        complete_till: task.completeTill,
        entity_id: task.entityId,
        entity_type: task.entityType,
        task_type_id: task.taskTypeId,
        responsible_user_id: task.responsibleUserId,
        is_completed: false,
        created_at: nowSeconds(),
        request_id: task.requestId,
      };
      tasks.push(stored);
      return { id: stored.id, request_id: stored.request_id };
    });
    res.json({ _embedded: { tasks: created } });
  });

  app.get('/api/v4/tasks', (req, res) => {
    const ids = queryValues(req, 'filter[entity_id]').map(Number);
    const types = queryValues(req, 'filter[entity_type]');
    const found = tasks
      .filter((task) => ids.length === 0 || (task.entity_id !== null && ids.includes(task.entity_id)))
      .filter((task) => types.length === 0 || (task.entity_type !== null && types.includes(task.entity_type)));
    if (found.length === 0) return void res.status(204).end();
    res.json({ _embedded: { tasks: found } });
  });

  app.use((_req, res) => notFound(res));

  const server = await listen(app, options.port ?? 0);
  return {
    url: server.url,
    state,
    setOutage: (down) => {
      outage.down = down;
    },
    setResponseDelay: (ms) => {
      slow.delayMs = ms;
    },
    seedContact,
    seedCompany,
    seedUser,
    seedLead,
    authorize,
    expireAccessTokens: () => accessTokens.clear(),
    setAllowedIps: (ips) => {
      allowedIps = ips;
    },
    stop: server.stop,
  };
}
