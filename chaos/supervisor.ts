/**
 * The chaos run's process supervisor: starts an API or worker process the way production does
 * (`node --import tsx <entry>`, the command behind `npm run api` / `npm run worker`) and, like
 * systemd's `Restart=always`, starts it again when it dies: after 1 s, doubling while it keeps
 * dying within 10 s of its start, up to 30 s. Every start and exit is kept for the report.
 */
import { createWriteStream } from 'node:fs';
import type { WriteStream } from 'node:fs';
import { repoRoot } from '../config/load.js';
import { spawnManaged } from '../stack/processes.js';
import type { ManagedProcess } from '../stack/processes.js';

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
  /** Its last lines of output, for an error that says why it never came up. */
  recentOutput(): string[];
  stop(): Promise<void>;
}

const minimumUptimeMs = 10_000;
const maximumBackoffMs = 30_000;

export function supervise(options: { name: string; entry: string; env: NodeJS.ProcessEnv; logFile: string; niceness: number; graceMs: number }): Supervised {
  const log: WriteStream = createWriteStream(options.logFile, { flags: 'a' });
  const history: LifeEvent[] = [];
  let current: ManagedProcess | undefined;
  let stopping = false;
  let killedByRun = false;
  let backoffMs = 1_000;
  let errorLines = 0;
  const recent: string[] = [];
  let restartTimer: NodeJS.Timeout | undefined;

  const start = (): void => {
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
    history.push({ at: startedAt, event: 'started', ...(child.child.pid === undefined ? {} : { pid: child.child.pid }) });
    log.write(`--- chaos: ${options.name} started (pid ${child.child.pid ?? '?'}) at ${new Date(startedAt).toISOString()}\n`);
    void child.exited.then((code) => {
      const expected = stopping || killedByRun;
      history.push({ at: Date.now(), event: 'exited', ...(child.child.pid === undefined ? {} : { pid: child.child.pid }), code, expected });
      log.write(`--- chaos: ${options.name} exited (${code})${expected ? '' : ' unexpectedly'} at ${new Date().toISOString()}\n`);
      if (current === child) current = undefined;
      if (stopping) return;
      // A process that dies soon after its start is in a crash loop: wait longer each time.
      backoffMs = Date.now() - startedAt < minimumUptimeMs ? Math.min(maximumBackoffMs, backoffMs * 2) : 1_000;
      const wait = killedByRun ? 1_000 : backoffMs;
      restartTimer = setTimeout(start, wait);
    });
  };
  start();

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
    recentOutput: () => [...recent],
    async stop() {
      stopping = true;
      if (restartTimer) clearTimeout(restartTimer);
      await current?.stop(options.graceMs);
      await new Promise<void>((resolve) => log.end(() => resolve()));
    },
  };
}
