/**
 * The CRM backlog operators see on the dashboard and in /metrics, counted from a real journal:
 * ended calls still to be logged, and how long they take at the pace of the last 10 minutes.
 */
import assert from 'node:assert/strict';
import { createApiMetrics } from '../../api/metrics.js';
import { recordCall } from '../../db/call-journal.js';
import { crmBacklog, dashboardSnapshot } from '../../db/dashboard.js';
import type { Db } from '../../db/pool.js';
import { initialSnapshot } from '../../shared/call-state.js';
import type { CallSnapshot, CrmSyncState } from '../../shared/calls.js';
import { createTestDatabase } from '../harness/postgres.js';
import { parsePrometheus } from '../harness/prometheus.js';
import { uniqueId } from '../harness/resources.js';

async function journalCall(db: Db, tenantId: string, status: CallSnapshot['status'], crmSyncState: CrmSyncState, endedMinutesAgo: number): Promise<void> {
  const endedAt = new Date(Date.now() - endedMinutesAgo * 60_000).toISOString();
  const snapshot: CallSnapshot = { ...initialSnapshot(tenantId, 'pbx', uniqueId('call')), version: 1, status, crmSyncState, startedAt: endedAt, ...(status === 'in_progress' ? {} : { endedAt }) };
  await recordCall(db, snapshot, []);
}

describe('CRM backlog', function () {
  let db: Db;
  before(async function () {
    ({ db } = await createTestDatabase('crm_backlog'));
  });

  it('counts ended calls still to be logged and their drain time at the recent pace, per tenant, in the snapshot and the metrics', async function () {
    const tenant = uniqueId('tenant');
    const other = uniqueId('tenant');
    await journalCall(db, tenant, 'ended', 'waiting', 3);
    await journalCall(db, tenant, 'completed', 'pending', 1);
    await journalCall(db, tenant, 'in_progress', 'waiting', 0); // still on the phone: not CRM work yet
    await journalCall(db, tenant, 'completed', 'synced', 2);
    await journalCall(db, other, 'completed', 'waiting', 1);

    const backlog = await crmBacklog(db, tenant);
    assert.equal(backlog.calls, 2);
    assert.ok(backlog.oldestAgeSeconds >= 179 && backlog.oldestAgeSeconds < 240, `oldest ${backlog.oldestAgeSeconds} s`);
    // One call logged in the last 10 minutes: 0.1 a minute, so two take 20 minutes.
    assert.equal(backlog.loggedPerMinute, 0.1);
    assert.equal(backlog.expectedDrainSeconds, 1200);
    assert.deepEqual((await dashboardSnapshot(db, tenant, 'UTC', 20)).crmBacklog, backlog);

    const metrics = createApiMetrics({ crmBacklog: () => crmBacklog(db) });
    const text = (await Promise.all(['switchboard_crm_backlog_calls', 'switchboard_crm_backlog_drain_seconds'].map((name) => metrics.registry.getSingleMetricAsString(name)))).join('\n');
    const families = await parsePrometheus(`${text}\n`);
    const sample = (name: string): number | undefined => families.find((family) => family.name === name)?.samples[0]?.value;
    assert.equal(sample('switchboard_crm_backlog_calls'), 3, 'all tenants');
    assert.ok((sample('switchboard_crm_backlog_drain_seconds') ?? 0) > 0);
  });

  it('has no pace to go by when nothing was logged lately, and nothing to drain when nothing waits', async function () {
    const quiet = uniqueId('tenant');
    assert.deepEqual(await crmBacklog(db, quiet), { calls: 0, oldestAgeSeconds: 0, loggedPerMinute: 0, expectedDrainSeconds: 0 });
    await journalCall(db, quiet, 'ended', 'waiting', 1);
    assert.equal((await crmBacklog(db, quiet)).expectedDrainSeconds, null);
  });
});
