/**
 * Exactly-once effects on outside systems that have no idempotency keys of their own (Kommo,
 * helpdesks, WhatsApp). Protocol per effect key:
 *   1. the key's row exists (inserted once, unique per tenant and key);
 *   2. an attempt claims it for a lease, counts itself and takes the next claim token (one UPDATE,
 *      committed before any outside call); a key that is done returns the stored result; a key
 *      another live attempt holds is "busy" and retried later;
 *   3. if an earlier attempt claimed it and never finished, the outcome is unknown: ask the
 *      outside system (`lookup`) and adopt what it has instead of sending again;
 *   4. perform, store the result, release.
 * No database connection is held during the outside call, and a crash at any point leaves
 * either no effect or one the next attempt finds.
 *
 * Fencing: an attempt that stalls past its lease (a hung request, a paused process) may find a
 * newer attempt holding the key. The claim token keeps the stale one from clearing that claim,
 * from starting to act, and from overwriting a stored result; a done row is never changed again.
 */
import type { Db } from './pool.js';

export interface OnceOptions<T> {
  tenantId: string;
  key: string;
  kind: string;
  /** Finds the effect of an earlier attempt whose outcome is unknown; undefined = not there. */
  lookup?: () => Promise<T | undefined>;
  perform: () => Promise<T>;
  /** How long an attempt may hold the key; longer than any single attempt can take. */
  leaseSeconds?: number;
  /**
   * For systems that report effects later (WhatsApp status webhooks): when an earlier attempt's
   * outcome is unknown and `lookup` finds nothing yet, wait this long after that attempt before
   * concluding it never happened.
   */
  unknownOutcomeGraceSeconds?: number;
  /** Errors that prove the outside system did not act (it answered with a refusal). */
  definiteFailure?: (error: unknown) => boolean;
}

export interface OnceOutcome<T> {
  result: T;
  /** How the result was obtained: performed now, already done earlier, or adopted after a crash. */
  via: 'performed' | 'already_done' | 'recovered';
}

/** Another attempt holds this effect, or an earlier one's outcome is not known yet; retry later. */
export class EffectBusyError extends Error {
  override readonly name = 'EffectBusyError';
  constructor(
    readonly key: string,
    readonly retryAfterMs?: number,
    message = `another attempt is performing ${key}`,
  ) {
    super(message);
  }
}

interface Row<T> {
  state: string;
  result: T;
}

const settled = (state: string | undefined): boolean => state === 'done' || state === 'skipped';

/** How often a release that could not reach PostgreSQL is tried again. */
const releaseRetryMs = 2_000;

/** Runs `attempt` every `releaseRetryMs` until it succeeds or `until` (epoch ms) passes; never keeps the process alive. */
function retryInBackground(attempt: () => Promise<unknown>, until: number): void {
  if (Date.now() + releaseRetryMs >= until) return;
  setTimeout(() => {
    attempt().catch(() => retryInBackground(attempt, until));
  }, releaseRetryMs).unref();
}

