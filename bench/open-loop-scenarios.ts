/**
 * The open-loop phases of `npm run bench`: a rate sweep against the API, the no-op handler and the
 * bare INSERT handler; end to end at a sustained rate; Temporal and PostgreSQL frozen mid-run; and
 * how fast a backlog drains. Every request is a unique signed PBX or voice-AI event.
 */
import { setTimeout as delay } from 'node:timers/promises';
import pg from 'pg';
import { pbxEvents, random, signedJsonRequest, voiceAiEvents } from '../sandboxes/pbx-simulator.js';
import type { CallPlan } from '../sandboxes/pbx-simulator.js';
import type { LatencySummary } from './load.js';
import { connectionFailed, latencySummaryOf, openLoopFigures, startOpenLoopGenerator, timedOut } from './open-loop.js';
import type { OpenLoopFigures, OpenLoopGenerator, OpenLoopOutcomes, ScheduledRequest } from './open-loop.js';
import { startCeilingServer, watchEnds } from './scenarios.js';
import { BenchSetupError, ingestTenantId } from './stack.js';
import type { BenchStack } from './stack.js';

export const openLoopTargets = ['api', 'noop', 'insert'] as const;
export type OpenLoopTarget = (typeof openLoopTargets)[number];

export interface BacklogFigures {
  /** Highest count of waiting inbox events seen while sending and draining; null without an inbox table. */
  peak: number | null;
  /** From the last send until the inbox was empty; null if it was not within the wait. */
  drainSeconds: number | null;
}

export interface JournalCheck {
  /** Events answered 2xx. */
  accepted: number;
  /** Of those, found in `call_events`. */
  journaled: number;
  /** After the last send, until every accepted event was journaled; null if not within the wait. */
  seconds: number | null;
  /** How long the check waited at most. */
  waitedAtMostSeconds: number;
  missingSamples: string[];
}

export interface OpenLoopRateResult extends OpenLoopFigures {
  backlog?: BacklogFigures;
  journal?: JournalCheck;
  /** What the API process itself saw while the rate ran (its /metrics before and after). */
  inside?: ApiInside;
}

/**
 * Where an ack's time went, from the API's own metrics: the time from the request's arrival in the
 * handler to the answer (the histogram's bucket bound at p99), and the event loop's delay (p99 and
 * max over the rate; prom-client resets it at each scrape). An ack slow outside and fast inside
 * waited before the handler ran: a busy event loop or a starved process.
 */
export interface ApiInside {
  handlerP99UpToMs: number | null;
  eventLoopLagP99Ms: number | null;
  eventLoopLagMaxMs: number | null;
}

type Scrape = { ackBuckets: Map<number, number>; lagP99Ms: number | null; lagMaxMs: number | null };

async function scrapeApi(apiUrl: string): Promise<Scrape | undefined> {
  try {
    const text = await (await fetch(`${apiUrl}/metrics`)).text();
    const ackBuckets = new Map<number, number>();
    for (const match of text.matchAll(/^switchboard_webhook_ack_seconds_bucket\{[^}]*le="([^"]+)"[^}]*\} (\d+(?:\.\d+)?)$/gm)) {
      const bound = match[1] === '+Inf' ? Number.POSITIVE_INFINITY : Number(match[1]);
      ackBuckets.set(bound, (ackBuckets.get(bound) ?? 0) + Number(match[2]));
    }
    const gauge = (name: string): number | null => {
      const found = new RegExp(`^switchboard_api_nodejs_eventloop_lag_${name}_seconds (\\S+)$`, 'm').exec(text);
      return found ? Math.round(Number(found[1]) * 100_000) / 100 : null;
    };
    return { ackBuckets, lagP99Ms: gauge('p99'), lagMaxMs: gauge('max') };
  } catch {
    return undefined;
  }
}

function insideOf(before: Scrape | undefined, after: Scrape | undefined): ApiInside | undefined {
  if (!before || !after) return undefined;
  const bounds = [...after.ackBuckets.keys()].sort((a, b) => a - b);
  const counts = bounds.map((bound) => (after.ackBuckets.get(bound) ?? 0) - (before.ackBuckets.get(bound) ?? 0));
  const total = counts.at(-1) ?? 0;
  const p99Index = counts.findIndex((count) => count >= total * 0.99);
  const bound = bounds[p99Index];
  return {
    handlerP99UpToMs: total > 0 && bound !== undefined ? (Number.isFinite(bound) ? bound * 1000 : null) : null,
    eventLoopLagP99Ms: after.lagP99Ms,
    eventLoopLagMaxMs: after.lagMaxMs,
  };
}

