/** The benchmark report: targets met or not, and the markdown that goes into BENCHMARKS.md. */
import type { OpenLoopFigures } from './open-loop.js';
import type { OpenLoopRateResult, OpenLoopResult } from './open-loop-scenarios.js';
import type { BurstResult, CeilingResult, LeadScaleResult } from './scenarios.js';

export interface TargetResult {
  target: string;
  measured: string;
  met: boolean;
}

export interface BenchReport {
  startedAt: string;
  options: { calls: number; leads: number; rate: number; seed: number; skipLeads: boolean; stack?: 'running'; openLoop: 'skipped' | 'only' | 'with the rest'; openLoopRates?: number[]; openLoopSeconds?: number };
  machine: { cpu: string; memoryGb: number; os: string; node: string; temporal: string; postgres: string };
  /** The closed-loop burst (saturation throughput); left out by --only-open-loop. */
  burst?: BurstResult;
  ceilings: { signalWithStart: CeilingResult; noopHttp?: CeilingResult; insert?: CeilingResult };
  leads?: LeadScaleResult;
  openLoop?: OpenLoopResult;
  openLoopHeadline?: OpenLoopHeadline;
  targets: TargetResult[];
}

const ratio = (ours: number, ceiling: number): number => Math.round((ours / Math.max(1e-9, ceiling)) * 100) / 100;

/** An open-loop rate is sustained when its p99 is within 50 ms and every request got a 2xx in time. */
const sustained = (result: OpenLoopFigures): boolean => result.ack.p99 <= 50 && result.errors.total === 0 && result.timeouts === 0 && result.connectionErrors === 0;

export interface OpenLoopHeadline {
  /** The highest swept rate at which it and every lower rate were sustained (0: none). */
  apiSustainedPerSecond: number;
  noopSustainedPerSecond: number;
  /** Whether that rate is the highest one swept (the real figure may be higher). */
  apiAtTopOfSweep: boolean;
  noopAtTopOfSweep: boolean;
  apiToNoopRatio: number | null;
  drainPerSecond: number | null;
  drainToSignalWithStartRatio: number | null;
  /** Frozen component → ack p99 in ms. */
  freezeP99Ms: Record<string, number>;
  endToEndDashboardP95Ms: number;
  endToEndJournalP95Ms: number;
  /** The API's worst ack p99 over the swept rates up to 400/s (null: none swept). */
  apiWorstP99UpTo400Ms: number | null;
}

function sustainedRate(results: readonly OpenLoopRateResult[]): { rate: number; top: boolean } {
  const ascending = [...results].sort((a, b) => a.intendedPerSecond - b.intendedPerSecond);
  let rate = 0;
  for (const result of ascending) {
    if (!sustained(result)) break;
    rate = result.intendedPerSecond;
  }
  return { rate, top: rate > 0 && rate === ascending[ascending.length - 1]?.intendedPerSecond };
}

export function openLoopHeadline(openLoop: OpenLoopResult, signalWithStart: CeilingResult): OpenLoopHeadline {
  const api = sustainedRate(openLoop.sweep.api);
  const noop = sustainedRate(openLoop.sweep.noop);
  const upTo400 = openLoop.sweep.api.filter((result) => result.intendedPerSecond <= 400);
  return {
    apiSustainedPerSecond: api.rate,
    noopSustainedPerSecond: noop.rate,
    apiAtTopOfSweep: api.top,
    noopAtTopOfSweep: noop.top,
    apiToNoopRatio: noop.rate > 0 ? ratio(api.rate, noop.rate) : null,
    drainPerSecond: openLoop.drain?.forwardedPerSecond ?? null,
    drainToSignalWithStartRatio: openLoop.drain ? ratio(openLoop.drain.forwardedPerSecond, signalWithStart.perSecond) : null,
    freezeP99Ms: Object.fromEntries(openLoop.freezes.map((freeze) => [freeze.frozen, freeze.figures.ack.p99])),
    endToEndDashboardP95Ms: openLoop.endToEnd.dashboard.p95,
    endToEndJournalP95Ms: openLoop.endToEnd.journal.p95,
    apiWorstP99UpTo400Ms: upTo400.length > 0 ? Math.max(...upTo400.map((result) => result.ack.p99)) : null,
  };
}

