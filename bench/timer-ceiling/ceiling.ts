/**
 * The lead-scale ceiling (issue: "if the single dev server is the limit on this machine, show it
 * with a ceiling measured in the same run"): as many workflows as leads, each only a timer, all
 * falling due in the same instant, on a worker process of their own with the stack worker's
 * priority and cache bound. Timers fired per second, first to last, is what the dev server and one
 * worker do on this host with no activity at all.
 */
import { Client, Connection } from '@temporalio/client';
import { repoRoot } from '../../config/load.js';
import { processPriorities, spawnManaged, waitUntil } from '../../stack/processes.js';
import { runConcurrently } from '../load.js';
import type { BenchStack } from '../stack.js';
import type { timerCeiling as timerCeilingWorkflow } from './workflow.js';

export interface TimerCeilingResult {
  workflows: number;
  fired: number;
  /** First to last timer fired (workflow close times). */
  drainSeconds: number;
  perSecond: number;
}

export async function timerCeiling(stack: BenchStack, options: { workflows: number; log: (line: string) => void }): Promise<TimerCeilingResult> {
  const taskQueue = `timer-ceiling-${stack.runTag}`;
  const worker = spawnManaged('timer-ceiling', process.execPath, ['--import', 'tsx', 'bench/timer-ceiling/worker.ts'], {
    cwd: repoRoot,
    env: { ...process.env, TEMPORAL_ADDRESS: stack.temporalAddress, TEMPORAL_NAMESPACE: stack.namespace, TIMER_TASK_QUEUE: taskQueue, WORKER_MAX_CACHED_WORKFLOWS: String(stack.config.env.WORKER_MAX_CACHED_WORKFLOWS) },
    niceness: processPriorities.worker,
    onOutput: () => undefined,
  });
  const connection = await Connection.connect({ address: stack.temporalAddress });
  try {
    const client = new Client({ connection, namespace: stack.namespace });
    // Due once all are started (the lead import's pace, about 100 a second here).
    const dueAt = Date.now() + Math.max(60_000, options.workflows * 12);
    options.log(`timer ceiling: starting ${options.workflows} timer-only workflows due at ${new Date(dueAt).toISOString()}`);
    await runConcurrently(Array.from({ length: options.workflows }, (_, index) => index), 64, async (index) => {
      await client.workflow.start<typeof timerCeilingWorkflow>('timerCeiling', { taskQueue, workflowId: `${taskQueue}-${index}`, args: [dueAt] });
    });
    if (Date.now() > dueAt) options.log('  warning: starting took longer than its budget; timers fell due while workflows were still starting');
    const completed = (): Promise<number> => client.workflow.count(`TaskQueue="${taskQueue}" AND ExecutionStatus="Completed"`).then((answer) => answer.count);
    await waitUntil(async () => (await completed()) >= options.workflows, 1_800_000, 'not every timer fired').catch((error: unknown) => options.log(`  warning: ${(error as Error).message}`));
    const closed: number[] = [];
    for await (const execution of client.workflow.list({ query: `TaskQueue="${taskQueue}" AND ExecutionStatus="Completed"` })) {
      if (execution.closeTime) closed.push(execution.closeTime.getTime());
    }
    closed.sort((a, b) => a - b);
    const drainSeconds = closed.length > 1 ? ((closed[closed.length - 1] ?? 0) - (closed[0] ?? 0)) / 1000 : 0;
    const perSecond = drainSeconds > 0 ? (closed.length - 1) / drainSeconds : 0;
    options.log(`timer ceiling: ${closed.length}/${options.workflows} fired in ${drainSeconds.toFixed(1)} s, ${perSecond.toFixed(1)} per second`);
    return { workflows: options.workflows, fired: closed.length, drainSeconds: Math.round(drainSeconds * 10) / 10, perSecond: Math.round(perSecond * 10) / 10 };
  } finally {
    await connection.close();
    await worker.stop(10_000);
  }
}
