/**
 * Kommo (amoCRM) API v4. Calls are matched to a contact by the last 10 digits of the phone
 * number; a call that matches nothing is silently dropped, so unknown inbound callers first
 * become an incoming ("unsorted") lead. Kommo does not deduplicate calls: the ledger above us
 * does, and `uniq` (our call id) is how we find a call again.
 */
import pThrottle from 'p-throttle';
import type { KommoConfig } from '../../config/schema.js';
import type { CrmEntity } from '../../shared/calls.js';
import { OutsideSystemError, requestJson } from '../http.js';
import type { JsonRequest, JsonResponse } from '../http.js';
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
  _embedded?: { companies?: Array<{ id: number; name?: string }> };
}
interface KommoNote {
  id: number;
  entity_id: number;
  note_type: string;
  created_at: number;
  params?: { uniq?: string; call_result?: string; duration?: number };
}
interface KommoUnsorted {
  uid: string;
  metadata?: { uniq?: string };
  _embedded?: { leads?: Array<{ id: number }>; contacts?: Array<{ id: number }> };
}
interface KommoTask {
  id: number;
  text?: string;
}

/** Digits only, last ten: how Kommo matches phone numbers. */
export const kommoPhoneKey = (phone: string): string => phone.replace(/\D/g, '').slice(-10);

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

