/**
 * Exactly-once effects on outside systems that have no idempotency keys of their own (Kommo,
 * helpdesks, WhatsApp). Protocol per effect key:
 *   1. reserve the key (committed) before touching the outside system;
 *   2. under a session advisory lock (released if the process dies), re-read the row: done → return
 *      the stored result; attempted before with an unknown outcome → ask the outside system
 *      whether the effect exists (`lookup`) and adopt it instead of sending again;
 *   3. count the attempt (committed), perform, store the result.
 * A crash at any point leaves either no effect, or an effect the next attempt finds.
 */
import type { Db } from './pool.js';

export interface EffectRow<T> {
  state: 'pending' | 'done' | 'skipped' | 'failed';
  attempts: number;
  result: T | null;
}

export interface OnceOptions<T> {
  tenantId: string;
  key: string;
  kind: string;
  /** Finds the effect of an earlier attempt whose outcome is unknown; undefined = not there. */
  lookup?: () => Promise<T | undefined>;
  perform: () => Promise<T>;
}

export interface OnceOutcome<T> {
  result: T;
  /** How the result was obtained: performed now, already done earlier, or adopted after a crash. */
  via: 'performed' | 'already_done' | 'recovered';
}

const lockKey = (tenantId: string, key: string): string => `effect|${tenantId}|${key}`;

export async function performOnce<T>(db: Db, options: OnceOptions<T>): Promise<OnceOutcome<T>> {
  const { tenantId, key, kind } = options;
  await db.query(
    `INSERT INTO external_effects (tenant_id, effect_key, kind, state) VALUES ($1, $2, $3, 'pending')
     ON CONFLICT (tenant_id, effect_key) DO NOTHING`,
    [tenantId, key, kind],
  );
  const client = await db.connect();
  let locked = false;
  try {
    await client.query('SELECT pg_advisory_lock(hashtextextended($1, 0))', [lockKey(tenantId, key)]);
    locked = true;
    const current = await client.query<EffectRow<T>>(
      'SELECT state, attempts, result FROM external_effects WHERE tenant_id = $1 AND effect_key = $2',
      [tenantId, key],
    );
    const row = current.rows[0];
    if (row && (row.state === 'done' || row.state === 'skipped') && row.result !== null) {
      return { result: row.result, via: 'already_done' };
    }
    if (row && row.attempts > 0 && options.lookup) {
      const found = await options.lookup();
      if (found !== undefined) {
        await markDone(client, tenantId, key, found);
        return { result: found, via: 'recovered' };
      }
    }
    await client.query(
      `UPDATE external_effects SET attempts = attempts + 1, updated_at = now() WHERE tenant_id = $1 AND effect_key = $2`,
      [tenantId, key],
    );
    try {
      const result = await options.perform();
      await markDone(client, tenantId, key, result);
      return { result, via: 'performed' };
    } catch (error) {
      await client.query(
        `UPDATE external_effects SET last_error = $3, updated_at = now() WHERE tenant_id = $1 AND effect_key = $2`,
        [tenantId, key, String((error as Error).message ?? error).slice(0, 500)],
      );
      throw error;
    }
  } finally {
    if (locked) await client.query('SELECT pg_advisory_unlock(hashtextextended($1, 0))', [lockKey(tenantId, key)]).catch(() => undefined);
    client.release();
  }
}

async function markDone(client: { query: Db['query'] }, tenantId: string, key: string, result: unknown): Promise<void> {
  await client.query(
    `UPDATE external_effects SET state = 'done', result = $3, last_error = NULL, updated_at = now() WHERE tenant_id = $1 AND effect_key = $2`,
    [tenantId, key, JSON.stringify(result ?? null)],
  );
}

/** Records that an effect will deliberately not happen (e.g. no e-mail address), with why. */
export async function markSkipped(db: Db, tenantId: string, key: string, kind: string, reason: string): Promise<void> {
  await db.query(
    `INSERT INTO external_effects (tenant_id, effect_key, kind, state, result) VALUES ($1, $2, $3, 'skipped', $4)
     ON CONFLICT (tenant_id, effect_key) DO NOTHING`,
    [tenantId, key, kind, JSON.stringify({ skipped: reason })],
  );
}
