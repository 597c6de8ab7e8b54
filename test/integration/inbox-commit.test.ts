/**
 * Inbox commits against a real PostgreSQL. Group commit: events that arrive while a commit is in
 * flight go together in one statement, each delivery learns which of its own events were new, and
 * one delivery's bad content never fails the deliveries it was grouped with. The backlog bound:
 * a commit is counted once, however it interleaves with the background reading.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import pg from 'pg';
import type { NewInboxEvent } from '../../db/inbox.js';
import type { Db } from '../../db/pool.js';
import { inboxChannel, insertInboxEvents } from '../../db/inbox.js';
import { startBacklogMonitor } from '../../ingestion/backlog.js';
import { createGroupCommit } from '../../ingestion/group-commit.js';
import { createLogger } from '../../observability/logger.js';
import { createTestDatabase } from '../harness/postgres.js';
import { uniqueId } from '../harness/resources.js';

function row(workflowId: string, eventId: string, payload: unknown = { eventId }): NewInboxEvent {
  return {
    tenantId: 'acme',
    source: 'pbx',
    workflowId,
    eventId,
    workflowType: 'callWorkflow',
    signalName: 'callEvents',
    taskQueue: 'calls',
    payload: JSON.stringify(payload),
  };
}

/** The pool, with the statements sent through it counted. */
function counting(db: Db): { db: Db; statements: () => number } {
  let statements = 0;
  const wrapped = Object.create(db, {
    query: {
      value: (...args: Parameters<Db['query']>) => {
        statements++;
        return (db.query as (...a: unknown[]) => unknown)(...args);
      },
    },
  }) as Db;
  return { db: wrapped, statements: () => statements };
}

describe('inbox group commit', function () {
  let db: Db;
  let url: string;

  before(async function () {
    ({ db, url } = await createTestDatabase('group_commit'));
  });

  it('wakes other forwarders from inside the commit, and once more after a commit the interval held back', async function () {
    const listener = new pg.Client({ connectionString: url });
    await listener.connect();
    try {
      await listener.query(`LISTEN ${inboxChannel}`);
      const { db: counted, statements } = counting(db);
      const commit = createGroupCommit(counted, { maxInFlight: 1, notifyEveryMs: 1_000 });
      const first = once(listener, 'notification');
      await commit([row(uniqueId('call'), 'ringing')]);
      await first;
      // The wake-up came with the INSERT itself: no statement of its own.
      assert.equal(statements(), 1);
      const second = once(listener, 'notification');
      await commit([row(uniqueId('call'), 'ringing')]);
      await second;
      const stored = await db.query<{ count: number }>('SELECT count(*)::int AS count FROM event_inbox');
      assert.ok((stored.rows[0]?.count ?? 0) >= 2);
    } finally {
      await listener.end();
    }
  });

  it('commits events that arrive together in a few statements, in the order they arrived', async function () {
    const { db: counted, statements } = counting(db);
    const commit = createGroupCommit(counted, { maxInFlight: 1 });
    const workflowId = uniqueId('call');
    const results = await Promise.all(Array.from({ length: 60 }, (_, index) => commit([row(workflowId, `e${index}`)])));

    assert.ok(results.every((result) => result.inserted === 1 && result.duplicates === 0));
    // The first goes at once, alone; the 59 that waited behind it go together.
    assert.equal(statements(), 2);
    const stored = await db.query<{ event_id: string }>('SELECT event_id FROM event_inbox WHERE workflow_id = $1 ORDER BY id', [workflowId]);
    assert.deepEqual(
      stored.rows.map((stored) => stored.event_id),
      Array.from({ length: 60 }, (_, index) => `e${index}`),
    );
  });

  it('tells each delivery which of its events were new, also when two carry the same event at once', async function () {
    const commit = createGroupCommit(db, { maxInFlight: 1 });
    const workflowId = uniqueId('call');
    await commit([row(workflowId, 'ringing')]);
    // Held back behind the one in flight, these three go in one statement.
    const blocker = commit([row(uniqueId('call'), 'other')]);
    const [first, second, third] = await Promise.all([
      commit([row(workflowId, 'answered'), row(workflowId, 'ringing')]),
      commit([row(workflowId, 'answered')]),
      commit([row(workflowId, 'ended')]),
      blocker,
    ]);
    const counts = ({ inserted, duplicates }: { inserted: number; duplicates: number }) => ({ inserted, duplicates });
    assert.deepEqual(counts(first), { inserted: 1, duplicates: 1 });
    assert.deepEqual(counts(second), { inserted: 0, duplicates: 1 });
    assert.deepEqual(counts(third), { inserted: 1, duplicates: 0 });
    const stored = await db.query<{ count: number }>('SELECT count(*)::int AS count FROM event_inbox WHERE workflow_id = $1', [workflowId]);
    assert.equal(stored.rows[0]?.count, 3);
  });

  it('retries a group alone when one delivery holds content PostgreSQL refuses, so only that one fails', async function () {
    const commit = createGroupCommit(db, { maxInFlight: 1 });
    const workflowId = uniqueId('call');
    const blocker = commit([row(uniqueId('call'), 'first')]);
    // jsonb refuses the NUL character.
    const outcomes = await Promise.allSettled([
      commit([row(workflowId, 'good-1')]),
      commit([row(workflowId, 'bad', { transcript: 'a\u0000b' })]),
      commit([row(workflowId, 'good-2')]),
      blocker,
    ]);
    assert.deepEqual(
      outcomes.map((outcome) => outcome.status),
      ['fulfilled', 'rejected', 'fulfilled', 'fulfilled'],
    );
    const stored = await db.query<{ event_id: string }>('SELECT event_id FROM event_inbox WHERE workflow_id = $1 ORDER BY id', [workflowId]);
    assert.deepEqual(
      stored.rows.map((stored) => stored.event_id),
      ['good-1', 'good-2'],
    );
  });
});

