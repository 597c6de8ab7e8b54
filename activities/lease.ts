import { CancelledFailure, Context } from '@temporalio/activity';
import { withCancellation } from '../adapters/http.js';

/**
 * How long an attempt may hold an effect key: just past the activity's start-to-close timeout.
 * After that Temporal has given up on the attempt (its worker may be dead), and the retry may
 * take the key over, look the effect up, and finish it.
 */
export function effectLeaseSeconds(): number {
  const timeoutMs = Context.current().info.startToCloseTimeoutMs;
  return Math.ceil(timeoutMs / 1000) + 5;
}

/** Without a heartbeat timeout, heartbeats still carry cancellation back; the SDK throttles what it sends to the server. */
const defaultHeartbeatEveryMs = 10_000;

/**
 * Runs an attempt's outside calls while heartbeating, and aborts every request they make (HTTP,
 * SMTP, rate-limit waits) once the attempt is cancelled. Heartbeats let Temporal notice a dead
 * worker within the heartbeat timeout, and tell a live worker when Temporal gave up on the
 * attempt (timed out, cancelled, worker shutting down): the request is then cut off rather than
 * left running beside the retry. The ledger (db/effects.ts) releases the key on the way out.
 */
export async function whileHeartbeating<T>(work: () => Promise<T>): Promise<T> {
  const context = Context.current();
  const { cancellationSignal: signal, info } = context;
  const everyMs = info.heartbeatTimeoutMs ? Math.max(100, Math.floor(info.heartbeatTimeoutMs / 3)) : defaultHeartbeatEveryMs;
  context.heartbeat();
  const beating = setInterval(() => context.heartbeat(), everyMs);
  try {
    return await withCancellation(signal, work);
  } catch (error) {
    // Reported as the cancellation it is, not as the aborted request's failure.
    if (signal.aborted) throw signal.reason instanceof CancelledFailure ? signal.reason : new CancelledFailure('the attempt was cancelled');
    throw error;
  } finally {
    clearInterval(beating);
  }
}
