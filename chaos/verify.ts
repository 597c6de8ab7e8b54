/**
 * The chaos run's verdict, by counting: in PostgreSQL (the journal, the lead timeline, the inbox,
 * the ledger), in Temporal (which workflows still run) and in the sandboxes (CRM notes and tasks,
 * tickets, WhatsApp messages). Waits (bounded) for the deployment to drain first; whatever is still
 * missing then is "late" when something still works on it, "lost" when nothing does.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { Deployment } from './deployment.js';
import type { DeliveryOutcome, JournalEntry, PlannedCall, TrafficPlan, TrafficResult } from './traffic.js';

/** One expectation of the run: something that must exist exactly once. */
export interface Expectation {
  /** journal | crm_note | crm_task | ticket | message */
  check: CheckName;
  key: string;
  tenantId: string;
  /** Epoch ms from which it was due (the accepted event, the due send). */
  dueAt: number;
  /** Epoch ms when it appeared (first copy); undefined: missing. */
  foundAt?: number;
  copies: number;
  /** Missing at the end: still being worked on (late) or not (lost). */
  missing?: 'late' | 'lost';
  why?: string;
}

export const checkNames = ['journal', 'crm_note', 'crm_task', 'ticket', 'message'] as const;
export type CheckName = (typeof checkNames)[number];

export const checkLabels: Record<CheckName, string> = {
  journal: 'accepted event journaled once (call_events, lead_timeline)',
  crm_note: 'call logged in the CRM once (Kommo call note, by uniq)',
  crm_task: 'missed inbound call: one call-back task (Kommo)',
  ticket: 'unresolved call: one ticket (ticketing, by external_id)',
  message: 'due WhatsApp message sent once (welcome, booking confirmation, 1 h reminder)',
};

export interface CheckTotals {
  expected: number;
  found: number;
  lost: number;
  late: number;
  /** Extra copies: an effect performed more than once. */
  duplicated: number;
}

export interface Unexpected {
  what: string;
  count: number;
  samples: string[];
}

export interface Stuck {
  what: string;
  count: number;
  samples: string[];
}

export interface Verification {
  expectations: Expectation[];
  totals: Record<CheckName, CheckTotals>;
  /** Effects nobody asked for (a ticket for a resolved call, an incoming lead for a known caller). */
  unexpected: Unexpected[];
  stuck: Stuck[];
  /** How long the drain wait took, and whether it ended because everything was there. */
  drain: { waitedMs: number; complete: boolean };
  workflows: { runningCalls: number; runningLeads: number; closedBadly: number };
}

interface Found {
  at: number;
  copies: number;
}

const epochSeconds = (seconds: number): number => seconds * 1000;

function journalKey(entry: JournalEntry): string {
  return entry.kind === 'call' ? `${entry.tenantId} ${entry.callId} ${entry.eventId}` : `${entry.tenantId} ${entry.leadId} ${entry.entryKey}`;
}

const isComplete = (call: PlannedCall, outcomes: DeliveryOutcome[]): boolean => call.deliveries.every((index) => outcomes[index]?.acceptedAt !== undefined);

