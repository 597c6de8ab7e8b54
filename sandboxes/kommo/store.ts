// The account's records and the rules that link them (companies by name, leads to their people).
import type { Clock } from '../http.js';
import { KOMMO_STATUS } from './types.js';
import type { KommoCompany, KommoContact, KommoLead, KommoPhoneField, KommoStoredNote, KommoTask, KommoUnsorted, KommoUser } from './types.js';
import type { SeedCompanyInput, SeedContactInput, SeedLeadInput, SeedUserInput } from './handle.js';

/** Kommo's matching rule: the last 10 digits, digits only. */
export function phoneKey(phone: string): string {
  return phone.replace(/\D/g, '').slice(-10);
}

export function phonesOf(entity: { custom_fields_values: KommoPhoneField[] }): string[] {
  return entity.custom_fields_values.filter((field) => field.field_code === 'PHONE').flatMap((field) => field.values.map((v) => v.value));
}

export function matchesPhone(entity: { custom_fields_values: KommoPhoneField[] }, key: string): boolean {
  return key !== '' && phonesOf(entity).some((phone) => phoneKey(phone) === key);
}

export const isActive = (lead: KommoLead): boolean =>
  lead.status_id !== KOMMO_STATUS.won && lead.status_id !== KOMMO_STATUS.lost && lead.status_id !== KOMMO_STATUS.incoming;

export class KommoStore {
  readonly contacts: KommoContact[] = [];
  readonly companies: KommoCompany[] = [];
  readonly leads: KommoLead[] = [];
  readonly unsorted: KommoUnsorted[] = [];
  readonly notes: KommoStoredNote[] = [];
  readonly tasks: KommoTask[] = [];
  readonly users: KommoUser[] = [];
  // Contacts of incoming leads not yet accepted: "unavailable in the Lists section" (so unsearchable).
  readonly pendingContacts = new Set<number>();
  readonly seq = { contact: 0, company: 0, lead: 0, unsorted: 0, note: 0, task: 0, user: 0 };

  constructor(private readonly clock: Clock) {}

  nowSeconds(): number {
    return Math.floor(this.clock() / 1000);
  }

  leadById(id: number): KommoLead | undefined {
    return this.leads.find((lead) => lead.id === id);
  }

  listedContact(id: number | undefined): KommoContact | undefined {
    return this.contacts.find((c) => c.id === id && !this.pendingContacts.has(c.id));
  }

  companyNamed(name: string): KommoCompany {
    const existing = this.companies.find((company) => company.name === name);
    if (existing) return existing;
    const company: KommoCompany = { id: ++this.seq.company, name, custom_fields_values: [], _embedded: { leads: [] } };
    this.companies.push(company);
    return company;
  }

  createContact(name: string, phones: string[], responsibleUserId: number | null, company?: KommoCompany): KommoContact {
    const contact: KommoContact = {
      id: ++this.seq.contact,
      name,
      responsible_user_id: responsibleUserId,
      custom_fields_values: phones.length > 0 ? [{ field_code: 'PHONE', values: phones.map((value) => ({ value })) }] : [],
      _embedded: { companies: company ? [{ id: company.id, name: company.name }] : [], leads: [] },
    };
    this.contacts.push(contact);
    return contact;
  }

  createLead(name: string, statusId: number, pipelineId: number | null, price = 0): KommoLead {
    const lead: KommoLead = { id: ++this.seq.lead, name, price, pipeline_id: pipelineId, status_id: statusId, created_at: this.nowSeconds(), _embedded: { contacts: [], companies: [] } };
    this.leads.push(lead);
    return lead;
  }

  /** Stores a note under the next id. */
  addNote(note: Omit<KommoStoredNote, 'id'>): KommoStoredNote {
    const stored: KommoStoredNote = { id: ++this.seq.note, ...note };
    this.notes.push(stored);
    return stored;
  }

  seedContact(input: SeedContactInput): KommoContact {
    const company = input.company === undefined ? undefined : this.companyNamed(input.company);
    const contact = this.createContact(input.name, [input.phone], input.responsibleUserId ?? null, company);
    if (input.email !== undefined) contact.custom_fields_values.push({ field_code: 'EMAIL', values: [{ value: input.email }] });
    return structuredClone(contact);
  }

  seedCompany(input: SeedCompanyInput): KommoCompany {
    const company = this.companyNamed(input.name);
    if (input.phone !== undefined) company.custom_fields_values.push({ field_code: 'PHONE', values: [{ value: input.phone }] });
    return structuredClone(company);
  }

  seedUser(input: SeedUserInput): KommoUser {
    const id = input.id ?? this.seq.user + 1;
    this.seq.user = Math.max(this.seq.user, id);
    const user: KommoUser = { id, name: input.name, email: input.email };
    const index = this.users.findIndex((existing) => existing.id === id);
    if (index >= 0) this.users[index] = user;
    else this.users.push(user);
    return { ...user };
  }

  seedLead(input: SeedLeadInput): KommoLead {
    const contact = input.contactId === undefined ? undefined : this.contacts.find((c) => c.id === input.contactId);
    const company = input.companyId === undefined ? undefined : this.companies.find((c) => c.id === input.companyId);
    if ((input.contactId !== undefined && !contact) || (input.companyId !== undefined && !company)) throw new Error('seedLead: unknown contact or company');
    const lead = this.createLead(input.name, input.closed ? KOMMO_STATUS.won : KOMMO_STATUS.firstStage, null);
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
}
