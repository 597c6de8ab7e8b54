/**
 * Prometheus metrics of an API process at /metrics: webhook acknowledgement latency by provider,
 * events accepted / queued / rejected, inbox depth and relay lag, open dashboard streams, and Node's process metrics.
 * (The Temporal SDK's worker metrics, and duplicate events seen by workflows, are served by each
 * worker at WORKER_METRICS_ADDRESS.)
 */
import type { Request, RequestHandler, Response } from 'express';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Db } from '../db/pool.js';
import type { LiveFeed } from './live-feed.js';
import { inboxDepth } from '../ingestion/inbox-relay.js';

export interface ApiMetrics {
  registry: Registry;
  /** Times every webhook and labels its outcome. */
  webhooks: RequestHandler;
  handler: (req: Request, res: Response) => Promise<void>;
}

const webhookPath = /^\/webhooks\/[^/]+\/([^/]+)$/;

export function createApiMetrics(deps: { db: Db; liveFeed?: LiveFeed }): ApiMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'switchboard_api_' });
  const ack = new Histogram({
    name: 'switchboard_webhook_ack_seconds',
    help: 'Time from receiving a webhook to acknowledging it, by provider and status class',
    labelNames: ['provider', 'status'] as const,
    buckets: [0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const events = new Counter({
    name: 'switchboard_events_total',
    help: 'Webhook deliveries by provider and outcome: accepted (handed to Temporal), queued (inbox), rejected (4xx, stored)',
    labelNames: ['provider', 'outcome'] as const,
    registers: [registry],
  });
  new Gauge({
    name: 'switchboard_inbox_depth',
    help: 'Accepted events waiting in the PostgreSQL inbox for Temporal',
    registers: [registry],
    async collect() {
      this.set((await inboxDepth(deps.db)).pending);
    },
  });
  new Gauge({
    name: 'switchboard_inbox_lag_seconds',
    help: 'Age of the oldest event still waiting in the inbox (relay lag)',
    registers: [registry],
    async collect() {
      this.set((await inboxDepth(deps.db)).oldestAgeSeconds);
    },
  });

  new Gauge({
    name: 'switchboard_dashboard_streams',
    help: 'Dashboard live streams (SSE) open on this process',
    registers: [registry],
    collect() {
      this.set(deps.liveFeed?.subscribers() ?? 0);
    },
  });

  const webhooks: RequestHandler = (req, res, next) => {
    const match = webhookPath.exec(req.path);
    if (req.method !== 'POST' || !match) return next();
    const provider = (match[1] ?? 'unknown').slice(0, 30);
    const stop = ack.startTimer({ provider });
    res.once('finish', () => {
      const status = res.statusCode;
      stop({ status: `${Math.floor(status / 100)}xx` });
      const outcome = status >= 500 ? 'failed' : status >= 400 || res.locals.rejected === true ? 'rejected' : res.locals.queued === true ? 'queued' : 'accepted';
      events.inc({ provider, outcome });
    });
    next();
  };

  return {
    registry,
    webhooks,
    async handler(_req, res) {
      res.set('Content-Type', registry.contentType).send(await registry.metrics());
    },
  };
}
