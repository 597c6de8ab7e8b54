/**
 * Outcome analytics (migrations/0009_outcome_analytics.sql, db/analytics.ts): known leads, sends,
 * statuses, replies and stage changes go into the ledger and the timeline; the views and the
 * analytics must equal what this file computes from the same data on its own, on each lead's clock.
 */
import assert from 'node:assert/strict';
import { dashboardCharts, outcomeAnalytics } from '../../db/analytics.js';
import type { OutcomeCounts } from '../../db/analytics.js';
import type { Db } from '../../db/pool.js';
import { createTestDatabase } from '../harness/postgres.js';
import { startCallWorld } from '../harness/call-world.js';
import type { CallWorld } from '../harness/call-world.js';

const tenant = 'analytics-t';
const zones = ['America/New_York', 'Asia/Tokyo', 'Europe/Berlin', 'UTC'] as const;
const flows: Array<[string, string]> = [['welcome', 'message'], ['follow_up', 'first'], ['follow_up', 'second'], ['reminder', 'day_before']];
const templates = ['welcome_v2', 'follow_up_1', null] as const;

/** A small seeded generator, so a failure replays. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

interface Send {
  leadId: string;
  zone: string;
  at: number;
  flow: string;
  step: string;
  /** undefined: the send failed before WhatsApp took it. */
  wamid?: string;
  template: string | null;
  ledgerStatus?: 'accepted' | 'sent' | 'delivered' | 'read' | 'failed';
  statusEvents: string[];
}
interface LeadData {
  leadId: string;
  zone: string;
  sends: Send[];
  replies: number[];
  stages: Array<{ at: number; to: string }>;
}

const base = Date.parse('2026-03-02T00:00:00Z');
const hour = 3_600_000;

function makeLeads(): LeadData[] {
  const next = random(15);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)] as T;
  const leads: LeadData[] = [];
  for (let index = 0; index < 40; index++) {
    const leadId = `L${index}`;
    const zone = pick(zones);
    const lead: LeadData = { leadId, zone, sends: [], replies: [], stages: [] };
    // Sends spread over 18 days (across New York's DST change on 8 March), whole seconds, never tied.
    let at = base + Math.floor(next() * 18 * 24) * hour + index * 1000;
    const count = 1 + Math.floor(next() * 4);
    for (let n = 0; n < count; n++) {
      const [flow, step] = pick(flows);
      const failedToSend = next() < 0.1;
      const ledgerStatus = pick(['accepted', 'sent', 'delivered', 'read', 'read', 'failed'] as const);
      // Statuses the webhooks reported (a read may come without its delivered).
      const statusEvents = ledgerStatus === 'read' ? (next() < 0.5 ? ['read'] : ['delivered', 'read']) : ledgerStatus === 'delivered' ? ['delivered'] : ledgerStatus === 'failed' ? ['failed'] : [];
      lead.sends.push({ leadId, zone, at, flow, step, template: pick(templates), statusEvents, ...(failedToSend ? {} : { wamid: `wamid.${leadId}.${n}`, ledgerStatus }) });
      const gap = (2 + Math.floor(next() * 30)) * hour;
      if (!failedToSend && next() < 0.5) lead.replies.push(at + Math.floor(next() * gap * 1.2 / 1000) * 1000 + 1000);
      if (next() < 0.25) lead.stages.push({ at: at + Math.floor(next() * gap / 1000) * 1000 + 1000, to: pick(['booked', 'attended', 'opted_out', 'engaged'] as const) });
      at += gap;
    }
    leads.push(lead);
  }
  return leads;
}

