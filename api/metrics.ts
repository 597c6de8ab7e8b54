/**
 * Prometheus metrics of an API process at /metrics: webhook acknowledgement latency by provider,
 * events by outcome, the inbox (depth, age of the oldest event, forwards, their latency, dead
 * letters), requests for unknown tenants and rows dropped by the storage bounds, the CRM backlog and
 * its expected drain time, open dashboard streams, and Node's process metrics. (The Temporal SDK's worker
 * metrics, and duplicate events seen by workflows, are served by each worker at WORKER_METRICS_ADDRESS.)
 */
import type { Request, RequestHandler, Response } from 'express';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { CrmBacklog } from '../db/dashboard.js';
import type { BacklogMonitor } from '../ingestion/backlog.js';
import type { ForwarderObserver } from '../ingestion/forwarder.js';
import type { IntakeObserver } from '../ingestion/intake.js';
import type { StorageObserver } from '../ingestion/storage-bounds.js';
import { callProviders } from '../shared/calls.js';
import type { LiveFeed } from './live-feed.js';

export interface ApiMetrics {
  registry: Registry;
  /** Times every webhook and labels its outcome. */
  webhooks: RequestHandler;
  handler: (req: Request, res: Response) => Promise<void>;
  /** Counts what the forwarder of this process does. */
  forwarder: ForwarderObserver;
  /** Counts the answers that went to Temporal directly, or waited for a slow commit. */
  intake: IntakeObserver;
  /** Counts requests for unknown tenants, and stored rows dropped to stay within the storage bounds. */
  storage: StorageObserver;
  /** Reads inbox depth and age from this backlog view (no query per scrape). */
  watchBacklog(backlog: BacklogMonitor): void;
}

const webhookPath = /^\/webhooks\/[^/]+\/([^/]+)(?:\/status)?$/;
// Labels come from a fixed set: a path segment chosen by a caller must never create a series.
const knownProviders = new Set<string>([...callProviders, 'crm', 'whatsapp', 'sms', 'sms-status', 'call-result']);

/** A `provider` label: one of the known sources, or `other`. */
export function providerLabel(source: string): string {
  return knownProviders.has(source) ? source : 'other';
}

