import { createRequire } from 'node:module';
import { DefaultLogger, Worker, bundleWorkflowCode } from '@temporalio/worker';
import type { NativeConnection, WorkerOptions } from '@temporalio/worker';
import { createCrmActivities } from '../activities/crm.js';
import { createJournalActivities } from '../activities/journal.js';
import { createNotificationActivities } from '../activities/notifications.js';
import { createRecordingActivities } from '../activities/recordings.js';
import { createTicketActivities } from '../activities/tickets.js';
import type { AppConfig } from '../config/load.js';
import type { Db } from '../db/pool.js';
import type { Logger } from '../observability/logger.js';
import type { Integrations } from './integrations.js';

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
  integrations: Integrations;
  /** A prebuilt bundle (tests bundle once per run); otherwise the workflows are bundled at start. */
  workflowBundle?: WorkerOptions['workflowBundle'];
}

/** Every activity, wired to its dependencies. */
export function createActivities(deps: Pick<WorkerDeps, 'config' | 'db' | 'integrations'>) {
  const { db, integrations } = deps;
  return {
    ...createJournalActivities({ db }),
    ...createCrmActivities({
      db,
      crm: integrations.crm,
      tenant: integrations.tenant,
      publicUrl: deps.config.api.publicUrl,
      isVipPhone: integrations.isVipPhone,
    }),
    ...createTicketActivities({ db, ticketing: integrations.ticketing }),
    ...createNotificationActivities({
      db,
      slack: integrations.slack,
      email: integrations.email,
      displayName: (tenantId) => integrations.tenant(tenantId).displayName,
    }),
    ...createRecordingActivities({ db, tenant: integrations.tenant }),
  };
}

/** Creates one Worker per task queue. */
export async function createWorkers(deps: WorkerDeps): Promise<Worker[]> {
  const { config } = deps;
  const workflowBundle = deps.workflowBundle ?? (await bundleWorkflows());
  const callsWorker = await Worker.create({
    connection: deps.connection,
    namespace: config.temporal.namespace,
    shutdownGraceTime: config.shutdownGraceMs,
    workflowBundle,
    taskQueue: config.temporal.taskQueues.calls,
    activities: createActivities(deps),
  });
  return [callsWorker];
}
