// Loaded by mocha (--require): tears the run-wide servers down after the last test file.
import { runTeardowns } from './resources.js';

export async function mochaGlobalTeardown(): Promise<void> {
  await runTeardowns();
}
