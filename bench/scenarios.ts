/** The three benchmark scenarios and the ceilings they are compared with. */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Client, Connection } from '@temporalio/client';
import { temporalDataConverter } from '../security/payload-codec.js';
import pg from 'pg';
import { repoRoot } from '../config/load.js';
import { changesChannel } from '../db/changes.js';
import { leadDelivery } from '../ingestion/lead-delivery.js';
import { signalWithStart } from '../ingestion/handoff.js';
import { pbxEvents, random, shuffle, signedJsonRequest, voiceAiEvents } from '../sandboxes/pbx-simulator.js';
import type { CallPlan, Outcome } from '../sandboxes/pbx-simulator.js';
import { leadPolicySchema, leadWorkflowId } from '../shared/leads.js';
import { waitUntil } from '../stack/processes.js';
import type { BenchStack } from './stack.js';
import { createHttpClient, runConcurrently, summarize } from './load.js';
import type { HttpRequest, LatencySummary } from './load.js';
import { watchWorkerQueues } from './worker-metrics.js';
import type { QueueWaits } from './worker-metrics.js';
import type { TimerCeilingResult } from './timer-ceiling/ceiling.js';

export interface BurstResult {
  calls: number;
  requests: number;
  duplicates: number;
  concurrency: number;
  ack: LatencySummary;
  statuses: Record<string, number>;
  eventsPerSecond: number;
  wallSeconds: number;
  endToEnd: { journal: LatencySummary; dashboard: LatencySummary };
  drain: { seconds: number; crmRequests: number; crmFloorSeconds: number };
  /** The worker's own view: how long tasks waited for it, and how full its slots got. */
  workerQueues: QueueWaits[];
  verification: { journalRows: number; expectedRows: number; eventRowsMatch: boolean; crmNotes: number; duplicateCrmNotes: number; tickets: number; expectedTickets: number; duplicateTickets: number; lost: number; lostSamples: string[]; crmSyncStates: Record<string, number>; passed: boolean };
}

interface Delivery {
  callId: string;
  request: HttpRequest;
  isEnd: boolean;
}

/** 80 % PBX calls (answered, missed, abandoned), 20 % voice-AI calls with analytics, a tenth unresolved. */
function plannedCalls(stack: BenchStack, count: number, seed: number): { deliveries: Delivery[][]; expectedEvents: Map<string, number>; expectedTickets: number; phones: string[] } {
  const next = random(seed);
  const outcomes: Outcome[] = ['answered', 'answered', 'answered', 'answered', 'answered', 'answered', 'missed', 'abandoned'];
  const deliveries: Delivery[][] = [];
  const expectedEvents = new Map<string, number>();
  const phones: string[] = [];
  let expectedTickets = 0;
  const started = new Date(Date.now() - 120_000);
  for (let index = 0; index < count; index++) {
    const phone = `+1646555${String(1000 + index).padStart(4, '0')}`;
    phones.push(phone);
    const id = `bench-${stack.runTag}-${seed}-${index}`;
    const sign = (provider: 'pbx' | 'voice-ai', body: unknown): HttpRequest => {
      const signed = signedJsonRequest(stack.signingSecrets[provider], body);
      return { path: `/webhooks/${stack.tenantId}/${provider}`, headers: signed.headers, body: signed.body };
    };
    let events: Delivery[];
    if (index % 5 === 4) {
      const resolved = index % 10 !== 9;
      if (!resolved) expectedTickets++;
      const plan = { callId: id, agentId: 'ai-agent', direction: 'inbound' as const, customerPhone: phone, agentPhone: '+12125550100', startedAt: started, durationSeconds: 60 + (index % 120), satisfaction: resolved ? 5 : 2, resolved, issueType: 'Billing' };
      events = voiceAiEvents(plan).map((event) => ({ callId: `voice-ai:${id}`, request: sign('voice-ai', event), isEnd: event.event === 'call.end' }));
      expectedEvents.set(`voice-ai:${id}`, 4);
    } else {
      const plan: CallPlan = { callId: id, direction: 'inbound', customerPhone: phone, linePhone: '+12125550100', agentId: `agent-${index % 20}`, outcome: outcomes[index % outcomes.length] as Outcome, startedAt: started, ringSeconds: 2 + (index % 15), talkSeconds: 30 + (index % 200) };
      const pbx = pbxEvents(plan);
      events = pbx.map((event) => ({ callId: `pbx:${id}`, request: sign('pbx', event), isEnd: event.event === 'call.ended' }));
      expectedEvents.set(`pbx:${id}`, pbx.length);
    }
    // A tenth of the deliveries are retried by the sender, and each call's events arrive in any order.
    const withDuplicates = events.flatMap((delivery) => (next() < 0.1 ? [delivery, delivery] : [delivery]));
    deliveries.push(shuffle(withDuplicates, next));
  }
  return { deliveries, expectedEvents, expectedTickets, phones };
}

