import { condition, defineSignal, setHandler } from '@temporalio/workflow';

export const callEventSignal = defineSignal<[unknown]>('callEvent');

/** Skeleton; the call journaling issue replaces it. */
export async function callWorkflow(): Promise<void> {
  let done = false;
  setHandler(callEventSignal, () => {
    done = true;
  });
  await condition(() => done);
}
