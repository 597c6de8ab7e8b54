import { templateMismatchFailureType } from './templates.js';

/** The innermost message of a failure chain: "Kommo: … answered 401" rather than "Activity task failed". */
export function failureMessage(error: unknown): string {
  let current: unknown = error;
  let message = error instanceof Error ? error.message : String(error);
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    if (current.message) message = current.message;
    current = current.cause;
  }
  return message;
}

/**
 * A machine-readable reason for a failed send, from the failure's type anywhere in its chain (an
 * activity failure wraps the ApplicationFailure the activity threw); none for other failures.
 */
export function failureReason(error: unknown): { reason?: 'template_mismatch' } {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    if ((current as { type?: unknown }).type === templateMismatchFailureType) return { reason: 'template_mismatch' };
    current = current.cause;
  }
  return {};
}
