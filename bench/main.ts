/**
 * `npm run bench`: brings up its own stack (PostgreSQL, Temporal dev server, worker, API, sandboxes),
 * runs the closed-loop burst (saturation throughput), the platform ceilings, the open-loop ingest
 * phases (a rate sweep against the API, a no-op handler and a bare INSERT handler; end to end at
 * 50/s; Temporal and PostgreSQL frozen mid-run; a backlog drain) and lead scale in one run, and
 * writes `bench/results/<time>.json` plus the results table in BENCHMARKS.md.
 *
 *   npm run bench -- [--calls 500] [--leads 10000] [--rate <per second>] [--seed 7] [--skip-leads | --only-leads] [--profile]
 *                    [--open-loop-rates 25,50,100,200,400,800] [--open-loop-seconds 20] [--skip-open-loop | --only-open-loop]
 *   npm run bench -- --stack-config <switchboard.yaml> [--tenant bench] [...]   (a stack that is already running)
 *   npm run bench -- --print-tenant                                              (the tenant blocks that needs)
 *
 * `--only-open-loop` runs the open-loop phases and the one ceiling they are compared with (raw
 * signalWithStart), without the burst and lead scale (about 10 minutes). The freeze and drain
 * phases stop processes, so they run only on the bench's own stack.
 * The open-loop generator runs in its own process at a raised priority (it lags less there on this
 * 2-core host); `--open-loop-in-process` runs it in the bench process instead, to compare.
 * `--profile` runs the stack's Node processes with --cpu-prof and prints each one's hottest functions.
 */
import { mkdir, mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Connection } from '@temporalio/client';
import pg from 'pg';
import { loadConfig, repoRoot } from '../config/load.js';
import { ensureTemporalCli, temporalCliVersion } from '../stack/provision.js';
import { summarizeCpuProfile } from './profile.js';
import type { CpuProfile } from './profile.js';
import type { BenchReport } from './report.js';
import { evaluateTargets, openLoopHeadline, renderReport, replaceResultsSection } from './report.js';
import { openLoopIngest, openLoopTenantMissing } from './open-loop-scenarios.js';
import { burstIngest, burstRequests, insertCeiling, leadScale, noopHttpCeiling, signalWithStartCeiling } from './scenarios.js';
import { BenchSetupError, attachToRunningStack, printableBenchTenant, startBenchStack } from './stack.js';
import { timerCeiling } from './timer-ceiling/ceiling.js';
import type { BenchStack } from './stack.js';

const { values: args } = parseArgs({
  options: {
    calls: { type: 'string', default: '500' },
    leads: { type: 'string', default: '10000' },
    rate: { type: 'string' },
    seed: { type: 'string', default: '7' },
    'skip-leads': { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    'no-write': { type: 'boolean', default: false },
    'stack-config': { type: 'string' },
    tenant: { type: 'string', default: 'bench' },
    'print-tenant': { type: 'boolean', default: false },
    'open-loop-rates': { type: 'string', default: '25,50,100,200,400,800' },
    'open-loop-seconds': { type: 'string', default: '20' },
    'skip-open-loop': { type: 'boolean', default: false },
    'only-open-loop': { type: 'boolean', default: false },
    // Lead scale and its timer ceiling only (no burst, no open loop): about 15 minutes at 10,000 leads.
    'only-leads': { type: 'boolean', default: false },
    // Runs the open-loop generator inside the bench process instead of its own (to compare the two).
    'open-loop-in-process': { type: 'boolean', default: false },
  },
});

if (args['print-tenant']) {
  process.stdout.write(`# Add to the running stack's config, restart it, then: npm run bench -- --stack-config <that file>\n${printableBenchTenant(args.tenant)}`);
  process.exit(0);
}
if (args['only-leads'] && (args['only-open-loop'] || args['skip-leads'])) {
  process.stderr.write('bench: --only-leads excludes --only-open-loop and --skip-leads\n');
  process.exit(64);
}
if (args['skip-open-loop'] && args['only-open-loop']) {
  process.stderr.write('bench: --skip-open-loop and --only-open-loop exclude each other\n');
  process.exit(64);
}
if (args['stack-config'] && (args.rate !== undefined || args.profile)) {
  process.stderr.write('bench: --rate and --profile need the bench\'s own stack; a running stack keeps its messaging rate and processes\n');
  process.exit(64);
}

const positiveInt = (name: string, value: string | undefined): number => {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed <= 0) {
    process.stderr.write(`bench: --${name} must be a positive integer, got "${value}"\n`);
    process.exit(64);
  }
  return parsed;
};

