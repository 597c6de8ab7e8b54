import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { createConnection, createServer } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';

export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Polls until `pid` is gone; resolves false if it is still alive after `timeoutMs`. */
export async function waitForProcessExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isProcessAlive(pid)) return true;
    await delay(100);
  }
  return !isProcessAlive(pid);
}

let setprivSupportsPdeathsig: boolean | undefined;

/**
 * Children are started through `setpriv --pdeathsig TERM` when util-linux provides it: the
 * kernel then stops them even if the launcher itself is killed with SIGKILL, so no
 * `temporal` or `java` process outlives the stack.
 */
function withParentDeathSignal(command: string, args: string[], signal: string): [string, string[]] {
  if (process.platform !== 'linux') return [command, args];
  setprivSupportsPdeathsig ??= spawnSync('setpriv', ['--pdeathsig', 'TERM', 'true']).status === 0;
  return setprivSupportsPdeathsig ? ['setpriv', ['--pdeathsig', signal, command, ...args]] : [command, args];
}

export interface ManagedProcess {
  name: string;
  child: ChildProcess;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  exited: Promise<number | string>;
  /** `signal` (SIGTERM by default), then SIGKILL after `graceMs`. Resolves when the process is gone. */
  stop(graceMs: number, signal?: NodeJS.Signals): Promise<void>;
}

let niceProgramWorks: boolean | undefined;
let batchPolicyWorks: boolean | undefined;

/**
 * A lower priority from the first instruction on, through `nice -n`: every thread the child ever
 * creates inherits it. Renicing a running child reaches only its main thread on Linux, and the
 * threads it already started (the Temporal server's Go threads, V8's workers) would stay at 0.
 *
 * Where util-linux's `chrt` is there, a lowered child also runs in SCHED_BATCH: the kernel never
 * lets it preempt a running task when it wakes, so a catch-up process woken by a socket does not
 * take the CPU from the API in the middle of an answer. It still gets its fair share (unlike
 * SCHED_IDLE, which starves under sustained load), and any user may choose it.
 */
function withNiceness(command: string, args: string[], niceness: number): [string, string[]] {
  if (niceness <= 0 || process.platform === 'win32') return [command, args];
  niceProgramWorks ??= spawnSync('nice', ['-n', '1', 'true']).status === 0;
  if (!niceProgramWorks) return [command, args];
  batchPolicyWorks ??= process.platform === 'linux' && spawnSync('chrt', ['--batch', '0', 'true']).status === 0;
  const niced = ['-n', String(niceness), command, ...args];
  return batchPolicyWorks ? ['chrt', ['--batch', '0', 'nice', ...niced]] : ['nice', niced];
}

export function spawnManaged(
  name: string,
  command: string,
  args: string[],
  options: SpawnOptions & { onOutput?: (line: string) => void; parentDeathSignal?: 'TERM' | 'INT'; niceness?: number } = {},
): ManagedProcess {
  const { onOutput, parentDeathSignal = 'TERM', niceness = 0, ...spawnOptions } = options;
  const [file, finalArgs] = withParentDeathSignal(...withNiceness(command, args, niceness), parentDeathSignal);
  // Where `nice` is missing, renice the running child's threads instead (see setNiceness).
  const reniceAfterSpawn = niceness > 0 && niceProgramWorks === false;
  const child = spawn(file, finalArgs, {
    // Own process group: a terminal's Ctrl-C reaches only the launcher, which then stops
    // everything in order (API, workers, Temporal, PostgreSQL).
    detached: true,
    stdio: ['ignore', onOutput ? 'pipe' : 'inherit', onOutput ? 'pipe' : 'inherit'],
    ...spawnOptions,
  });
  if (onOutput) {
    for (const stream of [child.stdout, child.stderr]) {
      let buffered = '';
      stream?.setEncoding('utf8');
      stream?.on('data', (chunk: string) => {
        buffered += chunk;
        const lines = buffered.split('\n');
        buffered = lines.pop() ?? '';
        for (const line of lines) if (line.trim() !== '') onOutput(line);
      });
    }
  }
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
    child.once('error', (error) => resolve(`spawn failed: ${error.message}`));
  });
  const stop = async (graceMs: number, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
    child.kill(signal);
    const graceOver = new AbortController();
    const timer = delay(graceMs, 'timeout' as const, { signal: graceOver.signal }).catch(() => 'exited' as const);
    const outcome = await Promise.race([exited, timer]);
    graceOver.abort(); // do not keep the event loop alive for the rest of the grace period
    if (outcome === 'timeout') {
      child.kill('SIGKILL');
      await exited;
    }
  };
  const managed = { name, child, exited, stop };
  if (reniceAfterSpawn) setNiceness(managed, niceness);
  else if (niceness > 0 && child.pid !== undefined) lowerAutogroup(child.pid, niceness);
  return managed;
}

