import { createRequire } from 'node:module';
import { DefaultLogger, Worker, bundleWorkflowCode } from '@temporalio/worker';
import type { NativeConnection, WorkerOptions } from '@temporalio/worker';
import type { AppConfig } from '../config/load.js';
import type { Db } from '../db/pool.js';
import type { Logger } from '../observability/logger.js';

const require = createRequire(import.meta.url);
export const workflowsPath = require.resolve('../workflows/index.ts');

/** Bundles the workflows once, with webpack's chatter kept out of the logs. */
export async function bundleWorkflows(): Promise<NonNullable<WorkerOptions['workflowBundle']>> {
  return bundleWorkflowCode({ workflowsPath, logger: new DefaultLogger('WARN') });
}

export interface WorkerDeps {
  config: AppConfig;
  connection: NativeConnection;
  db: Db;
  logger: Logger;
  /** A prebuilt bundle (tests bundle once per run); otherwise the workflows are bundled at start. */
  workflowBundle?: WorkerOptions['workflowBundle'];
}

/** Wires the activity factories to their dependencies and creates one Worker per task queue. */
export async function createWorkers(deps: WorkerDeps): Promise<Worker[]> {
  const { config } = deps;
  const workflowBundle = deps.workflowBundle ?? (await bundleWorkflows());
  const shared = {
    connection: deps.connection,
    namespace: config.temporal.namespace,
    shutdownGraceTime: config.shutdownGraceMs,
  } satisfies Partial<WorkerOptions>;
  const callsWorker = await Worker.create({
    ...shared,
    workflowBundle,
    taskQueue: config.temporal.taskQueues.calls,
  });
  return [callsWorker];
}