export interface FreezeResult {
  frozen: string;
  processes: number;
  ratePerSecond: number;
  /** When the freeze began, seconds into the run, and how long it held. */
  frozeAtSeconds: number;
  frozeForSeconds: number;
  figures: OpenLoopFigures;
  /** The answers slower than the target, by the path that answered them, placed against the freeze. */
  slowAnswers: SlowAnswers[];
  /** The API's direct hand-offs during the run, by result (taken, failed, no_room). */
  directHandOffs: Record<string, number>;
  backlog: BacklogFigures;
  journal: JournalCheck;
}

/** Seconds are counted from the moment the freeze began. */
export interface SlowAnswers {
  /** `inbox` or `temporal` (the answer's `via`), else the status or `timeout` / `connection error`. */
  path: string;
  count: number;
  sentFromSeconds: number;
  sentToSeconds: number;
  answeredFromSeconds: number;
  answeredToSeconds: number;
}

/** The API's direct hand-offs so far, by result (switchboard_intake_direct_total); empty if unreadable. */
async function directHandOffs(apiUrl: string): Promise<Record<string, number>> {
  try {
    const text = await (await fetch(`${apiUrl}/metrics`)).text();
    const counts: Record<string, number> = {};
    for (const match of text.matchAll(/^switchboard_intake_direct_total\{result="(\w+)"\} (\d+)$/gm)) if (match[1]) counts[match[1]] = Number(match[2]);
    return counts;
  } catch {
    return {};
  }
}

/** Answers slower than `thresholdMs`, grouped by what answered them. */
export function slowAnswersOf(requests: readonly ScheduledRequest[], outcomes: OpenLoopOutcomes, frozeAtMs: number, thresholdMs: number): SlowAnswers[] {
  const groups = new Map<string, SlowAnswers>();
  const seconds = (ms: number) => Math.round((ms - frozeAtMs) / 100) / 10;
  outcomes.latencyMs.forEach((latency, index) => {
    const request = requests[index];
    if (!request || latency <= thresholdMs) return;
    const status = outcomes.status[index] ?? timedOut;
    const path = outcomes.via[index] ?? (status === timedOut ? 'timeout' : status === connectionFailed ? 'connection error' : String(status));
    const sent = seconds(request.offsetMs);
    const answered = seconds(request.offsetMs + latency);
    const group = groups.get(path);
    if (!group) groups.set(path, { path, count: 1, sentFromSeconds: sent, sentToSeconds: sent, answeredFromSeconds: answered, answeredToSeconds: answered });
    else Object.assign(group, { count: group.count + 1, sentToSeconds: sent, answeredFromSeconds: Math.min(group.answeredFromSeconds, answered), answeredToSeconds: Math.max(group.answeredToSeconds, answered) });
  });
  return [...groups.values()];
}

export interface DrainResult {
  ratePerSecond: number;
  sendSeconds: number;
  /** Inbox rows waiting when Temporal was resumed. */
  backlogAtResume: number;
  /** From resuming Temporal until the inbox was empty. */
  drainSeconds: number | null;
  /** Forwarding rate while the backlog fell from 90 % to 10 % of its size at resume (start-up and tail left out). */
  forwardedPerSecond: number;
  figures: OpenLoopFigures;
  journal: JournalCheck;
}

export interface OpenLoopResult {
  seconds: number;
  rates: number[];
  timeoutMs: number;
  /** Where the generator ran: its own process (at a raised priority) or the bench process. */
  generator: string;
  tenant: string;
  sweep: Record<OpenLoopTarget, OpenLoopRateResult[]>;
  /** Also the inbox meanwhile: a growing backlog puts the delay before Temporal, an empty one after it. */
  endToEnd: EndToEndResult;
  /**
   * The ceiling for `endToEnd`: the same kind of calls at the same rate, signalled to Temporal
   * inside the request (no inbox, no forwarder), so only the worker and Temporal stand in between.
   */
  endToEndDirect?: EndToEndResult;
  freezes: FreezeResult[];
  drain?: DrainResult;
  /** Phases left out, and why. */
  skipped: string[];
}

export interface EndToEndResult {
  ratePerSecond: number;
  seconds: number;
  calls: number;
  figures: OpenLoopFigures;
  backlog: BacklogFigures;
  journal: LatencySummary;
  dashboard: LatencySummary;
}

interface PlannedEvent {
  callId: string;
  /** The ids this webhook becomes in `call_events` (ingestion/providers: a voice-AI start is also the answer). */
  journalEventIds: string[];
  isEnd: boolean;
}

