/**
 * Moves committed events from the inbox into Temporal, as fast as Temporal takes them.
 *
 * - Woken at once by this process's commits and by NOTIFY from others; polls as a fallback.
 * - Claims workflows' head rows with FOR UPDATE SKIP LOCKED, so any number of forwarders (in API
 *   processes or on their own) share one inbox without sending a workflow's events twice at once
 *   or out of order; many workflows go side by side, and a workflow's waiting events go in one signal.
 * - At least once: a forward whose answer is lost is sent again, and the workflow drops the copy by
 *   event id. Forwarded rows are deleted.
 * - Temporal unreachable or slow: the head is retried with backoff, and the whole forwarder pauses.
 *   Temporal refusing an event for good (a poison event): after `maxRefusals` tries it becomes a dead
 *   letter, and the events behind it flow.
 */
import { randomUUID } from 'node:crypto';
import type { Client, Connection } from '@temporalio/client';
import { claimInboxHeads, deadLetterInboxRow, deleteInboxRows, inboxChannel, postponeInboxRow, waitingRowsOf } from '../db/inbox.js';
import type { ClaimedHead, InboxRow } from '../db/inbox.js';
import { listenForever } from '../db/listen.js';
import type { Listening } from '../db/listen.js';
import type { Db } from '../db/pool.js';
import type { Logger } from '../observability/logger.js';
import { scrubText } from '../observability/logger.js';
import { traceForward } from '../observability/trace-context.js';
import { coalesce } from './coalesce.js';
import { describeForwardError, isRefusal, signalWithStart } from './handoff.js';
import type { WorkflowDelivery } from './handoff.js';

/** What the forwarder reports as it goes (metrics). */
export interface ForwarderObserver {
  forwarded(events: number, waitedSeconds: number[]): void;
  failed(kind: 'unavailable' | 'refused'): void;
  deadLettered(): void;
}

export interface ForwarderOptions {
  db: Db;
  temporal: Client;
  connection: Connection;
  logger: Logger;
  /** LISTEN for other processes' commits (omit to rely on wake() and polling). */
  databaseUrl?: string;
  observer?: ForwarderObserver;
  /** Workflows forwarded side by side. */
  concurrency?: number;
  /** Events merged into one signal at most. */
  maxEventsPerSignal?: number;
  /** Refusals after which an event becomes a dead letter. */
  maxRefusals?: number;
  forwardTimeoutMs?: number;
  leaseSeconds?: number;
  pollIntervalMs?: number;
  /** Run the loop (the API does); the CLI and some tests call drainOnce themselves. */
  autoStart?: boolean;
}

export interface Forwarder {
  wake(): void;
  /** Forwards until nothing is ready; returns how many events went to Temporal. */
  drainOnce(): Promise<number>;
  stop(): Promise<void>;
}

// A signal well under Temporal's 2 MB blob limit, whatever the events hold.
const maxSignalBytes = 512 * 1024;