const rateText = (rate: number, top: boolean): string => (rate === 0 ? 'none' : `${top ? '>= ' : ''}${rate}/s`);

function openLoopTargets(openLoop: OpenLoopResult, headline: OpenLoopHeadline, signalWithStart: CeilingResult): TargetResult[] {
  const targets: TargetResult[] = [
    {
      target: 'open loop: highest rate with ack p99 <= 50 ms and no errors or timeouts, API / no-op handler >= 0.5',
      measured: `API ${rateText(headline.apiSustainedPerSecond, headline.apiAtTopOfSweep)}, no-op ${rateText(headline.noopSustainedPerSecond, headline.noopAtTopOfSweep)} = ${headline.apiToNoopRatio ?? 'n/a'} x`,
      met: headline.apiToNoopRatio !== null && headline.apiToNoopRatio >= 0.5,
    },
    {
      target: 'open loop: API ack p99 <= 50 ms at every rate up to 400/s',
      measured:
        headline.apiWorstP99UpTo400Ms === null
          ? 'no rate up to 400/s swept'
          : openLoop.sweep.api.filter((result) => result.intendedPerSecond <= 400).map((result) => `${result.intendedPerSecond}/s: ${result.ack.p99} ms`).join(', '),
      met: headline.apiWorstP99UpTo400Ms !== null && headline.apiWorstP99UpTo400Ms <= 50,
    },
  ];
  const drain = openLoop.drain;
  if (drain) {
    targets.push({
      target: 'backlog drain >= 0.9 x raw signalWithStart ceiling',
      measured: `${drain.forwardedPerSecond} events/s vs ${signalWithStart.perSecond} signalWithStart/s = ${headline.drainToSignalWithStartRatio ?? 'n/a'} x (${drain.backlogAtResume} waiting)`,
      met: drain.backlogAtResume > 0 && (headline.drainToSignalWithStartRatio ?? 0) >= 0.9,
    });
  }
  for (const freeze of openLoop.freezes) {
    const { figures, journal } = freeze;
    const unanswered = figures.sent - figures.accepted;
    targets.push({
      target: `${freeze.frozen} frozen ${freeze.frozeForSeconds} s at ${freeze.ratePerSecond}/s: ack p99 <= 250 ms, every event answered 2xx, nothing lost`,
      measured: `p99 ${figures.ack.p99} ms, max ${figures.ack.max} ms, ${unanswered} not 2xx (${figures.errors.total} errors, ${figures.timeouts} timeouts, ${figures.connectionErrors} connection errors), ${journal.accepted - journal.journaled} accepted but not in the journal after ${journal.waitedAtMostSeconds} s`,
      met: figures.ack.p99 <= 250 && unanswered === 0 && journal.journaled === journal.accepted,
    });
  }
  const e2e = openLoop.endToEnd;
  targets.push({
    target: `open loop: end-to-end p95 (call.end to dashboard push) <= 1 s at ${e2e.ratePerSecond} events/s`,
    measured: `${e2e.dashboard.p95} ms (journal ${e2e.journal.p95} ms; ${e2e.dashboard.count}/${e2e.calls} calls seen)${openLoop.endToEndDirect ? `; ceiling, the same calls straight to Temporal: ${openLoop.endToEndDirect.journal.count === 0 ? 'not measured (none of its calls reached the journal)' : `journal p95 ${openLoop.endToEndDirect.journal.p95} ms (${openLoop.endToEndDirect.journal.count}/${openLoop.endToEndDirect.calls} calls seen)`}` : ''}`,
    met: e2e.dashboard.count > 0 && e2e.dashboard.count === e2e.calls && e2e.dashboard.p95 <= 1000,
  });
  return targets;
}

