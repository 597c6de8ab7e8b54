import assert from 'node:assert/strict';
import { Client } from '@temporalio/client';
import type { Worker } from '@temporalio/worker';
import { createRetentionActivities } from '../../activities/retention.js';
import { tenantRetentionSchema } from '../../config/schema.js';
import { recordCall } from '../../db/call-journal.js';
import { insertInboxEvents } from '../../db/inbox.js';
import type { Db } from '../../db/pool.js';
import { insertRejectedEvent } from '../../db/rejections.js';
import { createLogger } from '../../observability/logger.js';
import { temporalDataConverter } from '../../security/payload-codec.js';
import type { CallSnapshot } from '../../shared/calls.js';
import { waitUntil } from '../../stack/processes.js';
import { createWorkers } from '../../workers/create-workers.js';
import { createIntegrations } from '../../workers/integrations.js';
import { ensureRetentionSchedule, retentionScheduleId } from '../../workers/retention-schedule.js';
import type { RetentionOutcome } from '../../activities/retention.js';
import { testConfig } from '../harness/api.js';
import { createTestDatabase } from '../harness/postgres.js';
import { uniqueId } from '../harness/resources.js';
import { getDevServer, getWorkflowBundle } from '../harness/temporal.js';

const dayMs = 86_400_000;
const now = Date.parse('2030-06-01T12:00:00Z');
const daysAgo = (days: number): string => new Date(now - days * dayMs).toISOString();

async function journalCall(db: Db, tenantId: string, callId: string, endedDaysAgo: number): Promise<void> {
  const endedAt = daysAgo(endedDaysAgo);
  const transcript = [{ speaker: 'customer' as const, text: `secret words of ${callId}` }];
  const snapshot = {
    tenantId, callId, provider: 'voice-ai', providerCallId: callId, workflowId: `call:${tenantId}:voice-ai:${callId}`, version: 1, status: 'completed',
    startedAt: daysAgo(endedDaysAgo + 0.01), endedAt, transcript, enrichmentState: 'skipped', crmSyncState: 'skipped', crm: {}, actions: { slack: [] }, eventIds: [`${callId}-end`],
  } as unknown as CallSnapshot;
  await recordCall(db, snapshot, [{ eventId: `${callId}-end`, type: 'call.ended', occurredAt: endedAt, transcript } as never]);
}

async function storeReply(db: Db, tenantId: string, text: string, receivedDaysAgo: number): Promise<void> {
  const eventId = uniqueId('wa');
  const event = { eventId, type: 'whatsapp.reply', occurredAt: daysAgo(receivedDaysAgo), messageId: eventId, text };
  await insertInboxEvents(db, [{ tenantId, source: 'whatsapp', workflowId: `lead:${tenantId}:${eventId}`, eventId, workflowType: 'leadWorkflow', signalName: 'leadEvents', taskQueue: 'leads', payload: JSON.stringify({ events: [event] }) }]);
  await db.query(`UPDATE event_inbox SET received_at = $2, dead_at = $2, last_error = 'refused' WHERE event_id = $1`, [eventId, daysAgo(receivedDaysAgo)]);
  const rawBody = Buffer.from(JSON.stringify({ entry: [{ changes: [{ value: { messages: [{ text: { body: text } }] } }] }] }));
  await insertRejectedEvent(db, { tenantId, source: 'whatsapp', reason: 'unknown_recipient', detail: null, httpStatus: 422, method: 'POST', path: `/webhooks/${tenantId}/whatsapp`, headers: {}, contentType: 'application/json', rawBody, bodyBytes: rawBody.length, sampled: false });
  await db.query(`UPDATE rejected_events SET received_at = $2 WHERE raw_body = $1`, [rawBody, daysAgo(receivedDaysAgo)]);
}

