/** RELIABILITY.md: one chaos run, written for someone deciding whether to trust the deployment. */
import type { FaultAnalysis } from './analysis.js';
import { checkLabels, checkNames } from './verify.js';
import type { ChaosResult } from './run.js';

const seconds = (ms: number | null | undefined): string => (ms === null || ms === undefined ? 'never' : `${(ms / 1000).toFixed(1)} s`);
const cell = (text: string): string => text.replace(/\|/g, '\\|');

function caughtUp(fault: FaultAnalysis): string {
  const names: Record<string, string> = { journal: 'journal', crm_note: 'CRM', crm_task: 'tasks', ticket: 'tickets', message: 'sends' };
  const parts = Object.entries(fault.caughtUpMs).map(([check, ms]) => `${names[check] ?? check} ${seconds(ms)}`);
  return parts.length > 0 ? parts.join(', ') : 'nothing came due';
}

function reasons(record: Record<string, number>): string {
  const entries = Object.entries(record).sort((a, b) => b[1] - a[1]);
  return entries.length === 0 ? '—' : entries.slice(0, 4).map(([reason, count]) => `${count}× ${reason}`).join(', ');
}

export function renderReport(result: Omit<ChaosResult, 'report'>): string {
  const { settings, traffic } = result;
  const lines: string[] = [];
  const verdict = result.passed ? 'PASSED' : 'FAILED';
  lines.push('# Reliability', '');
  lines.push(
    'Written by `npm run chaos` (chaos/): a deployment of 2 API and 2 worker processes against one PostgreSQL and one Temporal',
    'dev server, under open-loop traffic, while faults are injected one after another; then everything is counted in',
    'PostgreSQL, Temporal and the sandboxes that stand in for the outside systems. The run exits non-zero on any loss or',
    'duplicate. `npm run chaos -- --short` is the one-round version `npm test` runs (test/integration/chaos.test.ts).',
    '',
  );
  lines.push(`## Latest run: ${verdict}`, '');
  lines.push(
    `- **${result.lost} lost, ${result.duplicated} duplicated**, ${result.late} late (still in progress when the wait ended), ${result.unexpected} unexpected effects, ${result.stuck} kinds of stuck work; dashboard streams ${result.streamsRecovered ? 'recovered' : '**did not recover**'} after the PostgreSQL restart.`,
    `- ${new Date(result.startedAt).toISOString()}, ${Math.round((result.endedAt - result.startedAt) / 1000)} s in all; code under test: ${settings.commit}; ${settings.cores} cores.`,
    ...result.processes.filter((process) => process.crashes > 0).map((process) => `- ${process.name} exited ${process.crashes} time${process.crashes === 1 ? '' : 's'} without being killed by the run (restarted by the supervisor; its log says why).`),
    `- ${settings.short ? 'Short run' : 'Full run'}: ${settings.durationSeconds} s of traffic at ${settings.ratePerSecond} deliveries/s, ${settings.tenants} tenants, seed ${settings.seed}. Drain wait ${result.drain.waitedSeconds} s (${result.drain.complete ? 'everything arrived' : 'ended before everything arrived'}).`,
    '',
  );

  lines.push('### Topology', '');
  lines.push(
    '- PostgreSQL (embedded server, its own data folder) and the Temporal dev server (SQLite file): separate processes the run stops, restarts and freezes.',
    '- `api-1`, `api-2`: `node --import tsx api/main.ts` (`npm run api`), each with its own inbox forwarder (`INGEST_FORWARDER` default); `worker-1`, `worker-2`: `workers/main.ts` (`npm run worker`). A supervisor restarts any that dies (1 s, doubling while it keeps dying). Priorities as `npm start` sets them on one machine.',
    '- Per tenant: Kommo (7 requests/s, shared budget of 6/s), ticketing and WhatsApp sandboxes; every caller a known Kommo contact. A front door (round robin, failover on a refused connection) is the public URL: Twilio signs it, WhatsApp posts its status webhooks to it.',
    '- Traffic goes straight to both API processes (each delivery to one of them, its retries to the other), signed as the senders sign: PBX, Twilio and voice-AI calls, CRM lead events whose welcome, booking confirmation and 1 h reminder come due during the run. Senders retry 5xx, 429, timeouts (10 s) and refused connections with backoff (Retry-After honoured), up to 12 attempts; 5 % of deliveries are sent a second time on purpose; 30 % of voice-AI analytics arrive as their call wraps up.',
    '',
  );

  lines.push('### Traffic', '');
  lines.push('| | planned | accepted |', '| --- | ---: | ---: |');
  for (const [provider, counts] of Object.entries(traffic.byProvider)) lines.push(`| ${provider} | ${counts.planned} | ${counts.accepted} |`);
  lines.push(`| **all** | ${traffic.planned} | ${traffic.accepted} |`, '');
  lines.push(
    `${traffic.calls} calls and ${traffic.leads} leads; ${traffic.redeliveries} deliberate second deliveries; ${traffic.attempts} attempts in all; ${traffic.refused} deliveries never accepted (retries ran out), ${traffic.skipped} not sent because what they follow was never accepted; ${traffic.viaTemporal} answers came through the direct Temporal hand-off. First attempts: ack p50 ${traffic.ack.p50} ms, p99 ${traffic.ack.p99} ms, max ${traffic.ack.max} ms. Answers other than 2xx: ${reasons(traffic.errors)}.`,
    '',
  );

  const outside = result.outsideSystems;
  lines.push(
    `Outside systems received: Kommo ${outside.kommo.requests} requests (${outside.kommo.rateLimited} answered 429), ticketing ${outside.ticketing.requests}, WhatsApp ${outside.whatsapp.requests} (${outside.whatsapp.rateLimited} refused for its limits; the 130429 storm's answers are arranged failures, not counted there).`,
    '',
  );

  lines.push('### Faults and recovery', '');
  lines.push(
    'Times are seconds into the traffic. Recovery is counted from the end of the fault (or when the part it hit was back): until the senders stopped seeing errors, the inbox was back to its level before the fault, and the work that came due around it (from 5 s before it to 5 s after recovery) was done. "never" means some of that work was not done by the end of the run. Lost, dup and late count the work that came due from 10 s before the fault (then often still in flight) to the end of its settling time; with overlapping faults one item counts against each.',
    '',
  );
  lines.push('| # | fault | at | held | ack errors | inbox peak, drained | caught up | recovered | lost | dup | late |', '| ---: | --- | ---: | ---: | --- | --- | --- | ---: | ---: | ---: | ---: |');
  for (const [index, fault] of result.faults.entries()) {
    const held = fault.fault.endedAt - fault.fault.startedAt;
    const back = fault.fault.backAt !== undefined ? `; back after ${seconds(fault.fault.backAt - fault.fault.startedAt)}` : '';
    const failure = fault.fault.error ? ` (injection failed: ${fault.fault.error})` : '';
    lines.push(
      `| ${index + 1} | ${cell(fault.fault.label + failure)}; ${cell(fault.fault.detail)}${back} | ${(fault.atMs / 1000).toFixed(1)} | ${seconds(held)} | ${fault.ackErrors === 0 ? 'none' : `${fault.ackErrors} (${cell(reasons(fault.ackErrorReasons))}), stop +${seconds(fault.ackErrorsStopMs)}`} | ${fault.inboxPeak ?? '?'}, ${seconds(fault.inboxDrainedMs)} | ${caughtUp(fault)} | ${seconds(fault.recoveredMs)} | ${fault.lost} | ${fault.duplicated} | ${fault.late} |`,
    );
  }
  lines.push('');

  lines.push('### Checks', '');
  lines.push('| check | expected | found | lost | late | duplicated |', '| --- | ---: | ---: | ---: | ---: | ---: |');
  for (const check of checkNames) {
    const total = result.checks[check];
    lines.push(`| ${checkLabels[check]} | ${total.expected} | ${total.found} | ${total.lost} | ${total.late} | ${total.duplicated} |`);
  }
  lines.push('');
  if (result.findings.length > 0) {
    lines.push('What was lost, late or duplicated (first 15 of each kind), with the faults that were on (or settling) when it came due or up to 10 s later:', '');
    for (const state of ['lost', 'duplicated', 'late'] as const) {
      const some = result.findings.filter((finding) => finding.state === state);
      if (some.length === 0) continue;
      lines.push(`- **${state}** (${some.length}):`);
      for (const finding of some.slice(0, 15)) {
        lines.push(`  - ${finding.check} \`${finding.key}\` due at ${finding.dueAtSeconds} s${finding.copies > 1 ? `, ${finding.copies} copies` : ''}${finding.why ? `: ${finding.why}` : ''}; faults: ${finding.faults.join(', ') || 'none'}`);
      }
    }
    lines.push('');
  }

  lines.push('### Nothing stuck', '');
  if (result.stuckItems.length === 0 && result.unexpectedEffects.length === 0) lines.push('Nothing: no inbox rows, no dead letters, no call workflow still running, no failed workflow, no pending ledger entry, every call synced and completed, no lead step overdue.', '');
  for (const item of [...result.stuckItems, ...result.unexpectedEffects]) lines.push(`- ${item.what}: **${item.count}**${item.samples.length > 0 ? ` (${item.samples.map((sample) => `\`${sample}\``).join(', ')})` : ''}`);
  if (result.stuckItems.length > 0 || result.unexpectedEffects.length > 0) lines.push('');

  lines.push('### Dashboard stream after the PostgreSQL restart', '');
  if (result.streams.length === 0) lines.push('Not measured (no PostgreSQL restart, or no stream connected).', '');
  for (const stream of result.streams) {
    lines.push(
      `- api-${stream.api + 1}: ${stream.recoveredMs === null ? `**no change reached the stream within ${result.streamWindowSeconds} s**` : `first change ${seconds(stream.recoveredMs)} after PostgreSQL was back`} (${stream.journalWrites} journal writes of the watched tenant in that time; /readyz answered ${stream.readinessSeen.join(', ') || 'nothing'}).`,
    );
  }
  lines.push('');

  lines.push('### Processes', '');
  lines.push('| process | starts | unexpected exits | error log lines | supervisor |', '| --- | ---: | ---: | ---: | --- |');
  for (const process of result.processes) lines.push(`| ${process.name} | ${process.starts} | ${process.crashes} | ${process.errorLines} | ${process.gaveUp ? `**gave up**: ${process.gaveUp}` : 'kept it running'} |`);
  lines.push('');

  lines.push('### Running it', '');
  lines.push(
    '```sh',
    'npm run chaos                                  # 10 minutes at 10 deliveries/s, writes RELIABILITY.md',
    'npm run chaos -- --duration 300 --rate 6       # shorter or lighter',
    'npm run chaos -- --short                       # one round of each fault, about 3 minutes with start-up',
    'npm run chaos -- --keep                        # keep the run folder: config and every process log',
    '```',
    '',
  );
  return `${lines.join('\n')}\n`;
}
