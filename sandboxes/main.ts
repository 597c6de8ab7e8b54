/** The demo process `npm start` runs: sandboxes for the demo tenant's outside systems, then simulated calls. */
import { loadConfigOrExit } from '../config/load.js';
import { onShutdownSignal } from '../stack/lifecycle.js';
import { startDemoSandboxes } from './demo.js';

const config = loadConfigOrExit();
const log = (message: string): void => console.log(`demo | ${message}`);
const demo = await startDemoSandboxes(config, log);
log(`sandboxes: ${Object.entries(demo.urls).map(([name, url]) => `${name} ${url}`).join(', ')}`);
log(`simulating about ${config.demo.callsPerMinute} calls a minute to tenant "${config.demo.tenant}"`);
onShutdownSignal(() => demo.stop());