export async function performOnce<T>(db: Db, options: OnceOptions<T>): Promise<OnceOutcome<T>> {
  const { tenantId, key, kind } = options;
  const leaseSeconds = options.leaseSeconds ?? 120;
  await db.query(
    `INSERT INTO external_effects (tenant_id, effect_key, kind, state) VALUES ($1, $2, $3, 'pending')
     ON CONFLICT (tenant_id, effect_key) DO NOTHING`,
    [tenantId, key, kind],
  );
  const claimed = await db.query<{ attempts: number; attempted_at: Date | null; claim_token: number }>(
    `UPDATE external_effects
        SET claimed_until = now() + make_interval(secs => $3), attempts = attempts + 1, claim_token = claim_token + 1, updated_at = now()
      WHERE tenant_id = $1 AND effect_key = $2 AND state = 'pending' AND (claimed_until IS NULL OR claimed_until < now())
      RETURNING attempts, attempted_at, claim_token`,
    [tenantId, key, leaseSeconds],
  );
  const claim = claimed.rows[0];
  const current = async (): Promise<Row<T> | undefined> =>
    (await db.query<Row<T>>('SELECT state, result FROM external_effects WHERE tenant_id = $1 AND effect_key = $2', [tenantId, key])).rows[0];
  if (!claim) {
    const row = await current();
    if (row && settled(row.state)) return { result: row.result, via: 'already_done' };
    throw new EffectBusyError(key);
  }
  const token = claim.claim_token;
  const claimedAt = Date.now();

  /**
   * Gives the key back, if this attempt still holds it; `performed: false` means this attempt
   * provably did not act. When PostgreSQL cannot be reached (a restart, a partition), giving back
   * is retried in the background until the lease would have run out anyway: otherwise the retry
   * of this attempt would find the key busy for the whole lease (minutes) after the database is back.
   */
  const release = async (error: unknown, performed: boolean): Promise<void> => {
    const giveBack = () =>
      db.query(
        `UPDATE external_effects SET claimed_until = NULL, attempts = attempts - $4, last_error = $3, updated_at = now()
          WHERE tenant_id = $1 AND effect_key = $2 AND state = 'pending' AND claim_token = $5`,
        [tenantId, key, String((error as Error).message ?? error).slice(0, 500), performed ? 0 : 1, token],
      );
    await giveBack().catch(() => retryInBackground(giveBack, claimedAt + leaseSeconds * 1000));
  };

  /**
   * Stores an effect that is known to have happened. Normally this attempt still holds the key.
   * One that lost it still records its effect while the row is pending: the effect is a fact, and
   * the attempt holding the key then finds the row done (before it acts, or when it stores its
   * own) instead of acting a second time. A row already done keeps the result it has.
   */
  const record = async (result: T, via: OnceOutcome<T>['via']): Promise<OnceOutcome<T>> => {
    const value = JSON.stringify(result ?? {});
    const done = `UPDATE external_effects SET state = 'done', result = $3, claimed_until = NULL, last_error = NULL, updated_at = now()
                   WHERE tenant_id = $1 AND effect_key = $2 AND state = 'pending'`;
    const ours = await db.query(`${done} AND claim_token = $4`, [tenantId, key, value, token]);
    if (ours.rowCount === 1) return { result, via };
    const adopted = await db.query(done, [tenantId, key, value]);
    if (adopted.rowCount === 1) return { result, via };
    const row = await current();
    if (row && settled(row.state)) return { result: row.result, via: 'already_done' };
    throw new EffectBusyError(key, undefined, `the ledger row of ${key} is ${row?.state ?? 'gone'}; this attempt's result was not stored`);
  };

  /** Stores a known effect; if storing fails, the key is given back still counting this attempt, so the next one looks the effect up. */
  const recordOrRelease = async (result: T, via: OnceOutcome<T>['via']): Promise<OnceOutcome<T>> => {
    try {
      return await record(result, via);
    } catch (error) {
      await release(error, true);
      throw error;
    }
  };

  let found: T | undefined;
  try {
    if (claim.attempts > 1 && options.lookup) {
      found = await options.lookup();
      const graceMs = (options.unknownOutcomeGraceSeconds ?? 0) * 1000;
      const sinceLastAttempt = claim.attempted_at ? Date.now() - claim.attempted_at.getTime() : Number.POSITIVE_INFINITY;
      if (found === undefined && sinceLastAttempt < graceMs) {
        const pending = new EffectBusyError(key, graceMs - sinceLastAttempt, `the outcome of an earlier attempt at ${key} is not known yet`);
        await release(pending, false);
        throw pending;
      }
    }
    if (found === undefined) {
      // The last check before acting: this attempt still holds the key, within its lease.
      const holding = await db.query(
        `UPDATE external_effects SET attempted_at = now()
          WHERE tenant_id = $1 AND effect_key = $2 AND state = 'pending' AND claim_token = $3 AND claimed_until > now()`,
        [tenantId, key, token],
      );
      if (holding.rowCount !== 1) {
        const row = await current();
        if (row && settled(row.state)) return { result: row.result, via: 'already_done' };
        const expired = new EffectBusyError(key, undefined, `this attempt's claim on ${key} ran out before it acted`);
        await release(expired, false);
        throw expired;
      }
    }
  } catch (error) {
    if (!(error instanceof EffectBusyError)) await release(error, false);
    throw error;
  }
  if (found !== undefined) return recordOrRelease(found, 'recovered');
  let result: T;
  try {
    result = await options.perform();
  } catch (error) {
    await release(error, !(options.definiteFailure?.(error) ?? false));
    throw error;
  }
  return recordOrRelease(result, 'performed');
}
