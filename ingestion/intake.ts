/**
 * The hand-off of an accepted event: committed to the PostgreSQL inbox in one short statement,
 * then answered; the forwarder takes it to Temporal in the background. The answer waits on
 * neither store alone: if the commit misses its deadline (PostgreSQL slow, restarting, frozen),
 * the event goes straight to Temporal instead. A commit that lands later only forwards a
 * duplicate, which the workflow drops by event id.
 */
import type { Client, Connection } from '@temporalio/client';
import { insertInboxEvents } from '../db/inbox.js';
import type { NewInboxEvent } from '../db/inbox.js';
import type { Db } from '../db/pool.js';
import type { Logger } from '../observability/logger.js';
import { scrubText } from '../observability/logger.js';
import type { BacklogMonitor } from './backlog.js';
import { claimInserted, createGroupCommit } from './group-commit.js';
import { perEvent, signalWithStart } from './handoff.js';
import type { WorkflowDelivery } from './handoff.js';

export type HandOffResult = { via: 'inbox'; inserted: number; duplicates: number } | { via: 'temporal'; runId: string };

export type HandOff = (delivery: WorkflowDelivery) => Promise<HandOffResult>;

/**
 * What became of the answers that went around the inbox: Temporal took the event, Temporal failed
 * too, or the cap on direct hand-offs made the event wait for its commit instead.
 */
export type DirectHandOffResult = 'taken' | 'failed' | 'no_room';
export interface IntakeObserver {
  direct(result: DirectHandOffResult): void;
  /** A direct hand-off has begun (before its result). */
  offered?(): void;
}

/** Past the backlog bound: the sender should retry later (503 with Retry-After). */
export class BacklogFull extends Error {
  override readonly name = 'BacklogFull';
  constructor(
    readonly retryAfterSeconds: number,
    readonly limit: 'events' | 'age',
  ) {
    super(limit === 'events' ? 'too many events are waiting to be forwarded' : 'the oldest waiting event is too old');
  }
}

/** Neither PostgreSQL nor Temporal took the event: nothing was stored, the sender must retry. */
export class IntakeUnavailable extends Error {
  override readonly name = 'IntakeUnavailable';
}

export interface IntakeDeps {
  /** A pool of its own, so slow dashboard or report queries never delay an answer. */
  db: Db;
  temporal: Client;
  connection: Connection;
  logger: Logger;
  backlog: BacklogMonitor;
  /** How long the answer may wait for the commit before going to Temporal directly. */
  commitDeadlineMs: number;
  /** How long the direct path may wait for Temporal. */
  temporalTimeoutMs: number;
  /** Wakes this process's forwarder at once. */
  wakeForwarder?: () => void;
  /** Other processes' forwarders are woken by NOTIFY, at most this often. */
  notifyIntervalMs?: number;
  observer?: IntakeObserver;
}

/** A delivery's inbox rows, one per event. */
export function inboxRowsOf(delivery: WorkflowDelivery): NewInboxEvent[] {
  return perEvent(delivery).map((one) => ({
    tenantId: one.tenantId,
    source: one.source,
    workflowId: one.workflowId,
    eventId: one.events[0]?.eventId ?? '',
    workflowType: one.workflowType,
    signalName: one.signalName,
    taskQueue: one.taskQueue,
    payload: JSON.stringify(one),
  }));
}

/** Commits a delivery's events to the inbox on its own (a row already waiting is a duplicate). */
export async function commitToInbox(db: Db, delivery: WorkflowDelivery): Promise<{ inserted: number; duplicates: number }> {
  const rows = inboxRowsOf(delivery);
  const { insertedKeys } = await insertInboxEvents(db, rows);
  return claimInserted(rows, insertedKeys);
}

/** Direct hand-offs to Temporal at once, at most (see `directHasRoom`), while PostgreSQL still commits. */
const maxDirectInFlight = 8;
/**
 * The cap once PostgreSQL has finished no commit for `silentDatabaseMs` while some are overdue: then
 * it is not slow but gone (frozen, restarting), Temporal is the only store left, and a cap of 8
 * made events wait for a commit that could not come (bench: 80 of 750 answers waited 10 s through a
 * freeze, while Temporal answered its hand-offs in 1.5–3.5 s). Still a bound, not unlimited.
 */
const maxDirectInFlightWithoutDatabase = 128;
const silentDatabaseMs = 1_000;

/** How long an answer may wait for a slow commit once Temporal has failed too, before it is a 503. */
const slowCommitPatienceMs = 10_000;

type Settled<T> = { value: T } | { error: unknown } | { pending: true };

/** How `work` stands after `ms`: done, failed, or still running (it keeps running). */
function settledWithin<T>(work: Promise<T>, ms: number): Promise<Settled<T>> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<Settled<T>>((resolve) => {
    timer = setTimeout(() => resolve({ pending: true }), ms);
  });
  return Promise.race([work.then((value) => ({ value }), (error: unknown) => ({ error })), deadline]).finally(() => clearTimeout(timer));
}