const calls = positiveInt('calls', args.calls);
const leads = positiveInt('leads', args.leads);
const seed = positiveInt('seed', args.seed);
const openLoopRates = [...new Set(args['open-loop-rates'].split(',').map((rate) => positiveInt('open-loop-rates', rate.trim())))].sort((a, b) => a - b);
const openLoopSeconds = positiveInt('open-loop-seconds', args['open-loop-seconds']);
const openLoopMode = args['skip-open-loop'] || args['only-leads'] ? 'skipped' : args['only-open-loop'] ? 'only' : 'with the rest';
// temporal-dev.yaml's own settings: the messaging rate by default, and the Temporal CLI version.
const devDefaults = loadConfig({});
const rate = args.rate === undefined ? devDefaults.temporal.messagingRatePerSecond : positiveInt('rate', args.rate);
const started = Date.now();
const log = (line: string): void => {
  process.stderr.write(`[bench +${((Date.now() - started) / 1000).toFixed(1)}s] ${line}\n`);
};

async function machine(stack: BenchStack): Promise<BenchReport['machine']> {
  const connection = await Connection.connect({ address: stack.temporalAddress });
  const serverVersion = (await connection.workflowService.getSystemInfo({})).serverVersion;
  await connection.close();
  const cli = args['stack-config'] ? undefined : await ensureTemporalCli({ version: devDefaults.devStack.temporal.cliVersion, progress: log });
  const db = new pg.Client({ connectionString: stack.databaseUrl });
  await db.connect();
  const postgres = (await db.query<{ server_version: string }>('SHOW server_version')).rows[0]?.server_version ?? 'unknown';
  await db.end();
  const cpus = os.cpus();
  return {
    cpu: `${cpus[0]?.model.trim() ?? 'unknown'} × ${cpus.length}`,
    memoryGb: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    temporal: cli ? (temporalCliVersion(cli).split('\n')[0] ?? 'unknown') : `Server ${serverVersion || 'unknown'} at ${stack.temporalAddress}`,
    postgres,
  };
}

