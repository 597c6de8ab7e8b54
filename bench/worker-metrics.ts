/**
 * Watches the worker's own Temporal SDK metrics during a scenario: how long tasks waited for the
 * worker (schedule-to-start) and how full its slots were. Waiting, not CPU, is where a durable
 * pipeline loses time, and a CPU profile cannot show it.
 */

export interface QueueWaits {
  taskQueue: string;
  activityScheduleToStartMeanMs: number;
  workflowTaskScheduleToStartMeanMs: number;
  activities: number;
  workflowTasks: number;
  peakActivitySlotsUsed: number;
  activitySlots: number;
  peakWorkflowSlotsUsed: number;
}

type Samples = Map<string, number>;

async function scrape(url: string): Promise<Samples> {
  const samples: Samples = new Map();
  const text = await (await fetch(url)).text();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.includes('_bucket')) continue;
    const match = /^([a-z_]+)\{([^}]*)\}\s+([0-9.eE+-]+)$/.exec(line);
    if (!match?.[1] || match[2] === undefined) continue;
    const queue = /task_queue="([^"]+)"/.exec(match[2])?.[1] ?? '';
    const workerType = /worker_type="([^"]+)"/.exec(match[2])?.[1] ?? '';
    const key = `${match[1]}|${queue}|${workerType}`;
    samples.set(key, (samples.get(key) ?? 0) + Number(match[3]));
  }
  return samples;
}

export async function watchWorkerQueues(metricsUrl: string, taskQueue: string): Promise<{ stop: () => Promise<QueueWaits> }> {
  const before = await scrape(metricsUrl);
  let peakActivity = 0;
  let peakWorkflow = 0;
  let activitySlots = 0;
  const sample = async (): Promise<Samples> => {
    const now = await scrape(metricsUrl);
    const used = (type: string) => now.get(`temporal_worker_task_slots_used|${taskQueue}|${type}`) ?? 0;
    peakActivity = Math.max(peakActivity, used('ActivityWorker'));
    peakWorkflow = Math.max(peakWorkflow, used('WorkflowWorker'));
    activitySlots = used('ActivityWorker') + (now.get(`temporal_worker_task_slots_available|${taskQueue}|ActivityWorker`) ?? 0);
    return now;
  };
  const timer = setInterval(() => void sample().catch(() => undefined), 250);
  return {
    async stop() {
      clearInterval(timer);
      const after = await sample();
      const delta = (name: string) => (after.get(`${name}|${taskQueue}|`) ?? 0) - (before.get(`${name}|${taskQueue}|`) ?? 0);
      const mean = (name: string) => {
        const count = delta(`${name}_count`);
        return { count, meanMs: count > 0 ? Math.round((delta(`${name}_sum`) / count) * 1000) : 0 };
      };
      const activity = mean('temporal_activity_schedule_to_start_latency');
      const workflow = mean('temporal_workflow_task_schedule_to_start_latency');
      return {
        taskQueue,
        activityScheduleToStartMeanMs: activity.meanMs,
        workflowTaskScheduleToStartMeanMs: workflow.meanMs,
        activities: activity.count,
        workflowTasks: workflow.count,
        peakActivitySlotsUsed: peakActivity,
        activitySlots,
        peakWorkflowSlotsUsed: peakWorkflow,
      };
    },
  };
}