interface OpenLoopPlan {
  requests: ScheduledRequest[];
  events: PlannedEvent[];
}

type Tenant = NonNullable<BenchStack['ingestTenant']>;

/**
 * `ratePerSecond × seconds` unique events at a constant rate: PBX calls (ringing, answered, ended;
 * one in eight missed) and every fifth call a voice-AI one (start, end, analytics). Each call's
 * events keep their order and lie seconds apart, interleaved with other calls'.
 */
function openLoopPlan(tenant: Tenant, idPrefix: string, ratePerSecond: number, seconds: number, seed: number): OpenLoopPlan {
  const next = random(seed);
  const total = Math.max(1, Math.round(ratePerSecond * seconds));
  const startedAt = Date.now() - 120_000;
  const drafts: Array<{ at: number; call: number; order: number; provider: 'pbx' | 'voice-ai'; body: Record<string, unknown>; event: PlannedEvent }> = [];
  let remaining = total;
  for (let call = 0; remaining > 0; call++) {
    const id = `${idPrefix}-${call}`;
    const customerPhone = `+1646555${String(1000 + (call % 9000)).padStart(4, '0')}`;
    const callStart = new Date(startedAt + call * 10);
    let bodies: Array<Record<string, unknown>>;
    let offsets: number[];
    let provider: 'pbx' | 'voice-ai';
    let journalIds: string[][];
    if (call % 5 === 4 && remaining >= 3) {
      provider = 'voice-ai';
      const durationSeconds = 3 + Math.floor(next() * 8);
      bodies = voiceAiEvents({ callId: id, agentId: 'ai-agent', direction: 'inbound', customerPhone, agentPhone: '+12125550100', startedAt: callStart, durationSeconds, satisfaction: 5, resolved: true, issueType: 'Billing' });
      offsets = [0, durationSeconds, durationSeconds + 1];
      journalIds = [['voice-ai:start', 'voice-ai:answered'], ['voice-ai:end'], ['voice-ai:analytics']];
    } else {
      provider = 'pbx';
      const ringSeconds = 1 + Math.floor(next() * 3);
      const talkSeconds = 2 + Math.floor(next() * 7);
      const outcome = remaining === 2 || call % 8 === 6 ? 'missed' : 'answered';
      const plan: CallPlan = { callId: id, direction: 'inbound', customerPhone, linePhone: '+12125550100', agentId: `agent-${call % 20}`, outcome, startedAt: callStart, ringSeconds, talkSeconds };
      // The last event of a run may be a lone ringing: a call still ringing when the run ends.
      bodies = pbxEvents(plan).slice(0, remaining === 1 ? 1 : undefined);
      offsets = outcome === 'answered' ? [0, ringSeconds, ringSeconds + talkSeconds] : [0, ringSeconds];
      journalIds = bodies.map((body) => [`pbx:${String(body.event_id)}`]);
    }
    // A call spreads over at most 80 % of the run, so short runs still finish their calls.
    const length = offsets[bodies.length - 1] ?? 0;
    const scale = length > seconds * 0.8 ? (seconds * 0.8) / length : 1;
    const begin = next() * (seconds - length * scale);
    for (const [order, body] of bodies.entries()) {
      const eventType = String(body.event);
      drafts.push({
        at: begin + (offsets[order] ?? 0) * scale,
        call,
        order,
        provider,
        body,
        event: { callId: `${provider}:${id}`, journalEventIds: journalIds[order] ?? [], isEnd: eventType === 'call.ended' || eventType === 'call.end' },
      });
    }
    remaining -= bodies.length;
  }
  // The k-th event in time goes out at k / rate: a constant arrival rate, each call's events in order.
  drafts.sort((a, b) => a.at - b.at || a.call - b.call || a.order - b.order);
  const requests: ScheduledRequest[] = [];
  const events: PlannedEvent[] = [];
  for (const [index, draft] of drafts.entries()) {
    const signed = signedJsonRequest(tenant.signingSecrets[draft.provider], draft.body);
    requests.push({ offsetMs: (index * 1000) / ratePerSecond, path: `/webhooks/${tenant.id}/${draft.provider}`, headers: signed.headers, body: signed.body });
    events.push(draft.event);
  }
  return { requests, events };
}

const accepted = (status: number): boolean => status >= 200 && status < 300;

