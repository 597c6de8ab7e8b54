/**
 * An open-loop load generator: requests leave on a fixed schedule whatever the answers, and each
 * one's latency counts from its intended send moment, so a stall shows in the percentiles instead
 * of slowing the sender down (coordinated omission). Latencies go into HDR histograms.
 */
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import http from 'node:http';
import os from 'node:os';
import { build } from 'hdr-histogram-js';
import type { Histogram } from 'hdr-histogram-js';
import { repoRoot } from '../config/load.js';
import type { LatencySummary } from './load.js';

/** One request, signed before the run, and when it is due (ms after the run's start). */
export interface ScheduledRequest {
  offsetMs: number;
  path: string;
  headers: Record<string, string>;
  body: string;
}

export interface OpenLoopSettings {
  baseUrl: string;
  requests: ScheduledRequest[];
  timeoutMs: number;
  maxSockets: number;
}

/** Status codes in `status` that are not HTTP statuses. */
export const timedOut = 0;
export const connectionFailed = -1;

/** What happened to each request, by index in the schedule. */
export interface OpenLoopOutcomes {
  /** The intended moment of offset 0, as epoch ms, so another process can place the schedule on its own clock. */
  startEpochMs: number;
  /** HTTP status, or `timedOut` / `connectionFailed`. */
  status: number[];
  /** Intended send to the end of the response (or to the timeout / the connection error). */
  latencyMs: number[];
  /** Actual send minus intended send: the generator's own lag. */
  sendLagMs: number[];
  /** How a 2xx answer says the event was stored (`via`: inbox or temporal), by request index. */
  via: Array<string | undefined>;
  /** The `error` field of non-2xx answers that had one, by request index. */
  errorReasons: Array<[number, string]>;
  /** Connection error codes (ECONNRESET ...) and how often. */
  connectionErrorCodes: Record<string, number>;
  /** CPU the generator's process used during the run, in % of one core (the whole bench process when it runs there). */
  cpuPercent: number;
}

/** Runs the schedule in this process. */
export async function runOpenLoop(settings: OpenLoopSettings): Promise<OpenLoopOutcomes> {
  const url = new URL(settings.baseUrl);
  const agent = new http.Agent({ keepAlive: true, maxSockets: settings.maxSockets });
  const count = settings.requests.length;
  const status = new Array<number>(count).fill(timedOut);
  const latencyMs = new Array<number>(count).fill(0);
  const sendLagMs = new Array<number>(count).fill(0);
  const via = new Array<string | undefined>(count).fill(undefined);
  const errorReasons: Array<[number, string]> = [];
  const connectionErrorCodes: Record<string, number> = {};
  // Bodies as buffers and headers with their length, so sending does no encoding work.
  const prepared = settings.requests.map((request) => {
    const body = Buffer.from(request.body);
    return { offsetMs: request.offsetMs, path: request.path, body, headers: { ...request.headers, 'content-length': String(body.length) } };
  });
  const start = performance.now() + 50;
  const cpuBefore = process.cpuUsage();
  let pending = count;
  let finishRun: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (finishRun = resolve));

  const send = (index: number): void => {
    const request = prepared[index];
    if (!request) return;
    const intended = start + request.offsetMs;
    sendLagMs[index] = performance.now() - intended;
    let settled = false;
    // The sender's own deadline, from the moment it sends, as a phone system's webhook client has.
    const timer = setTimeout(() => {
      settle(timedOut);
      outgoing.destroy();
    }, settings.timeoutMs);
    const settle = (code: number): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      status[index] = code;
      latencyMs[index] = performance.now() - intended;
      if (--pending === 0) finishRun();
    };
    const outgoing = http.request({ host: url.hostname, port: url.port, path: request.path, method: 'POST', agent, headers: request.headers }, (response) => {
      const code = response.statusCode ?? 0;
      if (code >= 200 && code < 300) {
        // The answer's `via` tells which store took the event: a slow answer is then explained by its path.
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => {
          if (text.length < 2_000) text += chunk;
        });
        response.once('end', () => {
          settle(code);
          const found = /"via":"(\w+)"/.exec(text);
          if (found) via[index] = found[1];
        });
      } else {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => {
          if (text.length < 2_000) text += chunk;
        });
        response.once('end', () => {
          const reason = (() => {
            try {
              return (JSON.parse(text) as { error?: unknown }).error;
            } catch {
              return undefined;
            }
          })();
          if (typeof reason === 'string') errorReasons.push([index, reason]);
          settle(code);
        });
      }
      response.on('error', () => settle(connectionFailed));
    });
    outgoing.on('error', (error: NodeJS.ErrnoException) => {
      if (settled) return;
      const code = error.code ?? error.message;
      connectionErrorCodes[code] = (connectionErrorCodes[code] ?? 0) + 1;
      settle(connectionFailed);
    });
    outgoing.end(request.body);
  };

  let next = 0;
  const tick = (): void => {
    const now = performance.now();
    // Everything due goes now, even when the loop woke late: the schedule never slips.
    for (let request = prepared[next]; request && start + request.offsetMs <= now; request = prepared[next]) send(next++);
    const upcoming = prepared[next];
    if (upcoming) setTimeout(tick, Math.max(0, start + upcoming.offsetMs - performance.now()));
  };
  if (count === 0) finishRun();
  else setTimeout(tick, Math.max(0, start - performance.now()));
  await finished;
  const cpu = process.cpuUsage(cpuBefore);
  const cpuPercent = Math.round(((cpu.user + cpu.system) / 1000 / Math.max(1, performance.now() - start)) * 1000) / 10;
  agent.destroy();
  return { startEpochMs: performance.timeOrigin + start, status, latencyMs, sendLagMs, via, errorReasons, connectionErrorCodes, cpuPercent };
}