/** Listens for the journal's NOTIFY and the dashboard's SSE (the bench tenant's unless told), noting when each call was first seen ended. */
export async function watchEnds(
  stack: BenchStack,
  callIds: ReadonlySet<string>,
  tenant: { id: string; operatorToken: string } = { id: stack.tenantId, operatorToken: stack.operatorToken },
): Promise<{ journal: Map<string, number>; dashboard: Map<string, number>; stop: () => Promise<void> }> {
  const journal = new Map<string, number>();
  const dashboard = new Map<string, number>();
  const listener = new pg.Client({ connectionString: stack.databaseUrl });
  await listener.connect();
  listener.on('notification', (message) => {
    const notice = JSON.parse(message.payload ?? '{}') as { kind?: string; id?: string; status?: string };
    if (notice.kind === 'call' && notice.id && callIds.has(notice.id) && (notice.status === 'ended' || notice.status === 'completed') && !journal.has(notice.id)) journal.set(notice.id, performance.now());
  });
  await listener.query(`LISTEN ${changesChannel}`);
  const controller = new AbortController();
  const response = await fetch(`${stack.apiUrl}/api/${tenant.id}/dashboard/stream`, { headers: { authorization: `Bearer ${tenant.operatorToken}` }, signal: controller.signal });
  const reader = response.body?.getReader();
  const decoder = new TextDecoder();
  const pump = (async () => {
    let buffer = '';
    for (;;) {
      const chunk = await reader?.read().catch(() => undefined);
      if (!chunk || chunk.done) return;
      buffer += decoder.decode(chunk.value as Uint8Array, { stream: true });
      let separator = buffer.indexOf('\n\n');
      while (separator >= 0) {
        const block = buffer.slice(0, separator);
        buffer = buffer.slice(separator + 2);
        if (block.includes('event: change')) {
          const data = /data: (.*)/.exec(block)?.[1];
          const change = JSON.parse(data ?? '{}') as { id?: string; status?: string };
          if (change.id && callIds.has(change.id) && (change.status === 'ended' || change.status === 'completed') && !dashboard.has(change.id)) dashboard.set(change.id, performance.now());
        }
        separator = buffer.indexOf('\n\n');
      }
    }
  })();
  return {
    journal,
    dashboard,
    async stop() {
      controller.abort();
      await pump;
      await listener.end();
    },
  };
}