export function createKommoAdapter(config: KommoConfig): CrmAdapter {
  const base = config.baseUrl.replace(/\/$/, '');
  // Kommo answers 429 past 7 requests in any rolling second and blocks clients that keep pushing:
  // a strict (sliding-window) throttle keeps us under it.
  const perSecond = Math.max(1, Math.floor(config.rateLimitPerSecond));
  const throttle = pThrottle({ limit: perSecond, interval: 1_000, strict: true });
  const throttled = throttle((request: Omit<JsonRequest, 'system' | 'url'> & { path: string }): Promise<JsonResponse<unknown>> =>
    requestJson<unknown>({ ...request, system: 'Kommo', url: `${base}${request.path}`, headers: { authorization: `Bearer ${config.token}` } }),
  );
  // Up to ~15 s of requests wait in the throttle, and up to ~45 s more wait in line for room there
  // (first come, first served; the CRM activities may run 5 minutes). Only past that is the wait
  // handed back to Temporal's retry: a burst of calls then costs waiting activities, not
  // thousands of failed attempts that each come back and find the queue full again.
  const maxQueued = perSecond * 15;
  const maxWaiting = perSecond * 45;
  const waiting: Array<() => void> = [];
  let admitting: NodeJS.Timeout | undefined;
  const admit = (): void => {
    for (let room = maxQueued - throttled.queueSize; room > 0 && waiting.length > 0; room--) waiting.shift()?.();
    if (waiting.length === 0 && admitting) {
      clearInterval(admitting);
      admitting = undefined;
    }
  };
  const send = async <T>(request: Omit<JsonRequest, 'system' | 'url'> & { path: string }): Promise<JsonResponse<T>> => {
    if (throttled.queueSize >= maxQueued || waiting.length > 0) {
      if (waiting.length >= maxWaiting) {
        throw new OutsideSystemError('Kommo', 'rate_limited', 'local request queue is full', 429, Math.ceil(((throttled.queueSize + waiting.length) / perSecond) * 1000));
      }
      await new Promise<void>((resolve) => {
        waiting.push(resolve);
        admitting ??= setInterval(admit, 100);
        admitting.unref();
      });
    }
    // The caller names the body type it expects from this path.
    return (await throttled(request)) as JsonResponse<T>;
  };
  const userNames = new Map<number, { id: number; name?: string; email?: string }>();

  const notesOf = async (entity: CrmEntity): Promise<KommoNote[]> => {
    const response = await send<{ _embedded?: { notes?: KommoNote[] } }>({
      path: `/api/v4/${entity.type}/${entity.id}/notes?filter[note_type]=call_in,call_out`,
      accept: [204, 404],
    });
    return response.status === 200 ? (response.body?._embedded?.notes ?? []) : [];
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

    async findContactByPhone(phone) {
      const response = await send<{ _embedded?: { contacts?: KommoContact[] } }>({
        path: `/api/v4/contacts?query=${encodeURIComponent(kommoPhoneKey(phone))}&with=leads`,
        accept: [204],
      });
      const contact = response.status === 200 ? response.body?._embedded?.contacts?.[0] : undefined;
      return contact ? toContact(contact) : undefined;
    },

    async enrich(contact) {
      const notes = await notesOf({ type: 'contacts', id: contact.id });
      let representative = contact.responsibleUserId ? userNames.get(contact.responsibleUserId) : undefined;
      if (contact.responsibleUserId && !representative) {
        const user = await send<{ id: number; name?: string; email?: string }>({ path: `/api/v4/users/${contact.responsibleUserId}`, accept: [404] });
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
      if (added) return { noteId: added.id, entity: { type: added.entity_type as CrmEntity['type'], id: added.entity_id } };
      if (!entity) return undefined;
      // The manager linked an entity the phone number does not match: note the call on it directly.
      const note = await send<{ _embedded?: { notes?: Array<{ id: number }> } }>({
        method: 'POST',
        path: `/api/v4/${entity.type}/notes`,
        json: [{ entity_id: entity.id, note_type: call.direction === 'inbound' ? 'call_in' : 'call_out', params: callPayload(call) }],
      });
      const noteId = note.body?._embedded?.notes?.[0]?.id;
      return noteId ? { noteId, entity } : undefined;
    },

    async findLoggedCall(call, entity) {
      const candidates: CrmEntity[] = [];
      if (entity) candidates.push(entity);
      const contact = await adapter.findContactByPhone(call.customerPhone);
      if (contact) candidates.push({ type: 'contacts', id: contact.id });
      for (const candidate of candidates) {
        const note = (await notesOf(candidate)).find((item) => item.params?.uniq === call.callId);
        if (note) return { noteId: note.id, entity: candidate } satisfies LoggedCall;
      }
      return undefined;
    },

    async createIncomingLead(call) {
      try {
        const response = await send<{ _embedded?: { unsorted?: KommoUnsorted[] } }>({
          method: 'POST',
          path: '/api/v4/leads/unsorted/sip',
          json: [
            {
              source_uid: call.callId,
              source_name: config.source,
              ...(config.pipelineId ? { pipeline_id: config.pipelineId } : {}),
              created_at: Math.floor(Date.parse(call.startedAt) / 1000),
              metadata: {
                uniq: call.callId,
                from: call.customerPhone,
                phone: call.customerPhone,
                called_at: Math.floor(Date.parse(call.startedAt) / 1000),
                duration: call.durationSeconds,
                link: call.recordingLink ?? '',
                service_code: config.source,
                is_call_event_needed: true,
              },
            },
          ],
        });
        const unsorted = response.body?._embedded?.unsorted?.[0];
        const lead = unsorted ? toIncomingLead(unsorted) : undefined;
        if (!lead) throw new OutsideSystemError('Kommo', 'rejected', 'incoming lead response had no lead');
        return lead;
      } catch (error) {
        // Created by an earlier attempt (or the other ingestion path): adopt it.
        if (isDuplicateError(error)) {
          const existing = await adapter.findIncomingLead(call);
          if (existing) return existing;
        }
        throw error;
      }
    },

    async findIncomingLead(call) {
      const response = await send<{ _embedded?: { unsorted?: KommoUnsorted[] } }>({
        path: '/api/v4/leads/unsorted?filter[category][]=sip&limit=250',
        accept: [204],
      });
      const match = response.body?._embedded?.unsorted?.find((item) => item.metadata?.uniq === call.callId);
      return match ? toIncomingLead(match) : undefined;
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

function toIncomingLead(unsorted: KommoUnsorted): IncomingLead | undefined {
  const leadId = unsorted._embedded?.leads?.[0]?.id;
  if (!leadId) return undefined;
  const contactId = unsorted._embedded?.contacts?.[0]?.id;
  return { uid: unsorted.uid, leadId, ...(contactId ? { contactId } : {}) };
}

/** The call id in brackets is how a task created before a crash is found again. */
export function callbackTaskText(call: CrmCall): string {
  return `Call back: missed ${call.direction} call [${call.callId}]`;
}
