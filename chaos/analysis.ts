/**
 * Per fault: what the senders saw (ack errors), how the inbox and the CRM backlog moved, and how
 * long until the work that came in around the fault was done (journaled, logged in the CRM, sent
 * on WhatsApp), counted from the moment the fault ended (or the hit part was back). Losses and
 * duplicates are put against the faults around the moment they came in. And whether the
 * dashboard streams carried a change again after PostgreSQL restarted.
 */
import { ackLatency, latencyHistogram, recordMs } from '../bench/open-loop.js';
import type { AckLatency } from '../bench/open-loop.js';
import type { FaultRecord } from './faults.js';
import type { Observations, Sample } from './observe.js';
import type { TrafficResult } from './traffic.js';
import type { CheckName, Expectation } from './verify.js';

export interface FaultAnalysis {
  fault: FaultRecord;
  /** Ms after the start of the traffic. */
  atMs: number;
  /** Attempts answered other than 2xx (or not at all) during the fault and its settling time. */
  ackErrors: number;
  ackErrorReasons: Record<string, number>;
  /** First attempts in the window. */
  ack: AckLatency;
  /** Ms after recovery until the last failed answer (0: none after it). */
  ackErrorsStopMs: number | null;
  inboxPeak: number | null;
  /** Ms after recovery until the inbox was back to its level before the fault; null: never in the run. */
  inboxDrainedMs: number | null;
  crmBacklogPeak: number | null;
  crmBacklogDrainedMs: number | null;
  /** Ms after recovery until the last piece of work that came in around the fault was done, by check; null: some never was. */
  caughtUpMs: Partial<Record<CheckName, number | null>>;
  /** The largest of the above: the time to recover; null when something never recovered. */
  recoveredMs: number | null;
  lost: number;
  duplicated: number;
  late: number;
}

export interface StreamRecovery {
  api: number;
  /** Ms after PostgreSQL was back until a change reached the stream; null: none within the window. */
  recoveredMs: number | null;
  /** Journal writes of the watched tenant in the window: changes the stream should have carried. */
  journalWrites: number;
  /** What the API's /readyz answered in the window (status and its `status` field). */
  readinessSeen: string[];
}

export interface Analysis {
  faults: FaultAnalysis[];
  streams: StreamRecovery[];
  /** The stream check's window after the restart, ms. */
  streamWindowMs: number;
}

/**
 * Work that came due this long before a fault is usually still in flight when it hits (the CRM
 * sync waits 2 s after the end, the outcome 5 s): losses and duplicates count against the fault
 * from then on.
 */
export const inFlightLookbackMs = 10_000;

const failed = (status: number): boolean => !(status >= 200 && status < 300);

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

/** Ms after `from` until the samples fell back to the level they had before `startedAt`. */
function drainedAfter(samples: Sample[], startedAt: number, from: number): { peak: number | null; drainedMs: number | null } {
  const before = samples.filter((sample) => sample.at >= startedAt - 20_000 && sample.at < startedAt).map((sample) => sample.value);
  const after = samples.filter((sample) => sample.at >= startedAt);
  if (after.length === 0) return { peak: null, drainedMs: null };
  // Back to "normal": at most twice the level before it, and a few events always wait in passing.
  const threshold = Math.max(10, median(before) * 2);
  const peak = Math.max(...after.filter((sample) => sample.at <= from + 60_000).map((sample) => sample.value), 0);
  const back = after.find((sample) => sample.at >= from && sample.value <= threshold);
  return { peak, drainedMs: back ? Math.max(0, back.at - from) : null };
}