/** What must exist, from the plan and what was accepted. */
function expectationsOf(deployment: Deployment, plan: TrafficPlan, traffic: TrafficResult, now: number): Expectation[] {
  const expectations: Expectation[] = [];
  const journal = new Map<string, Expectation>();
  for (const delivery of plan.deliveries) {
    const acceptedAt = traffic.outcomes[delivery.index]?.acceptedAt;
    if (acceptedAt === undefined) continue;
    for (const entry of delivery.journal) {
      const key = journalKey(entry);
      const known = journal.get(key);
      if (known) {
        known.dueAt = Math.min(known.dueAt, acceptedAt);
        continue;
      }
      const expectation: Expectation = { check: 'journal', key, tenantId: entry.tenantId, dueAt: acceptedAt, copies: 0 };
      journal.set(key, expectation);
      expectations.push(expectation);
    }
  }
  for (const call of plan.calls) {
    if (!isComplete(call, traffic.outcomes)) continue;
    const tenantId = deployment.tenants[call.tenantIndex]?.id ?? '?';
    const endedAt = traffic.outcomes[call.endDelivery]?.acceptedAt ?? now;
    expectations.push({ check: 'crm_note', key: `${tenantId} ${call.callId}`, tenantId, dueAt: endedAt, copies: 0 });
    if (call.missedInbound) expectations.push({ check: 'crm_task', key: `${tenantId} ${call.callId}`, tenantId, dueAt: endedAt, copies: 0 });
    if (call.ticket) {
      const analyticsAt = call.analyticsDelivery === undefined ? endedAt : (traffic.outcomes[call.analyticsDelivery]?.acceptedAt ?? endedAt);
      expectations.push({ check: 'ticket', key: `${tenantId} ${call.callId}`, tenantId, dueAt: Math.max(endedAt, analyticsAt), copies: 0 });
    }
  }
  for (const lead of plan.leads) {
    const tenantId = deployment.tenants[lead.tenantIndex]?.id ?? '?';
    const createdAt = traffic.outcomes[lead.created]?.acceptedAt;
    if (createdAt === undefined) continue;
    expectations.push({ check: 'message', key: `${tenantId} ${lead.leadId} welcome`, tenantId, dueAt: createdAt, copies: 0 });
    const bookedAt = traffic.outcomes[lead.booked]?.acceptedAt;
    if (bookedAt === undefined || lead.meetingStartsAt === undefined) continue;
    expectations.push({ check: 'message', key: `${tenantId} ${lead.leadId} booking_confirmation`, tenantId, dueAt: bookedAt, copies: 0 });
    const reminderAt = lead.meetingStartsAt - 3_600_000;
    if (reminderAt < now) expectations.push({ check: 'message', key: `${tenantId} ${lead.leadId} reminder`, tenantId, dueAt: reminderAt, copies: 0 });
  }
  return expectations;
}

/** Everything that exists, keyed as the expectations are. */
async function found(deployment: Deployment): Promise<{ effects: Map<string, Found>; unexpectedIncomingLeads: string[] }> {
  const effects = new Map<string, Found>();
  const add = (check: CheckName, key: string, at: number): void => {
    const id = `${check} ${key}`;
    const existing = effects.get(id);
    if (existing) {
      existing.copies++;
      existing.at = Math.min(existing.at, at);
    } else effects.set(id, { at, copies: 1 });
  };
  const events = await deployment.db.query<{ tenant_id: string; call_id: string; event_id: string; recorded_at: Date }>('SELECT tenant_id, call_id, event_id, recorded_at FROM call_events');
  for (const row of events.rows) add('journal', `${row.tenant_id} ${row.call_id} ${row.event_id}`, row.recorded_at.getTime());
  const timeline = await deployment.db.query<{ tenant_id: string; lead_id: string; entry_key: string; recorded_at: Date }>(`SELECT tenant_id, lead_id, entry_key, recorded_at FROM lead_timeline WHERE entry_key LIKE 'event:%'`);
  for (const row of timeline.rows) add('journal', `${row.tenant_id} ${row.lead_id} ${row.entry_key}`, row.recorded_at.getTime());

  const unexpectedIncomingLeads: string[] = [];
  for (const tenant of deployment.tenants) {
    const kommo = tenant.kommo.state();
    for (const note of kommo.notes) if (note.params.uniq) add('crm_note', `${tenant.id} ${note.params.uniq}`, epochSeconds(note.created_at));
    for (const task of kommo.tasks) {
      const callId = /\[([^\]]+)\]/.exec(task.text)?.[1];
      if (callId) add('crm_task', `${tenant.id} ${callId}`, epochSeconds(task.created_at));
    }
    for (const unsorted of kommo.unsorted) unexpectedIncomingLeads.push(`${tenant.id} ${unsorted.metadata.uniq}`);
    for (const ticket of tenant.ticketing.state().tickets) {
      // activities/tickets.ts: `switchboard:<tenant>:<call id>`.
      const prefix = `switchboard:${tenant.id}:`;
      if (!ticket.external_id?.startsWith(prefix)) continue;
      add('ticket', `${tenant.id} ${ticket.external_id.slice(prefix.length)}`, Date.parse(ticket.created_at));
    }
    for (const message of tenant.whatsapp.state().messages) {
      // A message WhatsApp failed after accepting is re-sent under `#retry<n>`: only delivered ones count.
      if (message.statuses.some((status) => status.status === 'failed')) continue;
      // The effect key `wa:<lead>:<flow>:<step>[:<meeting>]` travels as biz_opaque_callback_data.
      const match = /^wa:([^:]+):([a-z_]+):/.exec(message.bizOpaqueCallbackData ?? '');
      if (!match?.[1] || !match[2]) continue;
      add('message', `${tenant.id} ${match[1]} ${match[2]}`, Date.parse(message.acceptedAt));
    }
  }
  return { effects, unexpectedIncomingLeads };
}

