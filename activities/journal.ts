import { loadCall, recordCall } from '../db/call-journal.js';
import type { Db } from '../db/pool.js';
import type { CallEvent, CallSnapshot } from '../shared/calls.js';

export function createJournalActivities({ db }: { db: Db }) {
  return {
    /** The journaled state of a call, so a run started by a late event continues where the last one ended. */
    async loadCall(tenantId: string, callId: string): Promise<CallSnapshot | null> {
      return (await loadCall(db, tenantId, callId)) ?? null;
    },
    /** Appends the call's new events and upserts its row (never over a newer version). */
    async recordCall(snapshot: CallSnapshot, events: CallEvent[]): Promise<void> {
      await recordCall(db, snapshot, events);
    },
  };
}
