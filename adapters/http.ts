/** A small JSON-over-HTTP client for adapters: timeouts, and errors that say what kind of failure it was. */

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
  timeoutMs?: number;
  /** Statuses that are answers rather than failures (e.g. 404 for "no such record"). */
  accept?: number[];
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
  const { system, method = 'GET', url, json, timeoutMs = 10_000, accept = [] } = request;
  let response: Response;
  try {
    response = await fetch(url, {
      method,
      headers: { accept: 'application/json', ...(json !== undefined ? { 'content-type': 'application/json' } : {}), ...request.headers },
      body: json !== undefined ? JSON.stringify(json) : undefined,
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (error) {
    const reason = error instanceof Error && error.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : 'connection failed';
    throw new OutsideSystemError(system, 'unavailable', `${method} ${new URL(url).pathname}: ${reason}`);
  }
  const text = await response.text();
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
