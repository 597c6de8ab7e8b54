/**
 * Loaded with NODE_OPTIONS="--import <this file>" (Node refuses --cpu-prof there): profiles the
 * API and worker processes of the bench stack and writes <dir>/<role>-<pid>.cpuprofile at exit.
 */
import { Session } from 'node:inspector';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import process from 'node:process';

const dir = process.env.SWITCHBOARD_CPU_PROFILE_DIR;
const role = process.argv.some((arg) => arg.endsWith('api/main.ts')) ? 'api' : process.argv.some((arg) => arg.endsWith('workers/main.ts')) ? 'worker' : undefined;

if (dir && role) {
  const session = new Session();
  session.connect();
  // A session on the process's own thread answers synchronously, so the exit handler can still write.
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: 1000 });
  session.post('Profiler.start');
  process.once('exit', () => {
    session.post('Profiler.stop', (error, result) => {
      if (!error) writeFileSync(path.join(dir, `${role}-${process.pid}.cpuprofile`), JSON.stringify(result.profile));
    });
  });
}
