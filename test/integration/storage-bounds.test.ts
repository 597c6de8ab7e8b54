/**
 * Bounded storage of untrusted input, over real HTTP and PostgreSQL: a request for an unknown tenant
 * is counted and at most sampled (truncated, allow-listed headers), a tenant's refusals and dead
 * letters stay within its quota and retention period (the oldest dropped, and counted), and no
 * path segment a caller picks becomes a metric label.
 */
import assert from 'node:assert/strict';
import type { AppConfig } from '../../config/load.js';
import { tenantSchema } from '../../config/schema.js';
import { listDeadLetters } from '../../db/inbox.js';
import type { Db } from '../../db/pool.js';
import { enforceStorageBounds } from '../../ingestion/storage-bounds.js';
import type { DropCause, StorageObserver, StoredKind } from '../../ingestion/storage-bounds.js';
import { createLogger } from '../../observability/logger.js';
import { waitUntil } from '../../stack/processes.js';
import { startApi, testConfig } from '../harness/api.js';
import type { RunningApi } from '../harness/api.js';
import { configError, writeConfig } from '../harness/config-files.js';
import { parkInboxRows } from '../harness/inbox.js';
import { parsePrometheus } from '../harness/prometheus.js';
import type { MetricFamily } from '../harness/prometheus.js';
import { createTestDatabase } from '../harness/postgres.js';
import { uniqueId } from '../harness/resources.js';
import { getDevServer } from '../harness/temporal.js';

const logger = createLogger({ name: 'storage-bounds-test', level: 'silent' });
const dayMs = 86_400_000;

interface StorageWorld {
  tenantId: string;
  config: AppConfig;
  db: Db;
  api: RunningApi;
  /** POSTs `body` to /webhooks/{tenant}/{provider} without a signature (so it is refused and stored). */
  post(tenantId: string, provider: string, body: string | Buffer, headers?: Record<string, string>): Promise<Response>;
  metrics(): Promise<MetricFamily[]>;
  stop(): Promise<void>;
}

