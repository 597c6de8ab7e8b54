import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Runtime, DefaultLogger } from '@temporalio/worker';
import type { WorkerOptions } from '@temporalio/worker';
import { loadConfig } from '../../config/load.js';
import { temporalDataConverter } from '../../security/payload-codec.js';
import { ensureTemporalCli, ensureTestServer } from '../../stack/provision.js';
import { addSearchAttributes, dynamicConfigArgs } from '../../stack/temporal-dev-server.js';
import { searchAttributes } from '../../shared/search-attributes.js';
import { bundleWorkflows } from '../../workers/create-workers.js';
import { freePort, onRunEnd, once } from './resources.js';

const settings = loadConfig({}).devStack.temporal;
/** The environments' own clients encrypt and decrypt like every other client. */
const client = { dataConverter: temporalDataConverter(settings.payloadEncryption) };
let devServerUiUrl: string | undefined;
const progress = (message: string): void => console.log(`  [harness] ${message}`);

// Keep SDK warnings (e.g. failed activities the tests provoke on purpose) out of the test output;
// SWITCHBOARD_TEST_SDK_LOG=warn shows them when debugging. Installed once, before any worker exists.
Runtime.install({ logger: new DefaultLogger(process.env.SWITCHBOARD_TEST_SDK_LOG === 'warn' ? 'WARN' : 'ERROR') });

/** The run's Temporal dev server (the real server, SQLite in memory), with our search attributes. */
export const getDevServer = once(async (): Promise<TestWorkflowEnvironment> => {
  const cli = await ensureTemporalCli({ version: settings.cliVersion, progress });
  // With its Web UI, for the browser test that reads decoded histories there.
  const uiPort = await freePort();
  const env = await TestWorkflowEnvironment.createLocal({
    client,
    server: {
      ui: true,
      uiPort,
      executable: cli ? { type: 'existing-path', path: cli } : { type: 'cached-download' },
      namespace: settings.namespace,
      searchAttributes: Object.values(searchAttributes),
      extraArgs: dynamicConfigArgs(settings.dynamicConfig),
      log: { format: 'json', level: 'error' },
    },
  });
  onRunEnd(() => env.teardown());
  devServerUiUrl = `http://localhost:${uiPort}`;
  return env;
});

/** The Web UI of the run's dev server (the dev server's own `--ip`, reached as localhost). */
export async function getDevServerUi(): Promise<string> {
  await getDevServer();
  return devServerUiUrl as string;
}

/** The run's time-skipping test server, for flows whose timers span days. */
export const getTimeSkippingServer = once(async (): Promise<TestWorkflowEnvironment> => {
  const executable = await ensureTestServer({ version: settings.testServerVersion, progress });
  const env = await TestWorkflowEnvironment.createTimeSkipping({ client, server: { executable } });
  onRunEnd(() => env.teardown());
  await addSearchAttributes(env.connection, env.client.options.namespace, settings.searchAttributes);
  return env;
});

/** The workflow bundle, built once per run and shared by every test worker. */
export const getWorkflowBundle = once(async (): Promise<NonNullable<WorkerOptions['workflowBundle']>> => bundleWorkflows());
