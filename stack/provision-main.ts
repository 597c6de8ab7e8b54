/** `npm run provision`: builds or fetches Temporal's binaries into the machine-wide cache. */
import { loadConfigOrExit } from '../config/load.js';
import { ensureChromium, ensurePrometheusParser, ensureSchemathesis, ensureTemporalCli, ensureTestServer, temporalCliVersion } from './provision.js';

const config = loadConfigOrExit();
const progress = (message: string): void => console.log(message);
const cli = await ensureTemporalCli({ version: config.devStack.temporal.cliVersion, progress });
console.log(cli ? `temporal CLI: ${cli} (${temporalCliVersion(cli)})` : 'temporal CLI: unavailable (the SDK download will be tried)');
const testServer = await ensureTestServer({ version: config.devStack.temporal.testServerVersion, progress });
console.log(`time-skipping test server: ${testServer.type === 'existing-path' ? testServer.path : 'SDK download'}`);
const prometheusParser = await ensurePrometheusParser(progress);
console.log(`prometheus text parser (metrics tests): ${prometheusParser ?? 'unavailable'}`);
const schemathesis = await ensureSchemathesis(progress);
console.log(`schemathesis (API fuzz test): ${schemathesis ?? 'unavailable'}`);
const chromium = await ensureChromium(progress);
console.log(`chromium (browser test): ${chromium ?? 'unavailable'}`);
if (!chromium && process.env.CI) {
  console.error('switchboard provision: the browser test needs Chromium');
  process.exit(1);
}
