import { Context } from '@temporalio/activity';

/**
 * How long an attempt may hold an effect key: just past the activity's start-to-close timeout.
 * After that Temporal has given up on the attempt (its worker may be dead), and the retry may
 * take the key over, look the effect up, and finish it.
 */
export function effectLeaseSeconds(): number {
  const timeoutMs = Context.current().info.startToCloseTimeoutMs;
  return Math.ceil(timeoutMs / 1000) + 5;
}
