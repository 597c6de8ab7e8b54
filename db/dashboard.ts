/** The supervisor dashboard's figures, straight from the journal, the lead projection and the inbox. */
import { listColumns, toListItem } from './call-journal.js';
import type { CallListItem, CallListRow } from './call-journal.js';
import { inboxBacklog } from './inbox.js';
import type { InboxBacklog } from './inbox.js';
import type { Db } from './pool.js';

export interface DashboardSnapshot {
  generatedAt: string;
  tenant: string;
  timeZone: string;
  calls: { active: CallListItem[]; ringing: CallListItem[]; longestWaitSeconds: number; recent: CallListItem[] };
  today: {
    since: string;
    answered: number;
    missed: number;
    abandoned: number;
    offered: number;
    serviceLevel: { thresholdSeconds: number; percent: number | null };
    averageHandleSeconds: number | null;
    resolutionRate: number | null;
    averageSatisfaction: number | null;
  };
  leads: { byStage: Record<string, number>; dueNextHour: number; recentReplies: Array<{ leadId: string; at: string }> };
  /** The tenant's accepted events not yet in Temporal, and those set aside as dead letters. */
  ingestBacklog: InboxBacklog;
  crmBacklog: CrmBacklog;
}

/** Ended calls whose CRM logging is still to come (waiting for its delay or retrying), and when they should be through. */
export interface CrmBacklog {
  calls: number;
  oldestAgeSeconds: number;
  /** Calls logged in the last 10 minutes, per minute: the pace the backlog drains at now. */
  loggedPerMinute: number;
  /** `calls` at that pace; null while nothing was logged lately (no pace to go by). */
  expectedDrainSeconds: number | null;
}

const crmPaceWindowMinutes = 10;

export async function crmBacklog(db: Db, tenantId?: string): Promise<CrmBacklog> {
  const result = await db.query<{ calls: number; oldest: number; logged: number }>(
    `SELECT count(*) FILTER (WHERE crm_sync_state IN ('waiting', 'pending'))::int AS calls,
            COALESCE(EXTRACT(EPOCH FROM now() - min(ended_at) FILTER (WHERE crm_sync_state IN ('waiting', 'pending'))), 0)::float AS oldest,
            count(*) FILTER (WHERE crm_sync_state = 'synced' AND updated_at > now() - make_interval(mins => $2))::int AS logged
       FROM calls
      WHERE status IN ('ended', 'completed') AND crm_sync_state IN ('waiting', 'pending', 'synced') AND ($1::text IS NULL OR tenant_id = $1)`,
    [tenantId ?? null, crmPaceWindowMinutes],
  );
  const row = result.rows[0];
  const calls = row?.calls ?? 0;
  const loggedPerMinute = round((row?.logged ?? 0) / crmPaceWindowMinutes) ?? 0;
  return {
    calls,
    oldestAgeSeconds: calls > 0 ? Math.max(0, Math.round(row?.oldest ?? 0)) : 0,
    loggedPerMinute,
    expectedDrainSeconds: calls === 0 ? 0 : loggedPerMinute > 0 ? Math.round((calls / loggedPerMinute) * 60) : null,
  };
}

const round = (value: number | null, digits = 1): number | null => (value === null ? null : Math.round(value * 10 ** digits) / 10 ** digits);

/**
 * "Today" starts at midnight in the tenant's time zone. Offered = inbound calls that ended;
 * service level = share of them answered within the threshold.
 */
