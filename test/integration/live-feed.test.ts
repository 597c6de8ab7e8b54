/**
 * The dashboards' live feed over a real PostgreSQL: its LISTEN backend is terminated while the
 * database refuses connections (so reconnection attempts fail), then again once it is back. The
 * feed keeps reconnecting, /readyz names the outage while it lasts (200, degraded), and changes
 * notified afterwards still reach a subscriber.
 */
import assert from 'node:assert/strict';
import pg from 'pg';
import type { LiveListener } from '../../api/live-feed.js';
import { notifyChange } from '../../db/changes.js';
import { waitUntil } from '../../stack/processes.js';
import { startApi, testConfig } from '../harness/api.js';
import type { RunningApi } from '../harness/api.js';
import { createTestDatabase, testPostgresAdminUrl } from '../harness/postgres.js';
import { uniqueId } from '../harness/resources.js';
import { getDevServer } from '../harness/temporal.js';

interface LiveFeedCheck {
  ok: boolean;
  state: 'connected' | 'reconnecting';
  since: string;
  failedAttempts?: number;
  lastError?: string;
  error?: string;
}

async function readyz(api: RunningApi): Promise<{ status: number; body: { status: string; checks: { liveFeed?: LiveFeedCheck } } }> {
  const response = await fetch(`${api.baseUrl}/readyz`);
  return { status: response.status, body: (await response.json()) as { status: string; checks: { liveFeed?: LiveFeedCheck } } };
}

describe('live feed: the dashboards\' LISTEN connection (real PostgreSQL)', () => {
  const cleanups: Array<() => Promise<void>> = [];
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('reconnects after failed attempts and a second loss, reports the outage on /readyz, and still delivers changes', async () => {
    const temporal = await getDevServer();
    const { url, db } = await createTestDatabase('live_feed');
    const database = new URL(url).pathname.slice(1);
    const api = await startApi({ config: testConfig({ databaseUrl: url }), db, connection: temporal.connection, forward: false, liveFeed: true });
    cleanups.push(() => api.close());
    const admin = new pg.Client({ connectionString: await testPostgresAdminUrl() });
    await admin.connect();
    cleanups.push(async () => {
      await admin.query(`ALTER DATABASE ${database} ALLOW_CONNECTIONS true`);
      await admin.end();
    });

    const feed = api.liveFeed;
    assert.ok(feed);
    const tenant = uniqueId('tenant');
    const received: Array<Parameters<LiveListener>[0]> = [];
    feed.subscribe(tenant, (change) => received.push(change));
    const resyncs = (): number => received.filter((change) => change.kind === 'resync').length;
    const deliver = async (id: string): Promise<void> => {
      await notifyChange(db, { tenant, kind: 'call', id, status: 'ringing' });
      await waitUntil(() => Promise.resolve(received.some((change) => 'id' in change && change.id === id)), 10_000, `change ${id} never reached the subscriber`);
    };
    const feedBackends = async (): Promise<number[]> =>
      (await admin.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE application_name = 'switchboard-live-feed' AND datname = $1`, [database])).rows.map((row) => row.pid);
    const liveFeedCheck = async (): Promise<LiveFeedCheck | undefined> => (await readyz(api)).body.checks.liveFeed;

    await deliver('before-any-outage');
    const [first] = await feedBackends();
    assert.ok(first, 'the feed has a backend');
    assert.equal((await liveFeedCheck())?.state, 'connected');

    // First loss, while the database refuses every new connection: the reconnection attempts fail.
    await admin.query(`ALTER DATABASE ${database} ALLOW_CONNECTIONS false`);
    await admin.query('SELECT pg_terminate_backend($1)', [first]);
    await waitUntil(async () => ((await liveFeedCheck())?.failedAttempts ?? 0) >= 2, 30_000, 'readiness never reported failed reconnection attempts');
    const outage = await readyz(api);
    assert.equal(outage.status, 200, 'events are still accepted');
    assert.equal(outage.body.status, 'degraded');
    assert.equal(outage.body.checks.liveFeed?.ok, false);
    assert.equal(outage.body.checks.liveFeed?.state, 'reconnecting');
    assert.equal(outage.body.checks.liveFeed?.lastError, '55000', 'the kind of the last failure: the database is not accepting connections');
    assert.doesNotMatch(JSON.stringify(outage.body.checks.liveFeed), new RegExp(`${database}|127\\.0\\.0\\.1|switchboard-test`), 'no database name, host or password');

    await admin.query(`ALTER DATABASE ${database} ALLOW_CONNECTIONS true`);
    await waitUntil(async () => (await liveFeedCheck())?.state === 'connected', 30_000, 'the feed never reconnected once the database accepted connections again');
    assert.equal(resyncs(), 1, 'streams resync once the feed listens again');
    await deliver('after-first-outage');

    // Second loss straight after: the feed reconnects again.
    const [second] = await feedBackends();
    assert.ok(second !== undefined && second !== first);
    await admin.query('SELECT pg_terminate_backend($1)', [second]);
    await waitUntil(async () => (await feedBackends()).some((pid) => pid !== first && pid !== second) && feed.state().connected, 30_000, 'the feed never reconnected after the second loss');
    assert.equal(resyncs(), 2);
    await deliver('after-second-outage');
    assert.equal((await readyz(api)).body.status, 'ready');
  });
});
