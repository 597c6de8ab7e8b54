import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startEmbeddedPostgres } from '../../db/embedded.js';
import { migrate } from '../../db/migrate.js';
import { createPool } from '../../db/pool.js';
import type { Db } from '../../db/pool.js';
import { freePort, onRunEnd, once, uniqueId } from './resources.js';

const templateName = 'switchboard_test_template';

/**
 * The run's PostgreSQL server: DATABASE_URL when given (any server we may create databases on),
 * else a throw-away embedded server. A migrated template database is prepared once.
 */
const testServer = once(async (): Promise<{ adminUrl: string }> => {
  let adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) {
    const dataRoot = await mkdtemp(path.join(os.tmpdir(), 'switchboard-test-pg-'));
    const server = await startEmbeddedPostgres({
      dataDir: path.join(dataRoot, 'data'),
      port: await freePort(),
      user: 'switchboard',
      password: 'switchboard-test',
      database: 'postgres',
    });
    onRunEnd(async () => {
      await server.stop();
      await rm(dataRoot, { recursive: true, force: true });
    });
    adminUrl = server.url;
  }
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${templateName}`);
    await admin.query(`CREATE DATABASE ${templateName}`);
  } finally {
    await admin.end();
  }
  await migrate(databaseUrlFor(adminUrl, templateName));
  return { adminUrl };
});

function databaseUrlFor(adminUrl: string, database: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

export interface TestDatabase {
  url: string;
  db: Db;
}

/** A fresh, fully migrated database of its own (copied from the template), dropped at the end of the run. */
export async function createTestDatabase(prefix = 'test'): Promise<TestDatabase> {
  const { adminUrl } = await testServer();
  const name = uniqueId(prefix).replace(/[^a-z0-9]/g, '_');
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name} TEMPLATE ${templateName}`);
  } finally {
    await admin.end();
  }
  const url = databaseUrlFor(adminUrl, name);
  const db = createPool(url, { max: 20, applicationName: 'switchboard-test' });
  onRunEnd(async () => {
    await db.end();
    const cleanup = new pg.Client({ connectionString: adminUrl });
    await cleanup.connect();
    await cleanup.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).finally(() => cleanup.end());
  });
  return { url, db };
}

/** The embedded server's admin URL, for tests that need a whole database server (the stack test). */
export async function testPostgresAdminUrl(): Promise<string> {
  return (await testServer()).adminUrl;
}
