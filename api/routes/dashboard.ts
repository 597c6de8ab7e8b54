/**
 * The supervisor dashboard: sign-in, the live page and the call and lead detail pages (static
 * files in api/dashboard/public), their JSON (a snapshot, and a Server-Sent Events stream fed by
 * PostgreSQL LISTEN/NOTIFY through the live feed, plus a periodic read of the ingest backlog).
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { Router } from 'express';
import type { Request, Response } from 'express';
import { z } from 'zod';
import type { AppConfig } from '../../config/load.js';
import { dashboardSnapshot } from '../../db/dashboard.js';
import { inboxBacklog } from '../../db/inbox.js';
import type { CrmBacklog } from '../../db/dashboard.js';
import type { InboxBacklog } from '../../db/inbox.js';
import type { Db } from '../../db/pool.js';
import type { Logger } from '../../observability/logger.js';
import { checkOperator, issueSession, requireOperator, sessionCookieName, tenantOfToken } from '../auth.js';
import type { LiveFeed, LiveListener } from '../live-feed.js';
import { Rejection } from '../../ingestion/rejections.js';

export const dashboardAssets = fileURLToPath(new URL('../dashboard/public', import.meta.url));

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
  const pageAuth = (req: Request<{ tenant: string }>, res: Response, next: () => void): void => {
    try {
      checkOperator(config, req.params.tenant, req.headers.authorization, req.headers.cookie);
      next();
    } catch (error) {
      if (!(error instanceof Rejection)) throw error;
      if (error.reason === 'unknown_tenant') return void res.status(404).json({ error: error.reason, message: error.message });
      res.redirect(303, `/dashboard?tenant=${encodeURIComponent(req.params.tenant)}${error.reason === 'forbidden_tenant' ? '&error=forbidden' : ''}`);
    }
  };
  const apiAuth = requireOperator(config);
  const snapshotOf = (tenantId: string) => {
    const tenant = config.tenants[tenantId];
    if (!tenant) throw new Error(`unknown tenant ${tenantId}`);
    return dashboardSnapshot(db, tenantId, tenant.timeZone, tenant.dashboard.serviceLevelSeconds);
  };
  const watchBacklog = createBacklogWatch((tenantId) => inboxBacklog(db, tenantId), deps.logger);

  router.use('/dashboard/assets', express.static(path.join(dashboardAssets, 'assets'), { fallthrough: false, maxAge: '5m' }));
  router.get('/dashboard', page('login.html'));
  router.post('/dashboard/login', express.urlencoded({ extended: false, limit: '4kb' }), (req: Request, res: Response) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const tenantId = typeof body.tenant === 'string' ? body.tenant : '';
    const token = typeof body.token === 'string' ? body.token : '';
    if (!config.tenants[tenantId] || tenantOfToken(config, token) !== tenantId) {
      res.redirect(303, `/dashboard?tenant=${encodeURIComponent(tenantId)}&error=invalid`);
      return;
    }
    const session = issueSession(config, tenantId);
    res.cookie(sessionCookieName, session.value, { httpOnly: true, sameSite: 'strict', maxAge: session.maxAgeSeconds * 1000, path: '/', secure: req.secure });
    res.redirect(303, `/dashboard/${encodeURIComponent(tenantId)}`);
  });
  router.post('/dashboard/logout', (_req: Request, res: Response) => {
    res.clearCookie(sessionCookieName, { path: '/' }).redirect(303, '/dashboard');
  });
  router.get('/dashboard/:tenant', pageAuth, page('index.html'));
  router.get('/dashboard/:tenant/calls/:callId', pageAuth, page('call.html'));
  router.get('/dashboard/:tenant/leads/:leadId', pageAuth, page('lead.html'));

  router.get('/api/:tenant/dashboard/context', apiAuth, (req: Request<{ tenant: string }>, res: Response) => {
    const tenant = config.tenants[req.params.tenant];
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
      if (change.kind !== 'resync') write('change', change, change.eventId);
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
    if (lastEventId) for (const change of deps.liveFeed?.since(tenantId, lastEventId) ?? []) write('change', change, change.eventId);
    res.write('retry: 2000\n\n');
    await pushSnapshot();
    if (!closed) heartbeat = setInterval(() => res.write(': keep-alive\n\n'), heartbeatMs);
  });

  return router;
}