/** Counts the inbox's waiting events every 250 ms, on whichever schema the code under test has. */
async function watchBacklog(databaseUrl: string): Promise<{ samples: Array<{ at: number; pending: number }>; available: boolean; sampleNow(): Promise<number | undefined>; stop(): Promise<void> }> {
  const db = new pg.Client({ connectionString: databaseUrl });
  db.on('error', () => undefined);
  await db.connect();
  const columns = new Set((await db.query<{ column_name: string }>(`SELECT column_name FROM information_schema.columns WHERE table_name = 'event_inbox'`)).rows.map((row) => row.column_name));
  // Inbox-first schema: forwarded rows are deleted and dead letters stay (dead_at); before it: forwarded_at.
  const waiting = [columns.has('dead_at') ? 'dead_at IS NULL' : '', columns.has('forwarded_at') ? 'forwarded_at IS NULL' : ''].filter(Boolean).join(' AND ');
  const available = columns.size > 0 && waiting !== '';
  const samples: Array<{ at: number; pending: number }> = [];
  let inFlight: Promise<number | undefined> | undefined;
  const sampleNow = (): Promise<number | undefined> => {
    if (!available) return Promise.resolve(undefined);
    // One query at a time: while PostgreSQL is frozen the poll waits instead of piling up.
    inFlight ??= db
      .query<{ pending: number }>(`SELECT count(*)::int AS pending FROM event_inbox WHERE ${waiting}`)
      .then(
        (result) => {
          const pending = result.rows[0]?.pending ?? 0;
          samples.push({ at: performance.now(), pending });
          return pending;
        },
        () => undefined,
      )
      .finally(() => (inFlight = undefined));
    return inFlight;
  };
  const timer = setInterval(() => void sampleNow(), 250);
  return {
    samples,
    available,
    sampleNow,
    async stop() {
      clearInterval(timer);
      await inFlight;
      await db.end().catch(() => undefined);
    },
  };
}

type BacklogWatcher = Awaited<ReturnType<typeof watchBacklog>>;

/** Waits until the inbox is empty (bounded); returns when it was, on performance.now()'s clock. */
async function waitForEmptyInbox(backlog: BacklogWatcher, timeoutMs: number): Promise<number | undefined> {
  if (!backlog.available) return performance.now();
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if ((await backlog.sampleNow()) === 0) return performance.now();
    await delay(250);
  }
  return undefined;
}

function backlogFigures(backlog: BacklogWatcher, from: number, sendEnd: number, emptyAt: number | undefined): BacklogFigures {
  if (!backlog.available) return { peak: null, drainSeconds: null };
  const seen = backlog.samples.filter((sample) => sample.at >= from && (emptyAt === undefined || sample.at <= emptyAt + 1));
  return { peak: Math.max(0, ...seen.map((sample) => sample.pending)), drainSeconds: emptyAt === undefined ? null : Math.round((Math.max(0, emptyAt - sendEnd) / 1000) * 100) / 100 };
}

/** Waits (bounded) until every accepted event is in `call_events`; what is still missing then counts as lost. */
async function checkJournal(databaseUrl: string, tenantId: string, plan: OpenLoopPlan, outcomes: OpenLoopOutcomes, sendEnd: number, timeoutMs: number): Promise<JournalCheck> {
  const expected = outcomes.status.flatMap((status, index) => {
    const event = plan.events[index];
    return event && accepted(status) ? event.journalEventIds.map((eventId) => ({ index, callId: event.callId, eventId })) : [];
  });
  const acceptedCount = outcomes.status.filter(accepted).length;
  const callIds = [...new Set(expected.map((entry) => entry.callId))];
  const db = new pg.Client({ connectionString: databaseUrl });
  db.on('error', () => undefined);
  await db.connect();
  const deadline = performance.now() + timeoutMs;
  let missing = expected;
  let doneAt: number | undefined;
  try {
    for (;;) {
      const rows = await db.query<{ call_id: string; event_id: string }>('SELECT call_id, event_id FROM call_events WHERE tenant_id = $1 AND call_id = ANY($2)', [tenantId, callIds]);
      const found = new Set(rows.rows.map((row) => `${row.call_id} ${row.event_id}`));
      missing = missing.filter((entry) => !found.has(`${entry.callId} ${entry.eventId}`));
      if (missing.length === 0) {
        doneAt = performance.now();
        break;
      }
      if (performance.now() > deadline) break;
      await delay(1_000);
    }
  } finally {
    await db.end().catch(() => undefined);
  }
  return {
    accepted: acceptedCount,
    journaled: acceptedCount - new Set(missing.map((entry) => entry.index)).size,
    seconds: doneAt === undefined ? null : Math.round((Math.max(0, doneAt - sendEnd) / 1000) * 10) / 10,
    waitedAtMostSeconds: timeoutMs / 1000,
    missingSamples: missing.slice(0, 5).map((entry) => `${entry.callId} ${entry.eventId}`),
  };
}