export async function burstIngest(stack: BenchStack, options: { calls: number; seed: number; log: (line: string) => void }): Promise<BurstResult> {
  const { deliveries, expectedEvents, expectedTickets, phones } = plannedCalls(stack, options.calls, options.seed);
  // Every caller is a known contact, so every call ends in exactly one CRM note.
  for (const [index, phone] of phones.entries()) stack.kommo.seedContact({ name: `Bench Caller ${index}`, phone });
  const crmBefore = stack.kommo.state().requests.total;
  const watcher = await watchEnds(stack, new Set(expectedEvents.keys()));
  const metricsUrl = stack.workerMetricsUrl;
  const queueWatchers = metricsUrl ? await Promise.all(stack.workerTaskQueues.map((queue) => watchWorkerQueues(metricsUrl, queue))) : [];
  const client = createHttpClient(stack.apiUrl, options.calls);
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  const endSentAt = new Map<string, number>();
  let requests = 0;
  options.log(`burst: ${options.calls} concurrent calls, ${deliveries.flat().length} deliveries`);
  const wall = await runConcurrently(deliveries, options.calls, async (callDeliveries) => {
    for (const delivery of callDeliveries) {
      const sentAt = performance.now();
      if (delivery.isEnd && !endSentAt.has(delivery.callId)) endSentAt.set(delivery.callId, sentAt);
      const result = await client.post(delivery.request);
      requests++;
      latencies.push(result.latencyMs);
      statuses[result.status] = (statuses[result.status] ?? 0) + 1;
    }
  });
  client.close();
  const lastAck = performance.now();

  // Every call journaled as ended (or completed) and pushed to the dashboard.
  await waitUntil(() => Promise.resolve(watcher.journal.size >= expectedEvents.size && watcher.dashboard.size >= expectedEvents.size), 300_000, 'not every call reached the journal and the dashboard').catch((error: unknown) => {
    options.log(`  warning: ${(error as Error).message} (journal ${watcher.journal.size}, dashboard ${watcher.dashboard.size})`);
  });
  await watcher.stop();
  const journalE2e = [...endSentAt].flatMap(([callId, sent]) => (watcher.journal.has(callId) ? [(watcher.journal.get(callId) ?? 0) - sent] : []));
  const dashboardE2e = [...endSentAt].flatMap(([callId, sent]) => (watcher.dashboard.has(callId) ? [(watcher.dashboard.get(callId) ?? 0) - sent] : []));

  // Post-call work drained: every call logged in the CRM, every unresolved call ticketed.
  const db = new pg.Client({ connectionString: stack.databaseUrl });
  await db.connect();
  options.log('burst: waiting for post-call work (CRM, tickets) to drain');
  await waitUntil(
    async () => {
      const open = await db.query<{ open: number }>(`SELECT count(*)::int AS open FROM calls WHERE tenant_id = $1 AND call_id = ANY($2) AND crm_sync_state IN ('waiting', 'pending')`, [stack.tenantId, [...expectedEvents.keys()]]);
      const tickets = stack.ticketing.state().tickets.length;
      return (open.rows[0]?.open ?? 1) === 0 && tickets >= expectedTickets;
    },
    1_800_000,
    'post-call work did not drain',
  );
  const drainSeconds = (performance.now() - lastAck) / 1000;
  const workerQueues = await Promise.all(queueWatchers.map((queueWatcher) => queueWatcher.stop()));
  const crmRequests = stack.kommo.state().requests.total - crmBefore;

  const rows = await db.query<{ call_id: string; events: number; crm_sync_state: string; disposition: string | null; skipped: string | null; error: string | null }>(
    `SELECT c.call_id, c.crm_sync_state, c.disposition, c.crm->>'skippedReason' AS skipped, c.crm->>'error' AS error,
            (SELECT count(*) FROM call_events e WHERE e.tenant_id = c.tenant_id AND e.call_id = c.call_id)::int AS events
       FROM calls c WHERE c.tenant_id = $1 AND c.call_id = ANY($2)`,
    [stack.tenantId, [...expectedEvents.keys()]],
  );
  const crmSyncStates: Record<string, number> = {};
  for (const row of rows.rows) crmSyncStates[row.crm_sync_state] = (crmSyncStates[row.crm_sync_state] ?? 0) + 1;
  await db.end();
  const journaled = new Map(rows.rows.map((row) => [row.call_id, row.events]));
  const eventRowsMatch = [...expectedEvents].every(([callId, count]) => journaled.get(callId) === count);
  const notes = stack.kommo.state().notes;
  const notesPerCall = new Map<string, number>();
  for (const note of notes) if (note.params.uniq) notesPerCall.set(note.params.uniq, (notesPerCall.get(note.params.uniq) ?? 0) + 1);
  const tickets = stack.ticketing.state().tickets;
  const ticketsPerCall = new Map<string, number>();
  for (const ticket of tickets) if (ticket.external_id) ticketsPerCall.set(ticket.external_id, (ticketsPerCall.get(ticket.external_id) ?? 0) + 1);
  const lostCalls = [...expectedEvents.keys()].filter((callId) => !journaled.has(callId) || notesPerCall.get(callId) !== 1);
  const lost = lostCalls.length;
  // Why a call has no CRM note, for the first few: its journal row says.
  const lostSamples = lostCalls.slice(0, 5).map((callId) => {
    const row = rows.rows.find((candidate) => candidate.call_id === callId);
    return row ? `${callId}: ${row.disposition ?? '?'}, CRM ${row.crm_sync_state}${row.skipped ? ` (${row.skipped})` : ''}${row.error ? ` (${row.error.slice(0, 160)})` : ''}` : `${callId}: not journaled`;
  });
  const verification = {
    journalRows: journaled.size,
    expectedRows: expectedEvents.size,
    eventRowsMatch,
    crmNotes: notes.length,
    duplicateCrmNotes: [...notesPerCall.values()].filter((count) => count > 1).length,
    tickets: tickets.length,
    expectedTickets,
    duplicateTickets: [...ticketsPerCall.values()].filter((count) => count > 1).length,
    lost,
    lostSamples,
    crmSyncStates,
    passed: false,
  };
  verification.passed =
    verification.journalRows === verification.expectedRows && eventRowsMatch && verification.duplicateCrmNotes === 0 && verification.duplicateTickets === 0 && verification.tickets === expectedTickets && lost === 0;
  return {
    calls: options.calls,
    requests,
    duplicates: requests - [...expectedEvents.values()].reduce((sum, count) => sum + count, 0),
    concurrency: options.calls,
    ack: summarize(latencies),
    statuses,
    eventsPerSecond: Math.round((requests / wall) * 1000),
    wallSeconds: Math.round(wall) / 1000,
    endToEnd: { journal: summarize(journalE2e), dashboard: summarize(dashboardE2e) },
    drain: { seconds: Math.round(drainSeconds * 10) / 10, crmRequests, crmFloorSeconds: Math.round((crmRequests / 7) * 10) / 10 },
    workerQueues,
    verification,
  };
}

