/**
 * Kommo (amoCRM) API v4. Calls are matched to a contact by the last 10 digits of the phone
 * number and placed on its one active lead, if it has exactly one; a call that matches nothing is
 * silently dropped, so unknown inbound callers first become an incoming ("unsorted") lead. Kommo
 * does not deduplicate calls: the ledger above us does, and `uniq` (our call id) is how we find a
 * call again.
 *
 * Authorization: a long-lived token (private integrations), or OAuth 2.0 with the tokens kept in
 * PostgreSQL, renewed ahead of expiry and on a 401, one renewal at a time across all workers.
 * Pacing: one request budget per Kommo account in PostgreSQL (7 requests per second in all),
 * live calls' lookups ahead of post-call work.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { KommoConfig } from '../../config/schema.js';
import { decodeTokenKey } from '../../config/schema.js';
import { loadTokens, recordTokenError, renewTokens, TokenKeyError } from '../../db/crm-tokens.js';
import type { StoredTokens, TokenPair, TokenScope } from '../../db/crm-tokens.js';
import type { Db } from '../../db/pool.js';
import type { CrmEntity } from '../../shared/calls.js';
import { currentCancellation, OutsideSystemError, requestJson, withoutCancellation } from '../http.js';
import type { JsonRequest, JsonResponse } from '../http.js';
import { RateBucket, RequestGate, slotsFrom } from '../request-gate.js';
import type { Priority } from '../request-gate.js';
import type { CrmAdapter, CrmCall, CrmContact, IncomingLead, LoggedCall } from './types.js';

interface KommoFieldValue {
  field_code?: string | null;
  values?: Array<{ value?: string | number }>;
}
interface KommoContact {
  id: number;
  name?: string;
  responsible_user_id?: number;
  custom_fields_values?: KommoFieldValue[] | null;
  _embedded?: { companies?: Array<{ id: number; name?: string }>; leads?: Array<{ id: number }> };
}
interface KommoCompany {
  id: number;
  _embedded?: { leads?: Array<{ id: number }> };
}
interface KommoNote {
  id: number;
  entity_id: number;
  note_type: string;
  created_at: number;
  params?: { uniq?: string | null; call_result?: string | null; duration?: number };
}
interface KommoUnsorted {
  uid: string;
  metadata?: { uniq?: string; from?: string | number };
  _embedded?: { leads?: Array<{ id: number }>; contacts?: Array<{ id: number }> };
}
interface KommoTask {
  id: number;
  text?: string;
}
interface KommoList<T> {
  _embedded?: Record<string, T[] | undefined>;
  _links?: { next?: { href?: string } };
}

type KommoRequest = Omit<JsonRequest, 'system' | 'url' | 'headers'> & { path: string };

/** Digits only, last ten: how Kommo matches phone numbers. */
export const kommoPhoneKey = (phone: string): string => phone.replace(/\D/g, '').slice(-10);

/** Kommo names entity types in the singular in some answers and the plural in others (the PHP library accepts both). */
export function normalizeEntityType(raw: unknown): CrmEntity['type'] | undefined {
  switch (raw) {
    case 'contact':
    case 'contacts':
      return 'contacts';
    case 'lead':
    case 'leads':
      return 'leads';
    case 'company':
    case 'companies':
      return 'companies';
    default:
      return undefined;
  }
}

const fieldValue = (contact: KommoContact, code: string): string | undefined => {
  const value = contact.custom_fields_values?.find((field) => field.field_code === code)?.values?.[0]?.value;
  return value === undefined ? undefined : String(value);
};

function toContact(contact: KommoContact): CrmContact {
  const company = contact._embedded?.companies?.[0];
  return {
    id: contact.id,
    ...(contact.name ? { name: contact.name } : {}),
    ...(fieldValue(contact, 'EMAIL') ? { email: fieldValue(contact, 'EMAIL') } : {}),
    ...(fieldValue(contact, 'PHONE') ? { phone: fieldValue(contact, 'PHONE') } : {}),
    ...(company ? { company: { id: company.id, ...(company.name ? { name: company.name } : {}) } } : {}),
    ...(contact.responsible_user_id ? { responsibleUserId: contact.responsible_user_id } : {}),
  };
}

const isDuplicateError = (error: unknown): boolean =>
  error instanceof OutsideSystemError && error.kind === 'rejected' && JSON.stringify(error.body ?? '').includes('Duplicate');

/**
 * 403 is permanent: an address not on the account's whitelist (error 113) or a forbidden action.
 * Only a body that says it is about request pacing makes it retryable.
 */
