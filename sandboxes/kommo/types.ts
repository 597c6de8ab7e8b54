// The Kommo sandbox's entities and state, in the shapes API v4 answers with (see CONTRACTS.md).
import type { RequestCounts } from '../http.js';

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
