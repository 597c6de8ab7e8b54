/**
 * The ledger's claims are fenced (db/effects.ts, migration 0008): an attempt that stalls past its
 * lease while a newer attempt holds the key can no longer clear that claim, overwrite the stored
 * result, or go on to act. Each test stalls the first attempt inside the ledger until its (short)
 * lease has run out in PostgreSQL's clock, lets a second attempt claim the key, then lets the
 * first one go on.
 */
import assert from 'node:assert/strict';
import pg from 'pg';
import { EffectBusyError, performOnce } from '../../db/effects.js';
import type { OnceOptions } from '../../db/effects.js';
import { createPool } from '../../db/pool.js';
import type { Db } from '../../db/pool.js';
import { waitUntil } from '../../stack/processes.js';
import { createTestDatabase, testPostgresAdminUrl } from '../harness/postgres.js';
import { uniqueId } from '../harness/resources.js';

interface Gate {
  /** Resolves once the stalled work has reached the gate. */
  reached: Promise<void>;
  /** Lets the stalled work go on. */
  open: () => void;
  /** What the stalled work awaits. */
  wait: () => Promise<void>;
}

function gate(): Gate {
  let arrive = (): void => undefined;
  let open = (): void => undefined;
  const reached = new Promise<void>((resolve) => (arrive = resolve));
  const opened = new Promise<void>((resolve) => (open = resolve));
  return {
    reached,
    open,
    wait: () => {
      arrive();
      return opened;
    },
  };
}

interface Row {
  state: string;
  result: { by: string } | null;
  attempts: number;
  claimed: boolean;
}

