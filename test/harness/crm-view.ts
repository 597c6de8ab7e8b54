/**
 * What a call test asks of the CRM a world's tenant uses, whichever it is: seed a caller, and read
 * back the calls, incoming leads and call-back tasks the integration left there. Lets one test
 * body run against the Kommo and the HubSpot sandbox alike.
 */
import type { HubspotSandbox } from '../../sandboxes/hubspot.js';
import type { KommoSandbox } from '../../sandboxes/kommo.js';
import type { CrmEntity } from '../../shared/calls.js';

export type CrmKind = 'kommo' | 'hubspot';

export interface LoggedCallView {
  entity: CrmEntity | undefined;
  /** The manager's result ("outcome: comment"), as the CRM stored it. */
  result: string | null;
}

export interface CrmView {
  kind: CrmKind;
  /** A contact that existed before the call. */
  seedContact(input: { name: string; phone: string; company?: string }): { id: number };
  /** Calls stored under our call id (Kommo: call notes by `uniq`, an incoming lead's own call event included; HubSpot: calls by the call-id property). */
  loggedCalls(callId: string): LoggedCallView[];
  /** Entities created for an unknown caller (Kommo: incoming leads by `metadata.uniq`; HubSpot: contacts we created for the phone). */
  incomingLeads(callId: string, phone: string): number;
  callbackTasks(callId: string): number;
  /** Requests the CRM received (every answer counted). */
  requests(): number;
  setOutage(down: boolean): void;
}

export function kommoView(kommo: KommoSandbox): CrmView {
  return {
    kind: 'kommo',
    seedContact: (input) => kommo.seedContact(input),
    loggedCalls: (callId) => {
      // An incoming lead made with is_call_event_needed carries the call as a call_in note of its
      // own (the sandbox stores it like Kommo does), so notes alone count every logged call.
      return kommo
        .state()
        .notes.filter((note) => note.params.uniq === callId)
        .map((note): LoggedCallView => ({ entity: { type: note.entity_type, id: note.entity_id }, result: note.params.call_result }));
    },
    incomingLeads: (callId) => kommo.state().unsorted.filter((lead) => lead.metadata.uniq === callId).length,
    callbackTasks: (callId) => kommo.state().tasks.filter((task) => task.text.includes(`[${callId}]`)).length,
    requests: () => kommo.state().requests.total,
    setOutage: (down) => kommo.setOutage(down),
  };
}

export function hubspotView(hubspot: HubspotSandbox, callIdProperty: string): CrmView {
  const seeded = new Set<string>();
  return {
    kind: 'hubspot',
    seedContact(input) {
      const [firstname = input.name, ...rest] = input.name.split(' ');
      const contact = hubspot.seedContact({ firstname, ...(rest.length > 0 ? { lastname: rest.join(' ') } : {}), phone: input.phone, ...(input.company ? { company: input.company } : {}) });
      seeded.add(contact.id);
      return { id: Number(contact.id) };
    },
    loggedCalls: (callId) =>
      hubspot
        .state()
        .calls.filter((call) => call.properties[callIdProperty] === callId)
        .map((call) => {
          const association = call.associations[0];
          const entity: CrmEntity | undefined =
            association && (association.toObjectType === 'contacts' || association.toObjectType === 'companies') ? { type: association.toObjectType, id: Number(association.toObjectId) } : undefined;
          return { entity, result: call.properties.hs_call_body ?? null };
        }),
    incomingLeads: (_callId, phone) => hubspot.state().contacts.filter((contact) => !seeded.has(contact.id) && contact.properties.phone === phone).length,
    callbackTasks: (callId) => hubspot.state().tasks.filter((task) => (task.properties.hs_task_subject ?? '').includes(`[${callId}]`)).length,
    requests: () => hubspot.state().requests.total,
    setOutage: (down) => hubspot.setOutage(down),
  };
}
