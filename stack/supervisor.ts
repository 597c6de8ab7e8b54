/**
 * Keeps one process of the stack running: a process that exits unexpectedly is started again
 * after a backoff (doubling, back to the first delay once a run has lasted `stableAfterMs`), and
 * only a crash loop gives up, saying which process, how often, and how it last exited.
 */
import { scrubText } from '../observability/logger.js';

/** A started process, as the supervisor sees it. */
export interface Running {
  /** Resolves with the exit code (or signal name) once the process has exited. */
  exited: Promise<number | string>;
  pid?: number | undefined;
  stop(): Promise<void>;
}

export interface SupervisorPolicy {
  initialBackoffMs: number;
  maxBackoffMs: number;
  /** A run this long resets the backoff: the next crash is restarted after `initialBackoffMs` again. */
  stableAfterMs: number;
  /** This many crashes within `crashLoopWindowMs` stop supervising (`onGiveUp`). */
  crashLoopCrashes: number;
  crashLoopWindowMs: number;
}

export const defaultSupervisorPolicy: SupervisorPolicy = {
  initialBackoffMs: 1_000,
  maxBackoffMs: 30_000,
  stableAfterMs: 60_000,
  crashLoopCrashes: 5,
  crashLoopWindowMs: 120_000,
};

export interface Supervised {
  /** Crashes so far (each followed by a restart, unless it tripped the crash loop). */
  crashes(): number;
  /** The pid of the current run, if one is running. */
  pid(): number | undefined;
  /** No more restarts; stops the current run (or one being started) and resolves once it is gone. */
  stop(): Promise<void>;
}

/** `exit code 1`, `signal SIGKILL`, or what spawning reported. */
export function describeExit(code: number | string): string {
  if (typeof code === 'number') return `exit code ${code}`;
  return /^SIG[A-Z0-9]+$/.test(code) ? `signal ${code}` : code;
}

function duration(ms: number): string {
  return ms < 1_000 ? `${ms} ms` : `${Math.round(ms / 100) / 10} s`;
}

/**
 * Starts `start()` once (its failure is the caller's: start-up fails as before), then supervises.
 * A restart whose `start()` throws counts as a crash of its own. `restartAllowed` false (the
 * launcher is shutting down) leaves an exit alone.
 */
export async function supervise(options: {
  name: string;
  start: () => Promise<Running> | Running;
  log: (message: string) => void;
  onGiveUp: (reason: string) => void;
  restartAllowed?: () => boolean;
  policy?: Partial<SupervisorPolicy>;
}): Promise<Supervised> {
  const policy = { ...defaultSupervisorPolicy, ...options.policy };
  const restartAllowed = options.restartAllowed ?? (() => true);
  let stopped = false;
  let current: Running | undefined;
  let starting: Promise<void> | undefined;
  let restartTimer: NodeJS.Timeout | undefined;
  let backoffMs = policy.initialBackoffMs;
  let crashCount = 0;
  const recentCrashes: number[] = [];

  const crashed = (exit: string, ranForMs: number): void => {
    current = undefined;
    if (stopped || !restartAllowed()) return;
    crashCount++;
    const now = Date.now();
    recentCrashes.push(now);
    while (recentCrashes.length > 0 && recentCrashes[0]! <= now - policy.crashLoopWindowMs) recentCrashes.shift();
    if (recentCrashes.length >= policy.crashLoopCrashes) {
      stopped = true;
      options.onGiveUp(`${options.name} crashed ${recentCrashes.length} times within ${duration(policy.crashLoopWindowMs)} (last: ${exit})`);
      return;
    }
    if (ranForMs >= policy.stableAfterMs) backoffMs = policy.initialBackoffMs;
    const delayMs = backoffMs;
    backoffMs = Math.min(backoffMs * 2, policy.maxBackoffMs);
    options.log(`${options.name} exited unexpectedly (${exit}); restarting in ${duration(delayMs)} (${recentCrashes.length} ${recentCrashes.length === 1 ? 'crash' : 'crashes'} within ${duration(policy.crashLoopWindowMs)}; giving up at ${policy.crashLoopCrashes})`);
    restartTimer = setTimeout(() => {
      restartTimer = undefined;
      starting = run(true).finally(() => (starting = undefined));
    }, delayMs);
  };

  const watch = (running: Running): void => {
    const startedAt = Date.now();
    current = running;
    void running.exited.then((code) => {
      if (current === running) crashed(describeExit(code), Date.now() - startedAt);
    });
  };

  const run = async (restart: boolean): Promise<void> => {
    let running: Running;
    try {
      running = await options.start();
    } catch (error) {
      if (!restart) throw error;
      crashed(`restart failed: ${scrubText((error as Error).message.split('\n')[0] ?? '')}`, 0);
      return;
    }
    if (stopped) {
      await running.stop();
      return;
    }
    if (restart) options.log(`${options.name} restarted${running.pid === undefined ? '' : ` (pid ${running.pid})`}`);
    watch(running);
  };

  await run(false);

  return {
    crashes: () => crashCount,
    pid: () => current?.pid,
    async stop() {
      stopped = true;
      if (restartTimer) clearTimeout(restartTimer);
      await starting;
      const running = current;
      current = undefined;
      await running?.stop();
    },
  };
}