/** Stops (SIGSTOP) the processes now and resumes (SIGCONT) them when asked, or at exit whatever happens. */
export function freeze(pids: () => number[]): { count: number; resume: () => void } {
  const stopped = new Set<number>();
  const signal = (pid: number, name: NodeJS.Signals): boolean => {
    try {
      process.kill(pid, name);
      return true;
    } catch {
      return false; // already gone
    }
  };
  const resume = (): void => {
    for (const pid of stopped) signal(pid, 'SIGCONT');
    stopped.clear();
    process.off('exit', resume);
  };
  process.on('exit', resume);
  // Twice: a backend forked between the listing and the postmaster's stop is caught the second time.
  for (let pass = 0; pass < 2; pass++) for (const pid of pids()) if (!stopped.has(pid) && signal(pid, 'SIGSTOP')) stopped.add(pid);
  return { count: stopped.size, resume };
}

interface RunContext {
  stack: BenchStack;
  tenant: Tenant;
  generator: OpenLoopGenerator;
  timeoutMs: number;
  seed: number;
  log: (line: string) => void;
}

// Enough connections that even a 2.5 s stall at 800/s does not queue requests inside the agent.
const maxSockets = 2_048;
/** The generator's nice value: ahead of the stack for the CPU (see startOpenLoopGenerator). */
const generatorPriority = -10;

/** One schedule against one URL; `sendEnd` is the intended moment of the last send, on this process's clock. */
async function runPlan(context: RunContext, baseUrl: string, plan: OpenLoopPlan, onStart?: () => void): Promise<{ outcomes: OpenLoopOutcomes; sendEnd: number; toLocal: (offsetMs: number) => number }> {
  onStart?.();
  const outcomes = await context.generator.run({ baseUrl, requests: plan.requests, timeoutMs: context.timeoutMs, maxSockets });
  const toLocal = (offsetMs: number): number => outcomes.startEpochMs - performance.timeOrigin + offsetMs;
  const lastIndex = plan.requests.length - 1;
  const sendEnd = toLocal((plan.requests[lastIndex]?.offsetMs ?? 0) + Math.max(0, outcomes.sendLagMs[lastIndex] ?? 0));
  return { outcomes, sendEnd, toLocal };
}

let plansMade = 0;
/** Every plan has its own call ids and its own seed, so no two runs share an event. */
const planFor = (context: RunContext, label: string, ratePerSecond: number, seconds: number): OpenLoopPlan => {
  const number = plansMade++;
  return openLoopPlan(context.tenant, `ol-${context.stack.runTag}-${label}-${number}`, ratePerSecond, seconds, context.seed + number);
};

const summaryLine = (figures: OpenLoopFigures): string =>
  `ack p50 ${figures.ack.p50} / p99 ${figures.ack.p99} / p99.9 ${figures.ack.p999} / max ${figures.ack.max} ms, ${figures.errors.total} errors, ${figures.timeouts} timeouts, ${figures.connectionErrors} connection errors, sent ${figures.achievedPerSecond}/${figures.intendedPerSecond} per s`;

async function sweepTarget(context: RunContext, target: OpenLoopTarget, baseUrl: string, rates: readonly number[], seconds: number, backlog: BacklogWatcher): Promise<OpenLoopRateResult[]> {
  const results: OpenLoopRateResult[] = [];
  for (const rate of rates) {
    const plan = planFor(context, target, rate, seconds);
    const before = target === 'api' ? await scrapeApi(baseUrl) : undefined;
    const runStart = performance.now();
    const { outcomes, sendEnd } = await runPlan(context, baseUrl, plan);
    const inside = target === 'api' ? insideOf(before, await scrapeApi(baseUrl)) : undefined;
    const figures = openLoopFigures(plan.requests, outcomes, rate, seconds);
    let result: OpenLoopRateResult = figures;
    if (target === 'api') {
      // The next rate starts from a drained inbox and a journal that has caught up.
      const emptyAt = await waitForEmptyInbox(backlog, 300_000);
      const journal = await checkJournal(context.stack.databaseUrl, context.tenant.id, plan, outcomes, sendEnd, 90_000);
      result = { ...figures, backlog: backlogFigures(backlog, runStart, sendEnd, emptyAt), journal, ...(inside ? { inside } : {}) };
      context.log(`open loop: API ${rate}/s: ${summaryLine(figures)}; backlog peak ${result.backlog?.peak ?? 'n/a'}, drained in ${result.backlog?.drainSeconds ?? 'n/a'} s; journaled ${journal.journaled}/${journal.accepted}${journal.seconds === null ? ' (not all within 90 s)' : ` after ${journal.seconds} s`}${inside ? `; inside the API: handler p99 <= ${inside.handlerP99UpToMs ?? 'n/a'} ms, event-loop lag p99 ${inside.eventLoopLagP99Ms ?? 'n/a'} / max ${inside.eventLoopLagMaxMs ?? 'n/a'} ms` : ''}`);
    } else {
      context.log(`open loop: ${target} ${rate}/s: ${summaryLine(figures)}`);
      await delay(1_000);
    }
    results.push(result);
  }
  return results;
}

