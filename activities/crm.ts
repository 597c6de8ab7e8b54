import type { CrmAdapter, CrmCall } from '../adapters/crm/types.js';
import type { TenantConfig } from '../config/schema.js';
import { EffectBusyError, performOnce } from '../db/effects.js';
import type { Db } from '../db/pool.js';
import { currentSecret } from '../security/secrets.js';
import { recordingLink } from '../security/signatures.js';
import type { CallDirection, CallEnrichment, CallResult, CrmEntity, CrmLinks, CrmSyncState, Disposition, EnrichmentState } from '../shared/calls.js';
import { callOutside } from './failures.js';
import { effectLeaseSeconds, whileHeartbeating } from './lease.js';

export interface CrmDeps {
  db: Db;
  /** The tenant's CRM adapter, or undefined when the tenant has none configured. */
  crm: (tenantId: string) => CrmAdapter | undefined;
  tenant: (tenantId: string) => TenantConfig;
  publicUrl: string;
  /** Tells whether a normalized E.164 number is on the tenant's VIP list. */
  isVipPhone: (tenantId: string, phone: string) => boolean;
}

export interface EnrichCallInput {
  tenantId: string;
  callId: string;
  customerPhone: string;
}

export interface CrmSyncInput {
  tenantId: string;
  callId: string;
  direction: CallDirection;
  customerPhone?: string;
  linePhone?: string;
  startedAt: string;
  durationSeconds: number;
  disposition: Disposition;
  result?: CallResult;
  hasRecording: boolean;
  responsibleUserId?: number;
}

export type CrmSyncOutcome = CrmLinks & { state: CrmSyncState };

/** Kommo call_status: 1 left message, 2 call back later, 3 not available, 4 conversation, 5 wrong number, 6 no connection, 7 busy. */
export function kommoCallStatus(disposition: Disposition, result?: CallResult): number {
  if (result?.outcome === 'wrong_number') return 5;
  if (result?.outcome === 'callback_requested') return 2;
  switch (disposition) {
    case 'answered':
      return 4;
    case 'voicemail':
      return 1;
    case 'busy':
      return 7;
    case 'failed':
      return 6;
    default:
      return 3;
  }
}

