/**
 * How far forwarding is behind, as this process last saw it, and whether one more event may be
 * admitted. The database is read in the background (never per request); events this process
 * committed that the reading cannot have counted (by row id) are added, so one process alone keeps
 * the bound exactly, however its commits and the readings interleave.
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
  /** Called after a commit, with the ids of the rows it added. */
  committed(rowIds: readonly number[]): void;
  refresh(): Promise<BacklogView>;
  stop(): void;
}

export function startBacklogMonitor(deps: { db: Db; logger: Logger; limits: BacklogLimits; refreshMs?: number }): BacklogMonitor {
  const refreshMs = deps.refreshMs ?? 500;
  let observed: InboxCount = { pending: 0, countedUpToId: 0, oldestAgeSeconds: 0, deadLetters: 0 };
  let observedAt: number | undefined;
  // Rows this process committed that no reading has counted yet.
  let uncounted: number[] = [];
  let drainPerSecond = 0;
  let refreshing: Promise<BacklogView> | undefined;

  const current = (): BacklogView => {
    const pending = observed.pending + uncounted.length;
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
        const stillUncounted = uncounted.filter((id) => id > next.countedUpToId);
        if (observedAt !== undefined) {
          const seconds = (startedAt - observedAt) / 1000;
          const drained = observed.pending + uncounted.length - stillUncounted.length - next.pending;
          if (seconds > 0) drainPerSecond = Math.max(0, drained / seconds);
        }
        observed = next;
        observedAt = startedAt;
        uncounted = stillUncounted;
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
    committed(rowIds) {
      // An id the last reading's sequence had reached was (or, committing then, will be at the next reading) counted.
      for (const id of rowIds) if (id > observed.countedUpToId) uncounted.push(id);
    },
    refresh,
    stop() {
      clearInterval(timer);
    },
  };
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