export function analyse(options: { faults: FaultRecord[]; traffic: TrafficResult; observations: Observations; expectations: Expectation[]; settleMs: number; watchedTenant: string }): Analysis {
  const { traffic, observations, expectations } = options;
  const faults: FaultAnalysis[] = options.faults.map((fault) => {
    const recoveredFrom = Math.max(fault.endedAt, fault.backAt ?? fault.endedAt);
    const windowStart = fault.startedAt;
    const windowEnd = recoveredFrom + options.settleMs;
    const inWindow = traffic.attempts.filter((attempt) => attempt.at >= windowStart && attempt.at <= windowEnd);
    const errors = inWindow.filter((attempt) => failed(attempt.status));
    const reasons: Record<string, number> = {};
    for (const attempt of errors) {
      const reason = attempt.status > 0 ? `${attempt.status}${attempt.reason ? ` ${attempt.reason}` : ''}` : (attempt.reason ?? 'no answer');
      reasons[reason] = (reasons[reason] ?? 0) + 1;
    }
    const histogram = latencyHistogram();
    for (const attempt of inWindow) if (attempt.attempt === 1) recordMs(histogram, attempt.latencyMs);
    const ack = ackLatency(histogram);
    histogram.destroy();
    const lastError = errors.reduce((latest, attempt) => Math.max(latest, attempt.at + attempt.latencyMs), 0);
    const inbox = drainedAfter(observations.inbox, fault.startedAt, recoveredFrom);
    const crm = drainedAfter(observations.crmBacklog, fault.startedAt, recoveredFrom);

    // The work that came in around the fault: due from a little before it until a little after recovery.
    const around = expectations.filter((expectation) => expectation.dueAt >= fault.startedAt - 5_000 && expectation.dueAt <= recoveredFrom + 5_000);
    const caughtUpMs: FaultAnalysis['caughtUpMs'] = {};
    for (const expectation of around) {
      const current = caughtUpMs[expectation.check];
      if (current === null) continue;
      if (expectation.foundAt === undefined) {
        caughtUpMs[expectation.check] = null;
        continue;
      }
      caughtUpMs[expectation.check] = Math.max(current ?? 0, expectation.foundAt - recoveredFrom, 0);
    }
    const parts = [errors.length === 0 ? 0 : Math.max(0, lastError - recoveredFrom), inbox.drainedMs, ...Object.values(caughtUpMs)];
    const recoveredMs = parts.some((part) => part === null) ? null : Math.max(0, ...(parts as number[]));
    // Losses and duplicates of work that came in while it was on (or settling).
    const attributed = expectations.filter((expectation) => expectation.dueAt >= fault.startedAt - inFlightLookbackMs && expectation.dueAt <= windowEnd);
    return {
      fault,
      atMs: fault.startedAt - traffic.startedAt,
      ackErrors: errors.length,
      ackErrorReasons: reasons,
      ack,
      ackErrorsStopMs: errors.length === 0 ? 0 : Math.max(0, lastError - recoveredFrom),
      inboxPeak: inbox.peak,
      inboxDrainedMs: inbox.drainedMs,
      crmBacklogPeak: crm.peak,
      crmBacklogDrainedMs: crm.drainedMs,
      caughtUpMs,
      recoveredMs,
      lost: attributed.filter((expectation) => expectation.missing === 'lost').length,
      late: attributed.filter((expectation) => expectation.missing === 'late').length,
      duplicated: attributed.reduce((sum, expectation) => sum + Math.max(0, expectation.copies - 1), 0),
    };
  });

  // The dashboard: after PostgreSQL's restart, a change must reach each API's open stream.
  const streamWindowMs = 60_000;
  const restart = options.faults.find((fault) => fault.kind === 'postgres-restart');
  const streams: StreamRecovery[] = [];
  if (restart) {
    const back = restart.backAt ?? restart.endedAt;
    const apis = [...new Set(observations.streamConnects.map((connect) => connect.api))].sort();
    for (const api of apis) {
      const change = observations.streams.find((event) => event.api === api && event.event === 'change' && (event.changeAt ?? event.receivedAt) > back && event.receivedAt <= back + streamWindowMs);
      const readiness = observations.readiness.filter((entry) => entry.api === api && entry.at > back && entry.at <= back + streamWindowMs);
      const states = [...new Set(readiness.map((entry) => `${entry.status}${entry.state ? ` ${entry.state}` : ''}`))];
      const journalWrites = expectations.filter((expectation) => expectation.check === 'journal' && expectation.tenantId === options.watchedTenant && expectation.foundAt !== undefined && expectation.foundAt > back && expectation.foundAt <= back + streamWindowMs).length;
      streams.push({ api, recoveredMs: change ? Math.max(0, change.receivedAt - back) : null, journalWrites, readinessSeen: states });
    }
  }
  return { faults, streams, streamWindowMs };
}