async function store(db: Db, leads: LeadData[], tenantId = tenant): Promise<void> {
  for (const lead of leads) {
    await db.query(
      `INSERT INTO leads (tenant_id, lead_id, workflow_id, version, stage, time_zone, state) VALUES ($1, $2, $3, 1, 'contacted', $4, '{}')`,
      [tenantId, lead.leadId, `lead:${tenantId}:${lead.leadId}`, lead.zone],
    );
    const entry = (key: string, at: number, kind: string, flow: string | null, step: string | null, detail: object) =>
      db.query(`INSERT INTO lead_timeline (tenant_id, lead_id, entry_key, at, kind, flow, step, cause, detail) VALUES ($1,$2,$3,$4,$5,$6,$7,'test',$8)`, [
        tenantId, lead.leadId, key, new Date(at), kind, flow, step, JSON.stringify(detail),
      ]);
    for (const [n, send] of lead.sends.entries()) {
      const key = `${send.flow}:${send.step}:${n}`;
      // What else a timeline holds, which no send counts: the schedule, an operator's note.
      await entry(`scheduled:${key}`, send.at - 60_000, 'scheduled', send.flow, send.step, {});
      if (!send.wamid) {
        await entry(`failed:${key}:send`, send.at, 'failed', send.flow, send.step, { error: 'refused' });
        continue;
      }
      await entry(`sent:${key}`, send.at, 'sent', send.flow, send.step, { messageId: send.wamid, as: send.template ? 'template' : 'text' });
      await db.query(`INSERT INTO whatsapp_messages (tenant_id, wamid, effect_key, lead_id, kind, template_name, status) VALUES ($1,$2,$3,$4,$5,$6,$7)`, [
        tenantId, send.wamid, `wa:${lead.leadId}:${key}`, lead.leadId, send.template ? 'template' : 'text', send.template, send.ledgerStatus,
      ]);
      for (const status of send.statusEvents) {
        await db.query(`INSERT INTO whatsapp_status_events (tenant_id, wamid, status, occurred_at, payload) VALUES ($1,$2,$3,$4,'{}')`, [tenantId, send.wamid, status, new Date(send.at + 5000)]);
        if (status !== 'sent') await entry(`status:${send.wamid}:${status}`, send.at + 5000, status, null, null, { messageId: send.wamid });
      }
    }
    for (const [n, at] of lead.replies.entries()) await entry(`event:reply-${n}`, at, 'replied', null, null, {});
    for (const [n, stage] of lead.stages.entries()) await entry(`stage:${stage.to}:${n}`, stage.at, 'stage', null, null, { from: 'contacted', to: stage.to });
    await entry('operator:note', base, 'operator', null, null, { operator: 'ops' });
  }
  // Another tenant's data never counts.
  await db.query(`INSERT INTO lead_timeline (tenant_id, lead_id, entry_key, at, kind, flow, step, cause) VALUES ('other', 'X', 'sent:x', $1, 'sent', 'welcome', 'message', 'test')`, [new Date(base + hour)]);
}

interface Outcome {
  send: Send;
  date: string;
  hour: number;
  weekday: number;
  sent: boolean;
  delivered: boolean;
  read: boolean;
  replied: boolean;
  secondsToReply?: number;
  booked: boolean;
  attended: boolean;
  optedOut: boolean;
  failed: boolean;
}

const weekdays: Record<string, number> = { Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6, Sun: 7 };

function localParts(at: number, zone: string): { date: string; hour: number; weekday: number } {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-US', { timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', hourCycle: 'h23', weekday: 'short' })
      .formatToParts(new Date(at))
      .map((part) => [part.type, part.value]),
  );
  return { date: `${parts.year}-${parts.month}-${parts.day}`, hour: Number(parts.hour), weekday: weekdays[parts.weekday ?? ''] ?? 0 };
}