async function main(): Promise<void> {
  const profileDir = args.profile ? await mkdtemp(path.join(os.tmpdir(), 'switchboard-cpuprofile-')) : undefined;
  const stackConfig = args['stack-config'];
  const stack = stackConfig
    ? await attachToRunningStack({ configPath: stackConfig, tenantId: args.tenant, log })
    : await startBenchStack({ messagingRatePerSecond: rate, ...(profileDir ? { cpuProfileDir: profileDir } : {}), log });
  let report: BenchReport;
  try {
    const machineDetails = await machine(stack);
    log(`stack ready: API ${stack.apiUrl}, Temporal ${stack.temporalAddress}`);
    if (openLoopMode !== 'skipped' && !stack.ingestTenant) throw new BenchSetupError(openLoopTenantMissing(stack.tenantId));

    const burst = openLoopMode === 'only' || args['only-leads'] ? undefined : await burstIngest(stack, { calls, seed, log });
    if (burst) log(`burst (closed loop): ack p99 ${burst.ack.p99} ms, ${burst.eventsPerSecond} events/s, verification ${burst.verification.passed ? 'passed' : 'FAILED'}`);

    // The same operation count and concurrency as the burst, with or without it.
    const ceilingOperations = burst?.requests ?? burstRequests(stack, calls, seed).flat().length;
    const ceilingConcurrency = burst?.concurrency ?? calls;
    log(burst ? 'ceilings: signalWithStart, no-op HTTP, INSERT (same operation count and concurrency)' : 'ceiling: signalWithStart (what the backlog drain is compared with)');
    const signalWithStart = await signalWithStartCeiling(stack, ceilingOperations, ceilingConcurrency, calls);
    const noopHttp = burst ? await noopHttpCeiling(burstRequests(stack, calls, seed + 1), burst.concurrency) : undefined;
    const insert = burst ? await insertCeiling(stack, burst.requests, burst.concurrency) : undefined;
    log(`ceilings: signalWithStart ${signalWithStart.perSecond}/s${noopHttp ? `, no-op HTTP ${noopHttp.perSecond}/s` : ''}${insert ? `, INSERT ${insert.perSecond}/s` : ''}`);

    const openLoop = openLoopMode === 'skipped' ? undefined : await openLoopIngest(stack, { rates: openLoopRates, seconds: openLoopSeconds, seed, generatorInOwnProcess: !args['open-loop-in-process'], log });

    // The ceiling first, while the worker is idle: timers alone, as many as leads, due in one instant.
    const timers = openLoopMode === 'only' || args['skip-leads'] ? undefined : await timerCeiling(stack, { workflows: leads, log });
    const leadResult = timers ? { ...(await leadScale(stack, { leads, log })), timerCeiling: timers } : undefined;
    if (leadResult) log(`leads: ${leadResult.sent}/${leadResult.leads} reminders in ${leadResult.drainSeconds} s, max ${leadResult.maxPerSecond}/s, worker RSS ${leadResult.workerPeakRssMb} MB`);

    report = {
      startedAt: new Date(started).toISOString(),
      options: {
        calls,
        leads,
        rate: stack.messagingRatePerSecond,
        seed,
        skipLeads: args['skip-leads'],
        ...(stackConfig ? { stack: 'running' as const } : {}),
        openLoop: openLoopMode,
        ...(openLoop ? { openLoopRates, openLoopSeconds } : {}),
      },
      machine: machineDetails,
      ...(burst ? { burst } : {}),
      ceilings: { signalWithStart, ...(noopHttp ? { noopHttp } : {}), ...(insert ? { insert } : {}) },
      ...(leadResult ? { leads: leadResult } : {}),
      ...(openLoop ? { openLoop, openLoopHeadline: openLoopHeadline(openLoop, signalWithStart) } : {}),
      targets: [],
    };
    report.targets = evaluateTargets(report);
  } finally {
    log('stopping the stack');
    await stack.stop();
  }

  const markdown = renderReport(report);
  process.stdout.write(`${markdown}\n`);
  if (profileDir) {
    for (const file of (await readdir(profileDir)).filter((name) => name.endsWith('.cpuprofile'))) {
      process.stdout.write(`\n### CPU profile ${file}\n\n${summarizeCpuProfile(JSON.parse(await readFile(path.join(profileDir, file), 'utf8')) as CpuProfile, 15)}\n`);
    }
    process.stdout.write(`\nprofiles kept in ${profileDir} (open them in Chrome DevTools › Performance)\n`);
  }
  if (!args['no-write']) {
    const resultsDir = path.join(repoRoot, 'bench', 'results');
    await mkdir(resultsDir, { recursive: true });
    const resultFile = path.join(resultsDir, `${report.startedAt.replace(/[:.]/g, '-')}.json`);
    await writeFile(resultFile, `${JSON.stringify(report, null, 2)}\n`);
    const benchmarksPath = path.join(repoRoot, 'BENCHMARKS.md');
    const existing = await readFile(benchmarksPath, 'utf8').catch(() => '');
    await writeFile(benchmarksPath, replaceResultsSection(existing, markdown, path.relative(repoRoot, resultFile)));
    log(`wrote ${path.relative(repoRoot, resultFile)} and BENCHMARKS.md`);
  }
  // Accepted events missing from the journal after a freeze or the drain (bounded waits) are lost.
  const openLoopChecks = [...(report.openLoop?.freezes.map((freeze) => freeze.journal) ?? []), ...(report.openLoop?.drain ? [report.openLoop.drain.journal] : [])];
  const failedChecks = [report.burst?.verification.passed ?? true, report.leads?.passed ?? true, ...openLoopChecks.map((journal) => journal.journaled === journal.accepted)].filter((passed) => !passed).length;
  if (failedChecks > 0) {
    // Loss or duplication is a correctness failure, unlike a missed speed target.
    log('zero-loss / zero-duplicate verification FAILED');
    process.exitCode = 1;
  }
}

main().catch((error: unknown) => {
  const message = error instanceof BenchSetupError ? error.message : error instanceof Error ? (error.stack ?? error.message) : String(error);
  process.stderr.write(`bench: ${message}\n`);
  process.exit(1);
});
