/**
 * Request budgets shared by every process (table `crm_rate_buckets`): an outside account's rate
 * limit (Kommo, HubSpot) or a sender's throughput (a WhatsApp number) holds however many workers
 * send, since each request takes its slot from the same row.
 */
import { checkOut } from './pool.js';
import type { Db } from './pool.js';

export interface BucketTake {
  bucket: string;
  perSecond: number;
  /** Requests that may go at once after a quiet period. */
  burst: number;
  /** How many slots may be reserved ahead (the queue this caller may join), in requests. */
  maxQueued: number;
}

/**
 * Takes one request slot from a bucket every process shares: refills by elapsed time (capped at
 * `burst`) and reserves the next slot in one UPDATE, so concurrent takes serialize on the row.
 * Answers how long to wait before sending, or, when `maxQueued` slots are already reserved, how
 * long until there would be room (nothing is reserved then).
 */
export async function takeBucketSlot(db: Db, take: BucketTake): Promise<{ waitMs: number } | { fullForMs: number }> {
  const refilled = `LEAST($2::float8, tokens + GREATEST(0, EXTRACT(EPOCH FROM clock_timestamp() - refilled_at))::float8 * $3::float8)`;
  const params = [take.bucket, take.burst, take.perSecond, take.maxQueued];
  for (let tries = 0; tries < 2; tries++) {
    const taken = await db.query<{ tokens: number }>(
      `UPDATE crm_rate_buckets SET tokens = ${refilled} - 1, refilled_at = clock_timestamp()
        WHERE bucket = $1 AND ${refilled} - 1 >= -$4::float8
        RETURNING tokens`,
      params,
    );
    const slot = taken.rows[0];
    if (slot) return { waitMs: slot.tokens >= 0 ? 0 : Math.ceil((-slot.tokens / take.perSecond) * 1000) };
    const current = await db.query<{ available: number }>(`SELECT ${refilled} AS available FROM crm_rate_buckets WHERE bucket = $1`, params.slice(0, 3));
    const row = current.rows[0];
    if (row) return { fullForMs: Math.max(1, Math.ceil(((-take.maxQueued + 1 - row.available) / take.perSecond) * 1000)) };
    await db.query('INSERT INTO crm_rate_buckets (bucket, tokens) VALUES ($1, $2) ON CONFLICT (bucket) DO NOTHING', [take.bucket, take.burst]);
  }
  throw new Error(`rate bucket ${take.bucket} could not be created`);
}

/**
 * One slot in several buckets at once, for a request that counts against more than one limit (a
 * HubSpot search: the account's requests and its searches). The request goes at the first moment
 * every bucket allows, and each bucket's next slot is counted from that moment, so the request's
 * send time respects all of them (taking the slots one after the other would let the wait for the
 * second bunch up requests in the first). The rows are locked in name order, so concurrent takes
 * of the same buckets never deadlock.
 */
export async function takeJointSlot(db: Db, takes: BucketTake[]): Promise<{ waitMs: number } | { fullForMs: number }> {
  const [only] = takes;
  if (takes.length === 1 && only) return takeBucketSlot(db, only);
  const sorted = [...takes].sort((a, b) => (a.bucket < b.bucket ? -1 : a.bucket > b.bucket ? 1 : 0));
  const names = sorted.map((take) => take.bucket);
  for (let tries = 0; tries < 2; tries++) {
    const { client, release } = await checkOut(db);
    let broken = false;
    try {
      await client.query('BEGIN');
      const locked = await client.query('SELECT bucket FROM crm_rate_buckets WHERE bucket = ANY($1::text[]) ORDER BY bucket FOR UPDATE', [names]);
      if (locked.rowCount !== names.length) {
        await client.query('ROLLBACK');
        await db.query('INSERT INTO crm_rate_buckets (bucket, tokens) SELECT bucket, burst FROM unnest($1::text[], $2::float8[]) AS b(bucket, burst) ON CONFLICT (bucket) DO NOTHING', [
          names,
          sorted.map((take) => take.burst),
        ]);
        continue;
      }
      // Under the locks: each bucket's balance now, the first moment all allow a request, and each
      // balance after a request at that moment (negative: slots reserved ahead).
      const planned = await client.query<{ tokens: number; per_second: number; max_queued: number; wait_s: number; taken: boolean }>(
        `WITH at AS (SELECT clock_timestamp() AS now),
         wanted AS (SELECT * FROM unnest($1::text[], $2::float8[], $3::float8[], $4::float8[]) AS w(bucket, burst, per_second, max_queued)),
         current AS (
           SELECT w.*, LEAST(w.burst, c.tokens + GREATEST(0, EXTRACT(EPOCH FROM at.now - c.refilled_at))::float8 * w.per_second) AS available
             FROM wanted w JOIN crm_rate_buckets c USING (bucket) CROSS JOIN at
         ),
         slot AS (SELECT max(GREATEST(0, (1 - available) / per_second)) AS wait_s FROM current),
         plan AS (
           SELECT cur.bucket, cur.per_second, cur.max_queued, slot.wait_s,
                  LEAST(cur.available + slot.wait_s * cur.per_second, cur.burst) - 1 - slot.wait_s * cur.per_second AS tokens
             FROM current cur CROSS JOIN slot
         ),
         fits AS (SELECT bool_and(tokens >= -max_queued) AS ok FROM plan),
         taken AS (
           UPDATE crm_rate_buckets c SET tokens = plan.tokens, refilled_at = at.now
             FROM plan, fits, at
            WHERE c.bucket = plan.bucket AND fits.ok
           RETURNING c.bucket
         )
         SELECT plan.tokens, plan.per_second, plan.max_queued, plan.wait_s, EXISTS (SELECT 1 FROM taken) AS taken FROM plan`,
        [names, sorted.map((take) => take.burst), sorted.map((take) => take.perSecond), sorted.map((take) => take.maxQueued)],
      );
      await client.query('COMMIT');
      const rows = planned.rows;
      if (rows[0]?.taken) return { waitMs: Math.ceil((rows[0].wait_s ?? 0) * 1000) };
      // Some bucket has maxQueued slots reserved already: nothing was taken.
      const fullForS = Math.max(0, ...rows.filter((row) => row.tokens < -row.max_queued).map((row) => (-row.max_queued - row.tokens) / row.per_second));
      return { fullForMs: Math.max(1, Math.ceil(fullForS * 1000)) };
    } catch (error) {
      broken = true;
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      release(broken);
    }
  }
  throw new Error(`rate buckets ${names.join(', ')} could not be created`);
}