/** The rules as the README states them: what follows a send counts for it until the lead's next send. */
function expectedOutcomes(leads: LeadData[]): Outcome[] {
  const outcomes: Outcome[] = [];
  for (const lead of leads) {
    const sent = lead.sends.filter((send) => send.wamid);
    for (const send of lead.sends) {
      const next = sent.find((other) => other.at > send.at)?.at ?? Infinity;
      const isSent = send.wamid !== undefined;
      const firstReply = isSent ? Math.min(...lead.replies.filter((at) => at > send.at && at <= next)) : Infinity;
      const stages = isSent ? lead.stages.filter((stage) => stage.at >= send.at && stage.at < next).map((stage) => stage.to) : [];
      const seen = new Set([...send.statusEvents, send.ledgerStatus]);
      outcomes.push({
        send,
        ...localParts(send.at, send.zone),
        sent: isSent,
        delivered: isSent && (seen.has('delivered') || seen.has('read')),
        read: isSent && seen.has('read'),
        replied: Number.isFinite(firstReply),
        ...(Number.isFinite(firstReply) ? { secondsToReply: (firstReply - send.at) / 1000 } : {}),
        booked: stages.includes('booked'),
        attended: stages.includes('attended'),
        optedOut: stages.includes('opted_out'),
        failed: !isSent || send.ledgerStatus === 'failed',
      });
    }
  }
  return outcomes;
}

function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return Math.round(sorted.length % 2 === 1 ? (sorted[middle] ?? 0) : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2);
}

const ratio = (part: number, whole: number): number | null => (whole === 0 ? null : Math.round((part / whole) * 10_000) / 10_000);

function countsOf(outcomes: Outcome[]): OutcomeCounts {
  const n = (test: (outcome: Outcome) => boolean) => outcomes.filter(test).length;
  const sent = n((o) => o.sent);
  const replied = n((o) => o.replied);
  const booked = n((o) => o.booked);
  return {
    sent, delivered: n((o) => o.delivered), read: n((o) => o.read), replied, booked,
    attended: n((o) => o.attended), optedOut: n((o) => o.optedOut), failed: n((o) => o.failed),
    replyRate: ratio(replied, sent), bookingRate: ratio(booked, sent),
    medianSecondsToReply: median(outcomes.flatMap((o) => (o.secondsToReply === undefined ? [] : [o.secondsToReply]))),
  };
}

function groupBy<K extends string | number | null>(outcomes: Outcome[], key: (outcome: Outcome) => K): Map<K, Outcome[]> {
  const groups = new Map<K, Outcome[]>();
  for (const outcome of outcomes) groups.set(key(outcome), [...(groups.get(key(outcome)) ?? []), outcome]);
  return groups;
}