export function evaluateTargets(report: BenchReport): TargetResult[] {
  const { burst, ceilings, leads, openLoop } = report;
  const targets: TargetResult[] = [];
  if (openLoop) targets.push(...openLoopTargets(openLoop, report.openLoopHeadline ?? openLoopHeadline(openLoop, ceilings.signalWithStart), ceilings.signalWithStart));
  if (burst) {
    const ingestRatio = ratio(burst.eventsPerSecond, ceilings.signalWithStart.perSecond);
    targets.push(
      { target: `closed loop: p99 acknowledgement <= 50 ms at ${burst.concurrency} concurrent calls`, measured: `${burst.ack.p99} ms`, met: burst.ack.p99 <= 50 },
      {
        target: 'closed loop: saturation throughput >= 0.8 x raw signalWithStart ceiling',
        measured: `${burst.eventsPerSecond}/s vs ${ceilings.signalWithStart.perSecond}/s = ${ingestRatio} x`,
        met: ingestRatio >= 0.8,
      },
      { target: 'closed loop: end-to-end p95 (call.end to dashboard push) <= 1 s', measured: `${burst.endToEnd.dashboard.p95} ms`, met: burst.endToEnd.dashboard.count > 0 && burst.endToEnd.dashboard.p95 <= 1000 },
      {
        target: 'zero loss and zero duplicates (journal, CRM notes, tickets)',
        measured: `${burst.verification.journalRows}/${burst.verification.expectedRows} calls, ${burst.verification.duplicateCrmNotes} duplicate notes, ${burst.verification.duplicateTickets} duplicate tickets, ${burst.verification.lost} lost`,
        met: burst.verification.passed,
      },
    );
  }
  if (leads) {
    targets.push(
      {
        target: `lead drain >= 95 % of the rate limit (${leads.rateLimitPerSecond}/s)`,
        measured: `${Math.round(leads.rateShareOfLimit * 1000) / 10} % (${leads.sent} in ${leads.drainSeconds} s, floor ${leads.floorSeconds} s)`,
        met: leads.rateShareOfLimit >= 0.95,
      },
      ...(leads.timerCeiling
        ? [
            (() => {
              const leadRate = leads.drainSeconds > 0 ? (leads.sent - 1) / leads.drainSeconds : 0;
              const share = leads.timerCeiling.perSecond > 0 ? leadRate / leads.timerCeiling.perSecond : 0;
              return {
                target: 'or, if the dev server is the limit: lead drain >= 95 % of the timer ceiling measured in the same run',
                measured: `${Math.round(share * 1000) / 10} % (${Math.round(leadRate * 10) / 10} reminders/s vs ${leads.timerCeiling.perSecond} timers/s with no activity, ${leads.timerCeiling.fired}/${leads.timerCeiling.workflows} fired)`,
                met: share >= 0.95 && leads.timerCeiling.fired === leads.timerCeiling.workflows,
              };
            })(),
          ]
        : []),
      { target: 'lead sends never above the rate limit in any second', measured: `max ${leads.maxPerSecond}/s`, met: leads.maxPerSecond <= leads.rateLimitPerSecond },
      { target: `worker RSS < 1 GB at ${leads.leads} leads`, measured: `${leads.workerPeakRssMb} MB`, met: leads.workerPeakRssMb > 0 && leads.workerPeakRssMb < 1024 },
      { target: 'every lead reminded exactly once', measured: `${leads.sent}/${leads.leads} sent, ${leads.duplicates} duplicates`, met: leads.passed },
    );
  }
  return targets;
}

const table = (header: string[], rows: Array<Array<string | number>>): string =>
  [`| ${header.join(' | ')} |`, `|${header.map((_, index) => (index === 0 ? '---' : '---:')).join('|')}|`, ...rows.map((row) => `| ${row.join(' | ')} |`)].join('\n');

function commandLine(report: BenchReport): string {
  const { options } = report;
  const openLoop =
    options.openLoop === 'skipped'
      ? ' --skip-open-loop'
      : `${options.openLoop === 'only' ? ' --only-open-loop' : ''} --open-loop-rates ${options.openLoopRates?.join(',') ?? ''} --open-loop-seconds ${options.openLoopSeconds ?? ''}`;
  const closedLoop = options.openLoop === 'only' ? '' : ` --calls ${options.calls} --leads ${options.leads}${options.skipLeads ? ' --skip-leads' : ''}`;
  return options.stack === 'running'
    ? `\`npm run bench -- --stack-config <file>${closedLoop} --seed ${options.seed}${openLoop}\` against a running stack (messaging limit ${options.rate}/s)`
    : `\`npm run bench --${closedLoop} --rate ${options.rate} --seed ${options.seed}${openLoop}\``;
}

