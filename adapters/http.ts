/** A small JSON-over-HTTP client for adapters: timeouts, cancellation, and errors that say what kind of failure it was. */
import { AsyncLocalStorage } from 'node:async_hooks';

export type FailureKind = 'rate_limited' | 'unavailable' | 'rejected' | 'unauthorized' | 'not_found';

/** An outside system refused or failed a request. `kind` decides whether retrying can help. */
export class OutsideSystemError extends Error {
  override readonly name = 'OutsideSystemError';
  constructor(
    readonly system: string,
    readonly kind: FailureKind,
    message: string,
    readonly status?: number,
    readonly retryAfterMs?: number,
    readonly body?: unknown,
  ) {
    super(`${system}: ${message}`);
  }

  get retryable(): boolean {
    return this.kind === 'rate_limited' || this.kind === 'unavailable';
  }
}

/** A request that never left this process (cancelled, or no slot to send it in): proof the outside system did not act. */
export class RequestNotSentError extends OutsideSystemError {
  constructor(system: string, message: string) {
    super(system, 'unavailable', message);
  }
}

export interface JsonResponse<T> {
  status: number;
  body: T | undefined;
  headers: Headers;
}

export interface JsonRequest {
  system: string;
  method?: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  url: string;
  headers?: Record<string, string>;
  json?: unknown;
  /** A form-encoded body (application/x-www-form-urlencoded), instead of `json`. */
  form?: URLSearchParams;
  timeoutMs?: number;
  /** Statuses that are answers rather than failures (e.g. 404 for "no such record"). */
  accept?: number[];
}

const cancellation = new AsyncLocalStorage<AbortSignal>();

/**
 * Runs `work` so that every outside request it makes (here, in the rate gates, the recording
 * download and the mailer) is aborted when `signal` is: an activity passes its cancellation signal,
 * so a request Temporal no longer waits for is not left running. Adapters need no signal argument
 * of their own on every method.
 */
export function withCancellation<T>(signal: AbortSignal, work: () => Promise<T>): Promise<T> {
  return cancellation.run(signal, work);
}

/**
 * Runs `work` outside any enclosing cancellation: for work other callers share and that must not
 * be cut off halfway because one of them was cancelled (a token renewal whose answer rotates the
 * refresh token).
 */
export function withoutCancellation<T>(work: () => Promise<T>): Promise<T> {
  return cancellation.exit(work);
}

/** The signal of the enclosing `withCancellation`, if any. */
export function currentCancellation(): AbortSignal | undefined {
  return cancellation.getStore();
}

/** A request's signal: its own timeout, and the enclosing cancellation. */
export function requestSignal(timeoutMs: number): AbortSignal {
  const timeout = AbortSignal.timeout(timeoutMs);
  const cancelled = currentCancellation();
  return cancelled ? AbortSignal.any([timeout, cancelled]) : timeout;
}

/** Why a request ended without an answer, as its error says: cancelled, no answer in time, or no connection. */
function whyNoAnswer(error: unknown, timeoutMs: number): string {
  if (currentCancellation()?.aborted) return 'cancelled';
  if (error instanceof Error && error.name === 'TimeoutError') return `no answer within ${timeoutMs} ms`;
  return 'connection failed';
}

function retryAfterMs(headers: Headers): number | undefined {
  const value = headers.get('retry-after');
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

export async function requestJson<T>(request: JsonRequest): Promise<JsonResponse<T>> {
  const { system, method = 'GET', url, json, form, timeoutMs = 10_000, accept = [] } = request;
  // Covers the body too: fetch reads it under the same signal.
  const signal = requestSignal(timeoutMs);
  if (signal.aborted) throw new RequestNotSentError(system, `${method} ${new URL(url).pathname}: cancelled before it was sent`);
  let response: Response;
  try {
    response = await fetch(url, {
      method,
      headers: {
        accept: 'application/json',
        ...(json !== undefined ? { 'content-type': 'application/json' } : form !== undefined ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
        ...request.headers,
      },
      body: json !== undefined ? JSON.stringify(json) : form !== undefined ? form.toString() : undefined,
      signal,
    });
  } catch (error) {
    // Whether it reached the system is unknown: retryable, and not proof that it did not act.
    throw new OutsideSystemError(system, 'unavailable', `${method} ${new URL(url).pathname}: ${whyNoAnswer(error, timeoutMs)}`);
  }
  let text: string;
  try {
    text = await response.text();
  } catch (error) {
    // No status on the error: the system may well have acted (a 200 whose body was cut off).
    throw new OutsideSystemError(system, 'unavailable', `${method} ${new URL(url).pathname} answered ${response.status}, then the body broke off (${whyNoAnswer(error, timeoutMs)})`);
  }
  let body: unknown;
  try {
    body = text === '' ? undefined : JSON.parse(text);
  } catch {
    body = text;
  }
  if (response.ok || accept.includes(response.status)) return { status: response.status, body: body as T, headers: response.headers };

  const where = `${method} ${new URL(url).pathname} answered ${response.status}`;
  if (response.status === 429) throw new OutsideSystemError(system, 'rate_limited', where, 429, retryAfterMs(response.headers), body);
  if (response.status === 401 || response.status === 403) throw new OutsideSystemError(system, 'unauthorized', where, response.status, undefined, body);
  if (response.status === 404) throw new OutsideSystemError(system, 'not_found', where, 404, undefined, body);
  if (response.status >= 500 || response.status === 408) throw new OutsideSystemError(system, 'unavailable', where, response.status, retryAfterMs(response.headers), body);
  throw new OutsideSystemError(system, 'rejected', where, response.status, undefined, body);
}