describe('outcome analytics (reporting views over the ledger and the timeline)', () => {
  let db: Db;
  const leads = makeLeads();
  const expected = expectedOutcomes(leads);

  before(async () => {
    ({ db } = await createTestDatabase('analytics'));
    await store(db, leads);
  });

  it('the data exercises every outcome', () => {
    const totals = countsOf(expected);
    for (const [name, value] of Object.entries(totals)) if (typeof value === 'number') assert.ok(value > 0, `no ${name} in the test data`);
    assert.ok(expected.some((o) => !o.sent), 'a failed send');
    assert.ok(new Set(expected.map((o) => o.send.zone)).size === zones.length);
  });

  it('per flow and step: counts, conversion to reply and booking, median time to reply', async () => {
    const analytics = await outcomeAnalytics(db, tenant, '2026-03-01', '2026-03-31');
    const steps = [...groupBy(expected, (o) => `${o.send.flow}/${o.send.step}`)].map(([key, group]) => {
      const [flow = '', step = ''] = key.split('/');
      return { flow, step, ...countsOf(group) };
    });
    const byKey = (a: { flow: string; step: string }, b: { flow: string; step: string }) => `${a.flow}/${a.step}`.localeCompare(`${b.flow}/${b.step}`);
    assert.deepEqual([...analytics.steps].sort(byKey), steps.sort(byKey));
    assert.deepEqual(analytics.totals, countsOf(expected));

    // The BI view says the same.
    const view = await db.query<{ flow: string; step: string; sent: number; delivered: number; read: number; replied: number; booked: number; attended: number; opted_out: number; failed: number; reply_rate: string | null; booking_rate: string | null; median_seconds_to_reply: number | null }>(
      'SELECT * FROM reporting_step_outcomes WHERE tenant_id = $1',
      [tenant],
    );
    const fromView = view.rows.map((row) => ({
      flow: row.flow, step: row.step, sent: row.sent, delivered: row.delivered, read: row.read, replied: row.replied, booked: row.booked,
      attended: row.attended, optedOut: row.opted_out, failed: row.failed,
      replyRate: row.reply_rate === null ? null : Number(row.reply_rate), bookingRate: row.booking_rate === null ? null : Number(row.booking_rate),
      medianSecondsToReply: row.median_seconds_to_reply === null ? null : Math.round(row.median_seconds_to_reply),
    }));
    assert.deepEqual(fromView.sort(byKey), steps.sort(byKey));
  });

  it('by template, by hour and by weekday on the lead\'s own clock', async () => {
    const analytics = await outcomeAnalytics(db, tenant, '2026-03-01', '2026-03-31');
    const templatesExpected = [...groupBy(expected, (o) => (o.sent ? o.send.template : null))].map(([template, group]) => ({ template, ...countsOf(group) }));
    const byTemplate = (a: { template: string | null }, b: { template: string | null }) => String(a.template).localeCompare(String(b.template));
    assert.deepEqual([...analytics.byTemplate].sort(byTemplate), templatesExpected.sort(byTemplate));
    const hours = [...groupBy(expected, (o) => o.hour)].map(([value, group]) => ({ hour: value, ...countsOf(group) })).sort((a, b) => a.hour - b.hour);
    assert.deepEqual(analytics.byHour, hours);
    const days = [...groupBy(expected, (o) => o.weekday)].map(([value, group]) => ({ weekday: value, ...countsOf(group) })).sort((a, b) => a.weekday - b.weekday);
    assert.deepEqual(analytics.byWeekday, days);
  });

  it('a date range counts the sends made on those dates of the leads\' clocks', async () => {
    const analytics = await outcomeAnalytics(db, tenant, '2026-03-05', '2026-03-09');
    const inRange = expected.filter((o) => o.date >= '2026-03-05' && o.date <= '2026-03-09');
    assert.ok(inRange.length > 0 && inRange.length < expected.length);
    assert.deepEqual(analytics.totals, countsOf(inRange));
  });

  it('the charts: sends and replies per hour of the day, and the funnel', async () => {
    const now = new Date('2026-03-10T20:00:00Z');
    const charts = await dashboardCharts(db, tenant, 'America/New_York', 20, now);
    assert.equal(charts.date, '2026-03-10');
    const sendsExpected = Array.from({ length: 24 }, (_, h) => expected.filter((o) => o.sent && o.date === '2026-03-10' && o.hour === h).length);
    assert.deepEqual(charts.sendsPerHour, sendsExpected);
    const repliesExpected = Array.from({ length: 24 }, () => 0);
    for (const lead of leads) {
      for (const at of lead.replies) {
        const local = localParts(at, lead.zone);
        if (local.date === '2026-03-10') repliesExpected[local.hour] = (repliesExpected[local.hour] ?? 0) + 1;
      }
    }
    assert.deepEqual(charts.repliesPerHour, repliesExpected);
    const window = expected.filter((o) => o.date >= charts.funnelFrom && o.date <= '2026-03-10');
    const totals = countsOf(window);
    assert.deepEqual(charts.funnel, { sent: totals.sent, delivered: totals.delivered, read: totals.read, replied: totals.replied, booked: totals.booked, attended: totals.attended });
  });

  it('the charts: calls per hour today against last week, service level and handle time per hour', async () => {
    const call = (id: string, startedAt: string, direction: string, disposition: string, wait: number, duration: number) =>
      db.query(
        `INSERT INTO calls (tenant_id, call_id, provider, provider_call_id, workflow_id, version, status, direction, disposition, started_at, wait_seconds, duration_seconds, enrichment_state, crm_sync_state, snapshot)
         VALUES ($1, $2, 'pbx', $2, $2, 1, 'completed', $3, $4, $5, $6, $7, 'done', 'synced', '{}')`,
        [tenant, id, direction, disposition, startedAt, wait, duration],
      );
    // Berlin: 09:xx local is 08:xx UTC on 10 March; last week's Tuesday is 3 March.
    await call('c1', '2026-03-10T08:05:00Z', 'inbound', 'answered', 10, 100);
    await call('c2', '2026-03-10T08:40:00Z', 'inbound', 'answered', 40, 200);
    await call('c3', '2026-03-10T08:50:00Z', 'inbound', 'missed', 30, 0);
    await call('c4', '2026-03-10T13:10:00Z', 'outbound', 'answered', 0, 300);
    await call('c5', '2026-03-03T08:15:00Z', 'inbound', 'answered', 5, 50);
    await call('c6', '2026-03-09T22:59:00Z', 'inbound', 'answered', 5, 50); // 23:59 on the 9th in Berlin: not today
    const charts = await dashboardCharts(db, tenant, 'Europe/Berlin', 20, new Date('2026-03-10T15:00:00Z'));
    assert.equal(charts.lastWeekDate, '2026-03-03');
    assert.equal(charts.callsPerHour.today[9], 3);
    assert.equal(charts.callsPerHour.today[14], 1);
    assert.equal(charts.callsPerHour.today.reduce((a, b) => a + b, 0), 4);
    assert.deepEqual(charts.callsPerHour.lastWeek.map((value, h) => (value ? h : -1)).filter((h) => h >= 0), [9]);
    assert.equal(charts.serviceLevel.percent[9], 33.3);
    assert.equal(charts.serviceLevel.percent[14], null, 'no inbound call offered at 14:00');
    assert.equal(charts.averageHandleSeconds[9], 150);
    assert.equal(charts.averageHandleSeconds[14], 300);
  });
});

