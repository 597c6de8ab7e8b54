/**
 * `npm run chaos`: a multi-process deployment under sustained traffic while faults are injected on
 * a schedule, then a count of what was lost and what was duplicated. `runChaos` returns the whole
 * result; chaos/main.ts prints it and writes RELIABILITY.md, and test/integration/chaos.test.ts runs
 * the short version.
 */
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { ackLatency, latencyHistogram, recordMs } from '../bench/open-loop.js';
import type { AckLatency } from '../bench/open-loop.js';
import { repoRoot } from '../config/load.js';
import { analyse, inFlightLookbackMs } from './analysis.js';
import type { FaultAnalysis, StreamRecovery } from './analysis.js';
import { startDeployment } from './deployment.js';
import type { Deployment } from './deployment.js';
import { fullSchedule, inject, shortSchedule } from './faults.js';
import type { FaultRecord, PlannedFault } from './faults.js';
import { startObserving } from './observe.js';
import { renderReport } from './report.js';
import { planTraffic, runTraffic } from './traffic.js';
import type { Provider, TrafficPlan, TrafficResult } from './traffic.js';
import { checkNames, verify } from './verify.js';
import type { CheckName, CheckTotals, Expectation, Stuck, Unexpected } from './verify.js';

export interface ChaosOptions {
  /** Seconds of traffic (default 600; the short run: 72). */
  durationSeconds?: number;
  /** Deliveries per second (default 10; the short run: 5). */
  ratePerSecond?: number;
  /** One round of each fault in about a minute and a half, shorter holds: the version `npm test` runs. */
  short?: boolean;
  seed?: number;
  tenants?: number;
  /** Keep the run's folder (config, process logs) instead of deleting it. */
  keep?: boolean;
  log?: (line: string) => void;
  /** Told the run's folder as soon as it exists (chaos/main.ts removes it when the run is interrupted). */
  onFolder?: (dir: string) => void;
}

export interface Finding {
  check: CheckName;
  key: string;
  state: 'lost' | 'late' | 'duplicated';
  copies: number;
  why?: string;
  /** Seconds into the traffic when it came due. */
  dueAtSeconds: number;
  /** The faults on (or settling) at that moment. */
  faults: string[];
}

export interface ProcessSummary {
  name: string;
  starts: number;
  /** Exits the run did not cause. */
  crashes: number;
  errorLines: number;
  /** The supervisor stopped restarting it (a crash loop): why. */
  gaveUp?: string;
}

export interface ChaosResult {
  /** Zero lost, zero duplicated, nothing unexpected, nothing stuck, every dashboard stream recovered, every process kept running. */
  passed: boolean;
  lost: number;
  duplicated: number;
  /** Still being worked on when the wait ended (not lost yet, but not done in time either). */
  late: number;
  unexpected: number;
  /** Kinds of stuck work found (inbox rows, running workflows, pending ledger entries, ...): `stuckItems` has the counts. */
  stuck: number;
  streamsRecovered: boolean;
  settings: { short: boolean; durationSeconds: number; ratePerSecond: number; seed: number; tenants: number; cores: number; commit: string };
  /** Epoch ms. */
  startedAt: number;
  endedAt: number;
  traffic: {
    planned: number;
    accepted: number;
    /** Never accepted: retries ran out, or refused for good. */
    refused: number;
    /** Not sent: what they depend on was never accepted. */
    skipped: number;
    attempts: number;
    redeliveries: number;
    calls: number;
    leads: number;
    byProvider: Record<Provider, { planned: number; accepted: number }>;
    /** First attempts. */
    ack: AckLatency;
    /** Answers other than 2xx, by status and reason, over every attempt. */
    errors: Record<string, number>;
    viaTemporal: number;
    sendSeconds: number;
  };
  checks: Record<CheckName, CheckTotals>;
  faults: FaultAnalysis[];
  findings: Finding[];
  unexpectedEffects: Unexpected[];
  stuckItems: Stuck[];
  streams: StreamRecovery[];
  streamWindowSeconds: number;
  drain: { waitedSeconds: number; complete: boolean };
  processes: ProcessSummary[];
  /** Requests the sandboxes received, and how many they refused for their rate limits. */
  outsideSystems: Record<'kommo' | 'ticketing' | 'whatsapp', { requests: number; rateLimited: number }>;
  /** The run's folder when kept (config, logs of every process). */
  keptDir?: string;
  report: string;
}

function commitUnderTest(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== '';
    return dirty ? `${head} with uncommitted changes` : head;
  } catch {
    return 'unknown (not a git checkout)';
  }
}