export function createApiMetrics(deps: { liveFeed?: LiveFeed; crmBacklog?: () => Promise<CrmBacklog> } = {}): ApiMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'switchboard_api_' });
  let backlog: BacklogMonitor | undefined;
  const ack = new Histogram({
    name: 'switchboard_webhook_ack_seconds',
    help: 'Time from receiving a webhook to acknowledging it, by provider and status class',
    labelNames: ['provider', 'status'] as const,
    buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const events = new Counter({
    name: 'switchboard_events_total',
    help: 'Webhook deliveries by provider and outcome: accepted (committed to the inbox), duplicate (already waiting), direct (PostgreSQL slow: straight to Temporal), rejected (4xx, stored), backlog_full and unavailable (503 Retry-After), failed (5xx)',
    labelNames: ['provider', 'outcome'] as const,
    registers: [registry],
  });
  new Gauge({
    name: 'switchboard_inbox_depth',
    help: 'Accepted events waiting in the PostgreSQL inbox to be forwarded to Temporal (dead letters excluded)',
    registers: [registry],
    collect() {
      this.set(backlog?.current().pending ?? 0);
    },
  });
  new Gauge({
    name: 'switchboard_inbox_lag_seconds',
    help: 'Age of the oldest event waiting in the inbox',
    registers: [registry],
    collect() {
      this.set(backlog?.current().oldestAgeSeconds ?? 0);
    },
  });
  new Gauge({
    name: 'switchboard_inbox_dead_letters',
    help: 'Events Temporal refused for good, kept in the inbox for inspection and replay',
    registers: [registry],
    collect() {
      this.set(backlog?.current().deadLetters ?? 0);
    },
  });
  const forwarded = new Counter({ name: 'switchboard_inbox_forwarded_total', help: 'Events this process forwarded from the inbox to Temporal', registers: [registry] });
  const forwardLatency = new Histogram({
    name: 'switchboard_inbox_forward_seconds',
    help: 'Time from an event entering the inbox to its forward to Temporal',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [registry],
  });
  const forwardFailures = new Counter({
    name: 'switchboard_inbox_forward_failures_total',
    help: 'Forwards that failed: unavailable (Temporal unreachable or slow; retried) or refused (Temporal refused the event; dead letter after repeated refusals)',
    labelNames: ['kind'] as const,
    registers: [registry],
  });
  const directHandOffs = new Counter({
    name: 'switchboard_intake_direct_total',
    help: 'Events offered straight to Temporal because the inbox commit was late or failed: taken, failed (Temporal too), or no_room (the cap on direct hand-offs was reached, so the answer waited for its commit)',
    labelNames: ['result'],
    registers: [registry],
  });
  const deadLettered = new Counter({ name: 'switchboard_inbox_dead_lettered_total', help: 'Events this process moved to dead letter', registers: [registry] });
  const unknownTenants = new Counter({
    name: 'switchboard_unknown_tenant_requests_total',
    help: 'Refused requests naming a tenant that is not configured, by provider; sampled: whether a truncated sample was kept (the rest are only counted)',
    labelNames: ['provider', 'sampled'] as const,
    registers: [registry],
  });
  const storageDropped = new Counter({
    name: 'switchboard_storage_dropped_total',
    help: 'Stored rows this process deleted to stay within the storage bounds, by kind (rejection, unknown_tenant, dead_letter) and cause (quota, retention)',
    labelNames: ['kind', 'cause'] as const,
    registers: [registry],
  });

  new Gauge({
    name: 'switchboard_dashboard_streams',
    help: 'Dashboard live streams (SSE) open on this process',
    registers: [registry],
    collect() {
      this.set(deps.liveFeed?.subscribers() ?? 0);
    },
  });

  // Read from the journal at scrape time (one query for both, shared by the two gauges).
  let crmReading: Promise<CrmBacklog | undefined> | undefined;
  const readCrmBacklog = (): Promise<CrmBacklog | undefined> => {
    crmReading ??= (deps.crmBacklog?.() ?? Promise.resolve(undefined)).catch(() => undefined).finally(() => setTimeout(() => (crmReading = undefined), 1_000).unref());
    return crmReading;
  };
  new Gauge({
    name: 'switchboard_crm_backlog_calls',
    help: 'Ended calls whose CRM logging is still to come (waiting for its delay, paced under the CRM rate limit, or retrying), all tenants',
    registers: [registry],
    async collect() {
      const crm = await readCrmBacklog();
      if (crm) this.set(crm.calls);
    },
  });
  new Gauge({
    name: 'switchboard_crm_backlog_drain_seconds',
    help: 'How long the CRM backlog takes at the pace of the last 10 minutes (-1 while nothing was logged lately)',
    registers: [registry],
    async collect() {
      const crm = await readCrmBacklog();
      if (crm) this.set(crm.expectedDrainSeconds ?? -1);
    },
  });

  const webhooks: RequestHandler = (req, res, next) => {
    const match = webhookPath.exec(req.path);
    if (req.method !== 'POST' || !match) return next();
    const provider = providerLabel(match[1] ?? '');
    const stop = ack.startTimer({ provider });
    res.once('finish', () => {
      const status = res.statusCode;
      stop({ status: `${Math.floor(status / 100)}xx` });
      // A refusal is stored and counted as rejected whatever the route noted before it.
      const outcome = res.locals.rejected === true || (status >= 400 && status < 500) ? 'rejected' : typeof res.locals.outcome === 'string' ? res.locals.outcome : status >= 500 ? 'failed' : 'accepted';
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
    forwarder: {
      forwarded(count, waitedSeconds) {
        forwarded.inc(count);
        for (const seconds of waitedSeconds) forwardLatency.observe(seconds);
      },
      failed(kind) {
        forwardFailures.inc({ kind });
      },
      deadLettered() {
        deadLettered.inc();
      },
    },
    intake: {
      direct(result) {
        directHandOffs.inc({ result });
      },
    },
    storage: {
      unknownTenant(source, sampled) {
        unknownTenants.inc({ provider: providerLabel(source), sampled: sampled ? 'yes' : 'no' });
      },
      dropped(kind, cause, rows) {
        storageDropped.inc({ kind, cause }, rows);
      },
    },
    watchBacklog(next) {
      backlog = next;
    },
  };
}
