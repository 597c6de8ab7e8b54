import { randomUUID } from 'node:crypto';

// The dev stack and the bench pick ports the same way (stack/processes.ts).
export { freePort } from '../../stack/processes.js';

type Teardown = () => Promise<void>;
const teardowns: Teardown[] = [];

/** Registers cleanup for a run-wide resource; global.ts runs them (newest first) after the last test. */
export function onRunEnd(teardown: Teardown): void {
  teardowns.push(teardown);
}

export async function runTeardowns(): Promise<void> {
  for (const teardown of teardowns.reverse()) await teardown().catch((error: unknown) => console.error('teardown failed:', error));
  teardowns.length = 0;
}

/** Memoizes an async factory: one server of each kind per test run, started on first use. */
export function once<T>(factory: () => Promise<T>): () => Promise<T> {
  let value: Promise<T> | undefined;
  return () => (value ??= factory());
}

/** Ids that never collide between tests, files or runs. */
export function uniqueId(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}