export function createCrmActivities(deps: CrmDeps) {
  const { db } = deps;

  /** The CRM's ledger settings (HubSpot: search lags behind writes); a held-back nested effect sent nothing. */
  const ledgerOptions = (crm: CrmAdapter) => {
    const ledger = crm.ledger;
    return {
      ...(ledger?.unknownOutcomeGraceSeconds !== undefined ? { unknownOutcomeGraceSeconds: ledger.unknownOutcomeGraceSeconds } : {}),
      ...(ledger?.definiteFailure ? { definiteFailure: (error: unknown) => error instanceof EffectBusyError || (ledger.definiteFailure?.(error) ?? false) } : {}),
    };
  };

  const toCrmCall = (input: CrmSyncInput, customerPhone: string): CrmCall => {
    const tenant = deps.tenant(input.tenantId);
    // The link expires (recordings.linkTtlHours); without a link key of its own the tenant gives the CRM no link.
    const linkSecret = currentSecret(tenant.secrets.recordingLinkSecret);
    const linkExpiresAt = Math.floor(Date.now() / 1000) + Math.round(tenant.recordings.linkTtlHours * 3_600);
    return {
      callId: input.callId,
      direction: input.direction,
      customerPhone,
      ...(input.linePhone ? { linePhone: input.linePhone } : {}),
      startedAt: input.startedAt,
      durationSeconds: input.durationSeconds,
      answered: input.disposition === 'answered',
      status: kommoCallStatus(input.disposition, input.result),
      ...(input.result ? { resultText: [input.result.outcome, input.result.comment].filter(Boolean).join(': ') } : {}),
      ...(input.hasRecording && linkSecret
        ? { recordingLink: recordingLink(deps.publicUrl, linkSecret, input.tenantId, input.callId, linkExpiresAt) }
        : {}),
      ...(input.responsibleUserId ? { responsibleUserId: input.responsibleUserId } : {}),
    };
  };

  return {
    /** Contact, account, previous interactions and assigned representative. Retried with backoff while the CRM is down. */
    async enrichCall(input: EnrichCallInput): Promise<{ state: EnrichmentState; enrichment: CallEnrichment }> {
      const vip = deps.isVipPhone(input.tenantId, input.customerPhone);
      const crm = deps.crm(input.tenantId);
      if (!crm) return { state: 'skipped', enrichment: { previousInteractions: [], vip } };
      // A live call: its lookups go ahead of post-call logging and may use a short cache.
      return whileHeartbeating(async () => {
        const contact = await callOutside(() => crm.findContactByPhone(input.customerPhone, { live: true }));
        if (!contact) return { state: 'not_found', enrichment: { previousInteractions: [], vip } };
        const details = await callOutside(() => crm.enrich(contact, { live: true }));
        return { state: 'done', enrichment: { ...details, vip } };
      });
    },

    /**
     * Logs the call in the CRM exactly once: find the contact by phone; for an inbound call with no
     * entity, create an incoming lead first (Kommo drops calls that match nothing); then add the call.
     */
    async logCallToCrm(input: CrmSyncInput): Promise<CrmSyncOutcome> {
      const crm = deps.crm(input.tenantId);
      if (!crm) return { state: 'skipped', skippedReason: 'no_crm_configured' };
      if (!input.customerPhone) return { state: 'skipped', skippedReason: 'caller_id_withheld' };
      const call = toCrmCall(input, input.customerPhone);
      const chosenEntity = input.result?.entity;

      const outcome = await whileHeartbeating(() => callOutside(() =>
        performOnce<CrmSyncOutcome>(db, {
          tenantId: input.tenantId,
          key: `crm:call:${input.callId}`,
          kind: 'crm_call',
          leaseSeconds: effectLeaseSeconds(),
          ...ledgerOptions(crm),
          lookup: async () => {
            const found = await crm.findLoggedCall(call, chosenEntity);
            return found ? { state: 'synced', noteId: found.noteId, entity: chosenEntity ?? found.entity } : undefined;
          },
          perform: async () => {
            let entity: CrmEntity | undefined = chosenEntity;
            const links: CrmSyncOutcome = { state: 'synced' };
            if (!entity) {
              const contact = await crm.findContactByPhone(call.customerPhone);
              if (contact) entity = { type: 'contacts', id: contact.id };
            }
            if (!entity && call.direction === 'inbound' && crm.createsIncomingLeads !== false) {
              const lead = await performOnce(db, {
                tenantId: input.tenantId,
                key: `crm:incoming-lead:${input.callId}`,
                kind: 'crm_incoming_lead',
                leaseSeconds: effectLeaseSeconds(),
                ...ledgerOptions(crm),
                lookup: () => crm.findIncomingLead(call),
                perform: () => crm.createIncomingLead(call),
              });
              links.incomingLeadId = lead.result.leadId;
              links.incomingLeadUid = lead.result.uid;
              entity = lead.result.entity ?? { type: 'leads', id: lead.result.leadId };
              // The CRM put this call on the lead it created for it (Kommo: is_call_event_needed);
              // a note of ours would show the call twice.
              if (lead.result.callEventIncluded) return { ...links, entity };
            }
            if (!entity) return { state: 'skipped', skippedReason: 'no_matching_entity' };
            const logged = await crm.logCall(call, entity);
            if (!logged) return { ...links, state: 'skipped', entity, skippedReason: 'crm_did_not_attach_call' };
            return { ...links, entity: chosenEntity ?? entity, noteId: logged.noteId };
          },
        }),
      ));
      return outcome.result;
    },

    /** A call-back task on the caller's CRM entity for a missed inbound call, once. */
    async createCallbackTask(input: CrmSyncInput & { entity: CrmEntity }): Promise<{ taskId: number } | { skippedReason: string }> {
      const crm = deps.crm(input.tenantId);
      const tenant = deps.tenant(input.tenantId);
      if (!crm || !tenant.crm) return { skippedReason: 'no_crm_configured' };
      if (!input.customerPhone) return { skippedReason: 'caller_id_withheld' };
      const call = toCrmCall(input, input.customerPhone);
      const dueAt = new Date(Date.parse(input.startedAt) + tenant.crm.callbackDueMinutes * 60_000);
      const outcome = await whileHeartbeating(() => callOutside(() =>
        performOnce(db, {
          tenantId: input.tenantId,
          key: `crm:callback:${input.callId}`,
          kind: 'crm_callback_task',
          leaseSeconds: effectLeaseSeconds(),
          ...ledgerOptions(crm),
          lookup: () => crm.findCallbackTask(call, input.entity),
          perform: () => crm.createCallbackTask(call, input.entity, dueAt),
        }),
      ));
      return outcome.result;
    },
  };
}
