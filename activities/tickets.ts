import type { TicketingAdapter } from '../adapters/ticketing.js';
import { performOnce } from '../db/effects.js';
import type { Db } from '../db/pool.js';
import type { TicketDraft } from '../shared/call-outcomes.js';
import { callOutside } from './failures.js';
import { effectLeaseSeconds, whileHeartbeating } from './lease.js';

export interface OpenTicketInput {
  tenantId: string;
  callId: string;
  draft: TicketDraft;
  customer: { name?: string; phone?: string; email?: string };
}

export type OpenTicketOutcome = { state: 'done'; id: number } | { state: 'skipped'; reason: string };

export function createTicketActivities(deps: { db: Db; ticketing: (tenantId: string) => TicketingAdapter | undefined }) {
  return {
    /** Opens the call's ticket once; an attempt whose outcome was lost is found again by external_id. */
    async openTicket(input: OpenTicketInput): Promise<OpenTicketOutcome> {
      const ticketing = deps.ticketing(input.tenantId);
      if (!ticketing) return { state: 'skipped', reason: 'no_ticketing_configured' };
      const externalId = `switchboard:${input.tenantId}:${input.callId}`;
      const outcome = await whileHeartbeating(() => callOutside(() =>
        performOnce(deps.db, {
          tenantId: input.tenantId,
          key: `ticket:${input.callId}`,
          kind: 'ticket',
          leaseSeconds: effectLeaseSeconds(),
          lookup: () => ticketing.findTicket(externalId),
          perform: () =>
            ticketing.createTicket({
              externalId,
              subject: input.draft.title,
              description: `${input.draft.description}\n\nCall: ${input.callId}`,
              priority: input.draft.priority,
              queue: ticketing.queueFor(input.draft.issueType),
              requester: input.customer,
              tags: ['switchboard', 'call', ...(input.draft.issueType ? [input.draft.issueType.toLowerCase().replace(/\s+/g, '-')] : [])],
            }),
        }),
      ));
      return { state: 'done', id: outcome.result.id };
    },
  };
}
