/**
 * Determinism guard: histories recorded from earlier versions of the workflows must replay on
 * the current code. Change a running flow without patched() and this fails before production does.
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';
import { Worker } from '@temporalio/worker';
import { loadConfig } from '../../config/load.js';
import { temporalDataConverter } from '../../security/payload-codec.js';
import { getWorkflowBundle } from '../harness/temporal.js';

const historiesDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'histories');

describe('workflow replay over recorded histories', () => {
  it('replays every recorded history on the current workflow code', async () => {
    const files = (await readdir(historiesDir)).filter((file) => file.endsWith('.json')).sort();
    assert.ok(files.length >= 3, 'histories are recorded');
    const workflowBundle = await getWorkflowBundle();
    const histories = await Promise.all(
      files.map(async (file) => ({ workflowId: file, history: historyFromJSON(JSON.parse(await readFile(path.join(historiesDir, file), 'utf8'))) })),
    );
    const failures: string[] = [];
    // With the payload codec, as production replays: the plain payloads recorded before it pass through.
    const dataConverter = temporalDataConverter(loadConfig({}).temporal.payloadEncryption);
    for await (const result of Worker.runReplayHistories({ workflowBundle, dataConverter }, histories)) {
      if (result.error) failures.push(`${result.workflowId}: ${result.error.message}`);
    }
    assert.deepEqual(failures, []);
  });

  it('notices a nondeterministic change (the guard itself works)', async () => {
    const file = (await readdir(historiesDir)).find((name) => name.startsWith('call-workflow-') && name.endsWith('-answered.json'));
    assert.ok(file);
    const json = JSON.parse(await readFile(path.join(historiesDir, file), 'utf8')) as { events: Array<{ activityTaskScheduledEventAttributes?: { activityType?: { name?: string } } }> };
    // Pretend an earlier version called a different activity first: replay must refuse.
    const scheduled = json.events.find((event) => event.activityTaskScheduledEventAttributes?.activityType?.name);
    assert.ok(scheduled?.activityTaskScheduledEventAttributes?.activityType);
    scheduled.activityTaskScheduledEventAttributes.activityType.name = 'someOtherActivity';
    await assert.rejects(Worker.runReplayHistory({ workflowBundle: await getWorkflowBundle() }, historyFromJSON(json)), /nondetermin|DeterminismViolation|activity type/i);
  });

  it('keeps zod out of the workflow bundle (every workflow the worker creates evaluates its modules)', async () => {
    const bundle = await getWorkflowBundle();
    assert.ok('code' in bundle, 'an in-memory bundle');
    const packages = new Set([...bundle.code.matchAll(/"\.\/node_modules\/((?:@[^/]+\/)?[^/"]+)\//g)].map((match) => match[1]));
    assert.ok(packages.has('@temporalio/workflow'), 'module paths are readable in the bundle');
    assert.deepEqual([...packages].filter((name) => name === 'zod' || name === 'libphonenumber-js'), []);
  });
});
