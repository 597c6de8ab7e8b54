import { createRequire } from 'node:module';
import { DefaultLogger, Worker, bundleWorkflowCode } from '@temporalio/worker';
import type { NativeConnection, WorkerOptions } from '@temporalio/worker';
import { createCrmActivities } from '../activities/crm.js';
import { createJournalActivities } from '../activities/journal.js';
import { createLeadActivities } from '../activities/leads.js';
import { createMessagingActivities } from '../activities/messaging.js';
import { createSmsActivities } from '../activities/sms.js';
import { createNotificationActivities } from '../activities/notifications.js';
import { createRecordingActivities } from '../activities/recordings.js';
import { createTicketActivities } from '../activities/tickets.js';
import type { AppConfig } from '../config/load.js';
import type { Db } from '../db/pool.js';
import type { Logger } from '../observability/logger.js';
import type { Tracing } from '../observability/tracing.js';
import { temporalDataConverter, workflowFailureConverterPath } from '../security/payload-codec.js';
import type { Integrations } from './integrations.js';
import { createRetentionActivities } from '../activities/retention.js';
import { ensureRetentionSchedule } from './retention-schedule.js';

const require = createRequire(import.meta.url);
export const workflowsPath = require.resolve('../workflows/index.ts');
/** The SDK's workflow interceptors for OpenTelemetry: spans made inside the sandbox, deterministically, sent out through a sink. */
const tracingInterceptorsPath = require.resolve('@temporalio/interceptors-opentelemetry/lib/workflow-interceptors');

/**
 * Bundles the workflows once, with webpack's chatter kept out of the logs. With `tracing`, the
 * tracing interceptors go in (a worker with tracing on needs such a bundle); without, the workflows
 * make no spans at all.
 */
export async function bundleWorkflows(options: { tracing?: boolean } = {}): Promise<NonNullable<WorkerOptions['workflowBundle']>> {
  return bundleWorkflowCode({
    workflowsPath,
    failureConverterPath: workflowFailureConverterPath,
    ...(options.tracing ? { workflowInterceptorModules: [tracingInterceptorsPath] } : {}),
    logger: new DefaultLogger('WARN'),
  });
}

export interface WorkerDeps {
  config: AppConfig;
  connection: NativeConnection;
  db: Db;
  logger: Logger;
  integrations: Integrations;
  /** A prebuilt bundle (tests bundle once per run); otherwise the workflows are bundled at start. */
  workflowBundle?: WorkerOptions['workflowBundle'];
  /** Tracing, when on: activity spans and the workflows' span sink (a prebuilt bundle must then be `bundleWorkflows({ tracing: true })`). */
  tracing?: Pick<Tracing, 'workerInterceptors' | 'workflowSinks'>;
}

/** Activities that only touch our own PostgreSQL: the journal and the lead store. */
function createDatabaseActivities(deps: Pick<WorkerDeps, 'db'>) {
  return { ...createJournalActivities({ db: deps.db }), ...createLeadActivities({ db: deps.db }) };
}

/** Activities that call outside systems: the CRM, ticketing, Slack, SMTP and recording downloads. */
function createIntegrationActivities(deps: Pick<WorkerDeps, 'config' | 'db' | 'integrations'>) {
  const { db, integrations } = deps;
  return {
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
 * One Worker per task queue: calls, leads, integrations and messaging.
 * - The integrations queue runs the activities that wait on outside systems (the Kommo client
 *   paces itself under the CRM's rate limit, so a burst of calls holds many of them for seconds),
 *   with slots of its own: journal writes on the calls queue never wait behind them.
 * - The messaging queue carries only the WhatsApp sends, with the server-side rate limit every
 *   worker polling it must share.
 * The calls and leads workers still register every activity, for runs started before the
 * integrations queue existed, which schedule everything on their own queue.
 */
export async function createWorkers(deps: WorkerDeps): Promise<Worker[]> {
  const { config } = deps;
  const workflowBundle = deps.workflowBundle ?? (await bundleWorkflows({ tracing: deps.tracing !== undefined }));
  const common = {
    connection: deps.connection,
    namespace: config.temporal.namespace,
    shutdownGraceTime: config.shutdownGraceMs,
    // Every payload encrypted; the same converter as the clients'.
    dataConverter: temporalDataConverter(config.temporal.payloadEncryption),
    ...(deps.tracing ? { interceptors: deps.tracing.workerInterceptors, sinks: deps.tracing.workflowSinks } : {}),
  };
  // Without a bound the SDK sizes the sticky cache from the host's memory: 10,000 sleeping leads
  // then held over 5 GB. Evicted workflows replay from history when their timer fires.
  const workflowCache = { maxCachedWorkflows: config.env.WORKER_MAX_CACHED_WORKFLOWS };
  const integrationActivities = createIntegrationActivities(deps);
  // Every call and lead activity (the WhatsApp sends run on their own, rate-limited queue).
  const activities = { ...createDatabaseActivities(deps), ...integrationActivities, ...createRetentionActivities({ db: deps.db, tenants: () => config.tenants }) };
  const workers = await Promise.all([
    Worker.create({ ...common, ...workflowCache, workflowBundle, taskQueue: config.temporal.taskQueues.calls, activities }),
    Worker.create({ ...common, ...workflowCache, workflowBundle, taskQueue: config.temporal.taskQueues.leads, activities }),
    Worker.create({
      ...common,
      taskQueue: config.temporal.taskQueues.integrations,
      activities: integrationActivities,
      // Mostly waiting on the network or on the CRM's pacing, not on this process's CPU.
      maxConcurrentActivityTaskExecutions: 200,
    }),
    Worker.create({
      ...common,
      taskQueue: config.temporal.taskQueues.messaging,
      // The SMS fallback runs here too, under the same server-side limit (Twilio queues past a sender's own rate).
      activities: { ...createMessagingActivities({ db: deps.db, config, whatsapp: deps.integrations.whatsapp }), ...createSmsActivities({ db: deps.db, config, sms: deps.integrations.sms }) },
      maxTaskQueueActivitiesPerSecond: config.temporal.messagingRatePerSecond,
    }),
  ]);
  // The calls workers run the retention workflow its schedule starts (workers/retention-schedule.ts).
  await ensureRetentionSchedule({ connection: deps.connection, config, logger: deps.logger });
  return workers;
}
