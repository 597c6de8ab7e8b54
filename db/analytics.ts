/**
 * Outcome analytics and the dashboard's charts. The outcomes are read from the reporting views of
 * migrations/0009_outcome_analytics.sql (the message ledger and the lead timeline, on each lead's
 * own clock); the call charts from the call journal, on the tenant's clock. Figures only: no ids,
 * phone numbers, names or message text leave here.
 */
import { localDate } from '../shared/send-window.js';
import type { Db } from './pool.js';

export interface OutcomeCounts {
  sent: number;
  delivered: number;
  read: number;
  replied: number;
  booked: number;
  attended: number;
  optedOut: number;
  failed: number;
  /** replied / sent, 0 to 1; null when nothing was sent. */
  replyRate: number | null;
  /** booked / sent, 0 to 1; null when nothing was sent. */
  bookingRate: number | null;
  medianSecondsToReply: number | null;
}

export interface OutcomeAnalytics {
  /** The lead-local dates covered, inclusive (YYYY-MM-DD). */
  from: string;
  to: string;
  totals: OutcomeCounts;
  steps: Array<OutcomeCounts & { flow: string; step: string }>;
  byTemplate: Array<OutcomeCounts & { template: string | null }>;
  /** Hour of the day on the lead's clock, 0 to 23. */
  byHour: Array<OutcomeCounts & { hour: number }>;
  /** ISO weekday on the lead's clock, 1 (Monday) to 7 (Sunday). */
  byWeekday: Array<OutcomeCounts & { weekday: number }>;
  /** WhatsApp, or SMS (the fallback). */
  byChannel: Array<OutcomeCounts & { channel: string }>;
  /** The WhatsApp number sends went from (`default` or a name under `whatsapp.senders`); null before sender numbers and for SMS. */
  bySender: Array<OutcomeCounts & { sender: string | null }>;
  /** The language the message went in; null when not recorded. */
  byLanguage: Array<OutcomeCounts & { language: string | null }>;
}

/** The aggregates of reporting_step_outcomes, for any grouping of reporting_lead_sends. */
const outcomeColumns = `
  count(*) FILTER (WHERE sent)::int AS sent,
  count(*) FILTER (WHERE delivered)::int AS delivered,
  count(*) FILTER (WHERE read)::int AS read,
  count(*) FILTER (WHERE replied)::int AS replied,
  count(*) FILTER (WHERE booked)::int AS booked,
  count(*) FILTER (WHERE attended)::int AS attended,
  count(*) FILTER (WHERE opted_out)::int AS opted_out,
  count(*) FILTER (WHERE failed)::int AS failed,
  (round(count(*) FILTER (WHERE replied)::numeric / NULLIF(count(*) FILTER (WHERE sent), 0), 4))::float AS reply_rate,
  (round(count(*) FILTER (WHERE booked)::numeric / NULLIF(count(*) FILTER (WHERE sent), 0), 4))::float AS booking_rate,
  (percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds_to_reply))::float AS median_seconds_to_reply`;

interface OutcomeRow {
  grouped_by: 'total' | 'step' | 'template' | 'hour' | 'weekday' | 'channel' | 'sender' | 'language';
  flow: string | null;
  step: string | null;
  template: string | null;
  local_hour: number | null;
  local_weekday: number | null;
  channel: string | null;
  sender: string | null;
  language: string | null;
  sent: number;
  delivered: number;
  read: number;
  replied: number;
  booked: number;
  attended: number;
  opted_out: number;
  failed: number;
  reply_rate: number | null;
  booking_rate: number | null;
  median_seconds_to_reply: number | null;
}

const countsOf = (row: OutcomeRow): OutcomeCounts => ({
  sent: row.sent,
  delivered: row.delivered,
  read: row.read,
  replied: row.replied,
  booked: row.booked,
  attended: row.attended,
  optedOut: row.opted_out,
  failed: row.failed,
  replyRate: row.reply_rate,
  bookingRate: row.booking_rate,
  medianSecondsToReply: row.median_seconds_to_reply === null ? null : Math.round(row.median_seconds_to_reply),
});

const emptyCounts: OutcomeCounts = { sent: 0, delivered: 0, read: 0, replied: 0, booked: 0, attended: 0, optedOut: 0, failed: 0, replyRate: null, bookingRate: null, medianSecondsToReply: null };

