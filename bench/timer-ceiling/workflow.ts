/**
 * The lead-scale ceiling's workflow: a timer and nothing else. 10,000 of them falling due in the
 * same instant measure how many timers per second the dev server and one worker fire on this host.
 */
import { sleep } from '@temporalio/workflow';

export async function timerCeiling(dueAtMs: number): Promise<void> {
  if (dueAtMs > Date.now()) await sleep(dueAtMs - Date.now());
}
