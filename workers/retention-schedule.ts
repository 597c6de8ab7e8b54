/**
 * The Temporal Schedule that runs the retention workflow (workflows/retention.ts) every hour. Every
 * worker start creates it, or brings an existing one up to date (spec, action, overlap policy),
 * leaving an operator's pause alone; many workers starting at once is harmless.
 */
import { Client, ScheduleAlreadyRunning, ScheduleOverlapPolicy, ServiceError, isGrpcServiceError } from '@temporalio/client';
import type { ConnectionLike, ScheduleOptionsStartWorkflowAction, ScheduleSpec } from '@temporalio/client';
import type { AppConfig } from '../config/load.js';
import type { Logger } from '../observability/logger.js';
import { temporalDataConverter } from '../security/payload-codec.js';
import type { retentionWorkflow } from '../workflows/retention.js';

/** One schedule per deployment: its id names the task queue whose workers run it. */
export const retentionScheduleId = (config: Pick<AppConfig, 'temporal'>): string => `switchboard-retention:${config.temporal.taskQueues.calls}`;

const grpcUnimplemented = 12;

export async function ensureRetentionSchedule(deps: { connection: ConnectionLike; config: AppConfig; logger: Logger }): Promise<void> {
  const { config } = deps;
  const client = new Client({ connection: deps.connection, namespace: config.temporal.namespace, dataConverter: temporalDataConverter(config.temporal.payloadEncryption) });
  const scheduleId = retentionScheduleId(config);
  const spec: ScheduleSpec = { intervals: [{ every: '1 hour' }] };
  const action: ScheduleOptionsStartWorkflowAction<typeof retentionWorkflow> = {
    type: 'startWorkflow',
    workflowType: 'retentionWorkflow',
    workflowId: `retention:${config.temporal.taskQueues.calls}`,
    taskQueue: config.temporal.taskQueues.calls,
    args: [],
    staticSummary: 'Retention: clears call transcripts and message text past each tenant’s period',
  };
  // A run still going when the next is due is left to finish; a missed hour is caught up once.
  const policies = { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 hour' } as const;
  try {
    try {
      await client.schedule.create({ scheduleId, spec, action, policies });
    } catch (error) {
      if (!(error instanceof ScheduleAlreadyRunning)) throw error;
      await client.schedule.getHandle(scheduleId).update<typeof retentionWorkflow>((previous) => ({
        spec,
        action,
        policies: { ...previous.policies, ...policies },
        state: { paused: previous.state.paused, ...(previous.state.note !== undefined ? { note: previous.state.note } : {}) },
      }));
    }
  } catch (error) {
    // The time-skipping test server has no schedules; the retention workflow is run directly there.
    const cause = error instanceof ServiceError ? error.cause : error;
    if (isGrpcServiceError(cause) && (cause.code as number) === grpcUnimplemented) {
      deps.logger.warn({ scheduleId }, 'this Temporal server has no schedules: retention is not scheduled');
      return;
    }
    throw error;
  }
}
