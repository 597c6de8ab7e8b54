/**
 * Retention of personal text, run by a Temporal Schedule (workers/retention-schedule.ts): one
 * activity clears what is past each tenant's period, counted back from this run's start.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { createRetentionActivities, RetentionOutcome } from '../activities/retention.js';

const { applyRetention } = proxyActivities<ReturnType<typeof createRetentionActivities>>({
  // Each tenant's clean-up is a few UPDATEs; a slow database gets several minutes.
  startToCloseTimeout: '10 minutes',
  // The next scheduled run catches up whatever a run that gave up left behind.
  retry: { initialInterval: '10 seconds', backoffCoefficient: 2, maximumInterval: '5 minutes', maximumAttempts: 10 },
});

export async function retentionWorkflow(): Promise<RetentionOutcome> {
  // Workflow time: the instant this run started, the same on every replay.
  return applyRetention({ now: new Date(Date.now()).toISOString() });
}