/** The tenant's outcomes for sends made on lead-local dates `from` to `to` (inclusive), in one pass over the view. */
export async function outcomeAnalytics(db: Db, tenantId: string, from: string, to: string): Promise<OutcomeAnalytics> {
  const result = await db.query<OutcomeRow>(
    `SELECT CASE
              WHEN GROUPING(flow, step) = 0 THEN 'step'
              WHEN GROUPING(template) = 0 THEN 'template'
              WHEN GROUPING(local_hour) = 0 THEN 'hour'
              WHEN GROUPING(local_weekday) = 0 THEN 'weekday'
              WHEN GROUPING(channel) = 0 THEN 'channel'
              WHEN GROUPING(sender) = 0 THEN 'sender'
              WHEN GROUPING(language) = 0 THEN 'language'
              ELSE 'total' END AS grouped_by,
            flow, step, template, local_hour, local_weekday, channel, sender, language, ${outcomeColumns}
       FROM reporting_lead_sends
      WHERE tenant_id = $1 AND local_date BETWEEN $2::date AND $3::date
      GROUP BY GROUPING SETS ((flow, step), (template), (local_hour), (local_weekday), (channel), (sender), (language), ())
      ORDER BY grouped_by, flow, step, template NULLS LAST, local_hour, local_weekday, channel, sender NULLS LAST, language NULLS LAST`,
    [tenantId, from, to],
  );
  const analytics: OutcomeAnalytics = { from, to, totals: emptyCounts, steps: [], byTemplate: [], byHour: [], byWeekday: [], byChannel: [], bySender: [], byLanguage: [] };
  for (const row of result.rows) {
    const counts = countsOf(row);
    if (row.grouped_by === 'total') analytics.totals = counts;
    else if (row.grouped_by === 'step') analytics.steps.push({ flow: row.flow ?? '', step: row.step ?? '', ...counts });
    else if (row.grouped_by === 'template') analytics.byTemplate.push({ template: row.template, ...counts });
    else if (row.grouped_by === 'hour' && row.local_hour !== null) analytics.byHour.push({ hour: row.local_hour, ...counts });
    else if (row.grouped_by === 'weekday' && row.local_weekday !== null) analytics.byWeekday.push({ weekday: row.local_weekday, ...counts });
    else if (row.grouped_by === 'channel' && row.channel !== null) analytics.byChannel.push({ channel: row.channel, ...counts });
    else if (row.grouped_by === 'sender') analytics.bySender.push({ sender: row.sender, ...counts });
    else if (row.grouped_by === 'language') analytics.byLanguage.push({ language: row.language, ...counts });
  }
  return analytics;
}

/** Only the totals of `outcomeAnalytics` (the charts' funnel): one aggregate, no breakdowns to drop. */
async function outcomeTotals(db: Db, tenantId: string, from: string, to: string): Promise<OutcomeCounts> {
  const result = await db.query<OutcomeRow>(
    `SELECT ${outcomeColumns} FROM reporting_lead_sends WHERE tenant_id = $1 AND local_date BETWEEN $2::date AND $3::date`,
    [tenantId, from, to],
  );
  const row = result.rows[0];
  return row ? countsOf(row) : emptyCounts;
}

/** 24 values, one per hour of the day. */
export type Hourly<T> = T[];

export interface DashboardCharts {
  generatedAt: string;
  /** The tenant's date the charts cover (YYYY-MM-DD), and the same weekday a week before. */
  date: string;
  lastWeekDate: string;
  timeZone: string;
  /** Calls started per hour on the tenant's clock: today and the same weekday last week. */
  callsPerHour: { today: Hourly<number>; lastWeek: Hourly<number> };
  /** Per hour today: inbound calls ended that were answered within the threshold (percent; null with none offered), and the mean talk time of answered ones. */
  serviceLevel: { thresholdSeconds: number; percent: Hourly<number | null> };
  averageHandleSeconds: Hourly<number | null>;
  /** Lead sends (successful) and replies per hour of the lead's own clock, on leads' dates equal to `date`. */
  sendsPerHour: Hourly<number>;
  repliesPerHour: Hourly<number>;
  /** The outcome funnel over `funnelFrom` to `date` (lead-local dates). */
  funnelFrom: string;
  funnel: { sent: number; delivered: number; read: number; replied: number; booked: number; attended: number };
}

const hours = <T>(fill: T): Hourly<T> => Array.from({ length: 24 }, () => fill);

