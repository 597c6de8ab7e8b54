/**
 * The supervisor dashboard: sign-in, the live page and the call and lead detail pages (static
 * files in api/dashboard/public), their JSON (a snapshot, and a Server-Sent Events stream fed by
 * PostgreSQL LISTEN/NOTIFY through the live feed, plus a periodic read of the ingest backlog).
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { Router } from 'express';
import type { Request, Response } from 'express';
import { z } from 'zod';
import type { AppConfig } from '../../config/load.js';
import { dashboardSnapshot } from '../../db/dashboard.js';
import { inboxBacklog } from '../../db/inbox.js';
import type { CrmBacklog, DashboardSnapshot } from '../../db/dashboard.js';
import type { InboxBacklog } from '../../db/inbox.js';
import type { Db } from '../../db/pool.js';
import type { Logger } from '../../observability/logger.js';
import { authenticateOperator, checkSameOrigin, requireOperator, sessionCookieName, sessionSeconds, signIn, signOut } from '../auth.js';
import type { LiveChange, LiveFeed, LiveListener } from '../live-feed.js';
import { callListItemSchema } from './calls.js';
import { Rejection } from '../../ingestion/rejections.js';
import { tenantOf } from '../tenants.js';
import { addAnalyticsRoutes } from './analytics.js';

export const dashboardAssets = fileURLToPath(new URL('../dashboard/public', import.meta.url));
/** uPlot, the charts' library, served from node_modules (never a CDN). */
const uplotDist = path.join(path.dirname(createRequire(import.meta.url).resolve('uplot/package.json')), 'dist');

export interface DashboardRouterDeps {
  config: AppConfig;
  db: Db;
  logger: Logger;
  liveFeed?: LiveFeed;
}

/** Pushes a fresh snapshot at most this often while changes keep coming. */
const snapshotDebounceMs = 250;
const heartbeatMs = 15_000;
/**
 * How often open streams re-read the ingest backlog. No journal write announces it: while
 * Temporal is down or slow the backlog grows and nothing else moves.
 */
const backlogRefreshMs = 2_000;

/** `ingestBacklog` of the snapshot and of the stream's `backlog` event (described in the OpenAPI document). */
export const ingestBacklogSchema = z
  .object({
    pending: z.number().int().min(0).describe('Accepted events of the tenant not yet handed to Temporal (waiting or retrying)'),
    oldestAgeSeconds: z.number().min(0).describe('Age of the oldest of them; 0 when none wait'),
    deadLetters: z.number().int().min(0).describe('Events Temporal refused for good, set aside (`npm run cli -- dead-letters`)'),
  })
  .describe("The tenant's ingestion backlog: the PostgreSQL event inbox") satisfies z.ZodType<InboxBacklog>;

/** `crmBacklog` of the snapshot (described in the OpenAPI document). */
export const crmBacklogSchema = z
  .object({
    calls: z.number().int().min(0).describe('Ended calls whose CRM logging is still to come (waiting for its delay, paced under the CRM rate limit, or retrying)'),
    oldestAgeSeconds: z.number().min(0).describe('Seconds since the oldest of them ended; 0 when none wait'),
    loggedPerMinute: z.number().min(0).describe('Calls logged in the CRM per minute over the last 10 minutes'),
    expectedDrainSeconds: z.number().min(0).nullable().describe('How long the backlog takes at that pace; null while nothing was logged lately'),
  })
  .describe("The tenant's CRM backlog, from the call journal") satisfies z.ZodType<CrmBacklog>;

const instant = z.iso.datetime({ offset: true });

