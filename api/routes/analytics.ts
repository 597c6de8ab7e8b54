/**
 * Outcome analytics and the dashboard's charts: the JSON (`GET /api/{tenant}/analytics/outcomes`,
 * `GET /api/{tenant}/analytics/charts`) and the page (`/dashboard/{tenant}/analytics`). Registered
 * on the dashboard's router, which owns its sign-in and page helpers.
 */
import type { Request, RequestHandler, Response, Router } from 'express';
import { z } from 'zod';
import type { AppConfig } from '../../config/load.js';
import { dashboardCharts, daysBefore, outcomeAnalytics } from '../../db/analytics.js';
import { localDate } from '../../shared/send-window.js';
import type { DashboardCharts, OutcomeAnalytics, OutcomeCounts } from '../../db/analytics.js';
import type { Db } from '../../db/pool.js';
import { Rejection, fieldErrors, invalidPayload } from '../../ingestion/rejections.js';
import { sendRejection } from '../rejection-response.js';
import { missingIsRequired } from '../validation.js';
import { tenantOf } from '../tenants.js';

/** The default and the longest span of `GET /api/{tenant}/analytics/outcomes`, in days. */
export const defaultOutcomeDays = 30;
export const maxOutcomeDays = 366;

const dateParam = z.iso.date().describe('A date (YYYY-MM-DD) on the leads\' own clocks');
export const outcomeQuerySchema = z
  .strictObject({ from: dateParam.optional(), to: dateParam.optional() })
  .refine((query) => !query.from || !query.to || query.from <= query.to, { message: 'must not be after `to`', path: ['from'] })
  .refine((query) => !query.from || !query.to || Date.parse(query.to) - Date.parse(query.from) < maxOutcomeDays * 86_400_000, {
    message: `the span must be at most ${maxOutcomeDays} days`,
    path: ['from'],
  });
export const chartsQuerySchema = z.strictObject({});

const count = z.number().int().min(0);
const rate = z.number().min(0).max(1).nullable();
const outcomeCountsShape = {
  sent: count.describe('Sends WhatsApp took'),
  delivered: count,
  read: count,
  replied: count.describe('Sends the lead replied to before the next send'),
  booked: count.describe('Sends followed by a booking before the next send'),
  attended: count,
  optedOut: count,
  failed: count.describe('Sends that failed (refused, or reported failed)'),
  replyRate: rate.describe('replied / sent; null when nothing was sent'),
  bookingRate: rate.describe('booked / sent; null when nothing was sent'),
  medianSecondsToReply: z.number().min(0).nullable(),
};
export const outcomeAnalyticsSchema = z.object({
  from: z.iso.date(),
  to: z.iso.date(),
  totals: z.object(outcomeCountsShape),
  steps: z.array(z.object({ flow: z.string(), step: z.string(), ...outcomeCountsShape })),
  byTemplate: z.array(z.object({ template: z.string().nullable().describe('null: free text'), ...outcomeCountsShape })),
  byHour: z.array(z.object({ hour: z.number().int().min(0).max(23), ...outcomeCountsShape })),
  byWeekday: z.array(z.object({ weekday: z.number().int().min(1).max(7).describe('ISO weekday: 1 Monday … 7 Sunday'), ...outcomeCountsShape })),
  byChannel: z.array(z.object({ channel: z.string().describe('`whatsapp`, or `sms` for the fallback'), ...outcomeCountsShape })),
  bySender: z.array(z.object({ sender: z.string().nullable().describe('The WhatsApp number: `default` or a name under `whatsapp.senders`; null for SMS and sends before sender numbers'), ...outcomeCountsShape })),
  byLanguage: z.array(z.object({ language: z.string().nullable().describe('The language the message went in; null when not recorded'), ...outcomeCountsShape })),
}) satisfies z.ZodType<OutcomeAnalytics> satisfies z.ZodType<{ totals: OutcomeCounts }>;

const hourly = <T extends z.ZodType>(value: T) => z.array(value).length(24);
export const dashboardChartsSchema = z.object({
  generatedAt: z.iso.datetime({ offset: true }),
  date: z.iso.date(),
  lastWeekDate: z.iso.date(),
  timeZone: z.string(),
  callsPerHour: z.object({ today: hourly(count), lastWeek: hourly(count) }),
  serviceLevel: z.object({ thresholdSeconds: z.number().min(0), percent: hourly(z.number().min(0).max(100).nullable()) }),
  averageHandleSeconds: hourly(z.number().min(0).nullable()),
  sendsPerHour: hourly(count),
  repliesPerHour: hourly(count),
  funnelFrom: z.iso.date(),
  funnel: z.object({ sent: count, delivered: count, read: count, replied: count, booked: count, attended: count }),
}) satisfies z.ZodType<DashboardCharts>;

export interface AnalyticsRoutesDeps {
  config: AppConfig;
  db: Db;
  apiAuth: RequestHandler<{ tenant: string }>;
  pageAuth: (req: Request<{ tenant: string }>, res: Response, next: () => void) => Promise<void>;
  page: (name: string) => RequestHandler<{ tenant: string }>;
}

function refuseQuery(res: Response, issues: z.core.$ZodIssue[], what: string): void {
  sendRejection(res, invalidPayload(what, fieldErrors(issues)));
}

export function addAnalyticsRoutes(router: Router, deps: AnalyticsRoutesDeps): void {
  const { config, db } = deps;
  router.get('/dashboard/:tenant/analytics', deps.pageAuth, deps.page('analytics.html'));

  router.get('/api/:tenant/analytics/outcomes', deps.apiAuth, async (req: Request<{ tenant: string }>, res: Response) => {
    const query = outcomeQuerySchema.safeParse(req.query, { error: missingIsRequired });
    if (!query.success) return refuseQuery(res, query.error.issues, 'an analytics query');
    const tenant = tenantOf(config, req.params.tenant);
    if (!tenant) return sendRejection(res, new Rejection('unknown_tenant', 'No such tenant'));
    // Either end defaults to `defaultOutcomeDays` from the other; with neither, the days up to the tenant's today.
    const { from: givenFrom, to: givenTo } = query.data;
    const to = givenTo ?? (givenFrom ? daysBefore(givenFrom, 1 - defaultOutcomeDays) : localDate(Date.now(), tenant.timeZone));
    const from = givenFrom ?? daysBefore(to, defaultOutcomeDays - 1);
    res.set('Cache-Control', 'no-store').json(await outcomeAnalytics(db, req.params.tenant, from, to));
  });

  router.get('/api/:tenant/analytics/charts', deps.apiAuth, async (req: Request<{ tenant: string }>, res: Response) => {
    const query = chartsQuerySchema.safeParse(req.query);
    if (!query.success) return refuseQuery(res, query.error.issues, 'a charts query');
    const tenant = tenantOf(config, req.params.tenant);
    if (!tenant) return sendRejection(res, new Rejection('unknown_tenant', 'No such tenant'));
    res.set('Cache-Control', 'no-store').json(await dashboardCharts(db, req.params.tenant, tenant.timeZone, tenant.dashboard.serviceLevelSeconds));
  });
}
