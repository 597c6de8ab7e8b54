/**
 * Exactly-once effects on outside systems that have no idempotency keys of their own (Kommo,
 * helpdesks, WhatsApp). Protocol per effect key:
 *   1. the key's row exists (inserted once, unique per tenant and key);
 *   2. an attempt claims it for a lease and counts itself (one UPDATE, committed before any
 *      outside call); a key that is done returns the stored result; a key another live attempt
 *      holds is "busy" and retried later;
 *   3. if an earlier attempt claimed it and never finished, the outcome is unknown: ask the
 *      outside system (`lookup`) and adopt what it has instead of sending again;
 *   4. perform, store the result, release.
 * No database connection is held during the outside call, and a crash at any point leaves
 * either no effect or one the next attempt finds.
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

export async function performOnce<T>(db: Db, options: OnceOptions<T>): Promise<OnceOutcome<T>> {
  const { tenantId, key, kind } = options;
  await db.query(
    `INSERT INTO external_effects (tenant_id, effect_key, kind, state) VALUES ($1, $2, $3, 'pending')
     ON CONFLICT (tenant_id, effect_key) DO NOTHING`,
    [tenantId, key, kind],
  );
  const claimed = await db.query<{ attempts: number; attempted_at: Date | null }>(
    `UPDATE external_effects
        SET claimed_until = now() + make_interval(secs => $3), attempts = attempts + 1, updated_at = now()
      WHERE tenant_id = $1 AND effect_key = $2 AND state = 'pending' AND (claimed_until IS NULL OR claimed_until < now())
      RETURNING attempts, attempted_at`,
    [tenantId, key, options.leaseSeconds ?? 120],
  );
  const claim = claimed.rows[0];
  if (!claim) {
    const current = await db.query<{ state: string; result: T }>('SELECT state, result FROM external_effects WHERE tenant_id = $1 AND effect_key = $2', [tenantId, key]);
    const row = current.rows[0];
    if (row && (row.state === 'done' || row.state === 'skipped')) return { result: row.result, via: 'already_done' };
    throw new EffectBusyError(key);
  }
  /** Gives the key back; `performed: false` means this attempt provably did not act. */
  const release = async (error: unknown, performed: boolean): Promise<void> => {
    await db
      .query(
        `UPDATE external_effects SET claimed_until = NULL, attempts = attempts - $4, last_error = $3, updated_at = now()
          WHERE tenant_id = $1 AND effect_key = $2`,
        [tenantId, key, String((error as Error).message ?? error).slice(0, 500), performed ? 0 : 1],
      )
      .catch(() => undefined);
  };
  try {
    if (claim.attempts > 1 && options.lookup) {
      const found = await options.lookup();
      if (found !== undefined) {
        await markDone(db, tenantId, key, found);
        return { result: found, via: 'recovered' };
      }
      const graceMs = (options.unknownOutcomeGraceSeconds ?? 0) * 1000;
      const sinceLastAttempt = claim.attempted_at ? Date.now() - claim.attempted_at.getTime() : Number.POSITIVE_INFINITY;
      if (sinceLastAttempt < graceMs) {
        const pending = new EffectBusyError(key, graceMs - sinceLastAttempt, `the outcome of an earlier attempt at ${key} is not known yet`);
        await release(pending, false);
        throw pending;
      }
    }
    await db.query('UPDATE external_effects SET attempted_at = now() WHERE tenant_id = $1 AND effect_key = $2', [tenantId, key]);
  } catch (error) {
    if (!(error instanceof EffectBusyError)) await release(error, false);
    throw error;
  }
  try {
    const result = await options.perform();
    await markDone(db, tenantId, key, result);
    return { result, via: 'performed' };
  } catch (error) {
    await release(error, !(options.definiteFailure?.(error) ?? false));
    throw error;
  }
}

async function markDone(db: Db, tenantId: string, key: string, result: unknown): Promise<void> {
  await db.query(
    `UPDATE external_effects SET state = 'done', result = $3, claimed_until = NULL, last_error = NULL, updated_at = now()
      WHERE tenant_id = $1 AND effect_key = $2`,
    [tenantId, key, JSON.stringify(result ?? {})],
  );
}