/** `GET /api/{tenant}/dashboard/snapshot`, and the stream's `snapshot` event (described in the OpenAPI document). */
export const dashboardSnapshotSchema = z.object({
  generatedAt: instant,
  tenant: z.string(),
  timeZone: z.string(),
  calls: z.object({
    active: z.array(callListItemSchema),
    ringing: z.array(callListItemSchema),
    longestWaitSeconds: z.number().min(0),
    recent: z.array(callListItemSchema),
  }),
  today: z.object({
    since: instant,
    answered: z.number().int().min(0),
    missed: z.number().int().min(0),
    abandoned: z.number().int().min(0),
    offered: z.number().int().min(0),
    serviceLevel: z.object({ thresholdSeconds: z.number().min(0), percent: z.number().min(0).max(100).nullable() }),
    averageHandleSeconds: z.number().nullable(),
    resolutionRate: z.number().min(0).max(100).nullable(),
    averageSatisfaction: z.number().nullable(),
  }),
  leads: z.object({
    byStage: z.record(z.string(), z.number().int().min(0)),
    dueNextHour: z.number().int().min(0),
    recentReplies: z.array(z.object({ leadId: z.string(), at: instant })),
  }),
  ingestBacklog: ingestBacklogSchema,
  crmBacklog: crmBacklogSchema,
}) satisfies z.ZodType<DashboardSnapshot>;

/** The stream's `change` event: a journal write of the tenant (call or lead), announced by PostgreSQL NOTIFY. */
export const liveChangeSchema = z.object({
  tenant: z.string(),
  kind: z.enum(['call', 'lead']),
  id: z.string(),
  status: z.string(),
  version: z.number().int().optional(),
  eventId: z.string().describe('Also the SSE `id`, for Last-Event-ID'),
  at: instant,
}) satisfies z.ZodType<LiveChange>;

/** The stream's `backlog` event: the ingest backlog changed with no journal write. */
export const backlogEventSchema = z.object({ generatedAt: instant, ingestBacklog: ingestBacklogSchema });

/** Every event of `GET /api/{tenant}/dashboard/stream`, by its SSE `event` name. */
export const dashboardStreamEvents = { snapshot: dashboardSnapshotSchema, change: liveChangeSchema, backlog: backlogEventSchema } as const;

type BacklogListener = (backlog: InboxBacklog, at: Date) => void;
interface BacklogWatch {
  listeners: Set<BacklogListener>;
  timer?: NodeJS.Timeout;
}

/**
 * One backlog read per tenant every `backlogRefreshMs`, however many of its streams this process
 * has open; the timer exists only while one is (the last to leave clears it).
 */
function createBacklogWatch(read: (tenant: string) => Promise<InboxBacklog>, logger: Logger): (tenant: string, listener: BacklogListener) => () => void {
  const watches = new Map<string, BacklogWatch>();
  const schedule = (tenant: string, watch: BacklogWatch): void => {
    watch.timer = setTimeout(() => void poll(tenant, watch), backlogRefreshMs);
  };
  const poll = async (tenant: string, watch: BacklogWatch): Promise<void> => {
    try {
      const at = new Date();
      const backlog = await read(tenant);
      for (const listener of watch.listeners) listener(backlog, at);
    } catch (error) {
      logger.warn({ err: error }, 'dashboard backlog read failed');
    }
    // Rescheduled after the read, so a slow database never stacks reads; not when everyone left meanwhile.
    if (watches.get(tenant) === watch) schedule(tenant, watch);
  };
  return (tenant, listener) => {
    let watch = watches.get(tenant);
    if (!watch) {
      watch = { listeners: new Set() };
      watches.set(tenant, watch);
      schedule(tenant, watch);
    }
    const own = watch;
    own.listeners.add(listener);
    return () => {
      own.listeners.delete(listener);
      if (own.listeners.size > 0 || watches.get(tenant) !== own) return;
      clearTimeout(own.timer);
      watches.delete(tenant);
    };
  };
}

/** What the page would show differently: counts, and the age in whole seconds. */
const backlogKey = (backlog: InboxBacklog): string => `${backlog.pending}/${Math.floor(backlog.oldestAgeSeconds)}/${backlog.deadLetters}`;