export function createIntake(deps: IntakeDeps): HandOff {
  const commitRows = createGroupCommit(deps.db, { notifyEveryMs: deps.notifyIntervalMs ?? 10 });
  // Commits still running past their deadline: while there are any, PostgreSQL is not answering
  // and new events try Temporal first instead of queueing up behind them. (Keeping the inbox first
  // while late commits still finish was tried: on a saturated 2-core host it tripled ack p99 at
  // 100/s, so a late commit is treated as a stalled one.)
  let overdueCommits = 0;
  // After a commit failed outright (connection refused), PostgreSQL is tried second for this long.
  let databaseSecondUntil = 0;
  // When a commit last finished (0: none yet): with overdue commits and none finished for a while, PostgreSQL is gone.
  let lastCommitAt = 0;
  const commit = async (delivery: WorkflowDelivery): Promise<HandOffResult> => {
    try {
      const { inserted, duplicates, transactionId } = await commitRows(inboxRowsOf(delivery));
      lastCommitAt = Date.now();
      deps.backlog.committed(inserted, transactionId);
      deps.wakeForwarder?.();
      return { via: 'inbox', inserted, duplicates };
    } catch (error) {
      databaseSecondUntil = Date.now() + 1_000;
      deps.logger.warn({ err: error, workflowId: delivery.workflowId }, 'inbox commit failed');
      throw error;
    }
  };

  /** A commit whose lateness is tracked, so later events know PostgreSQL is not answering. */
  const trackedCommit = (delivery: WorkflowDelivery): Promise<HandOffResult> => {
    const work = commit(delivery);
    const overdue = setTimeout(() => {
      overdueCommits++;
      void work.catch(() => undefined).finally(() => overdueCommits--);
    }, deps.commitDeadlineMs);
    void work.catch(() => undefined).finally(() => clearTimeout(overdue));
    return work;
  };

  // Direct hand-offs in flight. They are the way around a stalled PostgreSQL, not a second path
  // for load: when a merely slow commit (a saturated machine) would send every event to Temporal as
  // well, this cap keeps the slower store from being buried; past it, events wait for their commit.
  let directInFlight = 0;
  const databaseGone = (): boolean => overdueCommits > 0 && Date.now() - lastCommitAt > silentDatabaseMs;
  const directHasRoom = (): boolean => directInFlight < (databaseGone() ? maxDirectInFlightWithoutDatabase : maxDirectInFlight);
  const direct = async (delivery: WorkflowDelivery, giveUpAt: number): Promise<HandOffResult> => {
    directInFlight++;
    deps.observer?.offered?.();
    try {
      const runId = await deps.connection.withDeadline(giveUpAt, () => signalWithStart(deps.temporal, delivery));
      deps.observer?.direct('taken');
      return { via: 'temporal', runId };
    } catch (error) {
      deps.observer?.direct('failed');
      throw error;
    } finally {
      directInFlight--;
    }
  };

  /** A direct hand-off; if it fails while PostgreSQL is gone, once more until the answer's own deadline. */
  const directOrAgain = (delivery: WorkflowDelivery, temporalBy: number, answerBy: number): Promise<HandOffResult> =>
    direct(delivery, temporalBy).catch((error: unknown) => {
      if (databaseGone() && directHasRoom() && Date.now() < answerBy) return direct(delivery, answerBy);
      throw error;
    });

  /** The first of `takers` that stores the event answers; none by `giveUpAt` means 503. */
  const firstTaker = async (delivery: WorkflowDelivery, takers: Array<Promise<HandOffResult>>, giveUpAt: number): Promise<HandOffResult> => {
    const outcome = await settledWithin(Promise.any(takers), Math.max(0, giveUpAt - Date.now()));
    if ('value' in outcome) return outcome.value;
    const reason = 'error' in outcome ? scrubText(String((outcome.error as AggregateError).errors?.map((error: Error) => error.message).join('; '))).slice(0, 300) : 'no answer in time';
    deps.logger.error({ workflowId: delivery.workflowId, reason }, 'neither the inbox nor Temporal took the event');
    throw new IntakeUnavailable('the event could not be stored; retry later');
  };

  return async (delivery) => {
    const admission = deps.backlog.admit();
    if (!admission.admitted) throw new BacklogFull(admission.retryAfterSeconds, admission.reason);
    const startedAt = Date.now();
    const temporalBy = startedAt + deps.commitDeadlineMs + deps.temporalTimeoutMs;
    // A commit that is merely slow (a loaded machine) is still better than a 503 and a retry storm.
    const answerBy = Math.max(temporalBy, startedAt + slowCommitPatienceMs);
    const databaseStalled = overdueCommits > 0 || startedAt < databaseSecondUntil;
    if (databaseStalled && directHasRoom()) {
      // PostgreSQL is not answering: Temporal first, the inbox if Temporal fails too.
      return firstTaker(delivery, [directOrAgain(delivery, temporalBy, answerBy).catch(() => trackedCommit(delivery))], answerBy);
    }
    const work = trackedCommit(delivery);
    const early = await settledWithin(work, deps.commitDeadlineMs);
    if ('value' in early) return early.value;
    if ('pending' in early && !directHasRoom()) {
      deps.observer?.direct('no_room');
      return firstTaker(delivery, [work], answerBy);
    }
    deps.logger.debug({ workflowId: delivery.workflowId, deadlineMs: deps.commitDeadlineMs }, 'inbox commit too slow or failed; offering the event to Temporal too');
    // Whichever store takes it first answers; a commit that lands later forwards a duplicate the workflow drops.
    return firstTaker(delivery, 'pending' in early ? [work, directOrAgain(delivery, temporalBy, answerBy)] : [direct(delivery, temporalBy)], answerBy);
  };
}
