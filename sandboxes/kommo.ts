// Kommo (amoCRM) API v4 stand-in: contacts, call notes, unsorted SIP leads and tasks (see CONTRACTS.md).
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
  queryValues,
  RequestCounter,
  RollingWindow,
  RollingWindowLimiter,
  systemClock,
} from './http.js';
import type { Clock, RequestCounts } from './http.js';

export interface KommoSandboxOptions {
  port?: number;
  token: string;
  /** Requests allowed per rolling window (Kommo: 7 per second). */
  rateLimitPerSecond?: number;
  /** Length of the rate-limit window; 1000 ms in the real API. */
  rateLimitWindowMs?: number;
  /** A client is blocked once it has received more than this many 429s within `blockWindowMs` (30). */
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
}

export interface KommoLead {
  id: number;
  name: string;
  pipeline_id: number | null;
  created_at: number;
  _embedded: { contacts: { id: number }[] };
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

export interface KommoState {
  contacts: KommoContact[];
  companies: KommoCompany[];
  leads: KommoLead[];
  unsorted: KommoUnsorted[];
  notes: KommoStoredNote[];
  tasks: KommoTask[];
  users: KommoUser[];
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

export interface SeedUserInput {
  id?: number;
  name: string;
  email: string;
}

export interface KommoSandbox {
  url: string;
  state(): KommoState;
  setOutage(down: boolean): void;
  seedContact(input: SeedContactInput): KommoContact;
  /** Not in the brief's handle list: lets tests exercise the "else a company" match. */
  seedCompany(input: SeedCompanyInput): KommoCompany;
  seedUser(input: SeedUserInput): KommoUser;
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
  const seq = { contact: 0, company: 0, lead: 0, unsorted: 0, note: 0, task: 0, user: 0 };

  const counter = new RequestCounter(defaultRouteKey);
  const outage = new OutageSwitch();
  const limiter = new RollingWindowLimiter(options.rateLimitPerSecond ?? 7, options.rateLimitWindowMs ?? 1000, clock);
  const recent429s = new RollingWindow(options.blockWindowMs ?? 10_000, clock);
  const blockAfter = options.blockAfter429s ?? 30;
  const blockDurationMs = options.blockDurationMs ?? 30_000;
  const blockedUntil = new Map<string, number>();

  function companyNamed(name: string): KommoCompany {
    const existing = companies.find((company) => company.name === name);
    if (existing) return existing;
    const company: KommoCompany = { id: ++seq.company, name, custom_fields_values: [] };
    companies.push(company);
    return company;
  }

  function createContact(name: string, phone: string, responsibleUserId: number | null, company?: KommoCompany): KommoContact {
    const contact: KommoContact = {
      id: ++seq.contact,
      name,
      responsible_user_id: responsibleUserId,
      custom_fields_values: [{ field_code: 'PHONE', values: [{ value: phone }] }],
      _embedded: { companies: company ? [{ id: company.id, name: company.name }] : [], leads: [] },
    };
    contacts.push(contact);
    return contact;
  }