/** A process's autogroup (Linux with CONFIG_SCHED_AUTOGROUP): its name and nice value, or undefined. */
export function autogroupOf(pid: number | 'self'): { group: string; niceness: number } | undefined {
  try {
    const match = /^(\S+) nice (-?\d+)/.exec(readFileSync(`/proc/${pid}/autogroup`, 'utf8'));
    return match?.[1] && match[2] ? { group: match[1], niceness: Number(match[2]) } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A detached child leads a session of its own, and where the kernel groups tasks by session
 * (autogroups, on by default in most distributions) the scheduler first shares the CPU between
 * groups, each of them weighted by the group's nice value: a task's own nice value only counts
 * against the tasks of its group. So the child's group gets the niceness too; without it a
 * "lowered" worker still weighs as much as the API. Its own group only: never one it shares
 * with this process. Not permitted or no autogroups: only latency is at stake.
 */
function lowerAutogroup(pid: number, niceness: number): void {
  const child = autogroupOf(pid);
  if (!child || child.group === autogroupOf('self')?.group) return;
  try {
    writeFileSync(`/proc/${pid}/autogroup`, String(niceness));
  } catch {
    // not permitted here, or the child is already gone
  }
}

/** Resolves once a TCP connection to host:port succeeds. */
export async function waitForPort(host: string, port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = createConnection({ host, port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`nothing is listening on ${host}:${port} after ${timeoutMs} ms`);
    await delay(100);
  }
}

/** Polls `check` until it returns true, or throws `message` after `timeoutMs`. */
export async function waitUntil(check: () => Promise<boolean>, timeoutMs: number, message: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(message);
    await delay(200);
  }
}

/**
 * Scheduling priorities (nice values) on a machine the whole stack shares. The API answers every
 * webhook from a commit of its own and must keep doing so while the others catch up on a burst:
 * the forwarder and Temporal drain the backlog a little behind it, the worker and the demo
 * simulators after them.
 */
export const processPriorities = { api: 0, forwarder: 5, temporal: 5, worker: 10, demo: 10 } as const;

/**
 * Lowers a running child's priority, thread by thread where /proc lists them (raising it would need
 * root). Threads the child starts later from a thread still at 0 are missed: prefer the
 * `niceness` option of spawnManaged. A refusal only costs latency, never correctness.
 */
export function setNiceness(child: ManagedProcess, niceness: number): void {
  const pid = child.child.pid;
  if (pid === undefined || niceness === 0) return;
  let threads: number[] = [pid];
  try {
    threads = readdirSync(`/proc/${pid}/task`).map(Number).filter((tid) => Number.isInteger(tid));
  } catch {
    // no /proc (macOS): the process's priority is the one call there is
  }
  for (const tid of threads) {
    try {
      os.setPriority(tid, niceness);
    } catch {
      // not permitted here (e.g. a container without CAP_SYS_NICE), or the thread is gone
    }
  }
  if (niceness > 0) lowerAutogroup(pid, niceness);
}

/** A TCP port free on 127.0.0.1 right now (the OS picks it; another process may still take it first). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}
