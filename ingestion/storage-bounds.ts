/**
 * Keeps what untrusted senders make us store within bounds, per tenant (`tenants.<id>.storage`):
 * - refusals: the newest up to `maxRows` and `maxBytes`, none older than `retentionDays`;
 * - dead letters (accepted events Temporal refused for good): the newest `maxRows`, none dead longer
 *   than `retentionDays`;
 * - samples of requests for unknown tenants, and rows of tenants no longer configured: the newest
 *   `storage.unknownTenants.maxRows`, none older than its `retentionDays`.
 * Forwarded inbox rows are deleted as they are forwarded, and waiting ones are bounded by the
 * backlog bound, so neither is touched here. Every dropped row is counted (observer → metrics) and a
 * dropped replayable row (a refusal or a dead letter of a configured tenant) is logged.
 *
 * Runs on a timer in every API process rather than as a Temporal Schedule: these tables are the
 * ingestion layer's, which must keep working while Temporal is down, and the processes that fill
 * them (and serve the metrics that count the drops) are the API's. Runs in several processes at once
 * are harmless: each row is deleted, and counted, once.
 */
import type { AppConfig } from '../config/load.js';
import { tenantStorageSchema } from '../config/schema.js';
import type { Db } from '../db/pool.js';
import { expireDeadLetters, expireRejections, trimDeadLetters, trimRejections } from '../db/storage-bounds.js';
import type { StorageScope } from '../db/storage-bounds.js';
import type { Logger } from '../observability/logger.js';

/** What a stored row was: a tenant's refusal, a sample for an unknown tenant (or a removed tenant's row), a dead letter. */
export type StoredKind = 'rejection' | 'unknown_tenant' | 'dead_letter';
export type DropCause = 'quota' | 'retention';

/** What storage bounds report as they go (metrics). */
export interface StorageObserver {
  /** A refused request named a tenant that is not configured; `sampled`: a truncated sample of it was kept. */
  unknownTenant(source: string, sampled: boolean): void;
  /** Stored rows deleted to stay within a quota or a retention period. */
  dropped(kind: StoredKind, cause: DropCause, rows: number): void;
}

export type StorageReport = Record<StoredKind, Record<DropCause, number>>;

/** Rows one statement deletes at most, so no cleanup holds a long transaction. */
const deleteBatch = 5_000;
const dayMs = 86_400_000;

export interface StorageBoundsDeps {
  config: Pick<AppConfig, 'tenants' | 'storage'>;
  db: Db;
  logger: Logger;
  observer?: StorageObserver;
}

/** Repeats a batched delete until it deletes less than a batch; returns the total. */
async function drain(deleteOnce: () => Promise<number>): Promise<number> {
  let total = 0;
  for (;;) {
    const deleted = await deleteOnce();
    total += deleted;
    if (deleted < deleteBatch) return total;
  }
}

/** Deletes a configured tenant's oldest refusals past its quota (also called right after refusals are stored). */
export async function trimTenantRejections(deps: StorageBoundsDeps, tenantId: string): Promise<number> {
  const tenant = Object.hasOwn(deps.config.tenants, tenantId) ? deps.config.tenants[tenantId] : undefined;
  if (!tenant) return 0;
  const { maxRows, maxBytes } = tenant.storage.rejections;
  const dropped = await drain(() => trimRejections(deps.db, { tenantId }, { maxRows, maxBytes }, deleteBatch));
  report(deps, tenantId, 'rejection', 'quota', dropped);
  return dropped;
}

function report(deps: StorageBoundsDeps, tenantId: string | undefined, kind: StoredKind, cause: DropCause, rows: number): void {
  if (rows === 0) return;
  deps.observer?.dropped(kind, cause, rows);
  // A tenant's refusals and dead letters could be replayed: their loss is never silent.
  if (kind !== 'unknown_tenant') deps.logger.warn({ tenantId, kind, cause, rows }, 'dropped stored rows to stay within the storage bounds');
}

/** One pass over every bound, as of `now`. Returns what it deleted. */
export async function enforceStorageBounds(deps: StorageBoundsDeps, now: Date): Promise<StorageReport> {
  const { db, config } = deps;
  const totals: StorageReport = { rejection: { quota: 0, retention: 0 }, unknown_tenant: { quota: 0, retention: 0 }, dead_letter: { quota: 0, retention: 0 } };
  const add = (tenantId: string | undefined, kind: StoredKind, cause: DropCause, rows: number): void => {
    totals[kind][cause] += rows;
    report(deps, tenantId, kind, cause, rows);
  };
  const before = (days: number): Date => new Date(now.getTime() - days * dayMs);

  for (const [tenantId, tenant] of Object.entries(config.tenants)) {
    const scope: StorageScope = { tenantId };
    const { rejections, deadLetters } = tenant.storage;
    add(tenantId, 'rejection', 'retention', await drain(() => expireRejections(db, scope, before(rejections.retentionDays), deleteBatch)));
    add(tenantId, 'rejection', 'quota', await drain(() => trimRejections(db, scope, rejections, deleteBatch)));
    add(tenantId, 'dead_letter', 'retention', await drain(() => expireDeadLetters(db, scope, before(deadLetters.retentionDays), deleteBatch)));
    add(tenantId, 'dead_letter', 'quota', await drain(() => trimDeadLetters(db, scope, deadLetters.maxRows, deleteBatch)));
  }

  const unclaimed: StorageScope = { unclaimedBy: Object.keys(config.tenants) };
  const unknown = config.storage.unknownTenants;
  add(undefined, 'unknown_tenant', 'retention', await drain(() => expireRejections(db, unclaimed, before(unknown.retentionDays), deleteBatch)));
  add(undefined, 'unknown_tenant', 'quota', await drain(() => trimRejections(db, unclaimed, { maxRows: unknown.maxRows, maxBytes: Number.MAX_SAFE_INTEGER }, deleteBatch)));
  // Dead letters of a tenant no longer configured can no longer be replayed: the default bounds apply.
  const defaults = tenantStorageSchema.parse({}).deadLetters;
  add(undefined, 'dead_letter', 'retention', await drain(() => expireDeadLetters(db, unclaimed, before(defaults.retentionDays), deleteBatch)));
  add(undefined, 'dead_letter', 'quota', await drain(() => trimDeadLetters(db, unclaimed, defaults.maxRows, deleteBatch)));
  return totals;
}

export interface StorageCleanup {
  stop(): Promise<void>;
}

/** Runs `enforceStorageBounds` every `storage.cleanupIntervalSeconds` (the first pass soon after start). */
export function startStorageCleanup(deps: StorageBoundsDeps & { firstRunAfterMs?: number }): StorageCleanup {
  const intervalMs = deps.config.storage.cleanupIntervalSeconds * 1000;
  let running: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const run = (): void => {
    running = enforceStorageBounds(deps, new Date())
      .then(() => undefined)
      .catch((error: unknown) => deps.logger.warn({ err: error }, 'storage cleanup failed; retrying at the next interval'))
      .finally(() => {
        running = undefined;
        if (!stopped) timer = setTimeout(run, intervalMs).unref();
      });
  };
  timer = setTimeout(run, Math.min(intervalMs, deps.firstRunAfterMs ?? 30_000)).unref();
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
