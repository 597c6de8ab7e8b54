/**
 * The supervisor dashboard: sign-in, the live page and the call and lead detail pages (static
 * files in api/dashboard/public), their JSON (a snapshot, and a Server-Sent Events stream fed by
 * PostgreSQL LISTEN/NOTIFY through the live feed).
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { Router } from 'express';
import type { Request, Response } from 'express';
import type { AppConfig } from '../../config/load.js';
import { dashboardSnapshot } from '../../db/dashboard.js';
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
    const pushSnapshot = async (): Promise<void> => {
      pending = undefined;
      try {
        write('snapshot', await snapshotOf(tenantId), deps.liveFeed?.lastEventId());
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
    let heartbeat: NodeJS.Timeout | undefined;
    // Registered before the first await: a client gone while the first snapshot is read must not
    // leave its subscription and heartbeat behind (a leaked timer also holds the process open).
    res.on('close', () => {
      closed = true;
      if (heartbeat) clearInterval(heartbeat);
      if (pending) clearTimeout(pending);
      unsubscribe?.();
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
