import express from 'express';
import type { ErrorRequestHandler } from 'express';
import type { Client, Connection } from '@temporalio/client';
import type { AppConfig } from '../config/load.js';
import { crmBacklog } from '../db/dashboard.js';
import type { Db } from '../db/pool.js';
import type { Logger } from '../observability/logger.js';
import type { BacklogMonitor } from '../ingestion/backlog.js';
import type { HandOff } from '../ingestion/intake.js';
import type { LiveFeed } from './live-feed.js';
import { methodNotAllowed } from './method-not-allowed.js';
import { sendRejection } from './rejection-response.js';
import { createApiMetrics } from './metrics.js';
import type { ApiMetrics } from './metrics.js';
import { createOpenApiRouter } from './openapi.js';
import { createDashboardRouter } from './routes/dashboard.js';
import { Rejection, createRejectionStore } from '../ingestion/rejections.js';
import { createCallsRouter } from './routes/calls.js';
import { createHealthRouter } from './routes/health.js';
import { createCodecRouter } from './routes/codec.js';
import { createLeadWebhookRouter } from './routes/lead-webhooks.js';
import { createSmsWebhookRouter } from './routes/sms-webhooks.js';
import { createLeadsRouter } from './routes/leads.js';
import { createWebhookRouter } from './routes/webhooks.js';

export interface ApiDeps {
  /** PostgreSQL LISTEN/NOTIFY fan-out for the dashboard's live stream. */
  liveFeed?: LiveFeed;
  config: AppConfig;
  db: Db;
  temporal: Client;
  /** The connection behind `temporal`, for health checks. */
  temporalConnection: Connection;
  handOff: HandOff;
  /** The ingestion backlog, for readiness and metrics. */
  backlog: BacklogMonitor;
  /** Built by the caller when its forwarder reports into it; otherwise the app makes its own. */
  metrics?: ApiMetrics;
  logger: Logger;
}

/**
 * What the body parsers and the router throw for a request they cannot read (http-errors with a
 * 4xx `status`), as a reason the OpenAPI document names.
 */
function unreadableRequest(error: unknown): { status: number; reason: string; message: string } | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const { status, type } = error as { status?: unknown; type?: unknown };
  if (typeof status !== 'number' || status < 400 || status >= 500) return undefined;
  if (type === 'entity.too.large') return { status: 413, reason: 'payload_too_large', message: 'The body is larger than this route accepts' };
  if (type === 'entity.parse.failed') return { status: 400, reason: 'malformed_json', message: 'The body is not valid JSON' };
  if (type === 'encoding.unsupported' || type === 'charset.unsupported') return { status: 415, reason: 'unsupported_media_type', message: 'The body is in an encoding or charset this route does not read' };
  // The router's own: a path segment whose percent-encoding does not decode (`%E0`).
  if (error instanceof URIError) return { status: 400, reason: 'malformed_path', message: 'The path is not valid percent-encoded UTF-8' };
  return { status, reason: 'bad_request', message: 'The request could not be read' };
}

/** Builds the HTTP application; main.ts owns the listening server and the process lifecycle. */
export function createApp(deps: ApiDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  // Answers are small and never revalidated: hashing every body for an ETag is CPU the acks need.
  app.set('etag', false);
  app.set('trust proxy', true);
  const metrics = deps.metrics ?? createApiMetrics({ ...(deps.liveFeed ? { liveFeed: deps.liveFeed } : {}), crmBacklog: () => crmBacklog(deps.db) });
  metrics.watchBacklog(deps.backlog);
  const rejections = createRejectionStore({ config: deps.config, db: deps.db, logger: deps.logger, observer: metrics.storage });
  app.use(metrics.webhooks);
  // One structured line per request: method, path, status, duration. Never bodies or headers.
  app.use((req, res, next) => {
    const started = performance.now();
    res.once('finish', () => {
      const fields = { method: req.method, path: req.path, status: res.statusCode, ms: Math.round((performance.now() - started) * 10) / 10 };
      if (res.statusCode >= 500) deps.logger.error(fields, 'request');
      else deps.logger.debug(fields, 'request');
    });
    next();
  });
  app.get('/metrics', (req, res) => void metrics.handler(req, res));
  app.use(createOpenApiRouter());
  // The Temporal Web UI's codec server (CORS for the UI's origins, operator credential required).
  app.use(createCodecRouter({ config: deps.config, db: deps.db }));
  app.use(createHealthRouter({ db: deps.db, temporal: { connection: deps.temporalConnection, namespace: deps.temporal.options.namespace }, backlog: deps.backlog, limits: { maxEvents: deps.config.env.INGEST_MAX_BACKLOG_EVENTS, maxAgeSeconds: deps.config.env.INGEST_MAX_BACKLOG_AGE_SECONDS }, ...(deps.liveFeed ? { liveFeed: deps.liveFeed } : {}) }));
  // Lead webhooks first: /webhooks/{tenant}/crm and /whatsapp are not phone systems.
  app.use(createLeadWebhookRouter({ ...deps, rejections }));
  app.use(createSmsWebhookRouter({ ...deps, rejections }));
  app.use(createWebhookRouter({ ...deps, rejections }));
  app.use(createCallsRouter({ ...deps, rejections }));
  app.use(createLeadsRouter(deps));
  app.use(createDashboardRouter(deps));

  app.use(methodNotAllowed(app));
  app.use((_req, res) => {
    res.status(404).json({ error: 'not_found', message: 'No such route' });
  });
  // Last line of defence: whatever slipped through is answered as JSON, never as an HTML stack trace.
  const onError: ErrorRequestHandler = (error: unknown, req, res, _next) => {
    if (res.headersSent) return;
    if (error instanceof Rejection) {
      sendRejection(res, error);
      return;
    }
    const refusal = unreadableRequest(error);
    if (refusal) {
      res.status(refusal.status).json({ error: refusal.reason, message: refusal.message });
      return;
    }
    deps.logger.error({ err: error, path: req.path }, 'request failed');
    res.status(500).json({ error: 'internal_error', message: 'Internal error' });
  };
  app.use(onError);
  return app;
}