export interface OpenLoopGenerator {
  /** `own process` or `bench process`: where the requests are sent from. */
  where: string;
  run(settings: OpenLoopSettings): Promise<OpenLoopOutcomes>;
  close(): void;
}

/**
 * The generator in a child process of its own (bench/open-loop-process.ts), so the bench process's
 * sandboxes, pollers and stream readers never delay a send; or in this process.
 */
export async function startOpenLoopGenerator(options: { ownProcess: boolean; priority?: number }): Promise<OpenLoopGenerator> {
  if (!options.ownProcess) return { where: 'bench process', run: runOpenLoop, close: () => undefined };
  const child: ChildProcess = fork('bench/open-loop-process.ts', [], { cwd: repoRoot, execArgv: ['--import', 'tsx'], serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  // Ahead of the system under test for the CPU, as a load generator on its own machine would be:
  // on 2 shared cores its sends otherwise slip behind schedule by tens of ms (measured).
  if (options.priority !== undefined && child.pid !== undefined) {
    try {
      os.setPriority(child.pid, options.priority);
    } catch {
      // not permitted (not root): runs at normal priority
    }
  }
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) => reject(new Error(`the open-loop generator exited at start (${code})`)));
  });
  let queue: Promise<unknown> = Promise.resolve();
  const runInChild = (settings: OpenLoopSettings): Promise<OpenLoopOutcomes> =>
    new Promise<OpenLoopOutcomes>((resolve, reject) => {
      const onExit = (code: number | null): void => reject(new Error(`the open-loop generator exited during a run (${code})`));
      child.once('exit', onExit);
      child.once('message', (message) => {
        child.off('exit', onExit);
        const answer = message as { outcomes?: OpenLoopOutcomes; error?: string };
        if (answer.outcomes) resolve(answer.outcomes);
        else reject(new Error(`open-loop generator: ${answer.error ?? 'no answer'}`));
      });
      child.send({ settings });
    });
  return {
    where: options.priority === undefined ? 'own process' : `own process (nice ${options.priority})`,
    run(settings) {
      // One run at a time: the child answers in order.
      const result = queue.then(() => runInChild(settings));
      queue = result.catch(() => undefined);
      return result;
    },
    close: () => child.disconnect(),
  };
}

/** Microseconds, 3 significant digits, growing past 60 s if it must. */
export function latencyHistogram(): Histogram {
  return build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3, autoResize: true });
}

export const recordMs = (histogram: Histogram, valueMs: number): void => histogram.recordValue(Math.max(1, Math.round(valueMs * 1000)));

const ms = (micros: number): number => Math.round(micros / 10) / 100;

