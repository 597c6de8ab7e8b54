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
}

export interface CrmAdapter {
  readonly name: 'kommo' | 'hubspot';
  findContactByPhone(phone: string): Promise<CrmContact | undefined>;
  enrich(contact: CrmContact): Promise<Omit<CallEnrichment, 'vip'>>;
  /** Logs the call against the entity the CRM matches by phone (or `entity` when the manager chose one). */
  logCall(call: CrmCall, entity?: CrmEntity): Promise<LoggedCall | undefined>;
  /** Finds a call this integration logged before (by our call id), to resolve an unknown outcome. */
  findLoggedCall(call: CrmCall, entity?: CrmEntity): Promise<LoggedCall | undefined>;
  createIncomingLead(call: CrmCall): Promise<IncomingLead>;
  findIncomingLead(call: CrmCall): Promise<IncomingLead | undefined>;
  createCallbackTask(call: CrmCall, entity: CrmEntity, dueAt: Date): Promise<{ taskId: number }>;
  findCallbackTask(call: CrmCall, entity: CrmEntity): Promise<{ taskId: number } | undefined>;
}
