/**
 * Group commit for the inbox. One commit per event makes every answer wait for its own WAL flush,
 * and under load the flushes queue behind each other (the bare-INSERT ceiling in BENCHMARKS.md).
 * Here the events that arrive while a commit is in flight go together in the next statement, so
 * one flush answers them all (see coalesce.ts; nothing waits at low load).
 */
import { inboxKeyOf, insertInboxEvents, notifyInbox } from '../db/inbox.js';
import type { NewInboxEvent } from '../db/inbox.js';
import type { Db } from '../db/pool.js';
import { coalesce } from './coalesce.js';
import type { ItemOutcome } from './coalesce.js';

/** How many rows were new and how many already waiting, and the transaction that wrote them. */
export type Committed = { inserted: number; duplicates: number; transactionId: string };

export type InboxCommit = (rows: readonly NewInboxEvent[]) => Promise<Committed>;

/** SQLSTATE class 22 (data exception), e.g. a string jsonb refuses: the rows' fault, not the database's. */
const isDataError = (error: unknown): boolean => typeof (error as { code?: unknown }).code === 'string' && (error as { code: string }).code.startsWith('22');

export interface GroupCommitOptions {
  maxInFlight?: number;
  maxRows?: number;
  /**
   * Wakes other processes' forwarders (NOTIFY) at most this often: the wake-up rides in a commit's
   * own statement when one is due, and a commit that had to go without gets a NOTIFY of its own
   * once the interval is over. Unset: no NOTIFY at all.
   */
  notifyEveryMs?: number;
}

export function createGroupCommit(db: Db, options: GroupCommitOptions = {}): InboxCommit {
  const wake = options.notifyEveryMs === undefined ? undefined : forwarderWakeUps(db, options.notifyEveryMs);
  const commitTogether = async (deliveries: Array<readonly NewInboxEvent[]>): Promise<Array<ItemOutcome<Committed>>> => {
    try {
      const notify = wake?.takeTurn() ?? false;
      const { insertedKeys, transactionId } = await insertInboxEvents(db, deliveries.flat(), { notify });
      if (wake && !notify && insertedKeys.size > 0) wake.later();
      return deliveries.map((rows) => ({ value: { ...claimInserted(rows, insertedKeys), transactionId } }));
    } catch (error) {
      if (deliveries.length === 1 || !isDataError(error)) throw error;
      // One delivery's content must not fail its neighbours: each goes again, alone.
      const alone: Array<ItemOutcome<Committed>> = [];
      for (const rows of deliveries) alone.push(...(await commitTogether([rows]).catch((failure: unknown) => [{ error: failure }])));
      return alone;
    }
  };
  const commit = coalesce(commitTogether, { maxInFlight: options.maxInFlight ?? 2, maxWeight: options.maxRows ?? 500, weightOf: (rows) => rows.length });
  return (rows) => (rows.length === 0 ? Promise.resolve({ inserted: 0, duplicates: 0, transactionId: '0' }) : commit(rows));
}

/** Takes this delivery's rows out of the statement's inserted keys: a key counts once, for whoever carried it first. */
export function claimInserted(rows: readonly NewInboxEvent[], insertedKeys: Set<string>): { inserted: number; duplicates: number } {
  const inserted = rows.filter((row) => insertedKeys.delete(inboxKeyOf(row))).length;
  return { inserted, duplicates: rows.length - inserted };
}

/**
 * The NOTIFY schedule: `takeTurn` says whether the next statement carries one (and counts it as
 * sent); `later` makes sure a commit that went without is followed by one within the interval.
 */
function forwarderWakeUps(db: Db, everyMs: number): { takeTurn(): boolean; later(): void } {
  let lastAt = Number.NEGATIVE_INFINITY;
  let trailing: NodeJS.Timeout | undefined;
  const takeTurn = (): boolean => {
    const now = Date.now();
    if (now - lastAt < everyMs) return false;
    lastAt = now;
    clearTimeout(trailing);
    trailing = undefined;
    return true;
  };
  const later = (): void => {
    if (trailing) return;
    trailing = setTimeout(() => {
      trailing = undefined;
      lastAt = Date.now();
      notifyInbox(db).catch(() => undefined); // forwarders also poll, so a lost wake-up only delays
    }, Math.max(0, lastAt + everyMs - Date.now()));
    trailing.unref();
  };
  return { takeTurn, later };
}
