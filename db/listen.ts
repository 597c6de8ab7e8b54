/** A LISTEN connection that keeps reconnecting: losing it must never silence its listener for good. */
import pg from 'pg';
import type { Logger } from '../observability/logger.js';

/** Where the connection stands, for readiness: no URL, host or message text, only an error's kind. */
export type ListenState =
  | { connected: true; since: Date }
  | {
      connected: false;
      /** When the connection was lost (or, before the first connection, when listening began). */
      since: Date;
      /** Connection attempts that failed since then. */
      failedAttempts: number;
      /** The last failure's kind: a PostgreSQL SQLSTATE (57P01: terminated), a socket code (ECONNREFUSED), or `connection_ended`. */
      lastError?: string;
    };

export interface Listening {
  state(): ListenState;
  /** Resolves once the first attempt has settled (listening, or failed and retrying). */
  firstAttempt: Promise<void>;
  stop(): Promise<void>;
}

export interface ListenOptions {
  databaseUrl: string;
  channel: string;
  applicationName: string;
  logger: Logger;
  /**
   * A notification's payload (`''` when it has none), or `undefined` each time LISTEN is
   * (re)established: whatever was sent while nobody listened is lost, so the listener catches up.
   */
  onNotify: (payload: string | undefined) => void;
  /** First retry delay, doubled after each failure up to `maxRetryMs`, back to the first on success. */
  retryMs?: number;
  maxRetryMs?: number;
}

/** A kind for readiness and logs, never the message (it may carry a host or user name). */
function errorKind(error: unknown): string {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string' && /^[A-Z0-9_]{2,32}$/.test(code)) return code;
  return error === undefined ? 'connection_ended' : 'connection_error';
}

export function listenForever(options: ListenOptions): Listening {
  const initialRetryMs = options.retryMs ?? 500;
  const maxRetryMs = Math.max(initialRetryMs, options.maxRetryMs ?? 10_000);
  let retryMs = initialRetryMs;
  /** The client being connected, or listening. */
  let current: { client: pg.Client; listening: boolean } | undefined;
  let stopped = false;
  let retry: NodeJS.Timeout | undefined;
  let state: ListenState = { connected: false, since: new Date(), failedAttempts: 0 };
  let settleFirst: () => void = () => undefined;
  const firstAttempt = new Promise<void>((resolve) => (settleFirst = resolve));

  const connect = (): void => {
    if (stopped) return;
    const next = new pg.Client({ connectionString: options.databaseUrl, application_name: options.applicationName, connectionTimeoutMillis: 10_000 });
    const attempt = { client: next, listening: false };
    current = attempt;
    let failed = false;
    const reconnect = (error?: unknown): void => {
      if (failed || stopped) return;
      failed = true;
      const kind = errorKind(error);
      if (attempt.listening) {
        state = { connected: false, since: new Date(), failedAttempts: 0, lastError: kind };
        options.logger.warn({ channel: options.channel, kind }, 'LISTEN connection lost; reconnecting');
      } else {
        state = { connected: false, since: state.since, failedAttempts: (state.connected ? 0 : state.failedAttempts) + 1, lastError: kind };
        options.logger.warn({ channel: options.channel, kind, failedAttempts: state.failedAttempts, retryMs }, 'LISTEN connection attempt failed; retrying');
      }
      next.removeAllListeners('notification');
      next.end().catch(() => undefined);
      retry = setTimeout(connect, retryMs);
      retry.unref();
      retryMs = Math.min(retryMs * 2, maxRetryMs);
      settleFirst();
    };
    next.on('notification', (message) => {
      if (message.channel === options.channel) options.onNotify(message.payload ?? '');
    });
    next.on('error', reconnect);
    next.on('end', () => reconnect());
    next
      .connect()
      .then(() => next.query(`LISTEN ${options.channel}`))
      .then(() => {
        if (stopped || failed) return void next.end().catch(() => undefined);
        attempt.listening = true;
        retryMs = initialRetryMs;
        state = { connected: true, since: new Date() };
        options.onNotify(undefined);
        settleFirst();
      })
      .catch(reconnect);
  };
  connect();

  return {
    state: () => state,
    firstAttempt,
    async stop() {
      stopped = true;
      if (retry) clearTimeout(retry);
      settleFirst();
      if (!current) return;
      const ending = current.client.end().catch(() => undefined);
      // A client still connecting is not waited for: a server that does not answer must not hold up the stop.
      if (current.listening) await ending;
    },
  };
}
