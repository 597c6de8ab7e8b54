/** A LISTEN connection that keeps reconnecting: losing it must never silence its listener for good. */
import pg from 'pg';
import type { Logger } from '../observability/logger.js';

export interface Listening {
  stop(): Promise<void>;
}

export function listenForever(options: { databaseUrl: string; channel: string; applicationName: string; logger: Logger; onNotify: () => void; retryMs?: number }): Listening {
  let client: pg.Client | undefined;
  let stopped = false;
  let retry: NodeJS.Timeout | undefined;
  const retryMs = options.retryMs ?? 1_000;

  const connect = (): void => {
    if (stopped) return;
    const next = new pg.Client({ connectionString: options.databaseUrl, application_name: options.applicationName });
    let failed = false;
    const reconnect = (error?: unknown): void => {
      if (failed || stopped) return;
      failed = true;
      if (error) options.logger.warn({ err: error, channel: options.channel }, 'LISTEN connection lost; reconnecting');
      if (client === next) client = undefined;
      next.removeAllListeners('notification');
      next.end().catch(() => undefined);
      retry = setTimeout(connect, retryMs);
      retry.unref();
    };
    next.on('notification', (message) => {
      if (message.channel === options.channel) options.onNotify();
    });
    next.on('error', reconnect);
    next.on('end', () => reconnect());
    next
      .connect()
      .then(() => next.query(`LISTEN ${options.channel}`))
      .then(() => {
        if (stopped) return void next.end().catch(() => undefined);
        client = next;
        // Anything sent while we were away is picked up by the next pass.
        options.onNotify();
      })
      .catch(reconnect);
  };
  connect();

  return {
    async stop() {
      stopped = true;
      if (retry) clearTimeout(retry);
      await client?.end().catch(() => undefined);
    },
  };
}