export interface CeilingResult {
  operations: number;
  concurrency: number;
  latency: LatencySummary;
  perSecond: number;
}

/** signalWithStart straight to the same Temporal, no HTTP, same concurrency and count. */
export async function signalWithStartCeiling(stack: BenchStack, operations: number, concurrency: number, calls: number): Promise<CeilingResult> {
  const connection = await Connection.connect({ address: stack.temporalAddress });
  const client = new Client({ connection, namespace: stack.namespace, dataConverter: temporalDataConverter(stack.config.temporal.payloadEncryption) });
  const latencies: number[] = [];
  const items = Array.from({ length: operations }, (_, index) => index);
  const wall = await runConcurrently(items, concurrency, async (index) => {
    const started = performance.now();
    await client.workflow.signalWithStart('ceilingProbe', {
      workflowId: `ceiling-${Date.now().toString(36)}-${index % calls}`,
      taskQueue: 'bench-ceiling-no-worker',
      // Nobody runs these: they expire by themselves, even in a stack the bench only attached to.
      workflowExecutionTimeout: '2 minutes',
      args: [],
      signal: 'event',
      signalArgs: [{ eventId: String(index) }],
    });
    latencies.push(performance.now() - started);
  });
  await connection.close();
  return { operations, concurrency, latency: summarize(latencies), perSecond: Math.round((operations / wall) * 1000) };
}

/** The burst's requests, per call in sending order, for the no-op HTTP ceiling. */
export function burstRequests(stack: BenchStack, calls: number, seed: number): HttpRequest[][] {
  return plannedCalls(stack, calls, seed).deliveries.map((callDeliveries) => callDeliveries.map((delivery) => delivery.request));
}

/** bench/noop-server.ts in its own process, like the API; `env` selects its INSERT handler. */
export async function startCeilingServer(env: Record<string, string> = {}, script = 'bench/noop-server.ts'): Promise<{ url: string; stop: () => void }> {
  const server = spawn(process.execPath, ['--import', 'tsx', script], { cwd: repoRoot, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    server.stdout.on('data', (chunk: Buffer) => {
      const match = /listening (\d+)/.exec(chunk.toString());
      if (match) resolve(Number(match[1]));
    });
    server.once('exit', (code) => reject(new Error(`${script} exited at start (${code})`)));
  });
  return { url: `http://127.0.0.1:${port}`, stop: () => server.kill('SIGTERM') };
}

/** A no-op Express handler (its own process, like the API) under the same load generator and request pattern. */
export async function noopHttpCeiling(requestsPerCall: HttpRequest[][], concurrency: number): Promise<CeilingResult> {
  const server = await startCeilingServer();
  const client = createHttpClient(server.url, concurrency);
  const latencies: number[] = [];
  const wall = await runConcurrently(requestsPerCall, concurrency, async (requests) => {
    for (const request of requests) latencies.push((await client.post(request)).latencyMs);
  });
  client.close();
  server.stop();
  return { operations: latencies.length, concurrency, latency: summarize(latencies), perSecond: Math.round((latencies.length / wall) * 1000) };
}