async function endToEnd(context: RunContext, ratePerSecond: number, seconds: number, backlog: BacklogWatcher, baseUrl = context.stack.apiUrl): Promise<OpenLoopResult['endToEnd']> {
  const plan = planFor(context, baseUrl === context.stack.apiUrl ? 'e2e' : 'e2e-direct', ratePerSecond, seconds);
  const endIndexes = new Map<string, number>();
  for (const [index, event] of plan.events.entries()) if (event.isEnd) endIndexes.set(event.callId, index);
  const watcher = await watchEnds(context.stack, new Set(endIndexes.keys()), { id: context.tenant.id, operatorToken: context.tenant.operatorToken });
  const runStart = performance.now();
  const { outcomes, sendEnd, toLocal } = await runPlan(context, baseUrl, plan);
  const ended = [...endIndexes].filter(([, index]) => accepted(outcomes.status[index] ?? 0));
  await waitUntilSeen(() => ended.every(([callId]) => watcher.journal.has(callId) && watcher.dashboard.has(callId)), 180_000);
  await watcher.stop();
  const emptyAt = await waitForEmptyInbox(backlog, 120_000);
  // From the call.ended's intended send moment (the generator keeps it within a few ms).
  const since = (seen: Map<string, number>): number[] => ended.flatMap(([callId, index]) => {
    const at = seen.get(callId);
    return at === undefined ? [] : [at - toLocal(plan.requests[index]?.offsetMs ?? 0)];
  });
  const journal = latencySummaryOf(since(watcher.journal));
  const dashboard = latencySummaryOf(since(watcher.dashboard));
  if (journal.count < ended.length || dashboard.count < ended.length) context.log(`  warning: of ${ended.length} ended calls, ${journal.count} reached the journal and ${dashboard.count} the dashboard within 180 s`);
  return { ratePerSecond, seconds, calls: ended.length, figures: openLoopFigures(plan.requests, outcomes, ratePerSecond, seconds), backlog: backlogFigures(backlog, runStart, sendEnd, emptyAt), journal, dashboard };
}

async function waitUntilSeen(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check() && performance.now() < deadline) await delay(200);
}

/** How long the freeze and drain phases wait for their accepted events in the journal before calling the rest lost. */
const lossCheckMs = 300_000;

const freezeRate = 30;
const freezeRunSeconds = 25;
const freezeStartSeconds = 5;
const freezeSeconds = 10;
/** The freeze target for every answer (issue: ack p99 <= 250 ms while a store is frozen). */
const freezeAckTargetMs = 250;