function classifyForbidden(error: OutsideSystemError): OutsideSystemError {
  const body = error.body;
  const text = typeof body === 'string' ? body : JSON.stringify(body ?? '');
  if (/rate limit|too many requests|temporar/i.test(text)) {
    return new OutsideSystemError('Kommo', 'rate_limited', error.message.replace(/^Kommo: /, ''), 403, error.retryAfterMs ?? 60_000, body);
  }
  return error;
}

// ---------------------------------------------------------------------------------------------
// Authorization

interface Credentials {
  header: string;
  version: number;
  renewable: boolean;
}

interface Authorizer {
  current(): Promise<Credentials>;
  /** After a 401 for the token of `version`: true when a newer token is there to retry with. */
  renewAfterRejection(version: number): Promise<boolean>;
}

const notAuthorized = (tenantId: string, why: string): OutsideSystemError =>
  new OutsideSystemError('Kommo', 'unauthorized', `${why}; authorize again: npm run cli -- kommo-authorize --tenant ${tenantId} --code <authorization code>`);

/** `POST /oauth2/access_token`: an authorization code or a refresh token for a new pair (developers.kommo.com/reference/get-token). */
export async function requestKommoTokens(
  config: Pick<KommoConfig, 'baseUrl'> & { oauth: NonNullable<KommoConfig['oauth']> },
  grant: { code: string } | { refreshToken: string },
): Promise<TokenPair> {
  const startedAt = Date.now();
  const { oauth } = config;
  const response = await requestJson<{ access_token?: unknown; refresh_token?: unknown; expires_in?: unknown }>({
    system: 'Kommo',
    method: 'POST',
    url: `${config.baseUrl.replace(/\/$/, '')}/oauth2/access_token`,
    json: {
      client_id: oauth.clientId,
      client_secret: oauth.clientSecret,
      redirect_uri: oauth.redirectUri,
      ...('code' in grant ? { grant_type: 'authorization_code', code: grant.code } : { grant_type: 'refresh_token', refresh_token: grant.refreshToken }),
    },
  });
  const body = response.body;
  if (typeof body?.access_token !== 'string' || typeof body.expires_in !== 'number' || body.expires_in <= 0) {
    throw new OutsideSystemError('Kommo', 'rejected', 'the token answer had no access token or lifetime');
  }
  return {
    accessToken: body.access_token,
    ...(typeof body.refresh_token === 'string' && body.refresh_token !== '' ? { refreshToken: body.refresh_token } : {}),
    // Counted from before the request, so the token is never believed to live longer than it does.
    expiresAt: new Date(startedAt + body.expires_in * 1000),
  };
}

function staticAuthorizer(token: string): Authorizer {
  const credentials: Credentials = { header: `Bearer ${token}`, version: 0, renewable: false };
  return { current: () => Promise.resolve(credentials), renewAfterRejection: () => Promise.resolve(false) };
}

