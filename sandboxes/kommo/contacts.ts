// Reading the account: contacts and companies (searched by phone), their notes, and users.
import type { Express, Request, Response } from 'express';
import { queryValues } from '../http.js';
import { notFound } from './errors.js';
import { sendPage, withValues } from './paging.js';
import { matchesPhone, phoneKey } from './store.js';
import type { KommoStore } from './store.js';
import type { KommoCompany, KommoContact, KommoNote } from './types.js';
import { idParam } from './validation.js';

/** What the API shows of a contact: linked leads only with `with=leads`. */
const contactView = (contact: KommoContact, req: Request): KommoContact =>
  withValues(req).includes('leads') ? contact : { ...contact, _embedded: { ...contact._embedded, leads: [] } };
const companyView = (company: KommoCompany, req: Request): KommoCompany =>
  withValues(req).includes('leads') ? company : { ...company, _embedded: { leads: [] } };

const phoneQuery = (req: Request): string | undefined => (typeof req.query.query === 'string' ? phoneKey(req.query.query) : undefined);

export function contactRoutes(app: Express, store: KommoStore): void {
  app.get('/api/v4/contacts', (req, res) => {
    const key = phoneQuery(req);
    const listed = store.contacts.filter((contact) => !store.pendingContacts.has(contact.id));
    const found = key === undefined ? listed : listed.filter((contact) => matchesPhone(contact, key));
    sendPage(req, res, 'contacts', found.map((contact) => contactView(contact, req)));
  });

  app.get('/api/v4/contacts/:id', (req, res) => {
    const contact = store.listedContact(idParam(req));
    if (!contact) return notFound(res);
    res.json(contactView(contact, req));
  });

  app.get('/api/v4/companies', (req, res) => {
    const key = phoneQuery(req);
    const found = key === undefined ? store.companies : store.companies.filter((company) => matchesPhone(company, key));
    sendPage(req, res, 'companies', found.map((company) => companyView(company, req)));
  });

  app.get('/api/v4/companies/:id', (req, res) => {
    const company = store.companies.find((c) => c.id === idParam(req));
    if (!company) return notFound(res);
    res.json(companyView(company, req));
  });

  const listNotes = (entityType: 'contacts' | 'leads' | 'companies') => (req: Request, res: Response) => {
    const id = idParam(req);
    const exists =
      entityType === 'contacts'
        ? store.listedContact(id) !== undefined
        : entityType === 'leads'
          ? store.leadById(id ?? 0) !== undefined
          : store.companies.some((c) => c.id === id);
    if (!exists) return notFound(res);
    const types = queryValues(req, 'filter[note_type]');
    const found = store.notes
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
    const user = store.users.find((u) => u.id === idParam(req));
    if (!user) return notFound(res);
    res.json(user);
  });
}
