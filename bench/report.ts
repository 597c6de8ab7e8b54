/** The benchmark report: targets met or not, and the markdown that goes into BENCHMARKS.md. */
import type { BurstResult, CeilingResult, LeadScaleResult } from './scenarios.js';

export interface TargetResult {
  target: string;
  measured: string;
  met: boolean;
}

export interface BenchReport {
  startedAt: string;
  options: { calls: number; leads: number; rate: number; seed: number; skipLeads: boolean; stack?: 'running' };
  machine: { cpu: string; memoryGb: number; os: string; node: string; temporal: string; postgres: string };
  burst: BurstResult;
  ceilings: { signalWithStart: CeilingResult; noopHttp: CeilingResult; insert: CeilingResult };
  leads?: LeadScaleResult;
  targets: TargetResult[];
}

const ratio = (ours: number, ceiling: number): number => Math.round((ours / Math.max(1e-9, ceiling)) * 100) / 100;

export function evaluateTargets(report: BenchReport): TargetResult[] {
  const { burst, ceilings, leads } = report;
  const ingestRatio = ratio(burst.eventsPerSecond, ceilings.signalWithStart.perSecond);
  const targets: TargetResult[] = [
    { target: `p99 acknowledgement <= 50 ms at ${burst.concurrency} concurrent calls`, measured: `${burst.ack.p99} ms`, met: burst.ack.p99 <= 50 },
    {
      target: 'ingest throughput >= 0.8 x raw signalWithStart ceiling',
      measured: `${burst.eventsPerSecond}/s vs ${ceilings.signalWithStart.perSecond}/s = ${ingestRatio} x`,
      met: ingestRatio >= 0.8,
    },
    { target: 'end-to-end p95 (call.end to dashboard push) <= 1 s', measured: `${burst.endToEnd.dashboard.p95} ms`, met: burst.endToEnd.dashboard.count > 0 && burst.endToEnd.dashboard.p95 <= 1000 },
    {
      target: 'zero loss and zero duplicates (journal, CRM notes, tickets)',
      measured: `${burst.verification.journalRows}/${burst.verification.expectedRows} calls, ${burst.verification.duplicateCrmNotes} duplicate notes, ${burst.verification.duplicateTickets} duplicate tickets, ${burst.verification.lost} lost`,
      met: burst.verification.passed,
    },
  ];
  if (leads) {
    targets.push(
      {
        target: `lead drain >= 95 % of the rate limit (${leads.rateLimitPerSecond}/s)`,
        measured: `${Math.round(leads.rateShareOfLimit * 1000) / 10} % (${leads.sent} in ${leads.drainSeconds} s, floor ${leads.floorSeconds} s)`,
        met: leads.rateShareOfLimit >= 0.95,
      },
      { target: 'lead sends never above the rate limit in any second', measured: `max ${leads.maxPerSecond}/s`, met: leads.maxPerSecond <= leads.rateLimitPerSecond },
      { target: `worker RSS < 1 GB at ${leads.leads} leads`, measured: `${leads.workerPeakRssMb} MB`, met: leads.workerPeakRssMb > 0 && leads.workerPeakRssMb < 1024 },
      { target: 'every lead reminded exactly once', measured: `${leads.sent}/${leads.leads} sent, ${leads.duplicates} duplicates`, met: leads.passed },
    );
  }
  return targets;
}

const table = (header: string[], rows: Array<Array<string | number>>): string =>
  [`| ${header.join(' | ')} |`, `|${header.map((_, index) => (index === 0 ? '---' : '---:')).join('|')}|`, ...rows.map((row) => `| ${row.join(' | ')} |`)].join('\n');

export function renderReport(report: BenchReport): string {
  const { burst, ceilings, leads, machine } = report;
  const sections = [
    `### Run of ${report.startedAt}`,
    '',
    report.options.stack === 'running'
      ? `\`npm run bench -- --stack-config <file> --calls ${report.options.calls} --leads ${report.options.leads} --seed ${report.options.seed}${report.options.skipLeads ? ' --skip-leads' : ''}\` against a running stack (messaging limit ${report.options.rate}/s)`
      : `\`npm run bench -- --calls ${report.options.calls} --leads ${report.options.leads} --rate ${report.options.rate} --seed ${report.options.seed}${report.options.skipLeads ? ' --skip-leads' : ''}\``,
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
    '',
    '#### Burst ingest',
    '',
    `${burst.calls} concurrent calls through the signed public webhooks (80 % PBX, 20 % voice-AI with analytics), ${burst.requests} deliveries of which ${burst.duplicates} sender retries, each call's events shuffled.`,
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
    '',
    '#### Ceilings (same run, same operation count and concurrency)',
    '',
    table(
      ['Ceiling', 'Operations', 'Concurrency', 'p50 ms', 'p99 ms', 'per second', 'Switchboard ingest as a ratio'],
      [
        ['raw `signalWithStart`, no HTTP', ceilings.signalWithStart.operations, ceilings.signalWithStart.concurrency, ceilings.signalWithStart.latency.p50, ceilings.signalWithStart.latency.p99, ceilings.signalWithStart.perSecond, `${ratio(burst.eventsPerSecond, ceilings.signalWithStart.perSecond)} x throughput`],
        ['no-op Express handler', ceilings.noopHttp.operations, ceilings.noopHttp.concurrency, ceilings.noopHttp.latency.p50, ceilings.noopHttp.latency.p99, ceilings.noopHttp.perSecond, `${ratio(burst.eventsPerSecond, ceilings.noopHttp.perSecond)} x throughput`],
        ['plain INSERT into PostgreSQL', ceilings.insert.operations, ceilings.insert.concurrency, ceilings.insert.latency.p50, ceilings.insert.latency.p99, ceilings.insert.perSecond, `${ratio(burst.eventsPerSecond, ceilings.insert.perSecond)} x throughput`],
      ],
    ),
  ];
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
