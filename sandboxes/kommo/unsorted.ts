// Incoming leads (kommo.com/developers/content/api_v4/incoming-leads): SIP calls wait in their own
// stage until a manager accepts them.
import type { Express } from 'express';
import { queryValues } from '../http.js';
import { apiJson, badRequest, notFound } from './errors.js';
import { sendPage } from './paging.js';
import { phonesOf } from './store.js';
import type { KommoStore } from './store.js';
import { KOMMO_STATUS } from './types.js';
import type { KommoUnsorted } from './types.js';
import { callerKeys, parseUnsorted } from './unsorted-parse.js';
import type { ParsedUnsorted } from './unsorted-parse.js';
import { parseBatch } from './validation.js';

function pendingCallerKeys(store: KommoStore, entry: KommoUnsorted): string[] {
  return callerKeys(
    entry.metadata.from,
    entry._embedded.contacts.flatMap((link) => store.contacts.find((c) => c.id === link.id)).flatMap((contact) => (contact ? phonesOf(contact) : [])),
  );
}

/** Creates the lead, its pending contacts, the call event and the waiting entry of one validated item. */
function createUnsorted(store: KommoStore, entry: ParsedUnsorted | undefined) {
  if (!entry?.metadata || entry.sourceUid === undefined || entry.sourceName === undefined) throw new Error('unreachable: validated');
  const { metadata } = entry;
  const lead = store.createLead(entry.leadName ?? `Incoming call from ${metadata.from}`, KOMMO_STATUS.incoming, entry.pipelineId, entry.price);
  const linked = entry.newContacts.map((input) => {
    const contact = store.createContact(input.name, input.phones, null);
    store.pendingContacts.add(contact.id);
    contact._embedded.leads.push({ id: lead.id });
    lead._embedded.contacts.push({ id: contact.id });
    return { id: contact.id };
  });
  if (metadata.is_call_event_needed) {
    // The incoming call's event on the lead card, added by Kommo itself.
    store.addNote({
      entity_id: lead.id,
      entity_type: 'leads',
      note_type: 'call_in',
      created_at: store.nowSeconds(),
      responsible_user_id: null,
      created_by: null,
      params: { uniq: metadata.uniq, duration: metadata.duration, source: metadata.service_code, link: metadata.link === '' ? null : metadata.link, phone: metadata.from, call_result: null, call_status: null },
    });
  }
  const record: KommoUnsorted = {
    uid: (++store.seq.unsorted).toString(16).padStart(32, '0'),
    source_uid: entry.sourceUid,
    source_name: entry.sourceName,
    category: 'sip',
    pipeline_id: entry.pipelineId,
    created_at: store.nowSeconds(),
    metadata,
    _embedded: { leads: [{ id: lead.id }], contacts: linked },
  };
  store.unsorted.push(record);
  return { uid: record.uid, request_id: entry.requestId, _embedded: record._embedded };
}

export function unsortedRoutes(app: Express, store: KommoStore): void {
  app.post('/api/v4/leads/unsorted/sip', apiJson(), (req, res) => {
    const seen = {
      uniqs: new Set(store.unsorted.map((u) => u.metadata.uniq)),
      callers: new Set(store.unsorted.flatMap((entry) => pendingCallerKeys(store, entry))),
    };
    // All or nothing: a rejected batch must not leave half-created leads behind.
    const entries = parseBatch(req, res, 'An unsorted lead', (item, requestId, check) => parseUnsorted(item, requestId, check, seen));
    if (!entries) return;
    const created = entries.map((entry) => createUnsorted(store, entry));
    res.json({ _embedded: { unsorted: created } });
  });

  app.get('/api/v4/leads/unsorted', (req, res) => {
    const uids = queryValues(req, 'filter[uid]');
    const categories = queryValues(req, 'filter[category]');
    const order = req.query['order[created_at]'];
    if (order !== undefined && order !== 'asc' && order !== 'desc') {
      return badRequest(res, [{ request_id: '0', errors: [{ code: 'NotSupportedChoice', path: 'order', detail: 'Sort by created_at, asc or desc.' }] }]);
    }
    const found = store.unsorted
      .filter((u) => uids.length === 0 || uids.includes(u.uid))
      .filter((u) => categories.length === 0 || categories.includes(u.category))
      .sort((a, b) => (a.created_at - b.created_at || a.uid.localeCompare(b.uid)) * (order === 'desc' ? -1 : 1));
    sendPage(req, res, 'unsorted', found);
  });

  // A manager accepts an incoming lead: it leaves the list, its lead moves to the pipeline's first
  // stage and its contacts become available in the Lists section.
  app.post('/api/v4/leads/unsorted/:uid/accept', apiJson(), (req, res) => {
    const index = store.unsorted.findIndex((entry) => entry.uid === req.params.uid);
    const entry = store.unsorted[index];
    if (!entry) return notFound(res);
    store.unsorted.splice(index, 1);
    for (const link of entry._embedded.leads) {
      const lead = store.leadById(link.id);
      if (lead) lead.status_id = KOMMO_STATUS.firstStage;
    }
    for (const link of entry._embedded.contacts) store.pendingContacts.delete(link.id);
    res.json({ uid: entry.uid, _embedded: { leads: entry._embedded.leads, contacts: entry._embedded.contacts } });
  });
}
