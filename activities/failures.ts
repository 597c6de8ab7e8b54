import { ApplicationFailure } from '@temporalio/activity';
import { OutsideSystemError } from '../adapters/http.js';
import { EffectBusyError } from '../db/effects.js';
import { scrubText } from '../observability/logger.js';

/** Failure types the workflows' retry policies and the journal refer to. */
export const failureTypes = {
  rateLimited: 'RateLimited',
  unavailable: 'Unavailable',
  rejected: 'Rejected',
  unauthorized: 'Unauthorized',
  notFound: 'NotFound',
} as const;

const typeOf: Record<OutsideSystemError['kind'], string> = {
  rate_limited: failureTypes.rateLimited,
  unavailable: failureTypes.unavailable,
  rejected: failureTypes.rejected,
  unauthorized: failureTypes.unauthorized,
  not_found: failureTypes.notFound,
};

/**
 * Turns an outside system's error into a Temporal failure: rate limits and outages are retried
 * (after Retry-After when given); refusals are permanent. Messages never carry phone numbers.
 */
export function toActivityFailure(error: unknown): never {
  if (error instanceof EffectBusyError) {
    throw ApplicationFailure.create({ message: error.message, type: 'EffectBusy', nonRetryable: false, ...(error.retryAfterMs ? { nextRetryDelay: Math.ceil(error.retryAfterMs) } : {}) });
  }
  if (error instanceof OutsideSystemError) {
    const message = scrubText(error.message);
    if (error.retryable) {
      throw ApplicationFailure.create({
        message,
        type: typeOf[error.kind],
        nonRetryable: false,
        ...(error.retryAfterMs !== undefined ? { nextRetryDelay: Math.max(error.retryAfterMs, 250) } : {}),
      });
    }
    throw ApplicationFailure.nonRetryable(message, typeOf[error.kind]);
  }
  throw error;
}

/** Runs an adapter call, converting its errors into Temporal failures. */
export async function callOutside<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    return toActivityFailure(error);
  }
}