/** Plain INSERTs into the same PostgreSQL, same count and concurrency. */
export async function insertCeiling(stack: BenchStack, operations: number, concurrency: number): Promise<CeilingResult> {
  const pool = new pg.Pool({ connectionString: stack.databaseUrl, max: Math.min(concurrency, 100) });
  const table = `bench_inserts_${stack.runTag}`;
  await pool.query(`CREATE TABLE ${table} (id bigserial PRIMARY KEY, payload jsonb NOT NULL, at timestamptz NOT NULL DEFAULT now())`);
  const latencies: number[] = [];
  const items = Array.from({ length: operations }, (_, index) => index);
  const wall = await runConcurrently(items, concurrency, async (index) => {
    const started = performance.now();
    await pool.query(`INSERT INTO ${table} (payload) VALUES ($1)`, [JSON.stringify({ index, event: 'call.ringing' })]);
    latencies.push(performance.now() - started);
  });
  await pool.query(`DROP TABLE ${table}`);
  await pool.end();
  return { operations, concurrency, latency: summarize(latencies), perSecond: Math.round((operations / wall) * 1000) };
}

export interface LeadScaleResult {
  leads: number;
  rateLimitPerSecond: number;
  dueAt: string;
  sent: number;
  drainSeconds: number;
  floorSeconds: number;
  rateShareOfLimit: number;
  maxPerSecond: number;
  workerPeakRssMb: number;
  startSeconds: number;
  historyEventsPerLead: LatencySummary;
  continueAsNew: { threshold: number; historyLengthBeforeContinueAsNew: number | null };
  duplicates: number;
  passed: boolean;
  /** Timer-only workflows, as many, due in one instant: what this host's dev server and one worker fire per second. */
  timerCeiling?: TimerCeilingResult;
}

function rssMb(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}

/** 10,000 leads whose T-1h reminder falls due in the same minute, through the rate-limited messaging queue. */
/** Waits until `expected` reminders are on the timeline as scheduled, or until `dueAt`; returns how many are. */
async function plannedReminders(stack: BenchStack, expected: number, dueAt: number): Promise<number> {
  const db = new pg.Client({ connectionString: stack.databaseUrl });
  await db.connect();
  try {
    const count = async (): Promise<number> =>
      Number((await db.query<{ count: string }>(`SELECT count(*) FROM lead_timeline WHERE tenant_id = $1 AND kind = 'scheduled' AND flow = 'reminder'`, [stack.tenantId])).rows[0]?.count ?? 0);
    let planned = await count();
    while (planned < expected && Date.now() < dueAt) {
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      planned = await count();
    }
    return planned;
  } finally {
    await db.end();
  }
}