function trafficSummary(plan: TrafficPlan, traffic: TrafficResult): ChaosResult['traffic'] {
  const byProvider = { pbx: { planned: 0, accepted: 0 }, twilio: { planned: 0, accepted: 0 }, 'voice-ai': { planned: 0, accepted: 0 }, crm: { planned: 0, accepted: 0 } } as Record<Provider, { planned: number; accepted: number }>;
  for (const delivery of plan.deliveries) {
    byProvider[delivery.provider].planned++;
    if (traffic.outcomes[delivery.index]?.acceptedAt !== undefined) byProvider[delivery.provider].accepted++;
  }
  const histogram = latencyHistogram();
  const errors: Record<string, number> = {};
  let viaTemporal = 0;
  for (const attempt of traffic.attempts) {
    if (attempt.attempt === 1) recordMs(histogram, attempt.latencyMs);
    if (attempt.via === 'temporal') viaTemporal++;
    if (attempt.status >= 200 && attempt.status < 300) continue;
    const key = attempt.status > 0 ? `${attempt.status}${attempt.reason ? ` ${attempt.reason}` : ''}` : attempt.status === 0 ? 'timeout (10 s)' : `connection ${attempt.reason ?? 'error'}`;
    errors[key] = (errors[key] ?? 0) + 1;
  }
  const ack = ackLatency(histogram);
  histogram.destroy();
  return {
    planned: plan.deliveries.length,
    accepted: traffic.outcomes.filter((outcome) => outcome.acceptedAt !== undefined).length,
    refused: traffic.outcomes.filter((outcome) => outcome.gaveUp && outcome.acceptedAt === undefined).length,
    skipped: traffic.outcomes.filter((outcome) => outcome.skipped).length,
    attempts: traffic.attempts.length,
    redeliveries: plan.deliveries.filter((delivery) => delivery.redeliveryOf !== undefined).length,
    calls: plan.calls.length,
    leads: plan.leads.length,
    byProvider,
    ack,
    errors,
    viaTemporal,
    sendSeconds: Math.round((traffic.endedAt - traffic.startedAt) / 100) / 10,
  };
}

function findingsOf(expectations: Expectation[], faults: FaultRecord[], trafficStart: number, settleMs: number): Finding[] {
  const findings: Finding[] = [];
  for (const expectation of expectations) {
    const state = expectation.missing ?? (expectation.copies > 1 ? 'duplicated' : undefined);
    if (!state) continue;
    const around = faults.filter((fault) => expectation.dueAt >= fault.startedAt - inFlightLookbackMs && expectation.dueAt <= Math.max(fault.endedAt, fault.backAt ?? fault.endedAt) + settleMs).map((fault) => fault.kind);
    findings.push({
      check: expectation.check,
      key: expectation.key,
      state,
      copies: expectation.copies,
      ...(expectation.why ? { why: expectation.why } : {}),
      dueAtSeconds: Math.round((expectation.dueAt - trafficStart) / 100) / 10,
      faults: around,
    });
  }
  return findings;
}

