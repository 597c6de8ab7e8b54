/**
 * A worker process killed (SIGKILL) while WhatsApp is answering a send: the retry on a fresh
 * worker finds the message through its status webhook and does not send it again.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { repoRoot } from '../../config/load.js';
import { waitUntil } from '../../stack/processes.js';
import { startLeadWorld } from '../harness/lead-world.js';
import type { LeadWorld } from '../harness/lead-world.js';
import { uniqueId } from '../harness/resources.js';

describe('a worker killed in the middle of a WhatsApp send', function () {
  this.timeout(180_000);
  let world: LeadWorld;
  let configPath: string;
  const workers: ChildProcess[] = [];
  let workerOutput = '';

  const startWorkerProcess = (): ChildProcess => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'workers/main.ts'], {
      cwd: repoRoot,
      env: {
        ...process.env,
        SWITCHBOARD_CONFIG: configPath,
        DATABASE_URL: world.config.database.url,
        TEMPORAL_ADDRESS: world.config.temporal.address,
        TEMPORAL_NAMESPACE: world.config.temporal.namespace,
        LOG_LEVEL: 'silent',
        WORKER_METRICS_ADDRESS: '',
        SHUTDOWN_GRACE_SECONDS: '1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.on('data', (chunk: Buffer) => (workerOutput += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (workerOutput += chunk.toString()));
    workers.push(child);
    return child;
  };

  before(async () => {
    world = await startLeadWorld({
      timeSkipping: false,
      inProcessWorkers: false,
      policy: { sendWindow: { days: [1, 2, 3, 4, 5, 6, 7], start: '00:00', end: '23:59' }, reorderWindowSeconds: 0, sendTimeoutSeconds: 4 },
      // WhatsApp accepts the message at once but answers slowly: the worker dies in between.
      sandbox: { responseDelayMs: 3_000 },
    });
    const dir = await mkdtemp(path.join(os.tmpdir(), 'switchboard-crash-'));
    configPath = path.join(dir, 'switchboard.yaml');
    await writeFile(configPath, stringify({ tenants: world.config.tenants, temporal: { namespace: world.config.temporal.namespace, taskQueues: world.config.temporal.taskQueues, payloadEncryption: world.config.temporal.payloadEncryption } }));
  });
  after(async () => {
    for (const child of workers) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await world.stop();
  });

  it('sends the message exactly once', async () => {
    const first = startWorkerProcess();
    const leadId = uniqueId('crash');
    const phone = '+16285559876';
    const response = await world.crm({ event_id: `${leadId}-1`, event: 'lead.created', lead_id: leadId, lead: { name: 'Rae', phone } });
    assert.equal(response.status, 202);

    // The sandbox has accepted the welcome (its answer is still held back): kill the worker now.
    await waitUntil(() => Promise.resolve(world.sentTo(phone).length === 1), 60_000, 'the welcome never reached WhatsApp').catch((error: unknown) => {
      throw new Error(`${(error as Error).message}\n--- worker output ---\n${workerOutput.slice(-3000)}`);
    });
    first.kill('SIGKILL');
    await new Promise((resolve) => first.once('exit', resolve));

    startWorkerProcess();
    await waitUntil(
      async () => (await world.timeline(leadId)).some((entry) => entry.kind === 'sent' && entry.flow === 'welcome'),
      90_000,
      'the send was never completed after the crash',
    );
    await world.whatsapp.settle();
    assert.equal(world.sentTo(phone).length, 1, 'WhatsApp received the welcome once');
    const ledger = await world.db.query<{ state: string; attempts: number }>(
      `SELECT state, attempts FROM external_effects WHERE tenant_id = $1 AND effect_key = $2`,
      [world.tenantId, `wa:${leadId}:welcome:message`],
    );
    assert.equal(ledger.rows[0]?.state, 'done');
    assert.ok((ledger.rows[0]?.attempts ?? 0) >= 1);
    const sent = (await world.timeline(leadId)).filter((entry) => entry.kind === 'sent');
    assert.equal(sent.length, 1);
    assert.equal(sent[0]?.detail?.messageId, world.sentTo(phone)[0]?.id, 'the recorded message is the one WhatsApp accepted');
  });
});