const latencyCell = (figures: OpenLoopFigures): string => `${figures.ack.p50} / ${figures.ack.p99} / ${figures.ack.p999} / ${figures.ack.max}`;
const failureCell = (figures: OpenLoopFigures): string => `${figures.errors.total} · ${figures.timeouts} · ${figures.connectionErrors}`;
const counts = (values: Record<string, number>): string => Object.entries(values).map(([key, count]) => `${key}: ${count}`).join(', ') || '–';
const orNa = (value: number | null | undefined, unit = ''): string => (value === null || value === undefined ? 'n/a' : `${value}${unit}`);

function renderOpenLoop(openLoop: OpenLoopResult): string[] {
  const rates = [...new Set([...openLoop.sweep.api, ...openLoop.sweep.noop, ...openLoop.sweep.insert].map((result) => result.intendedPerSecond))].sort((a, b) => a - b);
  const at = (results: readonly OpenLoopRateResult[], rate: number): OpenLoopRateResult | undefined => results.find((result) => result.intendedPerSecond === rate);
  const cells = (result: OpenLoopRateResult | undefined): string[] => (result ? [latencyCell(result), failureCell(result)] : ['–', '–']);
  const e2e = openLoop.endToEnd;
  const sections = [
    '#### Open-loop ingest',
    '',
    `Requests leave at a constant rate whatever the answers (generator in its ${openLoop.generator}, every request signed before the run), ${openLoop.seconds} s per rate; each latency counts from the request's intended send moment to the end of its answer, into an HDR histogram; a request unanswered after ${openLoop.timeoutMs / 1000} s is a timeout (kept in the percentiles at that time, a lower bound). Every request is a unique PBX (ringing, answered, ended) or voice-AI (start, end, analytics) event of tenant \`${openLoop.tenant}\` (no outside systems), each call's events seconds apart. Same rates against the API, the no-op Express handler and a bare INSERT handler (same Express and raw-body parsing, one INSERT of the body, then 202).`,
    '',
    table(
      ['Offered /s', 'API p50 / p99 / p99.9 / max ms', 'API errors · timeouts · conn.', 'no-op p50 / p99 / p99.9 / max ms', 'no-op errors · timeouts · conn.', 'INSERT p50 / p99 / p99.9 / max ms', 'INSERT errors · timeouts · conn.', 'sent /s: API · no-op · INSERT'],
      rates.map((rate) => {
        const results = [at(openLoop.sweep.api, rate), at(openLoop.sweep.noop, rate), at(openLoop.sweep.insert, rate)];
        return [rate, ...results.flatMap(cells), results.map((result) => result?.achievedPerSecond ?? '–').join(' · ')];
      }),
    ),
    '',
    'The API per rate: what the generator achieved, the answers, and the inbox (backlog peak; drain from the last send until empty); before the next rate the bench waits for the empty inbox and up to 90 s for every accepted event in the journal. Inside the API, from its /metrics before and after the rate: the handler\'s p99 (a histogram bucket\'s bound) and the event loop\'s delay; an ack slow outside but fast inside waited before the handler ran.',
    '',
    table(
      ['Offered /s', 'requests', 'sent /s', 'send lag p99 / max ms', 'generator CPU %', '2xx', 'non-2xx by status', 'by reason', 'timeouts', 'connection errors', 'backlog peak', 'drain s', 'journaled / accepted', 'inside the API: handler p99 ≤ ms · event-loop lag p99 / max ms'],
      openLoop.sweep.api.map((result) => [
        result.intendedPerSecond,
        result.sent,
        result.achievedPerSecond,
        `${result.sendLagMs.p99} / ${result.sendLagMs.max}`,
        result.generatorCpuPercent,
        result.accepted,
        counts(result.errors.byStatus),
        counts(result.errors.byReason),
        result.timeouts,
        result.connectionErrors > 0 ? `${result.connectionErrors} (${counts(result.connectionErrorCodes)})` : 0,
        orNa(result.backlog?.peak),
        orNa(result.backlog?.drainSeconds),
        result.journal ? `${result.journal.journaled} / ${result.journal.accepted}${result.journal.seconds === null ? ' (not within the wait)' : ''}` : 'n/a',
        result.inside ? `${orNa(result.inside.handlerP99UpToMs)} · ${orNa(result.inside.eventLoopLagP99Ms)} / ${orNa(result.inside.eventLoopLagMaxMs)}` : 'n/a',
      ]),
    ),
    '',
    `#### End to end at ${e2e.ratePerSecond} events/s (open loop, ${e2e.seconds} s)`,
    '',
    `From each call's \`call.end\` intended send moment; ${e2e.calls} calls ended; acks ${latencyCell(e2e.figures)} ms (p50 / p99 / p99.9 / max), ${failureCell(e2e.figures)} errors · timeouts · connection errors; inbox backlog peak ${orNa(e2e.backlog.peak)} (empty ${orNa(e2e.backlog.drainSeconds)} s after the last send).`,
    '',
    table(
      ['Measure', 'p50', 'p95', 'p99', 'max', 'calls seen'],
      [
        ['`call.end` to final journal row (ms)', e2e.journal.p50, e2e.journal.p95, e2e.journal.p99, e2e.journal.max, e2e.journal.count],
        ['`call.end` to dashboard push (ms)', e2e.dashboard.p50, e2e.dashboard.p95, e2e.dashboard.p99, e2e.dashboard.max, e2e.dashboard.count],
        ...(openLoop.endToEndDirect
          ? [['ceiling: straight to Temporal in the request, `call.end` to final journal row (ms)', openLoop.endToEndDirect.journal.p50, openLoop.endToEndDirect.journal.p95, openLoop.endToEndDirect.journal.p99, openLoop.endToEndDirect.journal.max, openLoop.endToEndDirect.journal.count]]
          : []),
      ],
    ),
    ...(openLoop.endToEndDirect
      ? ['', 'The ceiling runs the same kind of calls at the same rate through a server that verifies and parses as the API does, then signals Temporal inside the request (no inbox, no forwarder): what the worker and Temporal on this host allow.']
      : []),
  ];
  if (openLoop.freezes.length > 0) {
    sections.push(
      '',
      '#### Freezes (open loop)',
      '',
      'The component SIGSTOPped mid-run, then SIGCONTed (PostgreSQL: the postmaster and every backend); afterwards every accepted event is looked up in `call_events`.',
      '',
      table(
        ['Frozen', 'processes', 'rate /s', 'frozen at / for s', 'ack p50 / p99 / p99.9 / max ms', 'errors · timeouts · conn.', 'non-2xx', 'backlog peak', 'journaled / accepted', 'journal complete after s'],
        openLoop.freezes.map((freeze) => [
          freeze.frozen,
          freeze.processes,
          freeze.ratePerSecond,
          `${freeze.frozeAtSeconds} / ${freeze.frozeForSeconds}`,
          latencyCell(freeze.figures),
          failureCell(freeze.figures),
          `${counts(freeze.figures.errors.byStatus)}${Object.keys(freeze.figures.errors.byReason).length > 0 ? ` (${counts(freeze.figures.errors.byReason)})` : ''}`,
          orNa(freeze.backlog.peak),
          `${freeze.journal.journaled} / ${freeze.journal.accepted}`,
          orNa(freeze.journal.seconds),
        ]),
      ),
    );
  }
  const drain = openLoop.drain;
  if (drain) {
    sections.push(
      '',
      '#### Backlog drain',
      '',
      `Temporal frozen while ${drain.ratePerSecond} webhooks/s arrive for ${drain.sendSeconds} s (they wait in the inbox), then resumed; the forwarding rate is the inbox's fall from 90 % to 10 % of its size at resume, from its count every 250 ms. The inbox counts its own rows: one per webhook before the inbox-first schema, one per event after it (a voice-AI start is two events).`,
      '',
      table(
        ['Figure', 'Value'],
        [
          ['inbox rows waiting at resume', drain.backlogAtResume],
          ['resume to empty inbox', `${orNa(drain.drainSeconds)} s`],
          ['inbox rows forwarded per second (90 % → 10 %)', drain.forwardedPerSecond],
          ['acks while Temporal was frozen: p50 / p99 / p99.9 / max ms', latencyCell(drain.figures)],
          ['errors · timeouts · connection errors', `${failureCell(drain.figures)}${Object.keys(drain.figures.errors.byReason).length > 0 ? ` (${counts(drain.figures.errors.byReason)})` : ''}`],
          ['journaled / accepted', `${drain.journal.journaled} / ${drain.journal.accepted}`],
        ],
      ),
    );
  }
  if (openLoop.skipped.length > 0) sections.push('', `Left out: ${openLoop.skipped.join('; ')}.`);
  return sections;
}