describe('retention of transcripts and message text (a Temporal Schedule)', function () {
  this.timeout(120_000);

  it('clears, as of the given now, only the transcripts and message text past each tenant’s period', async () => {
    const { db } = await createTestDatabase('retention');
    const strict = { retention: tenantRetentionSchema.parse({ transcriptDays: 30, messageBodyDays: 7 }) };
    const lenient = { retention: tenantRetentionSchema.parse({}) }; // defaults: 90 and 30 days
    for (const tenantId of ['strict', 'lenient']) {
      await journalCall(db, tenantId, `${tenantId}-old`, 40);
      await journalCall(db, tenantId, `${tenantId}-new`, 20);
      await storeReply(db, tenantId, `${tenantId} old reply`, 10);
      await storeReply(db, tenantId, `${tenantId} new reply`, 3);
    }
    const activities = createRetentionActivities({ db, tenants: () => ({ strict, lenient }) });
    const applyRetention = (input: { now: string }) => activities.applyRetention(input);

    const outcome = await applyRetention({ now: new Date(now).toISOString() });
    assert.deepEqual(outcome, { tenants: 2, transcriptsCleared: 1, transcriptEventsCleared: 1, inboxMessageBodiesCleared: 1, rejectedMessagesDeleted: 1 });
    const transcripts = await db.query<{ call_id: string; journal: boolean; snapshot: boolean; event: boolean }>(
      `SELECT c.call_id, c.transcript IS NOT NULL AS journal, c.snapshot ? 'transcript' AS snapshot, e.payload ? 'transcript' AS event
         FROM calls c JOIN call_events e USING (tenant_id, call_id) ORDER BY c.call_id`,
    );
    assert.deepEqual(
      transcripts.rows.map((row) => [row.call_id, row.journal, row.snapshot, row.event]),
      [['lenient-new', true, true, true], ['lenient-old', true, true, true], ['strict-new', true, true, true], ['strict-old', false, false, false]],
    );
    const inbox = await db.query<{ texts: string }>(`SELECT string_agg(payload -> 'events' -> 0 ->> 'text', ',' ORDER BY id) AS texts FROM event_inbox`);
    assert.equal(inbox.rows[0]?.texts, ',strict new reply,lenient old reply,lenient new reply');
    const rejected = await db.query<{ body: string }>(`SELECT convert_from(raw_body, 'UTF8') AS body FROM rejected_events ORDER BY id`);
    assert.deepEqual(rejected.rows.map((row) => /"body":"([^"]+)"/.exec(row.body)?.[1]), ['strict new reply', 'lenient old reply', 'lenient new reply']);

    assert.deepEqual(await applyRetention({ now: new Date(now).toISOString() }), { tenants: 2, transcriptsCleared: 0, transcriptEventsCleared: 0, inboxMessageBodiesCleared: 0, rejectedMessagesDeleted: 0 }, 'a second run has nothing left to clear');
  });

  it('is scheduled when the workers start: the schedule runs the retention workflow, and a restart updates it and keeps a pause', async () => {
    const temporal = await getDevServer();
    const { db } = await createTestDatabase('retention');
    const config = testConfig({ address: temporal.connection.options.address, namespace: temporal.client.options.namespace });
    const logger = createLogger({ name: 'switchboard-test', level: 'silent' });
    const integrations = createIntegrations(config, { db });
    const client = new Client({ connection: temporal.connection, namespace: config.temporal.namespace, dataConverter: temporalDataConverter(config.temporal.payloadEncryption) });
    const schedule = client.schedule.getHandle(retentionScheduleId(config));
    await assert.rejects(schedule.describe(), 'no schedule before the workers start');
    const workers: Worker[] = await createWorkers({ config, connection: temporal.nativeConnection, db, logger, integrations, workflowBundle: await getWorkflowBundle() });
    const running = workers.map((worker) => worker.run());
    try {
      const described = await schedule.describe();
      assert.equal(described.action.type, 'startWorkflow');
      assert.equal(described.action.workflowType, 'retentionWorkflow');
      assert.equal(described.action.taskQueue, config.temporal.taskQueues.calls);
      assert.deepEqual(described.spec.intervals?.map((interval) => interval.every), [3_600_000]);
      assert.equal(described.state.paused, false);

      // Its action, run now, goes through the workers just started.
      await schedule.trigger();
      let workflowId: string | undefined;
      await waitUntil(async () => (workflowId = (await schedule.describe()).info.recentActions[0]?.action.workflow.workflowId) !== undefined, 30_000, 'the schedule never started its workflow');
      const result = await client.workflow.getHandle(workflowId as string).result() as RetentionOutcome;
      assert.equal(result.tenants, Object.keys(config.tenants).length);

      // A worker starting again keeps one schedule, brought up to date, and an operator's pause.
      await schedule.pause('paused by an operator');
      await ensureRetentionSchedule({ connection: temporal.nativeConnection, config, logger });
      const again = await schedule.describe();
      assert.equal(again.state.paused, true);
      assert.equal(again.state.note, 'paused by an operator');
      assert.equal(again.action.workflowType, 'retentionWorkflow');
    } finally {
      for (const worker of workers) if (worker.getState() === 'RUNNING') worker.shutdown();
      await Promise.allSettled(running);
      integrations.close();
      await schedule.delete().catch(() => undefined);
    }
  });
});
