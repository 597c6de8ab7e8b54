/**
 * What the chaos run does to the deployment, and when. Each fault is injected at its moment of
 * the traffic and held for its time; the record says when it really began and ended, and when the
 * part it hit was back (a restarted process polling or ready again).
 */
import { setTimeout as delay } from 'node:timers/promises';
import { freeze } from '../bench/open-loop-scenarios.js';
import { waitUntil } from '../stack/processes.js';
import type { Deployment } from './deployment.js';

export const faultKinds = ['kill-worker', 'kill-api', 'temporal-restart', 'postgres-restart', 'temporal-freeze', 'postgres-freeze', 'crm-outage', 'crm-slow', 'whatsapp-storm', 'partition-worker'] as const;
export type FaultKind = (typeof faultKinds)[number];

export interface PlannedFault {
  kind: FaultKind;
  /** Ms after the traffic's start. */
  atMs: number;
  /** How long it is held (a restart: how long the process stays down). */
  holdMs: number;
}

export interface FaultRecord extends PlannedFault {
  label: string;
  /** Epoch ms. */
  startedAt: number;
  endedAt: number;
  /** When the part it hit was back: the process restarted and ready, the server answering. */
  backAt?: number;
  detail: string;
  error?: string;
}

/** The answer of the slow CRM comes this long after the request: past the adapter's 10 s request timeout. */
export const slowCrmAnswerMs = 12_000;

export function describeFault(kind: FaultKind, holdMs: number): string {
  const seconds = Math.round(holdMs / 100) / 10;
  switch (kind) {
    case 'kill-worker':
      return 'kill -9 of worker-1 (the supervisor restarts it)';
    case 'kill-api':
      return 'kill -9 of api-1 (the supervisor restarts it)';
    case 'temporal-restart':
      return `Temporal dev server stopped, down ${seconds} s, started again (same SQLite file)`;
    case 'postgres-restart':
      return `PostgreSQL stopped (fast shutdown), down ${seconds} s, started again`;
    case 'temporal-freeze':
      return `Temporal frozen ${seconds} s (SIGSTOP, then SIGCONT)`;
    case 'postgres-freeze':
      return `PostgreSQL frozen ${seconds} s (SIGSTOP of the postmaster and every backend, then SIGCONT)`;
    case 'crm-outage':
      return `CRM (every tenant's Kommo) answers 503 for ${seconds} s`;
    case 'crm-slow':
      return `slow CRM for ${seconds} s: Kommo acts at once but answers after ${slowCrmAnswerMs / 1000} s (the adapter gives up after 10 s)`;
    case 'whatsapp-storm':
      return `WhatsApp answers every send with 130429 (rate limit hit) for ${seconds} s`;
    case 'partition-worker':
      return `worker-2 partitioned from PostgreSQL for ${seconds} s (its backends terminated as they appear)`;
  }
}

/**
 * One round of every fault, in the order the issue lists them, spread evenly over the traffic
 * with a pause after each for recovery: the full run.
 */
export function fullSchedule(durationMs: number): PlannedFault[] {
  const holds: Array<[FaultKind, number]> = [
    ['kill-worker', 0],
    ['kill-api', 0],
    ['temporal-restart', 5_000],
    ['postgres-restart', 5_000],
    ['temporal-freeze', 10_000],
    ['postgres-freeze', 10_000],
    ['crm-outage', 60_000],
    ['crm-slow', 60_000],
    ['whatsapp-storm', 30_000],
    ['partition-worker', 20_000],
  ];
  // A restart takes a few seconds more than its down time.
  const busy = holds.reduce((sum, [kind, hold]) => sum + hold + (kind.endsWith('restart') ? 8_000 : 0), 0);
  const margin = Math.min(30_000, durationMs * 0.05);
  const gap = Math.max(5_000, (durationMs - 2 * margin - busy) / (holds.length - 1));
  const schedule: PlannedFault[] = [];
  let at = margin;
  for (const [kind, holdMs] of holds) {
    schedule.push({ kind, atMs: Math.round(at), holdMs });
    at += holdMs + (kind.endsWith('restart') ? 8_000 : 0) + gap;
  }
  return schedule;
}

/**
 * The short run (in `npm test`): one round of each fault in about 70 s of traffic. The outside
 * systems' faults overlap the infrastructure's, and holds are shorter, except the 10 s freezes.
 */
export function shortSchedule(): PlannedFault[] {
  return [
    { kind: 'kill-worker', atMs: 3_000, holdMs: 0 },
    { kind: 'kill-api', atMs: 6_000, holdMs: 0 },
    { kind: 'crm-outage', atMs: 10_000, holdMs: 12_000 },
    { kind: 'temporal-restart', atMs: 12_000, holdMs: 3_000 },
    { kind: 'postgres-restart', atMs: 24_000, holdMs: 4_000 },
    { kind: 'crm-slow', atMs: 28_000, holdMs: 12_000 },
    { kind: 'temporal-freeze', atMs: 34_000, holdMs: 10_000 },
    { kind: 'whatsapp-storm', atMs: 40_000, holdMs: 10_000 },
    { kind: 'postgres-freeze', atMs: 47_000, holdMs: 10_000 },
    { kind: 'partition-worker', atMs: 60_000, holdMs: 10_000 },
  ];
}