export function startForwarder(options: ForwarderOptions): Forwarder {
  const { db, logger } = options;
  const concurrency = options.concurrency ?? 32;
  const maxEventsPerSignal = options.maxEventsPerSignal ?? 100;
  const maxRefusals = options.maxRefusals ?? 5;
  const forwardTimeoutMs = options.forwardTimeoutMs ?? 5_000;
  const leaseSeconds = options.leaseSeconds ?? 30;
  const pollIntervalMs = options.pollIntervalMs ?? 1_000;
  const owner = `forwarder-${randomUUID().slice(0, 8)}`;

  let stopped = false;
  let woken = false;
  let wakeUp: (() => void) | undefined;
  // Temporal looked unreachable: no pass before this time, however often we are woken.
  let pausedUntil = 0;
  let pauseMs = 0;

  // Forwarded rows of many workflows leave in one statement: a DELETE per signal would cost a WAL
  // flush each, in the same PostgreSQL the answers wait on. Until deleted, a row keeps its lease.
  const deleteForwarded = coalesce(
    async (batches: Array<readonly number[]>) => {
      await deleteInboxRows(db, batches.flat());
      return batches.map(() => ({ value: undefined }));
    },
    { maxInFlight: 1, maxWeight: 5_000, weightOf: (ids) => ids.length },
  );

  const forwardBatch = async (rows: Array<InboxRow<WorkflowDelivery>>): Promise<void> => {
    const first = rows[0];
    if (!first) return;
    const delivery: WorkflowDelivery = { ...first.payload, events: rows.flatMap((row) => row.payload.events) };
    // In the trace of the webhook that brought the head event (linked to the others'), so the
    // signalWithStart, the workflow and its activities continue it.
    await traceForward(
      `forward ${delivery.workflowType}`,
      rows.map((row) => row.payload.traceContext),
      { 'switchboard.source': delivery.source, 'switchboard.events': delivery.events.length, 'switchboard.inbox.waited_ms': Math.max(0, Date.now() - first.receivedAt.getTime()) },
      () => options.connection.withDeadline(Date.now() + forwardTimeoutMs, () => signalWithStart(options.temporal, delivery)),
    );
    await deleteForwarded(rows.map((row) => row.id));
    const now = Date.now();
    options.observer?.forwarded(
      delivery.events.length,
      rows.map((row) => (now - row.receivedAt.getTime()) / 1000),
    );
  };

  /** Forwards one claimed workflow's waiting events; returns how many went. */
  const forwardWorkflow = async (head: ClaimedHead): Promise<number> => {
    const rows = await waitingRowsOf<WorkflowDelivery>(db, head.workflowId, head.id, maxEventsPerSignal);
    const first = rows[0];
    // Gone meanwhile (a forwarder whose lease had lapsed sent it): nothing left to do here.
    if (!first || first.id !== head.id) return 0;
    // After a refusal the head goes alone, so a poison event is told apart from its neighbours.
    const batch = first.refusals > 0 ? [first] : withinSize(rows);
    try {
      await forwardBatch(batch);
      pauseMs = 0;
      return batch.length;
    } catch (error) {
      if (isRefusal(error) && batch.length > 1) {
        try {
          await forwardBatch([first]);
          return 1;
        } catch (alone) {
          return handleFailure(first, alone);
        }
      }
      return handleFailure(first, error);
    }
  };

  const handleFailure = async (head: InboxRow<WorkflowDelivery>, error: unknown): Promise<number> => {
    const reason = scrubText(describeForwardError(error)).slice(0, 500);
    if (isRefusal(error)) {
      options.observer?.failed('refused');
      const { refusals } = await postponeInboxRow(db, head.id, { delayMs: 200 * 2 ** head.refusals, error: reason, refused: true });
      if (refusals >= maxRefusals) {
        await deadLetterInboxRow(db, head.id, reason);
        options.observer?.deadLettered();
        logger.warn({ inboxId: head.id, workflowId: head.payload.workflowId, refusals, reason }, 'Temporal refused an event for good; moved it to dead letter');
      }
      return 0;
    }
    options.observer?.failed('unavailable');
    pauseMs = Math.min(5_000, Math.max(250, pauseMs * 2));
    pausedUntil = Date.now() + pauseMs;
    await postponeInboxRow(db, head.id, { delayMs: pauseMs, error: reason, refused: false }).catch(() => undefined);
    logger.debug({ workflowId: head.payload.workflowId, reason, pauseMs }, 'Temporal did not take a forward; retrying later');
    return 0;
  };

  /** One round: claim heads, forward them side by side. */
  const pass = async (): Promise<{ claimed: number; forwarded: number }> => {
    const heads = await claimInboxHeads(db, { limit: concurrency, leaseSeconds, owner });
    const counts = await Promise.all(
      heads.map((head) =>
        forwardWorkflow(head).catch((error: unknown) => {
          // The database failed us mid-forward: the lease lapses and the head is tried again.
          logger.warn({ err: error, workflowId: head.workflowId }, 'forwarding a workflow failed');
          return 0;
        }),
      ),
    );
    return { claimed: heads.length, forwarded: counts.reduce((sum, count) => sum + count, 0) };
  };

  let draining: Promise<number> | undefined;
  const drainOnce = (): Promise<number> => {
    draining ??= (async () => {
      let total = 0;
      while (!stopped && Date.now() >= pausedUntil) {
        const { claimed, forwarded } = await pass();
        total += forwarded;
        if (claimed === 0 || (forwarded === 0 && Date.now() < pausedUntil)) break;
      }
      return total;
    })().finally(() => {
      draining = undefined;
    });
    return draining;
  };

  const sleep = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      wakeUp = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  const loop = async (): Promise<void> => {
    while (!stopped) {
      woken = false;
      try {
        await drainOnce();
      } catch (error) {
        logger.warn({ err: error }, 'forwarder pass failed; retrying');
        pausedUntil = Date.now() + 1_000;
      }
      if (stopped) break;
      const pause = pausedUntil - Date.now();
      if (pause > 0) await sleep(pause);
      else if (!woken) await sleep(pollIntervalMs);
      wakeUp = undefined;
    }
  };

  let listening: Listening | undefined;
  let running: Promise<void> | undefined;
  const wake = (): void => {
    woken = true;
    if (Date.now() >= pausedUntil) wakeUp?.();
  };
  if (options.autoStart !== false) {
    if (options.databaseUrl) listening = listenForever({ databaseUrl: options.databaseUrl, channel: inboxChannel, applicationName: 'switchboard-forwarder', logger, onNotify: wake });
    running = loop();
  }

  return {
    wake,
    drainOnce,
    async stop() {
      stopped = true;
      wakeUp?.();
      await listening?.stop();
      await running;
      await draining?.catch(() => undefined);
    },
  };
}

/** The head and the events after it, up to the count and size one signal should carry. */
function withinSize(rows: Array<InboxRow<WorkflowDelivery>>): Array<InboxRow<WorkflowDelivery>> {
  const batch: Array<InboxRow<WorkflowDelivery>> = [];
  let bytes = 0;
  for (const row of rows) {
    bytes += JSON.stringify(row.payload.events).length;
    if (batch.length > 0 && bytes > maxSignalBytes) break;
    batch.push(row);
  }
  return batch;
}