async function freezeRun(context: RunContext, name: string, pids: () => number[], backlog: BacklogWatcher): Promise<FreezeResult> {
  const plan = planFor(context, `freeze-${name.split(' ')[0]?.toLowerCase() ?? 'x'}`, freezeRate, freezeRunSeconds);
  let frozeAt = 0;
  let frozeFor = 0;
  let frozenCount = 0;
  let timer: NodeJS.Timeout | undefined;
  let thaw: NodeJS.Timeout | undefined;
  let resume: () => void = () => undefined;
  const runStart = performance.now();
  const directBefore = await directHandOffs(context.stack.apiUrl);
  const { outcomes, sendEnd, toLocal } = await runPlan(context, context.stack.apiUrl, plan, () => {
    timer = setTimeout(() => {
      const frozen = freeze(pids);
      frozeAt = performance.now();
      frozenCount = frozen.count;
      resume = () => {
        frozen.resume();
        frozeFor = performance.now() - frozeAt;
        resume = () => undefined;
      };
      thaw = setTimeout(() => resume(), freezeSeconds * 1_000);
    }, freezeStartSeconds * 1_000);
  }).finally(() => {
    clearTimeout(timer);
    clearTimeout(thaw);
    resume();
  });
  const figures = openLoopFigures(plan.requests, outcomes, freezeRate, freezeRunSeconds);
  const slowAnswers = slowAnswersOf(plan.requests, outcomes, frozeAt - toLocal(0), freezeAckTargetMs);
  const directAfter = await directHandOffs(context.stack.apiUrl);
  const direct = Object.fromEntries(Object.entries(directAfter).map(([result, count]) => [result, count - (directBefore[result] ?? 0)]));
  const emptyAt = await waitForEmptyInbox(backlog, 300_000);
  const journal = await checkJournal(context.stack.databaseUrl, context.tenant.id, plan, outcomes, sendEnd, lossCheckMs);
  const result: FreezeResult = {
    frozen: name,
    processes: frozenCount,
    ratePerSecond: freezeRate,
    frozeAtSeconds: Math.round(((frozeAt - toLocal(0)) / 1000) * 10) / 10,
    frozeForSeconds: Math.round((frozeFor / 1000) * 10) / 10,
    figures,
    slowAnswers,
    directHandOffs: direct,
    backlog: backlogFigures(backlog, runStart, sendEnd, emptyAt),
    journal,
  };
  const slow = slowAnswers.map((group) => `${group.count} via ${group.path} (sent ${group.sentFromSeconds}…${group.sentToSeconds} s, answered ${group.answeredFromSeconds}…${group.answeredToSeconds} s)`).join(', ');
  context.log(`freeze ${name} (${frozenCount} processes, ${result.frozeForSeconds} s at ${result.frozeAtSeconds} s): ${summaryLine(figures)}; journaled ${journal.journaled}/${journal.accepted}; over ${freezeAckTargetMs} ms: ${slow || 'none'} (seconds from the freeze); direct hand-offs: ${Object.entries(direct).map(([result, count]) => `${result} ${count}`).join(', ') || 'none'}`);
  return result;
}

const drainRate = 200;
const drainSendSeconds = 10;

/** Temporal frozen while events arrive, so they wait in the inbox; then resumed, and the inbox's fall timed. */
async function drainRun(context: RunContext, temporalPids: () => number[], backlog: BacklogWatcher): Promise<DrainResult> {
  const plan = planFor(context, 'drain', drainRate, drainSendSeconds);
  const frozen = freeze(temporalPids);
  let run: Awaited<ReturnType<typeof runPlan>>;
  let resumedAt: number;
  let backlogAtResume: number;
  try {
    run = await runPlan(context, context.stack.apiUrl, plan);
    backlogAtResume = (await backlog.sampleNow()) ?? 0;
  } finally {
    frozen.resume();
    resumedAt = performance.now();
  }
  const emptyAt = await waitForEmptyInbox(backlog, 600_000);
  const after = backlog.samples.filter((sample) => sample.at >= resumedAt);
  const crossing = (share: number) => after.find((sample) => sample.pending <= backlogAtResume * share);
  const high = crossing(0.9);
  const low = crossing(0.1);
  const drainSeconds = emptyAt === undefined ? null : (emptyAt - resumedAt) / 1000;
  const forwardedPerSecond =
    high && low && low.at - high.at >= 500
      ? (high.pending - low.pending) / ((low.at - high.at) / 1000)
      : drainSeconds && drainSeconds > 0
        ? backlogAtResume / drainSeconds
        : 0;
  const figures = openLoopFigures(plan.requests, run.outcomes, drainRate, drainSendSeconds);
  const journal = await checkJournal(context.stack.databaseUrl, context.tenant.id, plan, run.outcomes, resumedAt, lossCheckMs);
  const result: DrainResult = {
    ratePerSecond: drainRate,
    sendSeconds: drainSendSeconds,
    backlogAtResume,
    drainSeconds: drainSeconds === null ? null : Math.round(drainSeconds * 100) / 100,
    forwardedPerSecond: Math.round(forwardedPerSecond),
    figures,
    journal,
  };
  context.log(`drain: ${backlogAtResume} waiting at resume, empty after ${result.drainSeconds ?? 'n/a'} s, ${result.forwardedPerSecond} forwarded/s; journaled ${journal.journaled}/${journal.accepted}`);
  return result;
}

export const openLoopTenantMissing = (tenantId: string): string =>
  `the open-loop phases need the tenant "${ingestTenantId(tenantId)}" (no outside systems) in the stack's config: add it from \`npm run bench -- --print-tenant\` and restart the stack, or pass --skip-open-loop`;

