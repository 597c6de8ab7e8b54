import { setTimeout as delay } from 'node:timers/promises';
import pg from 'pg';
import { migrate } from '../db/migrate.js';
import { scrubText } from '../observability/logger.js';

/**
 * Calls `stop` once on SIGINT, SIGTERM, or when the launcher that started this process goes
 * away (its IPC channel closes), so no API or worker process outlives the stack.
 */
export function onShutdownSignal(stop: (reason: string) => Promise<void> | void): void {
  let stopping = false;
  const trigger = (reason: string): void => {
    if (stopping) return;
    stopping = true;
    Promise.resolve(stop(reason)).then(
      () => process.exit(0),
      (error: unknown) => {
        process.stderr.write(`switchboard: shutdown failed: ${scrubText(String(error))}\n`);
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', () => trigger('SIGINT'));
  process.once('SIGTERM', () => trigger('SIGTERM'));
  if (process.channel) process.once('disconnect', () => trigger('launcher went away'));
}

/**
 * Waits for PostgreSQL to accept connections (it may still be starting), then applies
 * pending migrations. Gives up with a one-line reason after `timeoutMs`.
 */
export async function prepareDatabase(databaseUrl: string, timeoutMs = 30_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  while (Date.now() < deadline) {
    const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 2_000 });
    try {
      await client.connect();
      await client.end();
      return await migrate(databaseUrl);
    } catch (error) {
      await client.end().catch(() => undefined);
      lastError = error instanceof Error ? error.message : String(error);
      if (/password authentication|does not exist|permission denied/i.test(lastError)) break;
      await delay(500);
    }
  }
  throw new Error(`PostgreSQL is not usable: ${scrubText(lastError.split('\n')[0] ?? lastError)}`);
}

/** Prints a one-line fatal error (no stack trace, no secrets) and exits. */
export function exitWithError(prefix: string, error: unknown, code = 1): never {
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`switchboard ${prefix}: ${scrubText(message.split('\n')[0] ?? message)}\n`);
  process.exit(code);
}
