/**
 * A worker for the timer ceiling only (its own process, at the stack worker's priority and with the
 * same workflow cache bound), on a task queue of its own: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
 * TIMER_TASK_QUEUE, WORKER_MAX_CACHED_WORKFLOWS. Prints `ready` once polling; stops on SIGTERM.
 */
import { fileURLToPath } from 'node:url';
import { NativeConnection, Worker } from '@temporalio/worker';

const required = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
};

const connection = await NativeConnection.connect({ address: required('TEMPORAL_ADDRESS') });
const worker = await Worker.create({
  connection,
  namespace: required('TEMPORAL_NAMESPACE'),
  taskQueue: required('TIMER_TASK_QUEUE'),
  workflowsPath: fileURLToPath(new URL('./workflow.ts', import.meta.url)),
  maxCachedWorkflows: Number(process.env.WORKER_MAX_CACHED_WORKFLOWS ?? 500),
});
process.once('SIGTERM', () => worker.shutdown());
const running = worker.run();
process.stdout.write('ready\n');
await running;
await connection.close();