describe('outcome analytics over HTTP', () => {
  let world: CallWorld;
  before(async () => {
    world = await startCallWorld();
    await store(world.db, makeLeads().slice(0, 10), world.tenantId);
  });
  after(async () => world?.stop());

  const get = (path: string, token = world.tenant.secrets.operatorToken) =>
    fetch(`${world.api.baseUrl}/api/${world.tenantId}/${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });

  it('answers the same figures as the views, for the dates asked', async () => {
    const response = await get('analytics/outcomes?from=2026-03-01&to=2026-03-31');
    assert.equal(response.status, 200);
    const body = (await response.json()) as { from: string; to: string; totals: OutcomeCounts };
    assert.equal(body.from, '2026-03-01');
    assert.equal(body.to, '2026-03-31');
    assert.deepEqual(body, await outcomeAnalytics(world.db, world.tenantId, '2026-03-01', '2026-03-31'));
    assert.ok(body.totals.sent > 0);
    // Either end alone: 30 days from it.
    const from = (await (await get('analytics/outcomes?from=2026-03-01')).json()) as { to: string };
    assert.equal(from.to, '2026-03-30');
  });

  it('refuses bad query input with a reason and the fields', async () => {
    for (const query of ['from=2026-03-10&to=2026-03-01', 'from=10.03.2026', 'to=2026-02-30', 'from=2024-01-01&to=2026-01-01', 'days=3']) {
      const response = await get(`analytics/outcomes?${query}`);
      assert.equal(response.status, 422, query);
      const body = (await response.json()) as { error: string; details: { fields: Record<string, string> } };
      assert.equal(body.error, 'invalid_payload', query);
      assert.ok(Object.keys(body.details.fields).length > 0, query);
    }
    assert.equal((await get('analytics/charts?date=2026-03-01')).status, 422);
    assert.equal((await get('analytics/charts', '')).status, 401);
    const charts = await get('analytics/charts');
    assert.equal(charts.status, 200);
    assert.equal(((await charts.json()) as { callsPerHour: { today: number[] } }).callsPerHour.today.length, 24);
  });
});
