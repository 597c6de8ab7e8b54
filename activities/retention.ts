import { clearExpiredText } from '../db/erasure.js';
import type { Db } from '../db/pool.js';
import type { TenantRetentionConfig } from '../config/schema.js';

export interface RetentionInput {
  /** The instant periods are counted back from (the schedule's firing time, as the workflow saw it). */
  now: string;
}

export interface RetentionOutcome {
  tenants: number;
  transcriptsCleared: number;
  transcriptEventsCleared: number;
  inboxMessageBodiesCleared: number;
  rejectedMessagesDeleted: number;
}

const dayMs = 86_400_000;

/** Clears call transcripts and WhatsApp message text past each tenant's retention period. */
export function createRetentionActivities(deps: { db: Db; tenants: () => Record<string, { retention: TenantRetentionConfig }> }) {
  return {
    async applyRetention(input: RetentionInput): Promise<RetentionOutcome> {
      const now = Date.parse(input.now);
      if (!Number.isFinite(now)) throw new TypeError('applyRetention needs `now` as an ISO instant');
      const outcome: RetentionOutcome = { tenants: 0, transcriptsCleared: 0, transcriptEventsCleared: 0, inboxMessageBodiesCleared: 0, rejectedMessagesDeleted: 0 };
      for (const [tenantId, tenant] of Object.entries(deps.tenants())) {
        const cleared = await clearExpiredText(deps.db, tenantId, {
          transcriptsBefore: new Date(now - tenant.retention.transcriptDays * dayMs),
          messagesBefore: new Date(now - tenant.retention.messageBodyDays * dayMs),
        });
        outcome.tenants++;
        outcome.transcriptsCleared += cleared.transcripts;
        outcome.transcriptEventsCleared += cleared.transcriptEvents;
        outcome.inboxMessageBodiesCleared += cleared.inboxMessageBodies;
        outcome.rejectedMessagesDeleted += cleared.rejectedMessages;
      }
      return outcome;
    },
  };
}
