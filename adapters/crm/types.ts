/** What Switchboard needs from a CRM. Kommo is the first adapter; HubSpot the second. */
import type { CallDirection, CallEnrichment, CrmEntity } from '../../shared/calls.js';

export interface CrmContact {
  id: number;
  name?: string;
  email?: string;
  phone?: string;
  company?: { id: number; name?: string };
  responsibleUserId?: number;
}

export interface CrmCall {
  /** Our call id: the `uniq` the CRM stores, and how we find the note again. */
  callId: string;
  direction: CallDirection;
  customerPhone: string;
  linePhone?: string;
  startedAt: string;
  durationSeconds: number;
  answered: boolean;
  /** Kommo call_status 1–7. */
  status: number;
  resultText?: string;
  recordingLink?: string;
  responsibleUserId?: number;
}

export interface LoggedCall {
  noteId: number;
  entity: CrmEntity;
}

export interface IncomingLead {
  uid: string;
  leadId: number;
  contactId?: number;
  /**
   * The CRM put this call's event on the lead itself (Kommo: created for this call with
   * `is_call_event_needed`), so no call note may be added there. False or absent: an earlier
   * incoming lead of the same caller, still waiting, that this call is noted on.
   */
  callEventIncluded?: boolean;
  /** Where the call is logged when not on the lead itself (HubSpot: the contact it created for the caller). */
  entity?: CrmEntity;
}

/** How the exactly-once ledger (db/effects.ts) treats a CRM's effects. */
export interface CrmLedgerOptions {
  /** How long the CRM's lookups may lag behind its writes (HubSpot's search index). */
  unknownOutcomeGraceSeconds?: number;
  /** Errors that prove the CRM did not act, so the next attempt need not look the effect up. */
  definiteFailure?: (error: unknown) => boolean;
}

/** Why a lookup is made: a live call (enrichment) may use a short cache and goes ahead of post-call work. */
export interface LookupOptions {
  live?: boolean;
}

export interface CrmAdapter {
  readonly name: 'kommo' | 'hubspot';
  /** False when an unknown inbound caller gets no incoming lead: the call is then skipped (default true). */
  readonly createsIncomingLeads?: boolean;
  readonly ledger?: CrmLedgerOptions;
  findContactByPhone(phone: string, options?: LookupOptions): Promise<CrmContact | undefined>;
  enrich(contact: CrmContact, options?: LookupOptions): Promise<Omit<CallEnrichment, 'vip'>>;
  /** Logs the call against the entity the CRM matches by phone (or `entity` when the manager chose one). */
  logCall(call: CrmCall, entity?: CrmEntity): Promise<LoggedCall | undefined>;
  /** Finds a call this integration logged before (by our call id), to resolve an unknown outcome. */
  findLoggedCall(call: CrmCall, entity?: CrmEntity): Promise<LoggedCall | undefined>;
  createIncomingLead(call: CrmCall): Promise<IncomingLead>;
  findIncomingLead(call: CrmCall): Promise<IncomingLead | undefined>;
  createCallbackTask(call: CrmCall, entity: CrmEntity, dueAt: Date): Promise<{ taskId: number }>;
  findCallbackTask(call: CrmCall, entity: CrmEntity): Promise<{ taskId: number } | undefined>;
}
