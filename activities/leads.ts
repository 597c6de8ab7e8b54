import { findLeadIdByPhone, loadLead, recordLead } from '../db/leads.js';
import type { Db } from '../db/pool.js';
import type { LeadState, TimelineEntry } from '../shared/leads.js';

export function createLeadActivities({ db }: { db: Db }) {
  return {
    /** The journaled lead, so a new run (after completion, or an operator's terminate) continues from it. */
    async loadLead(tenantId: string, leadId: string): Promise<LeadState | null> {
      return (await loadLead(db, tenantId, leadId)) ?? null;
    },
    /** Upserts the lead's projection (never over a newer version) and appends its timeline entries, once each. */
    async recordLead(state: LeadState, timeline: TimelineEntry[]): Promise<void> {
      await recordLead(db, state, timeline);
    },
    /** Which lead a phone number belongs to (for calls that should reach the lead's workflow). */
    async findLeadByPhone(tenantId: string, phone: string): Promise<string | null> {
      return (await findLeadIdByPhone(db, tenantId, phone)) ?? null;
    },
  };
}