/** An API of its own on a database of its own, with one tenant whose storage bounds the test picks. */
async function startStorageWorld(options: { storage?: unknown; unknownTenants?: Partial<AppConfig['storage']['unknownTenants']> } = {}): Promise<StorageWorld> {
  const temporal = await getDevServer();
  const { url, db } = await createTestDatabase('storage');
  const tenantId = uniqueId('st').toLowerCase();
  const tenant = tenantSchema.parse({
    displayName: 'Storage Co',
    defaultRegion: 'US',
    timeZone: 'America/New_York',
    secrets: { webhookSigningSecret: 'storage-test-secret', operatorToken: `operator-${tenantId}` },
    ...(options.storage === undefined ? {} : { storage: options.storage }),
  });
  const base = testConfig({ databaseUrl: url, address: temporal.connection.options.address, namespace: temporal.client.options.namespace });
  const config: AppConfig = {
    ...base,
    tenants: { [tenantId]: tenant },
    storage: { ...base.storage, unknownTenants: { ...base.storage.unknownTenants, ...options.unknownTenants } },
  };
  // Nothing here is accepted, so nothing is forwarded.
  const api = await startApi({ config, db, connection: temporal.connection, forward: false });
  return {
    tenantId,
    config,
    db,
    api,
    post: (target, provider, body, headers = {}) => fetch(`${api.baseUrl}/webhooks/${target}/${provider}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body }),
    metrics: async () => parsePrometheus(await (await fetch(`${api.baseUrl}/metrics`)).text()),
    stop: () => api.close(),
  };
}

const samplesOf = (families: MetricFamily[], family: string, sample: string) => families.find((item) => item.name === family)?.samples.filter((item) => item.name === sample) ?? [];
const valueOf = (families: MetricFamily[], family: string, sample: string, labels: Record<string, string>): number =>
  samplesOf(families, family, sample)
    .filter((item) => Object.entries(labels).every(([key, value]) => item.labels[key] === value))
    .reduce((sum, item) => sum + item.value, 0);

/** Counts what the storage bounds report, as the metrics do. */
function recordingObserver(): StorageObserver & { drops: Record<string, number> } {
  const drops: Record<string, number> = {};
  return {
    drops,
    unknownTenant: () => undefined,
    dropped(kind: StoredKind, cause: DropCause, rows: number) {
      drops[`${kind}/${cause}`] = (drops[`${kind}/${cause}`] ?? 0) + rows;
    },
  };
}

describe('bounded storage of untrusted input', function () {
  this.timeout(120_000);

  it('counts a request for an unknown tenant and keeps at most a truncated sample of it, never its 1 MB body', async () => {
    const world = await startStorageWorld({ unknownTenants: { samplesPerMinute: 3, sampleBodyBytes: 512 } });
    try {
      const stranger = uniqueId('nobody').toLowerCase();
      const big = Buffer.alloc(1_000_000, 'x');
      const first = await world.post(stranger, 'pbx', big, { 'x-switchboard-signature': 'sha256=00', 'x-api-key': 'stranger-secret', authorization: 'Bearer stranger-token', 'user-agent': 'flooder/1.0' });
      assert.equal(first.status, 404);
      assert.equal(((await first.json()) as { error: string }).error, 'unknown_tenant');
      // Nine more within the same minute, for other made-up tenants and with secrets in the query.
      for (let index = 0; index < 9; index++) {
        const response = await fetch(`${world.api.baseUrl}/webhooks/${stranger}-${index}/voice-ai?token=query-secret`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"event":"call.start"}' });
        assert.equal(response.status, 404);
        await response.body?.cancel();
      }

      const stored = await world.db.query<{ tenant_id: string; sampled: boolean; stored: number; body_bytes: number; headers: Record<string, string>; path: string }>(
        `SELECT tenant_id, sampled, octet_length(raw_body)::int AS stored, body_bytes, headers, path FROM rejected_events WHERE tenant_id LIKE $1 ORDER BY id`,
        [`${stranger}%`],
      );
      assert.equal(stored.rows.length, 3, 'only samplesPerMinute samples are kept');
      for (const row of stored.rows) {
        assert.equal(row.sampled, true);
        assert.ok(row.stored <= 512, `a sample keeps at most 512 bytes of the body, not ${row.stored}`);
        for (const name of Object.keys(row.headers)) assert.ok(['content-type', 'content-length', 'user-agent'].includes(name), `header ${name} is not kept`);
        assert.doesNotMatch(row.path, /query-secret/);
      }
      assert.equal(stored.rows[0]?.body_bytes, 1_000_000, 'the sample says how large the body was');
      assert.doesNotMatch(JSON.stringify(stored.rows), /stranger-secret|stranger-token|sha256=00/);

      const families = await world.metrics();
      const name = ['switchboard_unknown_tenant_requests', 'switchboard_unknown_tenant_requests_total'] as const;
      assert.equal(valueOf(families, ...name, { provider: 'pbx', sampled: 'yes' }), 1);
      assert.equal(valueOf(families, ...name, { sampled: 'yes' }), 3);
      assert.equal(valueOf(families, ...name, { sampled: 'no' }), 7, 'the rest are counted, not stored');
      for (const sample of samplesOf(families, ...name)) assert.doesNotMatch(JSON.stringify(sample.labels), /nobody/, 'no tenant id in a label');
    } finally {
      await world.stop();
    }
  });

  it('keeps the newest refusals of a flooded tenant within its quota and counts the ones dropped', async () => {
    const world = await startStorageWorld({ storage: { rejections: { maxRows: 5 } } });
    try {
      for (let index = 0; index < 20; index++) {
        const response = await world.post(world.tenantId, 'pbx', JSON.stringify({ flood: index }));
        assert.equal(response.status, 401);
        await response.body?.cancel();
      }
      const stored = async () => (await world.db.query<{ body: string }>(`SELECT convert_from(raw_body, 'UTF8') AS body FROM rejected_events WHERE tenant_id = $1 ORDER BY id`, [world.tenantId])).rows.map((row) => row.body);
      const dropped = async () => valueOf(await world.metrics(), 'switchboard_storage_dropped', 'switchboard_storage_dropped_total', { kind: 'rejection', cause: 'quota' });
      await waitUntil(async () => (await stored()).length === 5 && (await dropped()) === 15, 30_000, 'the flood was not trimmed to the quota');
      assert.deepEqual(await stored(), [15, 16, 17, 18, 19].map((index) => JSON.stringify({ flood: index })), 'the newest are kept');
    } finally {
      await world.stop();
    }
  });

  it('deletes refusals, samples and dead letters once past their retention period, as of the given time, and counts them', async () => {
    const world = await startStorageWorld({ storage: { rejections: { retentionDays: 30 }, deadLetters: { retentionDays: 30 } }, unknownTenants: { retentionDays: 7 } });
    try {
      const refuse = async (tenantId: string, status: number): Promise<void> => {
        const response = await world.post(tenantId, 'pbx', '{}');
        assert.equal(response.status, status);
        await response.body?.cancel();
      };
      await refuse(world.tenantId, 401);
      await refuse(world.tenantId, 401);
      await refuse(uniqueId('gone').toLowerCase(), 404);
      const dead = await parkInboxRows(world.db, world.tenantId, { count: 1, ageSeconds: 0, dead: true });
      const waiting = await parkInboxRows(world.db, world.tenantId, { count: 1, ageSeconds: 0 });
      const count = async (sql: string, values: unknown[] = [world.tenantId]): Promise<number> => (await world.db.query<{ count: number }>(sql, values)).rows[0]?.count ?? 0;
      const tenantRejections = () => count('SELECT count(*)::int AS count FROM rejected_events WHERE tenant_id = $1');
      const samples = () => count('SELECT count(*)::int AS count FROM rejected_events WHERE sampled', []);
      const deadLetters = () => count('SELECT count(*)::int AS count FROM event_inbox WHERE tenant_id = $1 AND dead_at IS NOT NULL');
      const waitingRows = () => count('SELECT count(*)::int AS count FROM event_inbox WHERE tenant_id = $1 AND dead_at IS NULL');
      assert.deepEqual([await tenantRejections(), await samples(), await deadLetters(), await waitingRows()], [2, 1, 1, 1]);

      const deps = { config: world.config, db: world.db, logger };
      const now = Date.now();
      const early = recordingObserver();
      const afterAWeek = await enforceStorageBounds({ ...deps, observer: early }, new Date(now + 8 * dayMs));
      assert.deepEqual(afterAWeek.unknown_tenant, { quota: 0, retention: 1 });
      assert.deepEqual(afterAWeek.rejection, { quota: 0, retention: 0 });
      assert.deepEqual(afterAWeek.dead_letter, { quota: 0, retention: 0 });
      assert.deepEqual(early.drops, { 'unknown_tenant/retention': 1 });
      assert.deepEqual([await tenantRejections(), await samples(), await deadLetters()], [2, 0, 1]);

      const late = recordingObserver();
      const afterAMonth = await enforceStorageBounds({ ...deps, observer: late }, new Date(now + 31 * dayMs));
      assert.deepEqual(afterAMonth.rejection, { quota: 0, retention: 2 });
      assert.deepEqual(afterAMonth.dead_letter, { quota: 0, retention: 1 });
      assert.deepEqual(late.drops, { 'rejection/retention': 2, 'dead_letter/retention': 1 });
      assert.deepEqual([await tenantRejections(), await deadLetters()], [0, 0]);
      assert.equal(await waitingRows(), 1, 'an accepted event still waiting is never dropped');
      await Promise.all([dead.remove(), waiting.remove()]);
    } finally {
      await world.stop();
    }
  });

  it('keeps the newest dead letters within the quota and counts the oldest it drops', async () => {
    const world = await startStorageWorld({ storage: { deadLetters: { maxRows: 2 } } });
    try {
      const parked = await parkInboxRows(world.db, world.tenantId, { count: 5, ageSeconds: 60, dead: true });
      const observer = recordingObserver();
      const report = await enforceStorageBounds({ config: world.config, db: world.db, logger, observer }, new Date());
      assert.deepEqual(report.dead_letter, { quota: 3, retention: 0 });
      assert.deepEqual(observer.drops, { 'dead_letter/quota': 3 });
      const kept = (await listDeadLetters(world.db, world.tenantId)).map((letter) => letter.id);
      assert.deepEqual(kept, parked.ids.slice(-2), 'the newest two are kept');
      const again = await enforceStorageBounds({ config: world.config, db: world.db, logger }, new Date());
      assert.equal(again.dead_letter.quota, 0, 'a second pass drops nothing more');
    } finally {
      await world.stop();
    }
  });

  it('labels metrics from a fixed set: made-up providers and tenants add no series', async () => {
    // Two samples a minute: the warm-up below already shows both values of `sampled`.
    const world = await startStorageWorld({ unknownTenants: { samplesPerMinute: 2 } });
    try {
      const sendRandom = async (count: number): Promise<void> => {
        for (let index = 0; index < count; index++) {
          for (const tenant of [world.tenantId, uniqueId('made-up').toLowerCase()]) {
            const response = await world.post(tenant, uniqueId('provider'), '{}');
            assert.equal(response.status, 404);
            await response.body?.cancel();
          }
        }
      };
      const seriesOf = (families: MetricFamily[]): string[] =>
        families.filter((family) => family.name.startsWith('switchboard_') && !family.name.startsWith('switchboard_api_')).flatMap((family) => family.samples.map((sample) => `${sample.name}${JSON.stringify(sample.labels)}`));
      await sendRandom(5);
      const before = await world.metrics();
      await sendRandom(10);
      const after = await world.metrics();
      assert.deepEqual(seriesOf(after).sort(), seriesOf(before).sort(), 'no new series');
      const providers = new Set(after.flatMap((family) => family.samples.map((sample) => sample.labels.provider)).filter((value): value is string => value !== undefined));
      assert.deepEqual([...providers].sort(), ['other']);
      assert.equal(valueOf(after, 'switchboard_events', 'switchboard_events_total', { provider: 'other', outcome: 'rejected' }), 30);
      assert.doesNotMatch(JSON.stringify(seriesOf(after)), /provider-|made-up|st-/);
    } finally {
      await world.stop();
    }
  });

  it('refuses storage bounds that could not hold one webhook body, naming the setting', async () => {
    const file = await writeConfig((doc) => {
      const [first] = Object.values(doc.tenants);
      if (first) (first as unknown as Record<string, unknown>).storage = { rejections: { maxBytes: 1_000 } };
    });
    assert.match(configError({ SWITCHBOARD_CONFIG: file }), /tenants\.[a-z0-9-]+\.storage\.rejections\.maxBytes: must be at least 1048576/);
  });
});
