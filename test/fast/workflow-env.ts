/**
 * The fast layer's workflow fixtures: the run's time-skipping test server and workflow bundle
 * (test/harness/temporal.ts, started once per run), and a worker on a queue of its own whose
 * activities are the plain stub functions a test passes. No PostgreSQL, no dev server, no HTTP.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { loadConfig } from '../../config/load.js';
import { temporalDataConverter } from '../../security/payload-codec.js';
import { uniqueId } from '../harness/resources.js';
import { getTimeSkippingServer, getWorkflowBundle } from '../harness/temporal.js';

const dataConverter = temporalDataConverter(loadConfig({}).temporal.payloadEncryption);

export async function timeSkippingEnv(): Promise<TestWorkflowEnvironment> {
  // Bundled while the server starts.
  const [env] = await Promise.all([getTimeSkippingServer(), getWorkflowBundle()]);
  return env;
}

/** Runs `body` with a worker serving the stub `activities` on a fresh task queue. */
export async function withStubWorker<T>(env: TestWorkflowEnvironment, activities: object, body: (taskQueue: string) => Promise<T>): Promise<T> {
  const taskQueue = uniqueId('fast');
  const worker = await Worker.create({
    connection: env.nativeConnection,
    namespace: env.client.options.namespace,
    taskQueue,
    workflowBundle: await getWorkflowBundle(),
    activities,
    dataConverter,
  });
  return worker.runUntil(() => body(taskQueue));
}

/**
 * Every value a stub was called with, and promises for the first one that matches: the tests
 * wait on what the workflow did (a journal write, a send), never on the clock.
 */
export class Recorder<T> {
  readonly calls: T[] = [];
  private readonly waiters: Array<{ match: (value: T) => boolean; resolve: (value: T) => void }> = [];

  record(value: T): void {
    this.calls.push(value);
    for (const waiter of [...this.waiters]) {
      if (!waiter.match(value)) continue;
      this.waiters.splice(this.waiters.indexOf(waiter), 1);
      waiter.resolve(value);
    }
  }

  /** The first call (already made or still to come) that matches. */
  next(match: (value: T) => boolean, what: string, timeoutMs = 20_000): Promise<T> {
    const made = this.calls.find(match);
    if (made !== undefined) return Promise.resolve(made);
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(new Error(`timed out waiting for ${what} (${this.calls.length} call(s) recorded)`));
      }, timeoutMs);
      const waiter = {
        match,
        resolve: (value: T) => {
          clearTimeout(timer);
          resolve(value);
        },
      };
      this.waiters.push(waiter);
    });
  }
}
