/**
 * Paces an adapter's requests under an outside system's rate limit: slots come from a bucket in
 * PostgreSQL that every process shares (the limit is the account's or the number's, not one
 * worker's), or from this process alone when there is no database (a test driving an adapter).
 */
import { setTimeout as delay } from 'node:timers/promises';
import { takeJointSlot } from '../db/rate-buckets.js';
import type { Db } from '../db/pool.js';
import { currentCancellation, OutsideSystemError, RequestNotSentError } from './http.js';

export type Priority = 'live' | 'background';

/** Where request slots come from: PostgreSQL for the whole account, or this process alone. */
export interface SlotSource {
  /** One slot, reserving at most `aheadSeconds` of slots in any bucket (the queue a caller may join). */
  take(aheadSeconds: number): Promise<{ waitMs: number } | { fullForMs: number }>;
}

/**
 * One rate limit: the bucket every process shares through PostgreSQL (by its name), refilled at
 * `perSecond` up to `burst`. With burst 1, slots are spaced 1/perSecond apart and no rolling second
 * sees more than perSecond + 1 requests. Without a database the balance is kept here, per process.
 */
export class RateBucket {
  tokens: number;
  at = Date.now();

  constructor(
    readonly name: string,
    readonly perSecond: number,
    readonly burst = 1,
  ) {
    this.tokens = burst;
  }
}

/** Slots from this process's own balances: the same rule as the PostgreSQL buckets (db/rate-buckets.ts). */
function memorySlots(buckets: RateBucket[]): SlotSource {
  return {
    take(aheadSeconds) {
      const now = Date.now();
      const available = buckets.map((bucket) => Math.min(bucket.burst, bucket.tokens + ((now - bucket.at) / 1000) * bucket.perSecond));
      // The first moment every bucket allows a request, and each balance after one at that moment.
      const waitS = Math.max(0, ...buckets.map((bucket, index) => (1 - (available[index] ?? 0)) / bucket.perSecond));
      const after = buckets.map((bucket, index) => Math.min((available[index] ?? 0) + waitS * bucket.perSecond, bucket.burst) - 1 - waitS * bucket.perSecond);
      const fullForS = Math.max(0, ...buckets.map((bucket, index) => (-aheadSeconds * bucket.perSecond - (after[index] ?? 0)) / bucket.perSecond));
      if (fullForS > 0) return Promise.resolve({ fullForMs: Math.max(1, Math.ceil(fullForS * 1000)) });
      buckets.forEach((bucket, index) => {
        bucket.tokens = after[index] ?? bucket.tokens;
        bucket.at = now;
      });
      return Promise.resolve({ waitMs: Math.ceil(waitS * 1000) });
    },
  };
}

/** Slots that respect every one of `buckets` (a request counting against several limits), from PostgreSQL when there is a database. */
export function slotsFrom(db: Db | undefined, buckets: RateBucket[]): SlotSource {
  if (!db) return memorySlots(buckets);
  return {
    take: (aheadSeconds) =>
      takeJointSlot(
        db,
        buckets.map((bucket) => ({ bucket: bucket.name, perSecond: bucket.perSecond, burst: bucket.burst, maxQueued: aheadSeconds * bucket.perSecond })),
      ),
  };
}

interface Waiter {
  /** The caller's slot: it may send after `waitMs`. */
  grant: (waitMs: number) => void;
  fail: (error: Error) => void;
}

/**
 * Hands out request slots, live requests first: within this process they are served before
 * post-call ones, and across processes they may reserve up to 30 s of slots ahead while
 * post-call requests reserve at most one second's worth, so a live lookup waits behind at most
 * about a second of post-call traffic. One pump per process asks the shared bucket. A caller
 * whose work is cancelled (`withCancellation`) stops waiting at once.
 */
export class RequestGate {
  private readonly queues: Record<Priority, Waiter[]> = { live: [], background: [] };
  private pumping = false;

  constructor(
    private readonly system: string,
    private readonly slots: SlotSource,
    private readonly perSecond: number,
  ) {}

  take(priority: Priority = 'background'): Promise<void> {
    const waiting = this.queues.live.length + this.queues.background.length;
    // Past ~45 s of waiting requests, hand the wait back to Temporal's retry instead of queueing.
    if (waiting >= this.perSecond * 45) {
      return Promise.reject(new OutsideSystemError(this.system, 'rate_limited', 'local request queue is full', 429, Math.ceil((waiting / this.perSecond) * 1000)));
    }
    const signal = currentCancellation();
    if (signal?.aborted) return Promise.reject(this.cancelled());
    return new Promise<void>((resolve, reject) => {
      const queue = this.queues[priority];
      let timer: NodeJS.Timeout | undefined;
      const stopListening = (): void => signal?.removeEventListener('abort', onAbort);
      // Cancelled in line or while waiting out its slot: the caller stops waiting at once (a reserved slot goes unused).
      const onAbort = (): void => {
        const index = queue.indexOf(waiter);
        if (index >= 0) queue.splice(index, 1);
        clearTimeout(timer);
        reject(this.cancelled());
      };
      const waiter: Waiter = {
        grant: (waitMs) => {
          const go = (): void => {
            stopListening();
            resolve();
          };
          if (waitMs <= 0) go();
          else timer = setTimeout(go, waitMs);
        },
        fail: (error) => {
          stopListening();
          reject(error);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      queue.push(waiter);
      void this.pump();
    });
  }

  private cancelled(): RequestNotSentError {
    return new RequestNotSentError(this.system, 'cancelled while waiting for a request slot');
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      for (;;) {
        const priority: Priority | undefined = this.queues.live.length > 0 ? 'live' : this.queues.background.length > 0 ? 'background' : undefined;
        if (!priority) return;
        let slot: { waitMs: number } | { fullForMs: number };
        try {
          slot = await this.slots.take(priority === 'live' ? 30 : 1);
        } catch (error) {
          // No budget to be had (database unreachable): fail what waits; Temporal retries it.
          const failure = new RequestNotSentError(this.system, `request budget unavailable: ${(error as Error).message}`);
          for (const waiter of [...this.queues.live.splice(0), ...this.queues.background.splice(0)]) waiter.fail(failure);
          continue;
        }
        if ('fullForMs' in slot) {
          await delay(Math.min(slot.fullForMs, 1_000));
          continue;
        }
        // A waiter cancelled meanwhile has left its queue; its slot goes to the next one.
        const waiter = this.queues[priority].shift() ?? this.queues.live.shift() ?? this.queues.background.shift();
        waiter?.grant(slot.waitMs);
      }
    } finally {
      this.pumping = false;
    }
  }
}