export async function dashboardSnapshot(db: Db, tenant: string, timeZone: string, serviceLevelSeconds: number, now = new Date()): Promise<DashboardSnapshot> {
  const [live, recent, today, stages, due, replies, ingestBacklog, crm] = await Promise.all([
    db.query<CallListRow>(
      `SELECT ${listColumns} FROM calls WHERE tenant_id = $1 AND status IN ('ringing', 'in_progress') AND started_at > $2::timestamptz - interval '6 hours' ORDER BY started_at`,
      [tenant, now],
    ),
    db.query<CallListRow>(`SELECT ${listColumns} FROM calls WHERE tenant_id = $1 AND status IN ('ended', 'completed') ORDER BY ended_at DESC NULLS LAST LIMIT 15`, [tenant]),
    db.query<{ since: Date; answered: number; missed: number; abandoned: number; offered: number; within: number; aht: number | null; resolution: number | null; satisfaction: number | null }>(
      `WITH bounds AS (SELECT date_trunc('day', $2::timestamptz AT TIME ZONE $3) AT TIME ZONE $3 AS since)
       SELECT bounds.since,
         count(*) FILTER (WHERE disposition = 'answered')::int AS answered,
         count(*) FILTER (WHERE direction = 'inbound' AND disposition IN ('missed', 'no_answer'))::int AS missed,
         count(*) FILTER (WHERE disposition = 'abandoned')::int AS abandoned,
         count(*) FILTER (WHERE direction = 'inbound')::int AS offered,
         count(*) FILTER (WHERE direction = 'inbound' AND disposition = 'answered' AND wait_seconds <= $4)::int AS within,
         avg(duration_seconds) FILTER (WHERE disposition = 'answered')::float AS aht,
         avg(CASE WHEN resolved THEN 1.0 WHEN NOT resolved THEN 0.0 END)::float AS resolution,
         avg(satisfaction)::float AS satisfaction
       FROM bounds LEFT JOIN calls ON calls.tenant_id = $1 AND calls.started_at >= bounds.since AND calls.started_at <= $2::timestamptz AND calls.status IN ('ended', 'completed')
       GROUP BY bounds.since`,
      [tenant, now, timeZone, serviceLevelSeconds],
    ),
    db.query<{ stage: string; count: number }>('SELECT stage, count(*)::int AS count FROM leads WHERE tenant_id = $1 GROUP BY stage', [tenant]),
    db.query<{ due: number }>(
      `SELECT count(*)::int AS due FROM leads, jsonb_array_elements(state -> 'planned') AS step
        WHERE tenant_id = $1 AND NOT paused AND NOT opted_out AND step ->> 'step' <> 'check'
          AND (step ->> 'dueAt')::bigint BETWEEN extract(epoch FROM $2::timestamptz) * 1000 AND extract(epoch FROM $2::timestamptz + interval '1 hour') * 1000`,
      [tenant, now],
    ),
    db.query<{ lead_id: string; at: Date }>(`SELECT lead_id, at FROM lead_timeline WHERE tenant_id = $1 AND kind = 'replied' ORDER BY at DESC LIMIT 10`, [tenant]),
    inboxBacklog(db, tenant),
    crmBacklog(db, tenant),
  ]);
  const calls = live.rows.map(toListItem);
  const ringing = calls.filter((call) => call.status === 'ringing');
  const figures = today.rows[0];
  const offered = figures?.offered ?? 0;
  return {
    generatedAt: now.toISOString(),
    tenant,
    timeZone,
    calls: {
      active: calls.filter((call) => call.status === 'in_progress'),
      ringing,
      longestWaitSeconds: ringing.reduce((longest, call) => Math.max(longest, Math.round((now.getTime() - Date.parse(call.startedAt)) / 1000)), 0),
      recent: recent.rows.map(toListItem),
    },
    today: {
      since: (figures?.since ?? now).toISOString(),
      answered: figures?.answered ?? 0,
      missed: figures?.missed ?? 0,
      abandoned: figures?.abandoned ?? 0,
      offered,
      serviceLevel: { thresholdSeconds: serviceLevelSeconds, percent: offered > 0 ? round(((figures?.within ?? 0) / offered) * 100) : null },
      averageHandleSeconds: round(figures?.aht ?? null, 0),
      resolutionRate: figures?.resolution === null || figures?.resolution === undefined ? null : round(figures.resolution * 100),
      averageSatisfaction: round(figures?.satisfaction ?? null, 2),
    },
    leads: {
      byStage: Object.fromEntries(stages.rows.map((row) => [row.stage, row.count])),
      dueNextHour: due.rows[0]?.due ?? 0,
      recentReplies: replies.rows.map((row) => ({ leadId: row.lead_id, at: row.at.toISOString() })),
    },
    ingestBacklog,
    crmBacklog: crm,
  };
}
