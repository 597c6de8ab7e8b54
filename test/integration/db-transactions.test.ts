/**
 * A transaction whose connection is lost while the client is checked out (a PostgreSQL restart, a
 * partition, a terminated backend) fails that transaction only: the process goes on, and the pool
 * hands out working connections afterwards.
 */
import assert from 'node:assert/strict';
import { checkOut, withTransaction } from '../../db/pool.js';
import { waitUntil } from '../../stack/processes.js';
import { createTestDatabase } from '../harness/postgres.js';

describe('checked-out clients (withTransaction, checkOut)', () => {
  it('survives its backend being terminated mid-transaction, and the pool recovers', async () => {
    const { db } = await createTestDatabase('tx');
    const outcome = withTransaction(db, async (client) => {
      const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      const pid = rows[0]?.pid;
      // Terminated from another connection while this one sits idle in its transaction: the
      // server's error then arrives with no query running, as an 'error' event on the client.
      await db.query('SELECT pg_terminate_backend($1)', [pid]);
      await waitUntil(async () => (await db.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid])).rowCount === 0, 10_000, 'the backend was not terminated');
      await client.query('SELECT 1');
      return 'committed';
    });
    await assert.rejects(outcome, /terminat|Connection|not queryable/i);
    const after = await withTransaction(db, async (client) => (await client.query<{ one: number }>('SELECT 1 AS one')).rows[0]?.one);
    assert.equal(after, 1);
  });

  it('a client checked out for several statements (the rate buckets\' joint slot) survives its backend being terminated between them', async () => {
    const { db } = await createTestDatabase('checkout');
    const { client, release } = await checkOut(db);
    const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    await db.query('SELECT pg_terminate_backend($1)', [rows[0]?.pid]);
    await waitUntil(async () => (await db.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [rows[0]?.pid])).rowCount === 0, 10_000, 'the backend was not terminated');
    await assert.rejects(client.query('SELECT 1'), /terminat|Connection|not queryable/i);
    release();
    assert.equal((await db.query<{ one: number }>('SELECT 1 AS one')).rows[0]?.one, 1, 'the pool hands out a working connection');
  });
});
