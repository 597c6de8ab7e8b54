import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import pg from 'pg';

export type Db = pg.Pool;

// Return BIGINT/NUMERIC counts as numbers and timestamps as Date (pg's default).
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number.parseInt(value, 10));

export function createPool(databaseUrl: string, options: { max?: number; applicationName?: string; queryTimeoutMs?: number } = {}): Db {
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: options.max ?? 10,
    application_name: options.applicationName ?? 'switchboard',
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
    // Client-side: a query on a connection that stopped answering (frozen or partitioned server) fails instead of hanging.
    ...(options.queryTimeoutMs ? { query_timeout: options.queryTimeoutMs } : {}),
  });
  // An idle client losing its connection (server restart) must not crash the process;
  // the pool replaces it on next use.
  pool.on('error', () => undefined);
  shareProcessPriority(pool, databaseUrl);
  return pool;
}

const localHosts = new Set(['', 'localhost', '127.0.0.1', '[::1]']);

/**
 * A process started below the API's priority (the worker, the forwarder: stack/processes.ts) puts its
 * PostgreSQL backends there too when the server runs on this machine, so the journal writes of a
 * catch-up never hold up the API's inbox commits. Where that is not allowed (another user's server
 * without privileges) the backends keep the server's priority: only latency is at stake.
 */
function shareProcessPriority(pool: pg.Pool, databaseUrl: string): void {
  let niceness: number;
  let host: string;
  try {
    niceness = os.getPriority();
    host = new URL(databaseUrl).hostname;
  } catch {
    return;
  }
  if (niceness <= 0 || !localHosts.has(host)) return;
  const batch = schedulingPolicyOf('self') === schedBatch;
  pool.on('connect', (client) => {
    // The server names its backend's pid at start-up (BackendKeyData); no query is needed.
    const pid = (client as { processID?: number | null }).processID;
    if (typeof pid !== 'number' || pid <= 0) return;
    try {
      os.setPriority(pid, niceness);
    } catch {
      // not permitted: the backend stays at the server's priority
    }
    // Its scheduling policy too (SCHED_BATCH: never preempts a running task on wake-up; see stack/processes.ts).
    if (batch) execFile('chrt', ['--batch', '-p', '0', String(pid)], () => undefined);
  });
}

/** SCHED_BATCH's number in Linux's scheduling policies. */
export const schedBatch = 3;

/** A process's scheduling policy (Linux: field 41 of /proc/<pid>/stat), or undefined elsewhere. */
export function schedulingPolicyOf(pid: number | 'self'): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const policy = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[38]);
    return Number.isInteger(policy) ? policy : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A pooled client checked out for several statements. A checked-out client has no pool listener:
 * a connection lost while it is out (a restart, a terminated backend) would be an unhandled
 * 'error' event and end the process. Here the next query fails instead, and `release` discards
 * a broken client rather than returning it to the pool.
 */
export async function checkOut(db: Db): Promise<{ client: pg.PoolClient; release: (broken?: boolean) => void }> {
  const client = await db.connect();
  let lost: Error | undefined;
  const onError = (error: Error): void => {
    lost = error;
  };
  client.on('error', onError);
  return {
    client,
    release: (broken = false) => {
      client.off('error', onError);
      client.release(lost ?? broken);
    },
  };
}

/** Runs `work` in a transaction on one pooled client. */
export async function withTransaction<T>(db: Db, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const { client, release } = await checkOut(db);
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    release();
  }
}