export async function openLoopIngest(
  stack: BenchStack,
  options: { rates: number[]; seconds: number; seed: number; timeoutMs?: number; generatorInOwnProcess?: boolean; log: (line: string) => void },
): Promise<OpenLoopResult> {
  const tenant = stack.ingestTenant;
  if (!tenant) throw new BenchSetupError(openLoopTenantMissing(stack.tenantId));
  const timeoutMs = options.timeoutMs ?? 10_000;
  const generator = await startOpenLoopGenerator({ ownProcess: options.generatorInOwnProcess ?? true, priority: generatorPriority });
  const context: RunContext = { stack, tenant, generator, timeoutMs, seed: options.seed, log: options.log };
  const backlog = await watchBacklog(stack.databaseUrl);
  const skipped: string[] = [];
  if (!backlog.available) skipped.push('backlog figures: no event_inbox table with forwarded_at or dead_at');
  const insertTable = `bench_open_loop_${stack.runTag}`;
  try {
    // Order: the ceilings while the stack is idle; then end to end and its ceiling, the freezes and
    // the drain on a quiet stack (each waits for its journal); the API sweep last, as its top rates
    // leave the worker minutes behind.
    const sweep: Record<OpenLoopTarget, OpenLoopRateResult[]> = { api: [], noop: [], insert: [] };
    options.log(`open loop: generator in its ${generator.where}`);
    const noop = await startCeilingServer();
    try {
      sweep.noop = await sweepTarget(context, 'noop', noop.url, options.rates, options.seconds, backlog);
    } finally {
      noop.stop();
    }
    const insert = await startCeilingServer({ BENCH_INSERT_DATABASE_URL: stack.databaseUrl, BENCH_INSERT_TABLE: insertTable });
    try {
      sweep.insert = await sweepTarget(context, 'insert', insert.url, options.rates, options.seconds, backlog);
    } finally {
      insert.stop();
    }

    options.log('open loop: end to end at 50/s for 25 s');
    const e2e = await endToEnd(context, 50, 25, backlog);
    options.log(`open loop: end to end: journal p50 ${e2e.journal.p50} / p95 ${e2e.journal.p95} ms, dashboard p50 ${e2e.dashboard.p50} / p95 ${e2e.dashboard.p95} ms (${e2e.calls} calls)`);

    // Its ceiling right after it, on the same quiet stack: run after the API sweep, it found the
    // worker still minutes behind the sweep's top rates and saw none of its calls (2026-12-03).
    // endToEnd waits for its own calls, so what it leaves behind does not reach the freezes.
    const direct = await startCeilingServer({ SWITCHBOARD_CONFIG: stack.configPath, TEMPORAL_ADDRESS: stack.temporalAddress, LOG_LEVEL: 'warn' }, 'bench/direct-server.ts');
    let e2eDirect: EndToEndResult;
    try {
      options.log('open loop: end to end at 50/s for 25 s, straight to Temporal (the ceiling)');
      e2eDirect = await endToEnd(context, 50, 25, backlog, direct.url);
    } finally {
      direct.stop();
    }
    options.log(`open loop: end to end straight to Temporal: journal p50 ${e2eDirect.journal.p50} / p95 ${e2eDirect.journal.p95} ms (${e2eDirect.journal.count}/${e2eDirect.calls} calls seen)`);

    const freezes: FreezeResult[] = [];
    let drain: DrainResult | undefined;
    const processes = stack.processes;
    if (processes) {
      freezes.push(await freezeRun(context, 'Temporal dev server', processes.temporal, backlog));
      freezes.push(await freezeRun(context, 'PostgreSQL', processes.postgres, backlog));
      drain = await drainRun(context, processes.temporal, backlog);
    } else {
      skipped.push('freeze and drain phases: they stop processes, so they run only on the stack the bench starts');
    }

    sweep.api = await sweepTarget(context, 'api', stack.apiUrl, options.rates, options.seconds, backlog);


    return { seconds: options.seconds, rates: options.rates, timeoutMs, generator: generator.where, tenant: tenant.id, sweep, endToEnd: e2e, endToEndDirect: e2eDirect, freezes, ...(drain ? { drain } : {}), skipped };
  } finally {
    generator.close();
    await backlog.stop();
    const db = new pg.Client({ connectionString: stack.databaseUrl });
    await db.connect();
    await db.query(`DROP TABLE IF EXISTS ${insertTable}`).finally(() => db.end());
  }
}