export async function runChaos(options: ChaosOptions = {}): Promise<ChaosResult> {
  const log = options.log ?? ((line: string) => console.log(`chaos | ${line}`));
  const short = options.short ?? false;
  const durationSeconds = options.durationSeconds ?? (short ? 72 : 600);
  const ratePerSecond = options.ratePerSecond ?? (short ? 5 : 10);
  const seed = options.seed ?? 14;
  const tenantCount = options.tenants ?? 4;
  const wrapUpMinutes = short ? 0.25 : 0.5;
  const settleMs = short ? 15_000 : 30_000;
  const startedAt = Date.now();
  const commit = commitUnderTest();

  const schedule: PlannedFault[] = short ? shortSchedule() : fullSchedule(durationSeconds * 1000);
  const scheduleEnd = Math.max(...schedule.map((fault) => fault.atMs + fault.holdMs));
  if (scheduleEnd > durationSeconds * 1000) {
    throw new Error(`--duration ${durationSeconds} is too short for one round of every fault with pauses between them (it needs ${Math.ceil(scheduleEnd / 1000)} s); give a longer duration, or --short`);
  }
  log(`${short ? 'short run' : 'run'}: ${durationSeconds} s of traffic at ${ratePerSecond} deliveries/s over ${tenantCount} tenants (code under test: ${commit})`);
  const deployment: Deployment = await startDeployment({ tenants: tenantCount, callersPerTenant: 200, wrapUpMinutes, log, ...(options.onFolder ? { onFolder: options.onFolder } : {}) });
  let keptDir: string | undefined;
  try {
    const runTag = `r${Date.now().toString(36)}`;
    const plan = planTraffic({
      runTag,
      tenants: deployment.tenants,
      ratePerSecond,
      durationMs: durationSeconds * 1000,
      seed,
      wrapUpMs: wrapUpMinutes * 60_000,
      // Reminders fall due during the run, late enough that no fault delays a booking past them.
      reminderLeadMs: short ? [25_000, 50_000] : [60_000, 180_000],
    });
    log(`traffic: ${plan.deliveries.length} deliveries (${plan.calls.length} calls, ${plan.leads.length} leads), ready after ${Math.round((Date.now() - startedAt) / 1000)} s`);
    const watched = deployment.tenants[0];
    if (!watched) throw new Error('no tenant');
    const observations = startObserving({ db: deployment.db, apis: deployment.apis, tenantId: watched.id, operatorToken: watched.secrets.operator });
    const injected: Array<Promise<FaultRecord>> = [];
    const traffic: TrafficResult = await runTraffic({
      plan,
      apiUrls: deployment.apis.map((api) => api.url),
      publicUrl: deployment.publicUrl,
      secrets: deployment.tenants.map((tenant) => tenant.secrets),
      seed,
      onStart: (trafficStart) => {
        for (const fault of schedule) {
          const wait = Math.max(0, trafficStart + fault.atMs - Date.now());
          injected.push(new Promise<FaultRecord>((resolve) => setTimeout(() => void inject(deployment, fault, log).then(resolve), wait)));
        }
      },
    });
    const faults = (await Promise.all(injected)).sort((a, b) => a.startedAt - b.startedAt);
    const summary = trafficSummary(plan, traffic);
    log(`traffic done after ${summary.sendSeconds} s: ${summary.accepted}/${summary.planned} deliveries accepted, ${summary.refused} refused, ${summary.attempts} attempts`);

    log('waiting for the deployment to drain, then counting');
    const verification = await verify({ deployment, plan, traffic, drainDeadline: Date.now() + (short ? 60_000 : 600_000), settleMs: short ? 5_000 : 20_000, log });
    await observations.stop();
    const analysis = analyse({ faults, traffic, observations, expectations: verification.expectations, settleMs, watchedTenant: watched.id });
    const findings = findingsOf(verification.expectations, faults, traffic.startedAt, settleMs);

    const totals = Object.values(verification.totals);
    const lost = totals.reduce((sum, total) => sum + total.lost, 0);
    const duplicated = totals.reduce((sum, total) => sum + total.duplicated, 0);
    const late = totals.reduce((sum, total) => sum + total.late, 0);
    const unexpected = verification.unexpected.reduce((sum, item) => sum + item.count, 0);
    // Kinds, not items: one stuck CRM sync shows as a pending ledger entry, an unsynced call and a running workflow.
    const stuck = verification.stuck.length;
    const streamsRecovered = analysis.streams.length > 0 && analysis.streams.every((stream) => stream.recoveredMs !== null);
    const processes: ProcessSummary[] = [...deployment.apis, ...deployment.workers].map((process) => ({
      name: process.name,
      starts: process.history.filter((entry) => entry.event === 'started').length,
      crashes: process.crashes(),
      errorLines: process.errorLines(),
      ...(process.gaveUp() === undefined ? {} : { gaveUp: process.gaveUp() }),
    }));
    const requestsOf = (pick: (tenant: Deployment['tenants'][number]) => { total: number; rateLimited: number }) =>
      deployment.tenants.reduce((sum, tenant) => ({ requests: sum.requests + pick(tenant).total, rateLimited: sum.rateLimited + pick(tenant).rateLimited }), { requests: 0, rateLimited: 0 });
    const outsideSystems = {
      kommo: requestsOf((tenant) => tenant.kommo.state().requests),
      ticketing: requestsOf((tenant) => tenant.ticketing.state().requests),
      whatsapp: requestsOf((tenant) => tenant.whatsapp.state().requests),
    };
    if (options.keep) keptDir = deployment.dir;
    const result: Omit<ChaosResult, 'report'> = {
      passed: lost === 0 && duplicated === 0 && late === 0 && unexpected === 0 && stuck === 0 && streamsRecovered && processes.every((process) => process.gaveUp === undefined),
      lost,
      duplicated,
      late,
      unexpected,
      stuck,
      streamsRecovered,
      settings: { short, durationSeconds, ratePerSecond, seed, tenants: tenantCount, cores: os.cpus().length, commit },
      startedAt,
      endedAt: Date.now(),
      traffic: summary,
      checks: Object.fromEntries(checkNames.map((check) => [check, verification.totals[check]])) as Record<CheckName, CheckTotals>,
      faults: analysis.faults,
      findings,
      unexpectedEffects: verification.unexpected,
      stuckItems: verification.stuck,
      streams: analysis.streams,
      streamWindowSeconds: analysis.streamWindowMs / 1000,
      drain: { waitedSeconds: Math.round(verification.drain.waitedMs / 1000), complete: verification.drain.complete },
      processes,
      outsideSystems,
      ...(keptDir ? { keptDir } : {}),
    };
    return { ...result, report: renderReport(result) };
  } finally {
    await deployment.stop({ keep: options.keep ?? false });
  }
}