async function readyAt(url: string, timeoutMs: number): Promise<number | undefined> {
  try {
    await waitUntil(async () => (await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2_000) })).ok, timeoutMs, 'not ready');
    return Date.now();
  } catch {
    return undefined;
  }
}

/** Injects one fault and holds it; resolves with what happened. */
export async function inject(deployment: Deployment, fault: PlannedFault, log: (line: string) => void): Promise<FaultRecord> {
  const label = describeFault(fault.kind, fault.holdMs);
  const startedAt = Date.now();
  const record: FaultRecord = { ...fault, label, startedAt, endedAt: startedAt, detail: '' };
  log(`fault: ${label}`);
  try {
    switch (fault.kind) {
      case 'kill-worker': {
        const worker = deployment.workers[0];
        if (!worker) throw new Error('no worker');
        const pid = worker.kill9();
        record.endedAt = Date.now();
        // Back once the new process polls (Temporal lists pollers by identity, `<pid>@<host>`).
        await waitUntil(async () => {
          const current = worker.pid();
          return current !== undefined && current !== pid && (await deployment.pollers()).some((identity) => identity.startsWith(`${current}@`));
        }, 180_000, 'the restarted worker did not poll').then(() => (record.backAt = Date.now()), () => undefined);
        record.detail = `killed pid ${pid ?? '?'}; replacement pid ${worker.pid() ?? '?'}`;
        break;
      }
      case 'kill-api': {
        const api = deployment.apis[0];
        if (!api) throw new Error('no API');
        const pid = api.kill9();
        record.endedAt = Date.now();
        await waitUntil(() => Promise.resolve(api.pid() !== undefined && api.pid() !== pid), 30_000, 'not restarted').catch(() => undefined);
        const back = await readyAt(api.url, 120_000);
        if (back !== undefined) record.backAt = back;
        record.detail = `killed pid ${pid ?? '?'}; replacement pid ${api.pid() ?? '?'}`;
        break;
      }
      case 'temporal-restart': {
        const { stoppedAt, startedAt: back } = await deployment.temporalServer.restart(fault.holdMs);
        record.startedAt = stoppedAt;
        record.endedAt = back;
        record.backAt = back;
        record.detail = `down ${((back - stoppedAt) / 1000).toFixed(1)} s in all (stop, ${fault.holdMs / 1000} s, start)`;
        break;
      }
      case 'postgres-restart': {
        const { stoppedAt, startedAt: back } = await deployment.postgres.restart(fault.holdMs);
        record.startedAt = stoppedAt;
        record.endedAt = back;
        record.backAt = back;
        record.detail = `down ${((back - stoppedAt) / 1000).toFixed(1)} s in all (stop, ${fault.holdMs / 1000} s, start)`;
        break;
      }
      case 'temporal-freeze':
      case 'postgres-freeze': {
        const pids = fault.kind === 'temporal-freeze' ? () => deployment.temporalServer.pids() : () => deployment.postgres.pids();
        const frozen = freeze(pids);
        try {
          await delay(fault.holdMs);
        } finally {
          frozen.resume();
        }
        record.endedAt = Date.now();
        record.detail = `${frozen.count} processes stopped`;
        break;
      }
      case 'crm-outage':
      case 'crm-slow': {
        const apply = (on: boolean): void => {
          for (const tenant of deployment.tenants) {
            if (fault.kind === 'crm-outage') tenant.kommo.setOutage(on);
            else tenant.kommo.setResponseDelay(on ? slowCrmAnswerMs : 0);
          }
        };
        apply(true);
        try {
          await delay(fault.holdMs);
        } finally {
          apply(false);
        }
        record.endedAt = Date.now();
        record.detail = `${deployment.tenants.length} Kommo accounts`;
        break;
      }
      case 'whatsapp-storm': {
        const before = deployment.tenants.reduce((sum, tenant) => sum + tenant.whatsapp.state().requests.total, 0);
        for (const tenant of deployment.tenants) tenant.whatsapp.failNext({ code: 130429, via: 'response', times: 1_000_000_000 });
        try {
          await delay(fault.holdMs);
        } finally {
          for (const tenant of deployment.tenants) tenant.whatsapp.clearFailures();
        }
        record.endedAt = Date.now();
        const sends = deployment.tenants.reduce((sum, tenant) => sum + tenant.whatsapp.state().requests.total, 0) - before;
        record.detail = `${sends} requests answered 130429`;
        break;
      }
      case 'partition-worker': {
        const worker = deployment.workers[1];
        if (!worker) throw new Error('no second worker');
        const until = Date.now() + fault.holdMs;
        const terminated = new Set<number>();
        while (Date.now() < until) {
          const pid = worker.pid();
          if (pid !== undefined) {
            const backends = await deployment.backendsOf(pid).catch(() => [] as number[]);
            if (backends.length > 0) {
              await deployment.db.query('SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid', [backends]).catch(() => undefined);
              for (const backend of backends) terminated.add(backend);
            }
          }
          await delay(200);
        }
        record.endedAt = Date.now();
        record.detail = `${terminated.size} backends of worker-2 (pid ${worker.pid() ?? '?'}) terminated`;
        break;
      }
    }
  } catch (error) {
    record.endedAt = Date.now();
    record.error = error instanceof Error ? error.message : String(error);
    log(`  fault ${fault.kind} failed: ${record.error}`);
  }
  return record;
}
