/**
 * Nothing that reaches a workflow while it finishes a run is lost: not a signal during its final
 * journal write, not an operator's update handled just before it continues as new. Real Temporal
 * (dev server), stubbed activities held on gates (completion-race-scenarios.ts).
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';
import { Worker } from '@temporalio/worker';
import { loadConfig } from '../../config/load.js';
import { temporalDataConverter } from '../../security/payload-codec.js';
import { getDevServer, getWorkflowBundle } from '../harness/temporal.js';
import { callEventDuringFinalWrite, leadEventDuringFinalWrite, leadUpdateBeforeContinueAsNew } from './completion-race-scenarios.js';
import { bundleWithForcedPatches } from './forced-patches.js';

const historiesDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'histories');

describe('end-of-run races', () => {
  it('a call applies and journals an event that arrives during its final journal write', async () => {
    const race = await callEventDuringFinalWrite(await getDevServer(), await getWorkflowBundle());
    assert.ok(race.result.eventIds.includes(race.lateEventId), 'the returned call has the late event');
    assert.equal(race.result.result?.outcome, 'callback_requested');
    assert.equal(race.result.status, 'completed');
    const journaledWith = race.recorded.filter((write) => write.events.some((event) => event.eventId === race.lateEventId));
    assert.equal(journaledWith.length, 1, 'the late event is journaled once');
    const last = race.recorded.at(-1);
    assert.equal(last?.snapshot.status, 'completed');
    assert.ok(last?.snapshot.eventIds.includes(race.lateEventId), 'the last journaled version has it');
  });

  it('a lead applies and journals an event that arrives during its final journal write', async () => {
    const race = await leadEventDuringFinalWrite(await getDevServer(), await getWorkflowBundle());
    const journaled = race.recorded.flatMap((write) => write.timeline.map((entry) => entry.entryKey));
    assert.ok(journaled.includes(`event:${race.lateEventId}`), `the late event is on the journaled timeline: ${journaled.join(', ')}`);
    assert.ok(race.recorded.at(-1)?.state.seenEventIds.includes(race.lateEventId), 'the last journaled state has it');
  });

  it('a lead journals an operator action handled during the write before it continues as new', async () => {
    const race = await leadUpdateBeforeContinueAsNew(await getDevServer(), await getWorkflowBundle());
    const operatorEntries = race.recorded.flatMap((write) => write.timeline).filter((entry) => entry.kind === 'operator');
    assert.deepEqual(
      operatorEntries.map((entry) => entry.cause),
      ['operator pause by race-test', 'operator resume by race-test'],
      'both operator actions are on the journaled timeline by the time the run continued as new',
    );
    assert.equal(race.recorded.at(-1)?.state.paused, false, 'the journal has the lead resumed');
    assert.equal(race.nextRun.paused, false, 'the next run has it resumed');
  });

  it('histories recorded before the patches on running calls and leads depend on their guards: forced on, only those fail to replay', async () => {
    const raced = {
      'call-workflow-v5-event-during-completion.json': 'call-events-during-final-write',
      'lead-workflow-v4-event-during-completion.json': 'lead-events-during-final-write',
      'lead-workflow-v4-update-before-continue-as-new.json': 'lead-journal-before-continue-as-new',
      // From a chaos run (task-retries.test.ts): the journal showed the CRM sync pending.
      'call-workflow-v5-pending-crm-in-journal.json': 'call-restarts-steps-pending-in-journal',
      // Recorded while the lead look-up was a local activity beside the journal writes.
      'call-workflow-v4-answered.json': 'call-lead-lookup-scheduled',
      'call-workflow-v4-late-start.json': 'call-lead-lookup-scheduled',
      'call-workflow-v4-missed.json': 'call-lead-lookup-scheduled',
      'call-workflow-v4-voice-ai.json': 'call-lead-lookup-scheduled',
    };
    const files = (await readdir(historiesDir)).filter((file) => file.endsWith('.json')).sort();
    for (const file of Object.keys(raced)) assert.ok(files.includes(file), `${file} is recorded`);
    const histories = await Promise.all(files.map(async (file) => ({ workflowId: file, history: historyFromJSON(JSON.parse(await readFile(path.join(historiesDir, file), 'utf8'))) })));
    const dataConverter = temporalDataConverter(loadConfig({}).temporal.payloadEncryption);
    const workflowBundle = await bundleWithForcedPatches([...new Set(Object.values(raced))]);
    const failed: Record<string, string> = {};
    for await (const result of Worker.runReplayHistories({ workflowBundle, dataConverter }, histories)) {
      if (result.error) failed[result.workflowId] = result.error.message;
    }
    assert.deepEqual(Object.keys(failed).sort(), Object.keys(raced).sort(), `replays that failed: ${JSON.stringify(failed)}`);
    for (const [file, message] of Object.entries(failed)) assert.match(message, /nondetermin/i, file);
  });
});