const terminalQuery = 'ExecutionStatus = "Failed" OR ExecutionStatus = "Terminated" OR ExecutionStatus = "TimedOut"';

async function countWorkflows(deployment: Deployment, query: string): Promise<number> {
  try {
    return (await deployment.temporal.workflow.count(query)).count;
  } catch {
    return -1;
  }
}

/** A few workflows the query finds, each with why it is stuck when its last workflow task failed (a nondeterminism error, say). */
async function sampleIds(deployment: Deployment, query: string, limit = 5): Promise<string[]> {
  const ids: string[] = [];
  try {
    for await (const execution of deployment.temporal.workflow.list({ query })) {
      let why = '';
      try {
        const history = await deployment.temporal.workflow.getHandle(execution.workflowId, execution.runId).fetchHistory();
        const failedTask = [...(history.events ?? [])].reverse().find((event) => event.workflowTaskFailedEventAttributes);
        const message = failedTask?.workflowTaskFailedEventAttributes?.failure?.message;
        if (message) why = `: workflow task failing with "${message.slice(0, 160)}"`;
      } catch {
        // history unavailable: the id is enough
      }
      ids.push(`${execution.workflowId} (${execution.status.name})${why}`);
      if (ids.length >= limit) break;
    }
  } catch {
    // visibility unavailable: the count says enough
  }
  return ids;
}

/** The activities a workflow has pending (type and attempt), from Temporal; empty when it has none or is gone. */
async function pendingActivitiesOf(deployment: Deployment, workflowId: string): Promise<string[]> {
  try {
    const described = await deployment.temporal.workflow.getHandle(workflowId).describe();
    return (described.raw.pendingActivities ?? []).map((activity) => `${activity.activityType?.name ?? '?'} (attempt ${activity.attempt ?? '?'})`);
  } catch {
    return [];
  }
}

/** Waits until everything expected is there and nothing is running that should have finished, or until `deadline`. */
async function drain(deployment: Deployment, plan: TrafficPlan, traffic: TrafficResult, deadline: number, log: (line: string) => void): Promise<{ waitedMs: number; complete: boolean }> {
  const started = Date.now();
  let lastReport = 0;
  let unchanged: { state: string; since: number } | undefined;
  for (;;) {
    const now = Date.now();
    const expected = expectationsOf(deployment, plan, traffic, now);
    const { effects } = await found(deployment).catch(() => ({ effects: new Map<string, Found>() }));
    const missing = expected.filter((expectation) => !effects.has(`${expectation.check} ${expectation.key}`));
    const inbox = (await deployment.db.query<{ waiting: number }>('SELECT count(*)::int AS waiting FROM event_inbox WHERE dead_at IS NULL').catch(() => ({ rows: [{ waiting: -1 }] }))).rows[0]?.waiting ?? -1;
    const runningCalls = await countWorkflows(deployment, 'WorkflowType = "callWorkflow" AND ExecutionStatus = "Running"');
    if (missing.length === 0 && inbox === 0 && runningCalls === 0) return { waitedMs: Date.now() - started, complete: true };
    // Nothing moves any more: stop waiting 2 minutes after only unfinished call workflows are left (a
    // workflow task failing for good, say), or 6 minutes after anything last changed (longer than a
    // ledger lease, the longest wait the deployment has for itself).
    const state = `${missing.length} ${inbox} ${runningCalls}`;
    if (unchanged?.state !== state) unchanged = { state, since: now };
    const stalledMs = now - unchanged.since;
    if ((missing.length === 0 && inbox === 0 && stalledMs > 120_000) || stalledMs > 360_000) return { waitedMs: Date.now() - started, complete: false };
    if (now - lastReport > 15_000) {
      lastReport = now;
      const byCheck = new Map<string, number>();
      for (const expectation of missing) byCheck.set(expectation.check, (byCheck.get(expectation.check) ?? 0) + 1);
      log(`  draining: ${missing.length} expected effects missing (${[...byCheck].map(([check, count]) => `${check} ${count}`).join(', ') || 'none'}), inbox ${inbox}, call workflows running ${runningCalls}`);
    }
    if (now > deadline) return { waitedMs: Date.now() - started, complete: false };
    await delay(2_000);
  }
}