export async function leadScale(stack: BenchStack, options: { leads: number; log: (line: string) => void }): Promise<LeadScaleResult> {
  const connection = await Connection.connect({ address: stack.temporalAddress });
  const client = new Client({ connection, namespace: stack.namespace, dataConverter: temporalDataConverter(stack.config.temporal.payloadEncryption) });
  // Everyone's reminder falls due at the same moment, once all of them are imported (about 100 a
  // second here) and every workflow has applied its import and planned the reminder (about 40 a
  // second: 10,000 took 4 minutes on 2026-12-03, and those still behind at the due moment skipped
  // their reminder as too close): 3 minutes from now, later for large runs.
  const importBudgetMs = Math.max(180_000, options.leads * 50);
  const meetingAt = Date.now() + 60 * 60_000 + importBudgetMs;
  const dueAt = meetingAt - 60 * 60_000;
  const startedAt = performance.now();
  let peakRss = 0;
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, rssMb(stack.workerPid()));
  }, 500);
  const items = Array.from({ length: options.leads }, (_, index) => index);
  options.log(`leads: importing ${options.leads} booked leads`);
  await runConcurrently(items, 64, async (index) => {
    const leadId = `scale-${stack.runTag}-${index}`;
    const delivery = leadDelivery(stack.config, stack.tenantId, leadId, [
      {
        eventId: `scale-import-${stack.runTag}-${index}`,
        type: 'lead.imported',
        occurredAt: new Date().toISOString(),
        profile: { name: `Lead ${index}`, phone: `+1917${String(2_000_000 + index)}` },
        stage: 'booked',
        completedSteps: ['welcome:message', `booking_confirmation:message:m-${index}`],
        meeting: { id: `m-${index}`, startsAt: new Date(meetingAt).toISOString(), endsAt: new Date(meetingAt + 30 * 60_000).toISOString() },
      },
    ], 'bench');
    await signalWithStart(client, delivery);
  });
  const startSeconds = (performance.now() - startedAt) / 1000;
  options.log(`leads: started in ${startSeconds.toFixed(1)} s; reminders due at ${new Date(dueAt).toISOString()}`);
  if (Date.now() > dueAt) options.log('  warning: the import took longer than its budget; reminders fell due while leads were still starting');
  // The drain is measured from a quiet start: every lead has planned its reminder (the journal says so).
  const planned = await plannedReminders(stack, options.leads, dueAt);
  options.log(`leads: ${planned}/${options.leads} reminders planned ${((performance.now() - startedAt) / 1000).toFixed(1)} s after the import began`);
  if (planned < options.leads) options.log(`  warning: ${options.leads - planned} leads had not planned their reminder when it fell due: the drain overlaps their first workflow tasks`);
  const reminderCount = (): number => stack.whatsapp.state().messages.filter((message) => message.template?.name === 'meeting_reminder').length;
  const progress = setInterval(() => {
    if (Date.now() > dueAt) options.log(`leads: ${reminderCount()}/${options.leads} reminders sent, worker RSS ${Math.round(rssMb(stack.workerPid()))} MB`);
  }, 15_000);
  await waitUntil(() => Promise.resolve(reminderCount() >= options.leads), 3_600_000, 'not every reminder was sent').catch(
    (error: unknown) => options.log(`  warning: ${(error as Error).message}`),
  );
  clearInterval(sampler);
  clearInterval(progress);
  const reminders = stack.whatsapp.state().messages.filter((message) => message.template?.name === 'meeting_reminder');
  const times = reminders.map((message) => Date.parse(message.acceptedAt)).sort((a, b) => a - b);
  const first = times[0] ?? dueAt;
  const last = times[times.length - 1] ?? dueAt;
  const perSecond = new Map<number, number>();
  for (const at of times) perSecond.set(Math.floor(at / 1000), (perSecond.get(Math.floor(at / 1000)) ?? 0) + 1);
  const maxPerSecond = Math.max(0, ...perSecond.values());
  const drainSeconds = (last - first) / 1000;
  const floorSeconds = (reminders.length - 1) / stack.messagingRatePerSecond;
  const perPhone = new Map<string, number>();
  for (const message of reminders) perPhone.set(message.to, (perPhone.get(message.to) ?? 0) + 1);

  // History per lead (a sample), and one chatty lead driven past the continue-as-new threshold.
  const sample = items.filter((index) => index % Math.max(1, Math.floor(options.leads / 25)) === 0).slice(0, 25);
  const lengths: number[] = [];
  for (const index of sample) lengths.push((await client.workflow.getHandle(leadWorkflowId(stack.tenantId, `scale-${stack.runTag}-${index}`)).fetchHistory()).events?.length ?? 0);
  const threshold = leadPolicySchema.parse(stack.config.tenants[stack.tenantId]?.leads ?? {}).continueAsNewAfterEvents;
  const chatty = `scale-${stack.runTag}-chatty`;
  const chattyHandle = client.workflow.getHandle(leadWorkflowId(stack.tenantId, chatty));
  // Updates until the lead continues as new: how many that takes depends on how the worker batches signals.
  let beforeContinueAsNew: number | null = null;
  for (let index = 0; index < 4_000 && beforeContinueAsNew === null; index++) {
    await signalWithStart(client, leadDelivery(stack.config, stack.tenantId, chatty, [{ eventId: `chatty-${stack.runTag}-${index}`, type: 'lead.updated', occurredAt: new Date().toISOString(), profile: { name: `Chatty ${index}` } }], 'bench'));
    if (index % 25 !== 24) continue;
    const previous = (await chattyHandle.fetchHistory()).events?.[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId;
    if (previous) beforeContinueAsNew = (await client.workflow.getHandle(leadWorkflowId(stack.tenantId, chatty), previous).fetchHistory()).events?.length ?? null;
  }
  if (beforeContinueAsNew === null) options.log('  warning: the chatty lead never continued as new');
  await connection.close();
  const duplicates = [...perPhone.values()].filter((count) => count > 1).length;
  return {
    leads: options.leads,
    rateLimitPerSecond: stack.messagingRatePerSecond,
    dueAt: new Date(dueAt).toISOString(),
    sent: reminders.length,
    drainSeconds: Math.round(drainSeconds * 10) / 10,
    floorSeconds: Math.round(floorSeconds * 10) / 10,
    rateShareOfLimit: drainSeconds > 0 ? Math.round((floorSeconds / drainSeconds) * 1000) / 1000 : 0,
    maxPerSecond,
    workerPeakRssMb: Math.round(peakRss),
    startSeconds: Math.round(startSeconds * 10) / 10,
    historyEventsPerLead: summarize(lengths),
    continueAsNew: { threshold, historyLengthBeforeContinueAsNew: beforeContinueAsNew },
    duplicates,
    passed: reminders.length === options.leads && duplicates === 0,
  };
}
