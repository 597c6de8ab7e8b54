/**
 * How far forwarding is behind, as this process last saw it, and whether one more event may be
 * admitted. The database is read in the background (never per request); events this process
 * committed that the reading did not see (by transaction, against the reading's snapshot) are
 * added, so one process alone keeps the bound exactly, however its commits and the readings interleave.
 */
import { countInbox } from '../db/inbox.js';
import type { InboxBacklog, InboxCount } from '../db/inbox.js';
import type { Db } from '../db/pool.js';
import type { Logger } from '../observability/logger.js';

export interface BacklogLimits {
  /** Waiting events past which new ones are refused (protects the database disk). */
  maxEvents: number;
  /** Age of the oldest waiting event past which new ones are refused. */
  maxAgeSeconds: number;
}

export interface BacklogView extends InboxBacklog {
  /** Events per second leaving the inbox, from the last two readings (0 when unknown). */
  drainPerSecond: number;
  /** When the database was last read successfully. */
  observedAt: Date | undefined;
}

export type Admission = { admitted: true } | { admitted: false; reason: 'events' | 'age'; retryAfterSeconds: number };

export interface BacklogMonitor {
  current(): BacklogView;
  admit(): Admission;
  /** Called after a commit, with the rows it added and its transaction id. */
  committed(rows: number, transactionId: string): void;
  refresh(): Promise<BacklogView>;
  stop(): void;
}

export function startBacklogMonitor(deps: { db: Db; logger: Logger; limits: BacklogLimits; refreshMs?: number }): BacklogMonitor {
  const refreshMs = deps.refreshMs ?? 500;
  let observed: InboxCount = { pending: 0, snapshot: '1:1:', oldestAgeSeconds: 0, deadLetters: 0 };
  let sawCommit = snapshotVisibility(observed.snapshot);
  let observedAt: number | undefined;
  // Commits of this process that the last reading did not see.
  let unseen: Array<{ transactionId: bigint; rows: number }> = [];
  const unseenRows = (): number => unseen.reduce((sum, commit) => sum + commit.rows, 0);
  let drainPerSecond = 0;
  let refreshing: Promise<BacklogView> | undefined;

  const current = (): BacklogView => {
    const pending = observed.pending + unseenRows();
    const elapsed = observedAt === undefined ? 0 : (Date.now() - observedAt) / 1000;
    // The oldest waiting event keeps ageing until the next reading says otherwise.
    const oldestAgeSeconds = observed.pending > 0 ? observed.oldestAgeSeconds + elapsed : 0;
    return { pending, oldestAgeSeconds, deadLetters: observed.deadLetters, drainPerSecond, observedAt: observedAt === undefined ? undefined : new Date(observedAt) };
  };

  const refresh = (): Promise<BacklogView> => {
    refreshing ??= (async () => {
      const startedAt = Date.now();
      try {
        const next = await countInbox(deps.db);
        const saw = snapshotVisibility(next.snapshot);
        const before = observed.pending + unseenRows();
        unseen = unseen.filter((commit) => !saw(commit.transactionId));
        if (observedAt !== undefined) {
          const seconds = (startedAt - observedAt) / 1000;
          if (seconds > 0) drainPerSecond = Math.max(0, (before - unseenRows() - next.pending) / seconds);
        }
        observed = next;
        sawCommit = saw;
        observedAt = startedAt;
      } catch (error) {
        deps.logger.debug({ err: error }, 'inbox backlog not readable; keeping the last reading');
      }
      return current();
    })().finally(() => {
      refreshing = undefined;
    });
    return refreshing;
  };

  const timer = setInterval(() => void refresh(), refreshMs);
  timer.unref();
  void refresh();

  return {
    current,
    admit() {
      return admissionFor(current(), deps.limits);
    },
    committed(rows, transactionId) {
      const id = BigInt(transactionId);
      // A commit the last reading already saw is in its count.
      if (rows > 0 && !sawCommit(id)) unseen.push({ transactionId: id, rows });
    },
    refresh,
    stop() {
      clearInterval(timer);
    },
  };
}

/**
 * Whether a snapshot (`xmin:xmax:xip,…`, as `pg_current_snapshot()` prints it) sees the work of a
 * transaction known to have committed: it ended before every transaction the snapshot calls running.
 */
export function snapshotVisibility(snapshot: string): (transactionId: bigint) => boolean {
  const [xmin = '0', xmax = '0', running = ''] = snapshot.split(':');
  const low = BigInt(xmin);
  const high = BigInt(xmax);
  const inProgress = new Set(running === '' ? [] : running.split(',').map((id) => BigInt(id)));
  return (transactionId) => transactionId < low || (transactionId < high && !inProgress.has(transactionId));
}

/** Whether one more event fits, and if not, how long the sender should wait at the rate the inbox drains now. */
export function admissionFor(view: Pick<BacklogView, 'pending' | 'oldestAgeSeconds' | 'drainPerSecond'>, limits: BacklogLimits): Admission {
  if (view.pending < limits.maxEvents && view.oldestAgeSeconds < limits.maxAgeSeconds) return { admitted: true };
  const reason = view.pending >= limits.maxEvents ? 'events' : 'age';
  // Long enough for the forwarder to make some room (a tenth of the bound), between 1 s and a minute.
  const excess = Math.max(view.pending - 0.9 * limits.maxEvents, 1);
  const retryAfterSeconds = view.drainPerSecond > 0 ? Math.min(60, Math.max(1, Math.ceil(excess / view.drainPerSecond))) : 5;
  return { admitted: false, reason, retryAfterSeconds };
}
