/**
 * The launcher's supervision (stack/supervisor.ts) over real child processes: a tiny node script
 * that stays up until it is killed, or exits at once with a given code.
 */
import assert from 'node:assert/strict';
import { spawnManaged, waitForProcessExit, waitUntil } from '../../stack/processes.js';
import { supervise } from '../../stack/supervisor.js';
import type { Running, Supervised, SupervisorPolicy } from '../../stack/supervisor.js';

/** `exitCode` undefined: runs until killed. */
function startChild(exitCode?: number): Running & { pid: number } {
  const script = exitCode === undefined ? 'setInterval(() => undefined, 60_000)' : `process.exit(${exitCode})`;
  const child = spawnManaged('child', process.execPath, ['-e', script], { stdio: 'ignore' });
  assert.ok(child.child.pid !== undefined);
  return { exited: child.exited, pid: child.child.pid, stop: () => child.stop(5_000) };
}

const quick: Partial<SupervisorPolicy> = { initialBackoffMs: 20, maxBackoffMs: 80, stableAfterMs: 60_000, crashLoopCrashes: 5, crashLoopWindowMs: 120_000 };

describe('launcher supervision (stack/supervisor.ts, real child processes)', () => {
  const running: Supervised[] = [];
  afterEach(async () => {
    for (const supervised of running.splice(0)) await supervised.stop();
  });

  it('restarts a child killed with SIGKILL, logging how it exited and the new pid', async () => {
    const log: string[] = [];
    const started: number[] = [];
    const reasons: string[] = [];
    const supervised = await supervise({
      name: 'worker',
      start: () => {
        const child = startChild();
        started.push(child.pid);
        return child;
      },
      log: (line) => log.push(line),
      onGiveUp: (reason) => reasons.push(reason),
      policy: quick,
    });
    running.push(supervised);
    const [first] = started;
    assert.ok(first !== undefined);
    assert.equal(supervised.pid(), first);

    process.kill(first, 'SIGKILL');
    await waitUntil(() => Promise.resolve(started.length === 2 && supervised.pid() === started[1]), 10_000, 'the child was not restarted');
    assert.equal(supervised.crashes(), 1);
    assert.deepEqual(log, [
      'worker exited unexpectedly (signal SIGKILL); restarting in 20 ms (1 crash within 120 s; giving up at 5)',
      `worker restarted (pid ${started[1]})`,
    ]);
    assert.deepEqual(reasons, []);

    // stop() ends the current run for good: it is not taken for a crash.
    const second = started[1]!;
    await supervised.stop();
    assert.ok(await waitForProcessExit(second, 5_000));
    assert.equal(started.length, 2);
    assert.equal(supervised.crashes(), 1);
  });

  it('backs off doubling up to the cap, and gives up on a crash loop, naming the process, the count and the last exit', async () => {
    const log: string[] = [];
    let starts = 0;
    let giveUp: (reason: string) => void = () => undefined;
    const gaveUp = new Promise<string>((resolve) => (giveUp = resolve));
    const supervised = await supervise({
      name: 'forwarder',
      start: () => {
        starts++;
        return startChild(3);
      },
      log: (line) => log.push(line),
      onGiveUp: (reason) => giveUp(reason),
      policy: { ...quick, initialBackoffMs: 100, maxBackoffMs: 400 },
    });
    running.push(supervised);

    assert.equal(await gaveUp, 'forwarder crashed 5 times within 120 s (last: exit code 3)');
    assert.equal(starts, 5, 'the first run and four restarts');
    assert.deepEqual(
      log.filter((line) => line.includes('exited unexpectedly')),
      [1, 2, 3, 4].map((crash) => `forwarder exited unexpectedly (exit code 3); restarting in ${[100, 200, 400, 400][crash - 1]} ms (${crash} ${crash === 1 ? 'crash' : 'crashes'} within 120 s; giving up at 5)`),
    );
    assert.equal(supervised.pid(), undefined);
  });

  it('starts again from the first delay after a run that lasted, and counts only crashes within the window', async () => {
    const log: string[] = [];
    let starts = 0;
    let giveUp: (reason: string) => void = () => undefined;
    const gaveUp = new Promise<string>((resolve) => (giveUp = resolve));
    const supervised = await supervise({
      name: 'api',
      start: () => {
        starts++;
        return startChild(1);
      },
      log: (line) => log.push(line),
      onGiveUp: (reason) => giveUp(reason),
      // Every run counts as stable (backoff reset), and crashes age out of a 1 ms window: never a loop.
      policy: { ...quick, initialBackoffMs: 100, stableAfterMs: 0, crashLoopCrashes: 2, crashLoopWindowMs: 1 },
    });
    running.push(supervised);
    await waitUntil(() => Promise.resolve(starts >= 5), 10_000, 'the child was not restarted four times');
    await supervised.stop();
    const crashes = log.filter((line) => line.includes('exited unexpectedly'));
    assert.ok(crashes.length >= 4);
    for (const line of crashes) assert.equal(line, 'api exited unexpectedly (exit code 1); restarting in 100 ms (1 crash within 1 ms; giving up at 2)');
    assert.equal(await Promise.race([gaveUp, Promise.resolve('no crash loop')]), 'no crash loop');
  });

  it('a restart that fails to start counts as a crash; stop() cancels a pending restart; no restart while the launcher shuts down', async () => {
    const log: string[] = [];
    let starts = 0;
    let giveUp: (reason: string) => void = () => undefined;
    const gaveUp = new Promise<string>((resolve) => (giveUp = resolve));
    const failing = await supervise({
      name: 'PostgreSQL',
      start: () => {
        starts++;
        if (starts > 1) throw new Error('PostgreSQL did not start on port 5432: FATAL: lock file exists\nmore');
        return startChild(2);
      },
      log: (line) => log.push(line),
      onGiveUp: (reason) => giveUp(reason),
      policy: { ...quick, crashLoopCrashes: 3 },
    });
    running.push(failing);
    assert.equal(await gaveUp, 'PostgreSQL crashed 3 times within 120 s (last: restart failed: PostgreSQL did not start on port 5432: FATAL: lock file exists)');
    assert.equal(starts, 3);

    // A crash whose restart is an hour away: stop() must not wait for it, nor start it later.
    let slowStarts = 0;
    const slow = await supervise({
      name: 'demo',
      start: () => {
        slowStarts++;
        return startChild(4);
      },
      log: (line) => log.push(line),
      onGiveUp: () => undefined,
      policy: { ...quick, initialBackoffMs: 3_600_000 },
    });
    await waitUntil(() => Promise.resolve(slow.crashes() === 1), 10_000, 'the crash was not seen');
    await slow.stop();
    assert.equal(slowStarts, 1);

    // The launcher is shutting down: an exit is left alone.
    const logged = log.length;
    let shuttingDown = false;
    let lastPid = 0;
    const held = await supervise({
      name: 'worker',
      start: () => {
        const child = startChild();
        lastPid = child.pid;
        return child;
      },
      log: (line) => log.push(line),
      onGiveUp: () => undefined,
      restartAllowed: () => !shuttingDown,
      policy: quick,
    });
    running.push(held);
    const only = lastPid;
    shuttingDown = true;
    process.kill(only, 'SIGKILL');
    await waitUntil(() => Promise.resolve(held.pid() === undefined), 10_000, 'the exit was not seen');
    assert.equal(lastPid, only);
    assert.equal(held.crashes(), 0);
    assert.equal(log.length, logged);
  });
});