/** A date (YYYY-MM-DD) `days` before another. */
export function daysBefore(date: string, days: number): string {
  return new Date(Date.parse(`${date}T00:00:00Z`) - days * 86_400_000).toISOString().slice(0, 10);
}

export const funnelDays = 30;

export async function dashboardCharts(db: Db, tenantId: string, timeZone: string, serviceLevelSeconds: number, now = new Date()): Promise<DashboardCharts> {
  const date = localDate(now.getTime(), timeZone);
  const lastWeekDate = daysBefore(date, 7);
  const funnelFrom = daysBefore(date, funnelDays - 1);
  const [calls, messages, funnel] = await Promise.all([
    db.query<{ day: string; hour: number; started: number; offered: number; within: number; aht: number | null }>(
      `SELECT to_char(started_at AT TIME ZONE $2, 'YYYY-MM-DD') AS day, extract(hour FROM started_at AT TIME ZONE $2)::int AS hour,
              count(*)::int AS started,
              count(*) FILTER (WHERE direction = 'inbound' AND status IN ('ended', 'completed'))::int AS offered,
              count(*) FILTER (WHERE direction = 'inbound' AND status IN ('ended', 'completed') AND disposition = 'answered' AND wait_seconds <= $5)::int AS within,
              (avg(duration_seconds) FILTER (WHERE disposition = 'answered' AND status IN ('ended', 'completed')))::float AS aht
         FROM calls
        WHERE tenant_id = $1
          AND ((started_at >= ($3::date)::timestamp AT TIME ZONE $2 AND started_at < ($3::date + 1)::timestamp AT TIME ZONE $2)
            OR (started_at >= ($4::date)::timestamp AT TIME ZONE $2 AND started_at < ($4::date + 1)::timestamp AT TIME ZONE $2))
        GROUP BY 1, 2`,
      [tenantId, timeZone, date, lastWeekDate, serviceLevelSeconds],
    ),
    db.query<{ hour: number; sends: number; replies: number }>(
      `WITH replies AS (
         SELECT extract(hour FROM t.at AT TIME ZONE COALESCE(l.time_zone, 'UTC'))::int AS hour
           FROM lead_timeline t LEFT JOIN leads l ON l.tenant_id = t.tenant_id AND l.lead_id = t.lead_id
          WHERE t.tenant_id = $1 AND t.kind = 'replied' AND (t.at AT TIME ZONE COALESCE(l.time_zone, 'UTC'))::date = $2::date
       ), sends AS (
         SELECT local_hour AS hour FROM reporting_lead_sends WHERE tenant_id = $1 AND sent AND local_date = $2::date
       )
       SELECT hour, sum(sends)::int AS sends, sum(replies)::int AS replies
         FROM (SELECT hour, 1 AS sends, 0 AS replies FROM sends UNION ALL SELECT hour, 0, 1 FROM replies) AS counted
        GROUP BY hour`,
      [tenantId, date],
    ),
    outcomeTotals(db, tenantId, funnelFrom, date),
  ]);
  const charts: DashboardCharts = {
    generatedAt: now.toISOString(),
    date,
    lastWeekDate,
    timeZone,
    callsPerHour: { today: hours(0), lastWeek: hours(0) },
    serviceLevel: { thresholdSeconds: serviceLevelSeconds, percent: hours<number | null>(null) },
    averageHandleSeconds: hours<number | null>(null),
    sendsPerHour: hours(0),
    repliesPerHour: hours(0),
    funnelFrom,
    funnel: { sent: funnel.sent, delivered: funnel.delivered, read: funnel.read, replied: funnel.replied, booked: funnel.booked, attended: funnel.attended },
  };
  for (const row of calls.rows) {
    if (row.day === lastWeekDate) {
      charts.callsPerHour.lastWeek[row.hour] = row.started;
      continue;
    }
    charts.callsPerHour.today[row.hour] = row.started;
    charts.serviceLevel.percent[row.hour] = row.offered > 0 ? Math.round((row.within / row.offered) * 1000) / 10 : null;
    charts.averageHandleSeconds[row.hour] = row.aht === null ? null : Math.round(row.aht);
  }
  for (const row of messages.rows) {
    charts.sendsPerHour[row.hour] = row.sends;
    charts.repliesPerHour[row.hour] = row.replies;
  }
  return charts;
}
