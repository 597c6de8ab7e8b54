/**
 * The chaos run's processes: an API or worker process started the way production starts it
 * (`node --import tsx <entry>`, the command behind `npm run api` / `npm run worker`) and kept
 * running by the launcher's own supervisor (stack/supervisor.ts), as `npm start` keeps its
 * children. This layer adds what the report needs: every start and exit, which exits the run
 * caused (its kill -9), the error lines logged, and the last output of a process that never came up.
 */
import { createWriteStream } from 'node:fs';
import type { WriteStream } from 'node:fs';
import { repoRoot } from '../config/load.js';
import { spawnManaged } from '../stack/processes.js';
import type { ManagedProcess } from '../stack/processes.js';
import { supervise as keepRunning } from '../stack/supervisor.js';
import type { Running } from '../stack/supervisor.js';

export interface LifeEvent {
  /** Epoch ms. */
  at: number;
  event: 'started' | 'exited';
  pid?: number;
  /** Exit code or signal name. */
  code?: number | string;
  /** Exited while the run meant it to (a kill -9 it injected, or the final stop). */
  expected?: boolean;
}

export interface Supervised {
  name: string;
  pid(): number | undefined;
  /** kill -9 of the running process (the supervisor then restarts it); its pid, if one ran. */
  kill9(): number | undefined;
  history: LifeEvent[];
  /** Lines the process logged at error level or above (pino error, fatal), over all its runs. */
  errorLines(): number;
  /** Unexpected exits: the process died without the run killing it. */
  crashes(): number;
  /** Why the supervisor stopped restarting it (a crash loop), if it did. */
  gaveUp(): string | undefined;
  /** Its last lines of output, for an error that says why it never came up. */
  recentOutput(): string[];
  stop(): Promise<void>;
}

/** A run this long resets the restart backoff (the production launcher waits a minute; a chaos round is shorter). */
const stableAfterMs = 10_000;

export async function supervise(options: { name: string; entry: string; env: NodeJS.ProcessEnv; logFile: string; niceness: number; graceMs: number }): Promise<Supervised> {
  const log: WriteStream = createWriteStream(options.logFile, { flags: 'a' });
  const history: LifeEvent[] = [];
  let current: ManagedProcess | undefined;
  let stopping = false;
  let killedByRun = false;
  let gaveUp: string | undefined;
  let errorLines = 0;
  const recent: string[] = [];

  const start = (): Running => {
    const startedAt = Date.now();
    killedByRun = false;
    const child = spawnManaged(options.name, process.execPath, ['--import', 'tsx', options.entry], {
      cwd: repoRoot,
      env: options.env,
      // Through `nice -n`, as the launcher starts its children: every thread of the process gets it.
      niceness: options.niceness,
      onOutput: (line) => {
        log.write(`${line}\n`);
        recent.push(line);
        if (recent.length > 8) recent.shift();
        // pino: numeric levels (50 error, 60 fatal) or their labels.
        if (/"level":(?:5\d|6\d|"error"|"fatal")/.test(line)) errorLines++;
      },
    });
    current = child;
    const pid = child.child.pid;
    history.push({ at: startedAt, event: 'started', ...(pid === undefined ? {} : { pid }) });
    log.write(`--- chaos: ${options.name} started (pid ${pid ?? '?'}) at ${new Date(startedAt).toISOString()}\n`);
    const exited = child.exited.then((code) => {
      const expected = stopping || killedByRun;
      history.push({ at: Date.now(), event: 'exited', ...(pid === undefined ? {} : { pid }), code, expected });
      log.write(`--- chaos: ${options.name} exited (${code})${expected ? '' : ' unexpectedly'} at ${new Date().toISOString()}\n`);
      if (current === child) current = undefined;
      return code;
    });
    return { exited, pid, stop: () => child.stop(options.graceMs) };
  };

  const supervised = await keepRunning({
    name: options.name,
    start,
    log: (message) => log.write(`--- chaos: ${message}\n`),
    onGiveUp: (reason) => {
      gaveUp = reason;
      log.write(`--- chaos: gave up: ${reason}\n`);
    },
    restartAllowed: () => !stopping,
    policy: { stableAfterMs },
  });

  return {
    name: options.name,
    pid: () => current?.child.pid,
    kill9() {
      const pid = current?.child.pid;
      if (pid === undefined) return undefined;
      killedByRun = true;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        return undefined; // already gone
      }
      return pid;
    },
    history,
    errorLines: () => errorLines,
    crashes: () => history.filter((entry) => entry.event === 'exited' && !entry.expected).length,
    gaveUp: () => gaveUp,
    recentOutput: () => [...recent],
    async stop() {
      stopping = true;
      await supervised.stop();
      await new Promise<void>((resolve) => log.end(() => resolve()));
    },
  };
}