function oauthAuthorizer(options: {
  db: Db;
  scope: TokenScope;
  config: KommoConfig & { oauth: NonNullable<KommoConfig['oauth']> };
  /** Waits for a request slot (the token endpoint counts against the account's budget too; every request waits on it, so it goes first). */
  slot: () => Promise<void>;
}): Authorizer {
  const { db, scope, config } = options;
  const accountUrl = config.baseUrl.replace(/\/$/, '');
  const aheadMs = config.oauth.refreshAheadSeconds * 1000;
  let cached: StoredTokens | undefined;
  let loading: Promise<StoredTokens> | undefined;
  let renewing: Promise<StoredTokens> | undefined;
  // After a failed renewal ahead of expiry, wait a minute before trying again (the token still works).
  let aheadFailedAt = Number.NEGATIVE_INFINITY;

  const due = (tokens: StoredTokens): boolean => tokens.refreshToken !== undefined && tokens.expiresAt.getTime() - aheadMs <= Date.now();
  const ours = (tokens: StoredTokens): StoredTokens => {
    if (tokens.accountUrl !== accountUrl) throw notAuthorized(scope.tenantId, 'the stored Kommo tokens belong to another account');
    return tokens;
  };
  const keyProblem = (error: unknown): never => {
    if (error instanceof TokenKeyError) throw new OutsideSystemError('Kommo', 'unauthorized', error.message);
    throw error;
  };

  const load = async (): Promise<StoredTokens> => {
    const stored = await loadTokens(db, scope).catch(keyProblem);
    if (!stored) throw notAuthorized(scope.tenantId, 'Kommo OAuth is configured but no tokens are stored');
    return ours(stored);
  };

  /**
   * One renewal per process at a time; across processes the row lock in renewTokens decides.
   * Shared by every caller, and a lost answer would lose the rotated refresh token: never cut off
   * because the caller that started it was cancelled.
   */
  const renew = (seenVersion: number, rejected: boolean): Promise<StoredTokens> =>
    (renewing ??= withoutCancellation(async () => {
      try {
        const saved = await renewTokens(db, scope, async (now) => {
          const movedOn = now.version !== seenVersion;
          // Another worker renewed while we waited for the lock: use its pair (the old refresh token is spent).
          if (!due(now) && (movedOn || !rejected)) return undefined;
          if (!now.refreshToken) throw notAuthorized(scope.tenantId, 'Kommo refused the access token and there is no refresh token');
          await options.slot();
          try {
            return await requestKommoTokens(config, { refreshToken: now.refreshToken });
          } catch (error) {
            if (error instanceof OutsideSystemError && !error.retryable) {
              const hint = typeof (error.body as { hint?: unknown } | undefined)?.hint === 'string' ? ` (${(error.body as { hint: string }).hint})` : '';
              throw notAuthorized(scope.tenantId, `Kommo refused the refresh token${hint}`);
            }
            throw error;
          }
        });
        if (!saved) throw notAuthorized(scope.tenantId, 'the stored Kommo tokens are gone');
        cached = ours(saved);
        return cached;
      } catch (error) {
        await recordTokenError(db, scope, (error as Error).message).catch(() => undefined);
        return keyProblem(error);
      }
    }).finally(() => {
      renewing = undefined;
    }));

  return {
    async current() {
      cached ??= await (loading ??= load().finally(() => {
        loading = undefined;
      }));
      const expired = cached.expiresAt.getTime() <= Date.now();
      if (due(cached) && (expired || Date.now() - aheadFailedAt > 60_000)) {
        try {
          await renew(cached.version, false);
        } catch (error) {
          // Renewing ahead of time failed, but the token still works: use it until it does not.
          if (expired) throw error;
          aheadFailedAt = Date.now();
        }
      }
      return { header: `Bearer ${cached.accessToken}`, version: cached.version, renewable: cached.refreshToken !== undefined };
    },
    async renewAfterRejection(version) {
      if (renewing) await renewing.catch(() => undefined);
      if (cached && cached.version > version) return true;
      await renew(version, true);
      return true;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The adapter

export interface KommoDeps {
  /**
   * PostgreSQL: the account's shared request budget and (with OAuth) the stored tokens. Without it
   * (a test driving the adapter alone) the budget is this process's own and only a long-lived
   * token can be used.
   */
  db?: Db;
  tenantId?: string;
}

export function createKommoAdapter(config: KommoConfig, deps: KommoDeps = {}): CrmAdapter {
  const base = config.baseUrl.replace(/\/$/, '');
  const perSecond = Math.max(1, Math.floor(config.rateLimitPerSecond));
  // Burst 1: with slots spaced 1/perSecond apart, no rolling second sees more than perSecond + 1 (≤ 7).
  const gate = new RequestGate('Kommo', slotsFrom(deps.db, [new RateBucket(`kommo:${base}`, perSecond)]), perSecond);

  let auth: Authorizer;
  if (config.oauth) {
    const key = decodeTokenKey(config.oauth.tokenKey);
    if (!deps.db || !deps.tenantId || !key) throw new Error('Kommo OAuth needs the database, the tenant id and a valid token key');
    auth = oauthAuthorizer({ db: deps.db, scope: { tenantId: deps.tenantId, crm: 'kommo', key }, config: { ...config, oauth: config.oauth }, slot: () => gate.take('live') });
  } else if (config.token) {
    auth = staticAuthorizer(config.token);
  } else {
    throw new Error('Kommo needs a long-lived token or OAuth settings');
  }

  const send = async <T>(request: KommoRequest, priority: Priority = 'background'): Promise<JsonResponse<T>> => {
    let renewed = false;
    let limited = 0;
    for (;;) {
      await gate.take(priority);
      const credentials = await auth.current();
      try {
        // The caller names the body type it expects from this path.
        return await requestJson<T>({ ...request, system: 'Kommo', url: `${base}${request.path}`, headers: { authorization: credentials.header } });
      } catch (error) {
        if (!(error instanceof OutsideSystemError)) throw error;
        // An access token that stopped working (expired early, or revoked by a renewal elsewhere): renew once and retry.
        if (error.status === 401 && credentials.renewable && !renewed) {
          renewed = true;
          if (await auth.renewAfterRejection(credentials.version)) continue;
        }
        // A 429 means the request was not processed, so sending it again is safe.
        if (error.status === 429 && limited < 2 && (error.retryAfterMs ?? 1_000) <= 5_000) {
          limited++;
          await delay(error.retryAfterMs ?? 1_000, undefined, { signal: currentCancellation() });
          continue;
        }
        if (error.status === 403) throw classifyForbidden(error);
        throw error;
      }
    }
  };

  /** Walks a list's pages (limit 250, the most Kommo allows) until `stop` says so or the pages end. */
  const walk = async <T>(path: string, key: string, stop: (item: T) => boolean, priority: Priority = 'background'): Promise<T | undefined> => {
    const limit = 250;
    for (let page = 1; page <= 200; page++) {
      const response = await send<KommoList<T>>({ path: `${path}${path.includes('?') ? '&' : '?'}page=${page}&limit=${limit}`, accept: [204, 404] }, priority);
      if (response.status !== 200) return undefined;
      const items = response.body?._embedded?.[key] ?? [];
      const found = items.find(stop);
      if (found) return found;
      if (!response.body?._links?.next?.href || items.length < limit) return undefined;
    }
    return undefined;
  };

  const userNames = new Map<number, { id: number; name?: string; email?: string }>();
  const lookupTtlMs = (config.lookupCacheSeconds ?? 30) * 1000;
  const lookups = new Map<string, { at: number; contact: KommoContact | undefined }>();

  const contactByPhone = async (phone: string, live: boolean): Promise<KommoContact | undefined> => {
    const key = kommoPhoneKey(phone);
    const hit = lookups.get(key);
    if (live && hit && Date.now() - hit.at < lookupTtlMs) return hit.contact;
    const response = await send<{ _embedded?: { contacts?: KommoContact[] } }>({ path: `/api/v4/contacts?query=${encodeURIComponent(key)}&with=leads`, accept: [204] }, live ? 'live' : 'background');
    const contact = response.status === 200 ? response.body?._embedded?.contacts?.[0] : undefined;
    if (lookupTtlMs > 0) {
      lookups.set(key, { at: Date.now(), contact });
      if (lookups.size > 10_000) lookups.delete(lookups.keys().next().value as string);
    }
    return contact;
  };

  const notesPath = (entity: CrmEntity): string => `/api/v4/${entity.type}/${entity.id}/notes?filter[note_type]=call_in,call_out`;

  /** Newest incoming SIP leads first (the ones a retry or a repeat caller is after). */
  const incomingLeadWhere = (match: (item: KommoUnsorted) => boolean): Promise<KommoUnsorted | undefined> =>
    walk<KommoUnsorted>('/api/v4/leads/unsorted?filter[category][]=sip&order[created_at]=desc', 'unsorted', match);

  /** A repeat caller's earlier incoming lead that nobody has accepted yet: its contact is not searchable, so this is how it is found. */
  const pendingIncomingLeadOf = (phone: string): Promise<KommoUnsorted | undefined> => {
    const key = kommoPhoneKey(phone);
    return incomingLeadWhere((item) => item.metadata?.from !== undefined && kommoPhoneKey(String(item.metadata.from)) === key);
  };

  const callPayload = (call: CrmCall) => ({
    direction: call.direction,
    uniq: call.callId,
    duration: call.durationSeconds,
    source: config.source,
    phone: call.customerPhone,
    call_status: call.status,
    ...(call.recordingLink ? { link: call.recordingLink } : {}),
    ...(call.resultText ? { call_result: call.resultText } : {}),
    ...(call.responsibleUserId ? { responsible_user_id: call.responsibleUserId } : {}),
    created_at: Math.floor(Date.parse(call.startedAt) / 1000),
  });

  const adapter: CrmAdapter = {
    name: 'kommo',

    async findContactByPhone(phone, options) {
      const contact = await contactByPhone(phone, options?.live === true);
      return contact ? toContact(contact) : undefined;
    },

    async enrich(contact, options) {
      const priority: Priority = options?.live ? 'live' : 'background';
      const response = await send<{ _embedded?: { notes?: KommoNote[] } }>({ path: notesPath({ type: 'contacts', id: contact.id }), accept: [204, 404] }, priority);
      const notes = response.status === 200 ? (response.body?._embedded?.notes ?? []) : [];
      let representative = contact.responsibleUserId ? userNames.get(contact.responsibleUserId) : undefined;
      if (contact.responsibleUserId && !representative) {
        const user = await send<{ id: number; name?: string; email?: string }>({ path: `/api/v4/users/${contact.responsibleUserId}`, accept: [404] }, priority);
        if (user.status === 200 && user.body) {
          representative = { id: user.body.id, ...(user.body.name ? { name: user.body.name } : {}), ...(user.body.email ? { email: user.body.email } : {}) };
          userNames.set(user.body.id, representative);
        }
      }
      return {
        contact: { id: contact.id, ...(contact.name ? { name: contact.name } : {}) },
        ...(contact.company ? { account: contact.company } : {}),
        previousInteractions: notes.slice(0, 10).map((note) => ({
          at: new Date(note.created_at * 1000).toISOString(),
          type: note.note_type,
          ...(note.params?.call_result ? { summary: note.params.call_result } : {}),
        })),
        ...(representative ? { assignedRepresentative: representative } : {}),
      };
    },

    async logCall(call, entity) {
      const response = await send<{ _embedded?: { calls?: Array<{ id: number; entity_id: number; entity_type: string }> }; errors?: unknown[] }>({
        method: 'POST',
        path: '/api/v4/calls',
        json: [{ ...callPayload(call), request_id: '0' }],
      });
      const added = response.body?._embedded?.calls?.[0];
      if (added) {
        const type = normalizeEntityType(added.entity_type);
        if (type) return { noteId: added.id, entity: { type, id: added.entity_id } };
        // Placed on a card we do not model (a customer): report the caller's contact as the entity.
        const contact = entity ? undefined : await contactByPhone(call.customerPhone, false);
        const owner = entity ?? (contact ? { type: 'contacts' as const, id: contact.id } : undefined);
        return owner ? { noteId: added.id, entity: owner } : undefined;
      }
      if (!entity) return undefined;
      // Kommo matched nothing (an entity the phone number does not match, or a waiting incoming
      // lead whose contact is not searchable yet): note the call on the entity directly.
      const note = await send<{ _embedded?: { notes?: Array<{ id: number }> } }>({
        method: 'POST',
        path: `/api/v4/${entity.type}/notes`,
        json: [{ entity_id: entity.id, note_type: call.direction === 'inbound' ? 'call_in' : 'call_out', params: callPayload(call) }],
      });
      const noteId = note.body?._embedded?.notes?.[0]?.id;
      return noteId ? { noteId, entity } : undefined;
    },

    async findLoggedCall(call, entity) {
      // Everywhere Kommo may have put the call: the chosen entity, the contact, its company, their
      // leads (a contact's one active lead gets its calls), and a waiting incoming lead.
      const candidates: CrmEntity[] = [];
      const add = (candidate: CrmEntity): void => {
        if (!candidates.some((known) => known.type === candidate.type && known.id === candidate.id)) candidates.push(candidate);
      };
      if (entity) add(entity);
      const contact = await contactByPhone(call.customerPhone, false);
      if (contact) {
        add({ type: 'contacts', id: contact.id });
        for (const lead of contact._embedded?.leads ?? []) add({ type: 'leads', id: lead.id });
      }
      const companyId = contact?._embedded?.companies?.[0]?.id;
      const companies: KommoCompany[] = [];
      if (companyId !== undefined) {
        const company = await send<KommoCompany>({ path: `/api/v4/companies/${companyId}?with=leads`, accept: [404] });
        if (company.status === 200 && company.body) companies.push(company.body);
      } else if (!contact) {
        const found = await send<{ _embedded?: { companies?: KommoCompany[] } }>({ path: `/api/v4/companies?query=${encodeURIComponent(kommoPhoneKey(call.customerPhone))}&with=leads`, accept: [204] });
        if (found.status === 200) companies.push(...(found.body?._embedded?.companies ?? []).slice(0, 1));
      }
      for (const company of companies) {
        add({ type: 'companies', id: company.id });
        for (const lead of company._embedded?.leads ?? []) add({ type: 'leads', id: lead.id });
      }
      if (call.direction === 'inbound') {
        const incoming = await incomingLeadWhere((item) => item.metadata?.uniq === call.callId || (item.metadata?.from !== undefined && kommoPhoneKey(String(item.metadata.from)) === kommoPhoneKey(call.customerPhone)));
        for (const lead of incoming?._embedded?.leads ?? []) add({ type: 'leads', id: lead.id });
      }
      for (const candidate of candidates) {
        const note = await walk<KommoNote>(notesPath(candidate), 'notes', (item) => item.params?.uniq === call.callId);
        if (note) return { noteId: note.id, entity: candidate } satisfies LoggedCall;
      }
      return undefined;
    },

    async createIncomingLead(call) {
      // Kommo keeps one waiting incoming lead per caller: a repeat call belongs on that one.
      const waiting = await pendingIncomingLeadOf(call.customerPhone);
      const existing = waiting ? toIncomingLead(waiting, call) : undefined;
      if (existing) return existing;
      const calledAt = Math.floor(Date.parse(call.startedAt) / 1000);
      try {
        const response = await send<{ _embedded?: { unsorted?: KommoUnsorted[] } }>({
          method: 'POST',
          path: '/api/v4/leads/unsorted/sip',
          json: [
            {
              source_uid: call.callId,
              source_name: config.source,
              ...(config.pipelineId ? { pipeline_id: config.pipelineId } : {}),
              created_at: calledAt,
              metadata: {
                uniq: call.callId,
                from: call.customerPhone,
                // The number that was called (our line), as Kommo defines `phone`.
                phone: call.linePhone ?? call.customerPhone,
                called_at: calledAt,
                duration: call.durationSeconds,
                link: call.recordingLink ?? '',
                service_code: config.source,
                // Kommo adds the call's event to the lead itself; we add no note of our own there.
                is_call_event_needed: true,
              },
              // The caller, so the lead's contact has the number (examples/unsorted_actions.php).
              _embedded: {
                contacts: [{ name: call.customerPhone, custom_fields_values: [{ field_code: 'PHONE', values: [{ value: call.customerPhone, enum_code: 'WORK' }] }] }],
              },
              request_id: '0',
            },
          ],
        });
        const unsorted = response.body?._embedded?.unsorted?.[0];
        const lead = unsorted ? toIncomingLead({ ...unsorted, metadata: { uniq: call.callId } }, call) : undefined;
        if (!lead) throw new OutsideSystemError('Kommo', 'rejected', 'incoming lead response had no lead');
        return lead;
      } catch (error) {
        // Created by an earlier attempt, or another call of this caller got there first: adopt it.
        if (isDuplicateError(error)) {
          const found = (await adapter.findIncomingLead(call)) ?? (await pendingIncomingLeadOf(call.customerPhone).then((item) => (item ? toIncomingLead(item, call) : undefined)));
          if (found) return found;
        }
        throw error;
      }
    },

    async findIncomingLead(call) {
      const match = await incomingLeadWhere((item) => item.metadata?.uniq === call.callId);
      return match ? toIncomingLead(match, call) : undefined;
    },

    async createCallbackTask(call, entity, dueAt) {
      const response = await send<{ _embedded?: { tasks?: Array<{ id: number }> } }>({
        method: 'POST',
        path: '/api/v4/tasks',
        json: [
          {
            text: callbackTaskText(call),
            complete_till: Math.floor(dueAt.getTime() / 1000),
            entity_id: entity.id,
            entity_type: entity.type,
            task_type_id: 1,
            request_id: call.callId,
            ...(call.responsibleUserId ? { responsible_user_id: call.responsibleUserId } : {}),
          },
        ],
      });
      const taskId = response.body?._embedded?.tasks?.[0]?.id;
      if (!taskId) throw new OutsideSystemError('Kommo', 'rejected', 'task response had no task');
      return { taskId };
    },

    async findCallbackTask(call, entity) {
      const response = await send<{ _embedded?: { tasks?: KommoTask[] } }>({
        path: `/api/v4/tasks?filter[entity_id]=${entity.id}&filter[entity_type]=${entity.type}`,
        accept: [204],
      });
      const task = response.body?._embedded?.tasks?.find((item) => item.text?.includes(`[${call.callId}]`));
      return task ? { taskId: task.id } : undefined;
    },
  };
  return adapter;
}

function toIncomingLead(unsorted: KommoUnsorted, call: CrmCall): IncomingLead | undefined {
  const leadId = unsorted._embedded?.leads?.[0]?.id;
  if (!leadId) return undefined;
  const contactId = unsorted._embedded?.contacts?.[0]?.id;
  return { uid: unsorted.uid, leadId, ...(contactId ? { contactId } : {}), callEventIncluded: unsorted.metadata?.uniq === call.callId };
}

/** The call id in brackets is how a task created before a crash is found again. */
export function callbackTaskText(call: CrmCall): string {
  return `Call back: missed ${call.direction} call [${call.callId}]`;
}