export function createDashboardRouter(deps: DashboardRouterDeps): Router {
  const { config, db } = deps;
  const router = Router();
  const page = (name: string) => (_req: Request, res: Response) => {
    res.set('Cache-Control', 'no-store').sendFile(path.join(dashboardAssets, name));
  };
  /** Pages redirect to the sign-in page instead of answering 401. */
  const pageAuth = async (req: Request<{ tenant: string }>, res: Response, next: () => void): Promise<void> => {
    try {
      await authenticateOperator(deps, req.params.tenant, req.headers);
      next();
    } catch (error) {
      if (!(error instanceof Rejection)) throw error;
      if (error.reason === 'unknown_tenant') return void res.status(404).json({ error: error.reason, message: error.message });
      res.redirect(303, `/dashboard?tenant=${encodeURIComponent(req.params.tenant)}${error.reason === 'forbidden_tenant' ? '&error=forbidden' : ''}`);
    }
  };
  const apiAuth = requireOperator(deps);
  const snapshotOf = (tenantId: string) => {
    const tenant = tenantOf(config, tenantId);
    if (!tenant) throw new Error(`unknown tenant ${tenantId}`);
    return dashboardSnapshot(db, tenantId, tenant.timeZone, tenant.dashboard.serviceLevelSeconds);
  };
  const watchBacklog = createBacklogWatch((tenantId) => inboxBacklog(db, tenantId), deps.logger);

  router.use('/dashboard/assets', express.static(path.join(dashboardAssets, 'assets'), { fallthrough: false, maxAge: '5m' }));
  router.use('/dashboard/vendor/uplot', express.static(uplotDist, { fallthrough: false, maxAge: '1h' }));
  router.get('/dashboard', page('login.html'));
  router.post('/dashboard/login', express.urlencoded({ extended: false, limit: '4kb' }), async (req: Request, res: Response) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const tenantId = typeof body.tenant === 'string' ? body.tenant.slice(0, 100) : '';
    const token = typeof body.token === 'string' ? body.token.slice(0, 500) : '';
    // The peer's own address: X-Forwarded-For is the client's to write, so it cannot key a limit.
    const outcome = await signIn(deps, tenantId, token, req.socket.remoteAddress ?? 'unknown');
    if (!outcome.ok && outcome.reason === 'rate_limited') {
      res.status(429).set('Retry-After', String(outcome.retryAfterSeconds ?? 60)).json({ error: 'too_many_attempts', message: 'Too many failed sign-ins from this address; try again later' });
      return;
    }
    if (!outcome.ok) {
      res.redirect(303, `/dashboard?tenant=${encodeURIComponent(tenantId)}&error=invalid`);
      return;
    }
    res.cookie(sessionCookieName, outcome.sessionId, { httpOnly: true, sameSite: 'strict', maxAge: sessionSeconds * 1000, path: '/', secure: req.secure });
    res.redirect(303, `/dashboard/${encodeURIComponent(tenantId)}`);
  });
  router.post('/dashboard/logout', async (req: Request, res: Response) => {
    // Only our own page may sign a browser out; the session then ends on the server, not only in the cookie jar.
    checkSameOrigin(config, req.headers);
    await signOut(deps, req.headers.cookie);
    res.clearCookie(sessionCookieName, { path: '/' }).redirect(303, '/dashboard');
  });
  router.get('/dashboard/:tenant', pageAuth, page('index.html'));
  router.get('/dashboard/:tenant/calls/:callId', pageAuth, page('call.html'));
  router.get('/dashboard/:tenant/leads/:leadId', pageAuth, page('lead.html'));
  addAnalyticsRoutes(router, { config, db, apiAuth, pageAuth, page });

  router.get('/api/:tenant/dashboard/context', apiAuth, (req: Request<{ tenant: string }>, res: Response) => {
    const tenant = tenantOf(config, req.params.tenant);
    res.json({
      tenant: req.params.tenant,
      displayName: tenant?.displayName,
      timeZone: tenant?.timeZone,
      serviceLevelSeconds: tenant?.dashboard.serviceLevelSeconds,
      temporal: { webUiUrl: config.temporal.webUiUrl, namespace: config.temporal.namespace },
    });
  });

  router.get('/api/:tenant/dashboard/snapshot', apiAuth, async (req: Request<{ tenant: string }>, res: Response) => {
    res.set('Cache-Control', 'no-store').json(await snapshotOf(req.params.tenant));
  });

  router.get('/api/:tenant/dashboard/stream', apiAuth, async (req: Request<{ tenant: string }>, res: Response) => {
    const tenantId = req.params.tenant;
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
    res.flushHeaders();
    let closed = false;
    const write = (event: string, data: unknown, id?: string): void => {
      if (closed) return;
      res.write(`${id ? `id: ${id}\n` : ''}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    };
    /**
     * A change goes out as the document declares it: the feed's own fields (its sequence number)
     * stay behind, and a notice that lacks a declared field is left to the snapshot that follows.
     */
    const writeChange = (change: LiveChange): void => {
      const declared = liveChangeSchema.safeParse(change);
      if (declared.success) write('change', declared.data, change.eventId);
      else deps.logger.warn({ fields: declared.error.issues.map((issue) => issue.path.join('.')) }, 'dashboard change notice does not match its schema');
    };
    let pending: NodeJS.Timeout | undefined;
    /** The backlog as of the last snapshot or backlog event sent: only a difference is sent again. */
    let sentBacklog: string | undefined;
    const pushSnapshot = async (): Promise<void> => {
      pending = undefined;
      try {
        const snapshot = await snapshotOf(tenantId);
        write('snapshot', snapshot, deps.liveFeed?.lastEventId());
        sentBacklog = backlogKey(snapshot.ingestBacklog);
      } catch (error) {
        deps.logger.warn({ err: error }, 'dashboard snapshot failed');
      }
    };
    const scheduleSnapshot = (): void => {
      pending ??= setTimeout(() => void pushSnapshot(), snapshotDebounceMs);
    };
    const onChange: LiveListener = (change) => {
      if (change.kind === 'closing') {
        // The browser reconnects (with Last-Event-ID) to another process or after the restart.
        res.end();
        return;
      }
      if (change.kind !== 'resync') writeChange(change);
      scheduleSnapshot();
    };
    const unsubscribe = deps.liveFeed?.subscribe(tenantId, onChange);
    // No id: a backlog event is no journal change, so Last-Event-ID keeps naming the last one.
    const unwatchBacklog = watchBacklog(tenantId, (backlog, at) => {
      const key = backlogKey(backlog);
      if (key === sentBacklog) return;
      sentBacklog = key;
      write('backlog', { generatedAt: at.toISOString(), ingestBacklog: backlog });
    });
    let heartbeat: NodeJS.Timeout | undefined;
    // Registered before the first await: a client gone while the first snapshot is read must not
    // leave its subscription, backlog watch and heartbeat behind (a leaked timer also holds the process open).
    res.on('close', () => {
      closed = true;
      if (heartbeat) clearInterval(heartbeat);
      if (pending) clearTimeout(pending);
      unsubscribe?.();
      unwatchBacklog();
    });
    // Catch up after a reconnect: the changes missed (when this process still has them), then a fresh snapshot.
    const lastEventId = typeof req.headers['last-event-id'] === 'string' ? req.headers['last-event-id'] : undefined;
    if (lastEventId) for (const change of deps.liveFeed?.since(tenantId, lastEventId) ?? []) writeChange(change);
    res.write('retry: 2000\n\n');
    await pushSnapshot();
    if (!closed) heartbeat = setInterval(() => res.write(': keep-alive\n\n'), heartbeatMs);
  });

  return router;
}