export async function verify(options: { deployment: Deployment; plan: TrafficPlan; traffic: TrafficResult; drainDeadline: number; settleMs: number; log: (line: string) => void }): Promise<Verification> {
  const { deployment, plan, traffic, log } = options;
  const drained = await drain(deployment, plan, traffic, options.drainDeadline, log);
  // Quiet time: a stalled attempt that finishes late shows up as a second copy.
  await delay(options.settleMs);

  const now = Date.now();
  const expectations = expectationsOf(deployment, plan, traffic, now);
  const { effects, unexpectedIncomingLeads } = await found(deployment);
  const db = deployment.db;
  const tenantIds = deployment.tenants.map((tenant) => tenant.id);

  // What still works on a missing effect: the inbox, an open CRM sync, a pending ledger entry, a running workflow.
  const waitingInbox = await db.query<{ workflow_id: string }>('SELECT DISTINCT workflow_id FROM event_inbox WHERE dead_at IS NULL');
  const inboxWorkflows = new Set(waitingInbox.rows.map((row) => row.workflow_id));
  const openSyncs = await db.query<{ tenant_id: string; call_id: string; crm_sync_state: string; status: string }>(`SELECT tenant_id, call_id, crm_sync_state, status FROM calls`);
  const callRows = new Map(openSyncs.rows.map((row) => [`${row.tenant_id} ${row.call_id}`, row]));
  const pendingEffects = await db.query<{ tenant_id: string; effect_key: string; state: string; attempts: number; last_error: string | null; claimed_until: Date | null }>(
    `SELECT tenant_id, effect_key, state, attempts, last_error, claimed_until FROM external_effects WHERE state IN ('pending', 'failed')`,
  );
  const pendingByKey = new Map(pendingEffects.rows.map((row) => [`${row.tenant_id} ${row.effect_key}`, row]));
  const skippedSteps = await db.query<{ tenant_id: string; lead_id: string; flow: string | null; cause: string }>(`SELECT tenant_id, lead_id, flow, cause FROM lead_timeline WHERE kind = 'skipped'`);
  const skippedByLeadFlow = new Map(skippedSteps.rows.map((row) => [`${row.tenant_id} ${row.lead_id} ${row.flow ?? ''}`, row.cause]));
  const leadRows = await db.query<{ tenant_id: string; lead_id: string; stage: string; has_phone: boolean }>('SELECT tenant_id, lead_id, stage, phone IS NOT NULL AS has_phone FROM leads');
  const leadsByKey = new Map(leadRows.rows.map((row) => [`${row.tenant_id} ${row.lead_id}`, row]));

  for (const expectation of expectations) {
    const hit = effects.get(`${expectation.check} ${expectation.key}`);
    if (hit) {
      expectation.foundAt = hit.at;
      expectation.copies = hit.copies;
      continue;
    }
    const [tenantId = '', subject = '', rest = ''] = expectation.key.split(' ');
    let late: string | undefined;
    switch (expectation.check) {
      case 'journal': {
        const workflowId = subject.includes(':') ? `call:${tenantId}:${subject}` : `lead:${tenantId}:${subject}`;
        if (inboxWorkflows.has(workflowId)) late = 'still waiting in the inbox';
        else expectation.why = 'not in the inbox any more, not in the journal';
        break;
      }
      case 'crm_note':
      case 'crm_task':
      case 'ticket': {
        const row = callRows.get(`${tenantId} ${subject}`);
        const effectKey = expectation.check === 'crm_note' ? `crm:call:${subject}` : expectation.check === 'crm_task' ? `crm:callback:${subject}` : `ticket:${subject}`;
        const pending = pendingByKey.get(`${tenantId} ${effectKey}`) ?? [...pendingByKey.values()].find((effect) => effect.tenant_id === tenantId && effect.effect_key.includes(subject));
        if (pending) late = `ledger ${pending.state} after ${pending.attempts} attempts${pending.claimed_until && pending.claimed_until.getTime() > now ? `, claimed for ${Math.round((pending.claimed_until.getTime() - now) / 1000)} s more` : ''}${pending.last_error ? ` (${pending.last_error.slice(0, 120)})` : ''}`;
        else if (row && (row.crm_sync_state === 'waiting' || row.crm_sync_state === 'pending')) {
          // The journal may say "pending" for a sync no activity ever ran: only a pending activity makes it late.
          const activities = await pendingActivitiesOf(deployment, `call:${tenantId}:${subject}`);
          if (activities.length > 0) late = `CRM sync ${row.crm_sync_state}, activity ${activities.join(', ')} pending`;
          else expectation.why = `journal says CRM ${row.crm_sync_state}, call ${row.status}, but no ledger entry and no pending activity: nothing works on it`;
        } else if (row) expectation.why = `journal says CRM ${row.crm_sync_state}, call ${row.status}`;
        else expectation.why = 'no journal row for the call';
        break;
      }
      case 'message': {
        const skipped = skippedByLeadFlow.get(`${tenantId} ${subject} ${rest}`);
        const pending = [...pendingByKey.values()].find((effect) => effect.tenant_id === tenantId && effect.effect_key.startsWith(`wa:${subject}:${rest}`));
        const lead = leadsByKey.get(`${tenantId} ${subject}`);
        if (pending) late = `ledger ${pending.state} after ${pending.attempts} attempts${pending.last_error ? ` (${pending.last_error.slice(0, 120)})` : ''}`;
        else if (skipped) expectation.why = `skipped by the lead flow: ${skipped}`;
        else expectation.why = lead ? `never sent, never skipped; the lead is ${lead.stage}, phone ${lead.has_phone ? 'known' : 'missing'}` : 'no lead row';
        break;
      }
    }
    expectation.copies = 0;
    expectation.missing = late ? 'late' : 'lost';
    if (late) expectation.why = late;
  }

  const totals = Object.fromEntries(checkNames.map((check) => [check, { expected: 0, found: 0, lost: 0, late: 0, duplicated: 0 }])) as Record<CheckName, CheckTotals>;
  for (const expectation of expectations) {
    const total = totals[expectation.check];
    total.expected++;
    if (expectation.foundAt !== undefined) total.found++;
    if (expectation.missing === 'lost') total.lost++;
    if (expectation.missing === 'late') total.late++;
    total.duplicated += Math.max(0, expectation.copies - 1);
  }

  // Effects no expectation names: each is a duplicate of nothing, or work done for a call that never needed it.
  const expectedIds = new Set(expectations.map((expectation) => `${expectation.check} ${expectation.key}`));
  const completeCalls = new Set(plan.calls.filter((call) => isComplete(call, traffic.outcomes)).map((call) => `${deployment.tenants[call.tenantIndex]?.id ?? '?'} ${call.callId}`));
  const unexpected: Unexpected[] = [];
  const stray = new Map<CheckName, string[]>();
  for (const [id, hit] of effects) {
    if (expectedIds.has(id)) continue;
    const [check = '', tenantId = '', subject = ''] = id.split(' ');
    // A call that was never fully accepted may or may not have its note; more than one is a duplicate all the same.
    if ((check === 'crm_note' || check === 'crm_task') && !completeCalls.has(`${tenantId} ${subject}`) && hit.copies <= 1) continue;
    if (check === 'journal' || check === 'message') {
      // Journal rows of deliveries refused in the end but stored anyway, and reminders not yet due when counted, are fine once.
      if (hit.copies <= 1) continue;
    }
    const list = stray.get(check as CheckName) ?? [];
    list.push(`${tenantId} ${subject}${hit.copies > 1 ? ` ×${hit.copies}` : ''}`);
    stray.set(check as CheckName, list);
  }
  for (const [check, list] of stray) unexpected.push({ what: `${checkLabels[check]}: effects no accepted event asked for`, count: list.length, samples: list.slice(0, 5) });
  if (unexpectedIncomingLeads.length > 0) unexpected.push({ what: 'Kommo incoming leads (every caller is a known contact: none should exist)', count: unexpectedIncomingLeads.length, samples: unexpectedIncomingLeads.slice(0, 5) });

  const stuck: Stuck[] = [];
  const inbox = await db.query<{ waiting: number; dead: number }>(`SELECT count(*) FILTER (WHERE dead_at IS NULL)::int AS waiting, count(*) FILTER (WHERE dead_at IS NOT NULL)::int AS dead FROM event_inbox`);
  const inboxRow = inbox.rows[0] ?? { waiting: 0, dead: 0 };
  if (inboxRow.waiting > 0) stuck.push({ what: 'inbox rows still waiting', count: inboxRow.waiting, samples: [...inboxWorkflows].slice(0, 5) });
  if (inboxRow.dead > 0) {
    const dead = await db.query<{ workflow_id: string; last_error: string | null }>('SELECT workflow_id, last_error FROM event_inbox WHERE dead_at IS NOT NULL LIMIT 5');
    stuck.push({ what: 'dead letters in the inbox', count: inboxRow.dead, samples: dead.rows.map((row) => `${row.workflow_id}: ${(row.last_error ?? '').slice(0, 120)}`) });
  }
  const runningCalls = await countWorkflows(deployment, 'WorkflowType = "callWorkflow" AND ExecutionStatus = "Running"');
  if (runningCalls !== 0) stuck.push({ what: 'call workflows still running past their wrap-up', count: runningCalls, samples: await sampleIds(deployment, 'WorkflowType = "callWorkflow" AND ExecutionStatus = "Running"') });
  const runningLeads = await countWorkflows(deployment, 'WorkflowType = "leadWorkflow" AND ExecutionStatus = "Running"');
  const closedBadly = await countWorkflows(deployment, terminalQuery);
  if (closedBadly !== 0) stuck.push({ what: 'workflows failed, terminated or timed out', count: closedBadly, samples: await sampleIds(deployment, terminalQuery) });
  const acceptedLeads = new Set(plan.leads.filter((lead) => traffic.outcomes[lead.created]?.acceptedAt !== undefined).map((lead) => lead.leadId));
  if (runningLeads >= 0 && runningLeads < acceptedLeads.size) stuck.push({ what: 'lead workflows not running (each accepted lead should be)', count: acceptedLeads.size - runningLeads, samples: [] });
  if (pendingEffects.rows.length > 0) {
    stuck.push({
      what: 'ledger entries pending or failed (external_effects)',
      count: pendingEffects.rows.length,
      samples: pendingEffects.rows.slice(0, 5).map((row) => `${row.tenant_id} ${row.effect_key}: ${row.state}, ${row.attempts} attempts${row.last_error ? ` (${row.last_error.slice(0, 100)})` : ''}`),
    });
  }
  const unsynced = openSyncs.rows.filter((row) => completeCalls.has(`${row.tenant_id} ${row.call_id}`) && row.crm_sync_state !== 'synced');
  if (unsynced.length > 0) stuck.push({ what: 'complete calls whose CRM sync is not `synced`', count: unsynced.length, samples: unsynced.slice(0, 5).map((row) => `${row.tenant_id} ${row.call_id}: ${row.crm_sync_state}`) });
  const open = openSyncs.rows.filter((row) => completeCalls.has(`${row.tenant_id} ${row.call_id}`) && row.status !== 'completed');
  if (open.length > 0) stuck.push({ what: 'complete calls whose journal row is not `completed`', count: open.length, samples: open.slice(0, 5).map((row) => `${row.tenant_id} ${row.call_id}: ${row.status}`) });
  const overdue = await db.query<{ tenant_id: string; lead_id: string; next_action: string | null; next_action_at: Date }>(
    `SELECT tenant_id, lead_id, next_action, next_action_at FROM leads WHERE tenant_id = ANY($1) AND next_action_at < now() - interval '2 minutes'`,
    [tenantIds],
  );
  if (overdue.rows.length > 0) stuck.push({ what: 'leads with a step overdue by more than 2 minutes', count: overdue.rows.length, samples: overdue.rows.slice(0, 5).map((row) => `${row.tenant_id} ${row.lead_id}: ${row.next_action ?? '?'} due ${row.next_action_at.toISOString()}`) });

  return { expectations, totals, unexpected, stuck, drain: drained, workflows: { runningCalls, runningLeads, closedBadly } };
}
