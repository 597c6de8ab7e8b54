// Call logging (developers.kommo.com/reference/calls): each call is noted on the card Kommo picks.
import type { Express } from 'express';
import { apiJson } from './errors.js';
import { isActive, matchesPhone, phoneKey } from './store.js';
import type { KommoStore } from './store.js';
import type { KommoLead } from './types.js';
import { parseBatch } from './validation.js';
import type { Checker } from './validation.js';

const singularOf = { contacts: 'contact', leads: 'lead', companies: 'company' } as const;

type ParsedCall = ReturnType<typeof parseCall>;
/** A call that passed validation: its required fields are there. */
type ValidCall = ParsedCall & { direction: 'inbound' | 'outbound'; duration: number; source: string; phone: string };

const isValid = (call: ParsedCall | undefined): call is ValidCall =>
  call !== undefined && call.direction !== undefined && call.duration !== undefined && call.source !== undefined && call.phone !== undefined;

function parseCall(item: Record<string, unknown>, requestId: string, check: Checker) {
  return {
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
}

type Added = { id: number; entity_id: number; entity_type: 'contact' | 'lead' | 'company'; request_id: string };

/** Notes one validated call; undefined when no contact or company has its phone. */
function placeCall(store: KommoStore, call: ValidCall): Added | undefined {
  const key = phoneKey(call.phone);
  const contact = store.contacts.find((c) => !store.pendingContacts.has(c.id) && matchesPhone(c, key));
  const company = contact ? undefined : store.companies.find((c) => matchesPhone(c, key));
  const owner = contact
    ? { id: contact.id, type: 'contacts' as const, leads: contact._embedded.leads }
    : company
      ? { id: company.id, type: 'companies' as const, leads: company._embedded.leads }
      : undefined;
  if (!owner) return undefined;
  // Kommo's placement: the one active lead of the contact (or company) gets the call; with
  // none or several, the contact (company) card does.
  const active = owner.leads.map((link) => store.leadById(link.id)).filter((lead): lead is KommoLead => lead !== undefined && isActive(lead));
  const [onlyLead] = active.length === 1 ? active : [];
  const entity = onlyLead ? { id: onlyLead.id, type: 'leads' as const } : { id: owner.id, type: owner.type };
  const note = store.addNote({
    entity_id: entity.id,
    entity_type: entity.type,
    note_type: call.direction === 'inbound' ? 'call_in' : 'call_out',
    created_at: store.nowSeconds(),
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
  });
  // The calls answer names the entity in the singular (the PHP library accepts both forms).
  return { id: note.id, entity_id: entity.id, entity_type: singularOf[entity.type], request_id: call.requestId };
}

export function callRoutes(app: Express, store: KommoStore): void {
  app.post('/api/v4/calls', apiJson(), (req, res) => {
    const calls = parseBatch(req, res, 'A call', (item, requestId, check) => {
      const call = parseCall(item, requestId, check);
      return call;
    });
    if (!calls) return;

    const added: Added[] = [];
    const errors: { request_id: string; status: 'entity_not_found' }[] = [];
    for (const call of calls) {
      if (!isValid(call)) continue;
      const placed = placeCall(store, call);
      // Kommo silently drops calls it cannot attach; only this error entry tells the client.
      if (placed) added.push(placed);
      else errors.push({ request_id: call.requestId, status: 'entity_not_found' });
    }
    res.json({ _embedded: { calls: added }, ...(errors.length > 0 ? { errors } : {}) });
  });
}

