import { createRequire } from 'node:module';
import { DefaultLogger, Worker, bundleWorkflowCode } from '@temporalio/worker';
import type { NativeConnection, WorkerOptions } from '@temporalio/worker';
import { createCrmActivities } from '../activities/crm.js';
import { createJournalActivities } from '../activities/journal.js';
import { createLeadActivities } from '../activities/leads.js';
import { createMessagingActivities } from '../activities/messaging.js';
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

/** The call and lead activities (the WhatsApp sends run on their own, rate-limited queue). */
export function createActivities(deps: Pick<WorkerDeps, 'config' | 'db' | 'integrations'>) {
  const { db, integrations } = deps;
  return {
    ...createJournalActivities({ db }),
    ...createLeadActivities({ db }),
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

/**
 * One Worker per task queue: calls, leads, and messaging. The messaging queue carries only the
 * WhatsApp sends, with the server-side rate limit every worker polling it must share.
 */
export async function createWorkers(deps: WorkerDeps): Promise<Worker[]> {
  const { config } = deps;
  const workflowBundle = deps.workflowBundle ?? (await bundleWorkflows());
  const common = { connection: deps.connection, namespace: config.temporal.namespace, shutdownGraceTime: config.shutdownGraceMs };
  const activities = createActivities(deps);
  return Promise.all([
    Worker.create({ ...common, workflowBundle, taskQueue: config.temporal.taskQueues.calls, activities }),
    Worker.create({ ...common, workflowBundle, taskQueue: config.temporal.taskQueues.leads, activities }),
    Worker.create({
      ...common,
      taskQueue: config.temporal.taskQueues.messaging,
      activities: createMessagingActivities({ db: deps.db, whatsapp: deps.integrations.whatsapp }),
      maxTaskQueueActivitiesPerSecond: config.temporal.messagingRatePerSecond,
    }),
  ]);
}