  function seedContact(input: SeedContactInput): KommoContact {
    const company = input.company === undefined ? undefined : companyNamed(input.company);
    const contact = createContact(input.name, input.phone, input.responsibleUserId ?? null, company);
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

  const state = (): KommoState =>
    structuredClone({ contacts, companies, leads, unsorted, notes, tasks, users, requests: counter.snapshot() });

  const app = createApp();
  controlRoutes(app, state, outage);
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

  app.use(counter.middleware());
  app.use(outage.middleware((res) => problem(res, 503, 'Service Unavailable')));
  // Order mirrors the real API: a blocked IP is refused before limits are even considered.
  app.use((req, res, next) => {
    if (isControlPath(req)) return next();
    const ip = req.socket.remoteAddress ?? 'unknown';
    const until = blockedUntil.get(ip);
    if (until !== undefined) {
      if (clock() < until) return problem(res, 403, 'Forbidden', { detail: 'IP address is blocked' });
      blockedUntil.delete(ip);
    }
    if (limiter.tryAcquire()) return next();
    counter.rateLimited();
    if (recent429s.record(ip) > blockAfter) {
      blockedUntil.set(ip, clock() + blockDurationMs);
      recent429s.clear(ip);
    }
    res.set('Retry-After', '1');
    problem(res, 429, 'Too Many Requests', { detail: 'Rate limit exceeded' });
  });
  app.use((req, res, next) => {
    if (isControlPath(req) || bearerToken(req) === options.token) return next();
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
    const found = key === undefined ? contacts : contacts.filter((contact) => matchesPhone(contact, key));
    if (found.length === 0) return void res.status(204).end();
    res.json({ _embedded: { contacts: found } });
  });

  app.get('/api/v4/contacts/:id', (req, res) => {
    const contact = contacts.find((c) => c.id === idParam(req));
    if (!contact) return notFound(res);
    res.json(contact);
  });

  const listNotes = (entityType: 'contacts' | 'leads') => (req: Request, res: Response) => {
    const id = idParam(req);
    const exists = entityType === 'contacts' ? contacts.some((c) => c.id === id) : leads.some((l) => l.id === id);
    if (!exists) return notFound(res);
    const types = queryValues(req, 'filter[note_type]');
    const found = notes
      .filter((note) => note.entity_type === entityType && note.entity_id === id)
      .filter((note) => types.length === 0 || types.includes(note.note_type))
      .sort((a, b) => b.created_at - a.created_at || b.id - a.id)
      .map(({ id: noteId, entity_id, note_type, created_at, params }): KommoNote => ({ id: noteId, entity_id, note_type, created_at, params }));
    if (found.length === 0) return void res.status(204).end();
    res.json({ _embedded: { notes: found } });
  };
  app.get('/api/v4/contacts/:id/notes', listNotes('contacts'));
  app.get('/api/v4/leads/:id/notes', listNotes('leads'));

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

    const added: { id: number; entity_id: number; entity_type: 'contacts' | 'companies'; request_id: string }[] = [];
    const errors: { request_id: string; status: 'entity_not_found' }[] = [];
    for (const call of calls) {
      if (!call || call.direction === undefined || call.duration === undefined || call.source === undefined || call.phone === undefined) continue;
      const key = phoneKey(call.phone);
      const contact = contacts.find((c) => matchesPhone(c, key));
      const company = contact ? undefined : companies.find((c) => matchesPhone(c, key));
      const entity = contact ? { id: contact.id, type: 'contacts' as const } : company ? { id: company.id, type: 'companies' as const } : undefined;
      if (!entity) {
        // Kommo silently drops calls it cannot attach; only this error entry tells the client.
        errors.push({ request_id: call.requestId, status: 'entity_not_found' });
        continue;
      }
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
      added.push({ id: note.id, entity_id: entity.id, entity_type: entity.type, request_id: call.requestId });
    }
    res.json({ _embedded: { calls: added }, ...(errors.length > 0 ? { errors } : {}) });
  });

  app.post('/api/v4/leads/unsorted/sip', json, (req, res) => {
    const batch = batchOf(req, res);
    if (!batch) return;
    const invalid: ValidationError[] = [];
    const seenUniqs = new Set(unsorted.map((u) => u.metadata.uniq));
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
      if (check.errors.length > 0) invalid.push({ request_id: requestId, errors: check.errors });
      return { sourceUid, sourceName, pipelineId, metadata };
    });
    // All or nothing: a rejected batch must not leave half-created leads behind.
    if (invalid.length > 0) return badRequest(res, invalid);

    const created = entries.map((entry) => {
      if (!entry?.metadata || entry.sourceUid === undefined || entry.sourceName === undefined) throw new Error('unreachable: validated');
      const { metadata } = entry;
      const contact = createContact(metadata.from, metadata.phone, null);
      const lead: KommoLead = {
        id: ++seq.lead,
        name: `Incoming call from ${metadata.phone}`,
        pipeline_id: entry.pipelineId,
        created_at: nowSeconds(),
        _embedded: { contacts: [{ id: contact.id }] },
      };
      leads.push(lead);
      contact._embedded.leads.push({ id: lead.id });
      const record: KommoUnsorted = {
        uid: (++seq.unsorted).toString(16).padStart(32, '0'),
        source_uid: entry.sourceUid,
        source_name: entry.sourceName,
        category: 'sip',
        pipeline_id: entry.pipelineId,
        created_at: nowSeconds(),
        metadata,
        _embedded: { leads: [{ id: lead.id }], contacts: [{ id: contact.id }] },
      };
      unsorted.push(record);
      return { uid: record.uid, _embedded: record._embedded };
    });
    res.json({ _embedded: { unsorted: created } });
  });

  app.get('/api/v4/leads/unsorted', (req, res) => {
    const uids = queryValues(req, 'filter[uid]');
    const found = uids.length === 0 ? unsorted : unsorted.filter((u) => uids.includes(u.uid));
    if (found.length === 0) return void res.status(204).end();
    res.json({ _embedded: { unsorted: found } });
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
    seedContact,
    seedCompany,
    seedUser,
    stop: server.stop,
  };
}