export function renderReport(report: BenchReport): string {
  const { burst, ceilings, leads, machine, openLoop } = report;
  const sections = [
    `### Run of ${report.startedAt}`,
    '',
    commandLine(report),
    '',
    table(
      ['Machine', ''],
      [
        ['CPU', machine.cpu],
        ['Memory', `${machine.memoryGb} GB`],
        ['OS', machine.os],
        ['Node.js', machine.node],
        ['Temporal', machine.temporal],
        ['PostgreSQL', machine.postgres],
      ],
    ),
    '',
    '#### Targets',
    '',
    table(
      ['Target', 'Measured', 'Result'],
      report.targets.map((target) => [target.target, target.measured, target.met ? 'met' : '**not met**']),
    ),
  ];
  if (openLoop) sections.push('', ...renderOpenLoop(openLoop));
  if (burst) {
    sections.push(
      '',
      '#### Saturation throughput (closed loop)',
      '',
      `A closed-loop burst (each sender waits for its answer before sending again: it measures saturation, and its latencies hide stalls, coordinated omission): ${burst.calls} concurrent calls through the signed public webhooks (80 % PBX, 20 % voice-AI with analytics), ${burst.requests} deliveries of which ${burst.duplicates} sender retries, each call's events shuffled.`,
      '',
      table(
        ['Measure', 'p50', 'p95', 'p99', 'max'],
        [
          ['acknowledgement (ms)', burst.ack.p50, burst.ack.p95, burst.ack.p99, burst.ack.max],
          ['`call.end` to final journal row (ms)', burst.endToEnd.journal.p50, burst.endToEnd.journal.p95, burst.endToEnd.journal.p99, burst.endToEnd.journal.max],
          ['`call.end` to dashboard push (ms)', burst.endToEnd.dashboard.p50, burst.endToEnd.dashboard.p95, burst.endToEnd.dashboard.p99, burst.endToEnd.dashboard.max],
        ],
      ),
      '',
      table(
        ['Figure', 'Value'],
        [
          ['events per second', burst.eventsPerSecond],
          ['wall time of the burst', `${burst.wallSeconds} s`],
          ['HTTP statuses', Object.entries(burst.statuses).map(([status, count]) => `${status}: ${count}`).join(', ')],
          ['post-call work drained (CRM, tickets) after the last ack', `${burst.drain.seconds} s`],
          ['CRM requests (sandbox limit 7/s, adapter paced at 6/s)', `${burst.drain.crmRequests} (floor at 7/s: ${burst.drain.crmFloorSeconds} s)`],
          ['journal rows / expected', `${burst.verification.journalRows} / ${burst.verification.expectedRows}${burst.verification.eventRowsMatch ? ', every event row present once' : ', **event rows differ**'}`],
          ['CRM call notes / duplicates', `${burst.verification.crmNotes} / ${burst.verification.duplicateCrmNotes}`],
          ['tickets / expected / duplicates', `${burst.verification.tickets} / ${burst.verification.expectedTickets} / ${burst.verification.duplicateTickets}`],
          ['CRM sync states', Object.entries(burst.verification.crmSyncStates).map(([state, count]) => `${state}: ${count}`).join(', ')],
          ...(burst.verification.lostSamples.length > 0 ? [['calls without exactly one CRM note (first 5)', burst.verification.lostSamples.join('; ')]] : []),
          ['verification', burst.verification.passed ? 'passed: nothing lost, nothing duplicated' : '**FAILED**'],
        ],
      ),
      '',
      'The worker during the burst (its Temporal SDK metrics): time tasks waited to be picked up, and peak slots in use.',
      '',
      table(
        ['Task queue', 'activity schedule-to-start, mean ms', 'activities', 'peak activity slots used', 'workflow task schedule-to-start, mean ms', 'workflow tasks', 'peak workflow slots used'],
        burst.workerQueues.map((queue) => [
          queue.taskQueue,
          queue.activityScheduleToStartMeanMs,
          queue.activities,
          `${queue.peakActivitySlotsUsed} of ${queue.activitySlots}`,
          queue.workflowTaskScheduleToStartMeanMs,
          queue.workflowTasks,
          queue.peakWorkflowSlotsUsed,
        ]),
      ),
    );
  }
  const closedLoopRatio = (ceiling: CeilingResult | undefined): string => (burst && ceiling ? `${ratio(burst.eventsPerSecond, ceiling.perSecond)} x throughput` : '–');
  const ceilingRow = (name: string, ceiling: CeilingResult): Array<string | number> => [name, ceiling.operations, ceiling.concurrency, ceiling.latency.p50, ceiling.latency.p99, ceiling.perSecond, closedLoopRatio(ceiling)];
  sections.push(
    '',
    '#### Ceilings (same run, same operation count and concurrency as the closed-loop burst)',
    '',
    table(
      ['Ceiling', 'Operations', 'Concurrency', 'p50 ms', 'p99 ms', 'per second', 'saturation throughput (closed loop) as a ratio'],
      [
        ceilingRow('raw `signalWithStart`, no HTTP', ceilings.signalWithStart),
        ...(ceilings.noopHttp ? [ceilingRow('no-op Express handler', ceilings.noopHttp)] : []),
        ...(ceilings.insert ? [ceilingRow('plain INSERT into PostgreSQL', ceilings.insert)] : []),
      ],
    ),
  );
  if (leads) {
    sections.push(
      '',
      '#### Lead scale',
      '',
      `${leads.leads} booked leads whose T-1 h reminder falls due at ${leads.dueAt}, sent through the messaging task queue limited to ${leads.rateLimitPerSecond}/s.`,
      '',
      table(
        ['Figure', 'Value'],
        [
          ['workflows started (signalWithStart, 64 at a time)', `${leads.startSeconds} s`],
          ['reminders sent / leads', `${leads.sent} / ${leads.leads} (${leads.duplicates} duplicates)`],
          ['drain time, first to last send', `${leads.drainSeconds} s (floor at the limit: ${leads.floorSeconds} s)`],
          ['drain rate as a share of the limit', `${Math.round(leads.rateShareOfLimit * 1000) / 10} %`],
          ...(leads.timerCeiling
            ? [['ceiling: as many timer-only workflows due in one instant, fired per second (own worker process, same priority and cache)', `${leads.timerCeiling.perSecond}/s (${leads.timerCeiling.fired}/${leads.timerCeiling.workflows} in ${leads.timerCeiling.drainSeconds} s)`]]
            : []),
          ['highest sends in any one second', `${leads.maxPerSecond} (limit ${leads.rateLimitPerSecond})`],
          ['worker peak RSS', `${leads.workerPeakRssMb} MB`],
          ['history events per lead (sample of 25): p50 / max', `${leads.historyEventsPerLead.p50} / ${leads.historyEventsPerLead.max}`],
          ['history length just before continue-as-new', `${leads.continueAsNew.historyLengthBeforeContinueAsNew ?? 'not reached'} (threshold ${leads.continueAsNew.threshold})`],
        ],
      ),
    );
  }
  return sections.join('\n');
}

const startMarker = '<!-- bench:latest-run:start -->';
const endMarker = '<!-- bench:latest-run:end -->';

/** Puts the latest run between the markers and keeps everything else (history, profiling notes) as written. */
export function replaceResultsSection(existing: string, markdown: string, resultFile: string): string {
  const block = `${startMarker}\n## Latest run\n\nRaw figures: \`${resultFile}\`.\n\n${markdown}\n${endMarker}`;
  const start = existing.indexOf(startMarker);
  const end = existing.indexOf(endMarker);
  if (start >= 0 && end > start) return `${existing.slice(0, start)}${block}${existing.slice(end + endMarker.length)}`;
  const header = existing.trim() || '# Benchmarks\n\n`npm run bench` brings up its own stack and measures it against the platform ceilings in the same run.';
  return `${header}\n\n${block}\n`;
}
