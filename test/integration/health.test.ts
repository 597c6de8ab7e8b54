import assert from 'node:assert/strict';
import pg from 'pg';
import { createApiTemporalClient } from '../../workers/temporal-client.js';
import { createPool } from '../../db/pool.js';
import { startApi, testConfig } from '../harness/api.js';
import type { RunningApi } from '../harness/api.js';
import { createTestDatabase, testPostgresAdminUrl } from '../harness/postgres.js';
import { freePort, uniqueId } from '../harness/resources.js';
import { getDevServer } from '../harness/temporal.js';

interface Readiness {
  status: string;
  checks: Record<string, { ok: boolean; error?: string }>;
}

async function readyz(api: RunningApi): Promise<{ status: number; body: Readiness }> {
  const response = await fetch(`${api.baseUrl}/readyz`);
  return { status: response.status, body: (await response.json()) as Readiness };
}

describe('health endpoints (real HTTP, PostgreSQL and Temporal)', () => {
  const running: Array<{ close(): Promise<void> }> = [];
  after(async () => {
    for (const item of running) await item.close();
  });

  it('/healthz answers while /readyz reports every dependency as ready', async () => {
    const temporal = await getDevServer();
    const { url, db } = await createTestDatabase('health');
    const api = await startApi({ config: testConfig({ databaseUrl: url }), db, connection: temporal.connection });
    running.push(api);

    const alive = await fetch(`${api.baseUrl}/healthz`);
    assert.equal(alive.status, 200);
    assert.equal(((await alive.json()) as { status: string }).status, 'alive');

    const { status, body } = await readyz(api);
    assert.equal(status, 200);
    assert.equal(body.status, 'ready');
    assert.deepEqual(Object.keys(body.checks).sort(), ['inbox', 'migrations', 'postgres', 'temporal']);
    assert.ok(Object.values(body.checks).every((check) => check.ok));
  });

  it('/readyz stays 200 but degraded, naming Temporal, when it is unreachable: the inbox still takes events', async () => {
    const { url, db } = await createTestDatabase('health');
    const deadAddress = `127.0.0.1:${await freePort()}`;
    const config = testConfig({ databaseUrl: url, address: deadAddress });
    const { connection } = createApiTemporalClient(config.temporal);
    running.push({ close: () => connection.close() });
    const api = await startApi({ config, db, connection });
    running.push(api);

    const { status, body } = await readyz(api);
    assert.equal(status, 200);
    assert.equal(body.status, 'degraded');
    assert.equal(body.checks.temporal?.ok, false);
    assert.equal(body.checks.postgres?.ok, true);
    assert.equal(body.checks.inbox?.ok, true);
  });

  it('/readyz answers 503 naming the migrations when the schema is not applied', async () => {
    const temporal = await getDevServer();
    const adminUrl = await testPostgresAdminUrl();
    const name = uniqueId('unmigrated').replace(/-/g, '_');
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    await admin.end();
    const url = new URL(adminUrl);
    url.pathname = `/${name}`;
    const db = createPool(url.toString());
    running.push({ close: () => db.end() });
    const api = await startApi({ config: testConfig({ databaseUrl: url.toString() }), db, connection: temporal.connection });
    running.push(api);

    const { status, body } = await readyz(api);
    assert.equal(status, 503);
    assert.equal(body.checks.migrations?.ok, false);
    assert.match(body.checks.migrations?.error ?? '', /pending migrations: 0001_ingestion/);
    assert.equal(body.checks.temporal?.ok, true);
  });
});