describe('inbox backlog bound', function () {
  it('counts a commit once when the reading already saw it before the commit was reported', async function () {
    const { db } = await createTestDatabase('backlog_count');
    const monitor = startBacklogMonitor({ db, logger: createLogger({ name: 'backlog-test', level: 'silent' }), limits: { maxEvents: 10, maxAgeSeconds: 60 }, refreshMs: 3_600_000 });
    try {
      await monitor.refresh();
      const first = await insertInboxEvents(db, [row(uniqueId('call'), 'ringing')]);
      // The reading runs between the commit and its report (as when a refresh races a request).
      await monitor.refresh();
      monitor.committed(1, first.transactionId);
      assert.equal(monitor.current().pending, 1);
      // A commit after the reading is added to it until the next reading counts it.
      const later = await insertInboxEvents(db, [row(uniqueId('call'), 'ringing')]);
      monitor.committed(1, later.transactionId);
      assert.equal(monitor.current().pending, 2);
      assert.equal((await monitor.refresh()).pending, 2);
    } finally {
      monitor.stop();
    }
  });

  it('counts a commit once when the reading ran while it was still in progress', async function () {
    const { db } = await createTestDatabase('backlog_in_progress');
    const monitor = startBacklogMonitor({ db, logger: createLogger({ name: 'backlog-test', level: 'silent' }), limits: { maxEvents: 10, maxAgeSeconds: 60 }, refreshMs: 3_600_000 });
    const client = await db.connect();
    try {
      await monitor.refresh();
      await client.query('BEGIN');
      const open = await insertInboxEvents(client, [row(uniqueId('call'), 'ringing')]);
      // Its row id is taken but not committed: the reading cannot count it.
      assert.equal((await monitor.refresh()).pending, 0);
      await client.query('COMMIT');
      monitor.committed(1, open.transactionId);
      assert.equal(monitor.current().pending, 1, 'the commit the reading did not see is added');
      assert.equal((await monitor.refresh()).pending, 1, 'and not twice once a reading sees it');
    } finally {
      client.release();
      monitor.stop();
    }
  });
});