export interface AckLatency {
  count: number;
  p50: number;
  p99: number;
  p999: number;
  max: number;
}

export function ackLatency(histogram: Histogram): AckLatency {
  if (histogram.totalCount === 0) return { count: 0, p50: 0, p99: 0, p999: 0, max: 0 };
  return { count: histogram.totalCount, p50: ms(histogram.getValueAtPercentile(50)), p99: ms(histogram.getValueAtPercentile(99)), p999: ms(histogram.getValueAtPercentile(99.9)), max: ms(histogram.maxValue) };
}

/** The same shape as the closed-loop figures, from an HDR histogram. */
export function latencySummaryOf(samplesMs: readonly number[]): LatencySummary {
  const histogram = latencyHistogram();
  for (const sample of samplesMs) recordMs(histogram, sample);
  const summary: LatencySummary =
    histogram.totalCount === 0
      ? { count: 0, p50: 0, p95: 0, p99: 0, max: 0, mean: 0 }
      : { count: histogram.totalCount, p50: ms(histogram.getValueAtPercentile(50)), p95: ms(histogram.getValueAtPercentile(95)), p99: ms(histogram.getValueAtPercentile(99)), max: ms(histogram.maxValue), mean: ms(histogram.mean) };
  histogram.destroy();
  return summary;
}

export interface OpenLoopFigures {
  intendedPerSecond: number;
  seconds: number;
  sent: number;
  /** Requests actually sent per second over the send span: below the intended rate, the generator lagged. */
  achievedPerSecond: number;
  sendLagMs: { p99: number; max: number };
  generatorCpuPercent: number;
  /** Every answer and every timeout (at the time it was given up: a lower bound); not connection errors. */
  ack: AckLatency;
  accepted: number;
  /** Non-2xx answers, by status and, where the body says, by `error` reason. */
  errors: { total: number; byStatus: Record<string, number>; byReason: Record<string, number> };
  timeouts: number;
  connectionErrors: number;
  connectionErrorCodes: Record<string, number>;
}

export function openLoopFigures(requests: readonly ScheduledRequest[], outcomes: OpenLoopOutcomes, intendedPerSecond: number, seconds: number): OpenLoopFigures {
  const ack = latencyHistogram();
  const lag = latencyHistogram();
  const byStatus: Record<string, number> = {};
  let accepted = 0;
  let timeouts = 0;
  let connectionErrors = 0;
  let lastSendMs = 0;
  for (const [index, code] of outcomes.status.entries()) {
    const sendLag = outcomes.sendLagMs[index] ?? 0;
    recordMs(lag, Math.max(0, sendLag));
    lastSendMs = Math.max(lastSendMs, (requests[index]?.offsetMs ?? 0) + sendLag);
    if (code === connectionFailed) {
      connectionErrors++;
      continue;
    }
    recordMs(ack, outcomes.latencyMs[index] ?? 0);
    if (code === timedOut) timeouts++;
    else if (code >= 200 && code < 300) accepted++;
    else byStatus[code] = (byStatus[code] ?? 0) + 1;
  }
  const byReason: Record<string, number> = {};
  for (const [, reason] of outcomes.errorReasons) byReason[reason] = (byReason[reason] ?? 0) + 1;
  const intendedSpanMs = Math.max(1, requests[requests.length - 1]?.offsetMs ?? 0);
  const figures: OpenLoopFigures = {
    intendedPerSecond,
    seconds,
    sent: outcomes.status.length,
    achievedPerSecond: requests.length > 1 ? Math.round((intendedPerSecond * intendedSpanMs) / Math.max(intendedSpanMs, lastSendMs)) : intendedPerSecond,
    sendLagMs: { p99: ms(lag.getValueAtPercentile(99)), max: ms(lag.maxValue) },
    generatorCpuPercent: outcomes.cpuPercent,
    ack: ackLatency(ack),
    accepted,
    errors: { total: Object.values(byStatus).reduce((sum, value) => sum + value, 0), byStatus, byReason },
    timeouts,
    connectionErrors,
    connectionErrorCodes: outcomes.connectionErrorCodes,
  };
  ack.destroy();
  lag.destroy();
  return figures;
}