describe('effect ledger: a stale attempt is fenced off by its claim token', function () {
  this.timeout(60_000);
  let db: Db;
  const tenantId = uniqueId('fence');
  before(async () => {
    ({ db } = await createTestDatabase('fence'));
  });

  const row = async (key: string): Promise<Row> => {
    const found = await db.query<Row>(
      `SELECT state, result, attempts, coalesce(claimed_until > now(), false) AS claimed FROM external_effects WHERE tenant_id = $1 AND effect_key = $2`,
      [tenantId, key],
    );
    return found.rows[0] ?? assert.fail(`no ledger row for ${key}`);
  };
  /** Until the key's lease has run out by the database's clock (the one claims are judged by). */
  const leaseRunsOut = (key: string): Promise<void> => waitUntil(async () => !(await row(key)).claimed, 10_000, `the lease on ${key} did not run out`);
  const options = (key: string, extra: Partial<OnceOptions<{ by: string }>>): OnceOptions<{ by: string }> => ({
    tenantId,
    key,
    kind: 'test_effect',
    lookup: () => Promise.resolve(undefined),
    perform: () => assert.fail('perform was not expected'),
    ...extra,
  });

  it('a stale attempt\'s release leaves the newer attempt\'s claim in place, so no third attempt acts beside it', async () => {
    const key = uniqueId('release');
    const stale = gate();
    const newer = gate();
    const first = performOnce(db, options(key, {
      leaseSeconds: 1,
      perform: async () => {
        await stale.wait();
        throw new Error('the answer was lost');
      },
    }));
    await stale.reached;
    await leaseRunsOut(key);
    const second = performOnce(db, options(key, {
      leaseSeconds: 60,
      perform: async () => {
        await newer.wait();
        return { by: 'second' };
      },
    }));
    await newer.reached;

    stale.open();
    await assert.rejects(first, /the answer was lost/);
    const afterStale = await row(key);
    assert.equal(afterStale.claimed, true, 'the second attempt still holds the key');
    assert.equal(afterStale.attempts, 2);

    let thirdActed = false;
    await assert.rejects(
      performOnce(db, options(key, {
        perform: () => {
          thirdActed = true;
          return Promise.resolve({ by: 'third' });
        },
      })),
      (error: unknown) => error instanceof EffectBusyError,
    );
    assert.equal(thirdActed, false);

    newer.open();
    assert.deepEqual(await second, { result: { by: 'second' }, via: 'performed' });
    assert.deepEqual((await row(key)).result, { by: 'second' });
  });

  it('a stale attempt that finishes after the newer one stored its result overwrites nothing and answers with the stored result', async () => {
    const key = uniqueId('done');
    const stale = gate();
    const first = performOnce(db, options(key, {
      leaseSeconds: 1,
      perform: async () => {
        await stale.wait();
        return { by: 'first' };
      },
    }));
    await stale.reached;
    await leaseRunsOut(key);
    // The newer attempt's look-up does not see the stalled attempt's effect yet, so it acts.
    assert.deepEqual(await performOnce(db, options(key, { perform: () => Promise.resolve({ by: 'second' }) })), { result: { by: 'second' }, via: 'performed' });

    stale.open();
    assert.deepEqual(await first, { result: { by: 'second' }, via: 'already_done' });
    const stored = await row(key);
    assert.equal(stored.state, 'done');
    assert.deepEqual(stored.result, { by: 'second' }, 'the stored result is the one stored first');
  });

  it('a stale attempt that did act records it while the newer attempt is still looking, and the newer attempt then does not act again', async () => {
    const key = uniqueId('adopt');
    const stale = gate();
    const looking = gate();
    const first = performOnce(db, options(key, {
      leaseSeconds: 1,
      perform: async () => {
        await stale.wait();
        return { by: 'first' };
      },
    }));
    await stale.reached;
    await leaseRunsOut(key);
    let secondActed = false;
    const second = performOnce(db, options(key, {
      leaseSeconds: 60,
      // Asks the outside system before the stalled attempt's effect shows there.
      lookup: async () => {
        await looking.wait();
        return undefined;
      },
      perform: () => {
        secondActed = true;
        return Promise.resolve({ by: 'second' });
      },
    }));
    await looking.reached;

    stale.open();
    assert.deepEqual(await first, { result: { by: 'first' }, via: 'performed' });
    looking.open();
    assert.deepEqual(await second, { result: { by: 'first' }, via: 'already_done' });
    assert.equal(secondActed, false, 'the effect happened once');
    assert.deepEqual((await row(key)).result, { by: 'first' });
  });

  it('an attempt whose look-up outlived its lease does not act once a newer attempt has the key', async () => {
    const key = uniqueId('late');
    // An earlier attempt whose outcome is unknown: the next ones look the effect up first.
    await assert.rejects(performOnce(db, options(key, { perform: () => Promise.reject(new Error('worker died')) })), /worker died/);
    const stale = gate();
    let staleActed = false;
    const first = performOnce(db, options(key, {
      leaseSeconds: 1,
      lookup: async () => {
        await stale.wait();
        return undefined;
      },
      perform: () => {
        staleActed = true;
        return Promise.resolve({ by: 'first' });
      },
    }));
    await stale.reached;
    await leaseRunsOut(key);
    assert.deepEqual(await performOnce(db, options(key, { perform: () => Promise.resolve({ by: 'second' }) })), { result: { by: 'second' }, via: 'performed' });

    stale.open();
    assert.deepEqual(await first, { result: { by: 'second' }, via: 'already_done' });
    assert.equal(staleActed, false, 'the stale attempt never acted');
  });

  it('a claim made by a process of the previous version (no token of its own) fences the new version\'s stale attempt too', async () => {
    const key = uniqueId('upgrade');
    const stale = gate();
    const first = performOnce(db, options(key, {
      leaseSeconds: 1,
      perform: async () => {
        await stale.wait();
        throw new Error('the answer was lost');
      },
    }));
    await stale.reached;
    await leaseRunsOut(key);
    // The claim exactly as the previous version's performOnce makes it.
    const claimed = await db.query(
      `UPDATE external_effects
          SET claimed_until = now() + make_interval(secs => 60), attempts = attempts + 1, updated_at = now()
        WHERE tenant_id = $1 AND effect_key = $2 AND state = 'pending' AND (claimed_until IS NULL OR claimed_until < now())`,
      [tenantId, key],
    );
    assert.equal(claimed.rowCount, 1);

    stale.open();
    await assert.rejects(first, /the answer was lost/);
    assert.equal((await row(key)).claimed, true, 'the old process still holds the key');
  });

  it('an attempt that fails while PostgreSQL is out of reach gives its key back once it is reachable again, not after the whole lease', async () => {
    const { url } = await createTestDatabase('partition');
    const database = new URL(url).pathname.slice(1);
    // One connection that stays open through the partition: it sees what the attempt's pool cannot.
    const observer = new pg.Client({ connectionString: url });
    await observer.connect();
    // A database cannot refuse connections from a session inside it: the switch is thrown from outside.
    const admin = new pg.Client({ connectionString: await testPostgresAdminUrl() });
    await admin.connect();
    const attemptDb = createPool(url, { max: 2, applicationName: 'ledger-partitioned' });
    try {
      const key = uniqueId('partition');
      const claimed = async (): Promise<boolean> =>
        (await observer.query<{ claimed: boolean }>('SELECT coalesce(claimed_until > now(), false) AS claimed FROM external_effects WHERE tenant_id = $1 AND effect_key = $2', [tenantId, key])).rows[0]?.claimed ?? false;
      const attempt = performOnce(attemptDb, options(key, {
        leaseSeconds: 120,
        perform: async () => {
          // The partition: no new connection to the database, and the pool's own ones cut.
          await admin.query(`ALTER DATABASE ${database} ALLOW_CONNECTIONS false`);
          await observer.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'ledger-partitioned' AND pid <> pg_backend_pid()`);
          throw new Error('the CRM did not answer');
        },
      }));
      await assert.rejects(attempt, /the CRM did not answer/);
      assert.equal(await claimed(), true, 'the release could not reach PostgreSQL: the key is still claimed');
      await admin.query(`ALTER DATABASE ${database} ALLOW_CONNECTIONS true`);
      // The lease has about two minutes left; the background release lands within seconds.
      await waitUntil(async () => !(await claimed()), 15_000, 'the key was not given back once PostgreSQL was reachable');
      assert.deepEqual(await performOnce(attemptDb, options(key, { perform: () => Promise.resolve({ by: 'retry' }) })), { result: { by: 'retry' }, via: 'performed' });
    } finally {
      await admin.query(`ALTER DATABASE ${database} ALLOW_CONNECTIONS true`).catch(() => undefined);
      await admin.end();
      await observer.end();
      await attemptDb.end();
    }
  });
});
