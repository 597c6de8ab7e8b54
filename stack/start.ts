/**
 * `npm start`: PostgreSQL, the Temporal dev server with its Web UI, the worker, the forwarder and
 * the API on one machine, then the URLs. A process that crashes is restarted with backoff; only a
 * crash loop stops the stack. Ctrl-C or SIGTERM stops everything in order and leaves nothing
 * running. Each piece can also run alone (npm run api / npm run worker) against an external
 * Temporal and PostgreSQL.
 */
import { loadConfigOrExit, repoRoot } from '../config/load.js';
import { startEmbeddedPostgres } from '../db/embedded.js';
import { exitWithError, prepareDatabase } from './lifecycle.js';
import { processPriorities, spawnManaged, waitUntil } from './processes.js';
import { ensureTemporalCli } from './provision.js';
import { supervise } from './supervisor.js';
import type { Running } from './supervisor.js';
import { startDevServer } from './temporal-dev-server.js';

const config = loadConfigOrExit();
const say = (message: string): void => console.log(`switchboard | ${message}`);

type Stopper = { name: string; stop: () => Promise<void> };
const stoppers: Stopper[] = [];
let shuttingDown = false;

async function shutdown(code: number, reason: string): Promise<never> {
  if (shuttingDown) return new Promise<never>(() => undefined);
  shuttingDown = true;
  say(`stopping (${reason})`);
  // Reverse start order: API and workers first (they drain), then Temporal, then PostgreSQL.
  for (const { name, stop } of stoppers.reverse()) {
    const started = Date.now();
    try {
      await stop();
      say(`  ${name} stopped (${((Date.now() - started) / 1000).toFixed(1)} s)`);
    } catch (error) {
      say(`  ${name} did not stop cleanly: ${(error as Error).message}`);
    }
  }
  process.exit(code);
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => void shutdown(0, signal));
}

/**
 * Every process of the stack is supervised: one that exits unexpectedly is started again with
 * backoff (stack/supervisor.ts), and only a crash loop stops the stack, naming the process.
 */
async function superviseProcess(name: string, label: string, start: () => Promise<Running> | Running): Promise<void> {
  const supervised = await supervise({
    name,
    start,
    log: say,
    restartAllowed: () => !shuttingDown,
    onGiveUp: (reason) => void shutdown(1, `${reason}: a crash loop, not restarting it again`),
  });
  stoppers.push({ name: label, stop: () => supervised.stop() });
}

/** Node child processes get an IPC channel: it closes if the launcher dies, and they stop. */
function startNodeProcess(name: keyof typeof processPriorities, entry: string, env: NodeJS.ProcessEnv, graceMs: number): Running {
  const child = spawnManaged(name, process.execPath, ['--import', 'tsx', entry], {
    cwd: repoRoot,
    env,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    // Also on every restart: the API's answers keep their priority over the others' catching up.
    niceness: processPriorities[name],
  });
  return { exited: child.exited, pid: child.child.pid, stop: () => child.stop(graceMs) };
}

async function main(): Promise<void> {
  say(`config ${config.configPath}`);
  const childEnv: NodeJS.ProcessEnv = { ...process.env, SWITCHBOARD_CONFIG: config.configPath };

  // PostgreSQL: embedded unless DATABASE_URL points elsewhere.
  let databaseUrl = config.database.url;
  if (config.database.embedded) {
    say(`starting embedded PostgreSQL on port ${config.devStack.postgres.port} (data in ${config.devStack.postgres.dataDir})`);
    // Restarted in place after a crash: same data folder (crash recovery runs), port and URL, so
    // the pools of the other processes reconnect on their own.
    await superviseProcess('PostgreSQL', 'PostgreSQL', async () => {
      const postgres = await startEmbeddedPostgres(config.devStack.postgres, (line) => say(`  ${line}`));
      databaseUrl = postgres.url;
      return postgres;
    });
  } else {
    say('using PostgreSQL from DATABASE_URL');
  }
  const applied = await prepareDatabase(databaseUrl);
  say(applied.length > 0 ? `applied migrations: ${applied.join(', ')}` : 'database schema is up to date');
  childEnv.DATABASE_URL = databaseUrl;

  // Temporal: the dev server unless TEMPORAL_ADDRESS (or a Temporal profile) points elsewhere.
  let uiUrl: string | undefined;
  if (config.temporal.external) {
    say(`using Temporal at ${config.temporal.address}, namespace ${config.temporal.namespace}`);
  } else {
    const settings = config.devStack.temporal;
    const cli = await ensureTemporalCli({ version: settings.cliVersion, progress: (line) => say(line) });
    if (!cli) {
      throw new Error('no Temporal CLI: install Go >= 1.25 (the CLI is then built once) or set TEMPORAL_CLI to a temporal binary');
    }
    say(`starting Temporal dev server on ${settings.ip}:${settings.frontendPort} (history in ${settings.dbFilename})`);
    let address = '';
    // Restarted in place after a crash: its history is in the SQLite file, on the same ports, and
    // the workers' and API's Temporal connections retry until it is back.
    await superviseProcess('Temporal dev server', 'Temporal dev server', async () => {
      const server = await startDevServer(cli, settings, (line) => say(`  temporal: ${line}`), {
        codecEndpoint: `${config.api.publicUrl.replace(/\/$/, '')}/codec`,
        niceness: processPriorities.temporal,
      });
      uiUrl = server.uiUrl;
      address = server.address;
      return { exited: server.process.exited, pid: server.process.child.pid, stop: () => server.process.stop(15_000) };
    });
    childEnv.TEMPORAL_ADDRESS = address;
    childEnv.TEMPORAL_NAMESPACE = settings.namespace;
  }

  const drainMs = config.shutdownGraceMs + 5_000;
  if (config.demo.enabled) {
    await superviseProcess('demo', 'demo sandboxes and simulator', () => startNodeProcess('demo', 'sandboxes/main.ts', childEnv, 5_000));
  }
  await superviseProcess('worker', 'worker', () => startNodeProcess('worker', 'workers/main.ts', childEnv, drainMs));
  // Forwarding runs in a process of its own, below the API's priority: the CPU it takes to move a
  // burst into Temporal is never taken from the answers (INGEST_FORWARDER=0 on the API).
  await superviseProcess('forwarder', 'forwarder', () => startNodeProcess('forwarder', 'workers/forwarder.ts', childEnv, drainMs));
  await superviseProcess('API', 'API', () => startNodeProcess('api', 'api/main.ts', { ...childEnv, INGEST_FORWARDER: '0' }, drainMs));

  const apiUrl = `http://localhost:${config.api.port}`;
  await waitUntil(async () => (await fetch(`${apiUrl}/readyz`)).ok, 180_000, `the API did not become ready at ${apiUrl}/readyz`);

  say('ready');
  say(`  API           ${apiUrl}`);
  say(`  readiness     ${apiUrl}/readyz`);
  if (uiUrl) say(`  Temporal UI   ${uiUrl}/namespaces/${config.temporal.namespace}/workflows`);
  say(`  dashboard     ${apiUrl}/dashboard (sign in with a tenant's operator token)`);
  say(`  API docs      ${apiUrl}/docs (OpenAPI at ${apiUrl}/openapi.json)`);
  say(`  metrics       ${apiUrl}/metrics${config.env.WORKER_METRICS_ADDRESS ? `, worker: http://${config.env.WORKER_METRICS_ADDRESS}/metrics` : ''}`);
  say(`  Temporal gRPC ${config.temporal.address} (namespace ${config.temporal.namespace})`);
  say(`  PostgreSQL    ${databaseUrl.replace(/\/\/([^:/]+):[^@]*@/, '//$1:***@')}`);
  if (config.demo.enabled) say(`  demo          simulated calls to tenant "${config.demo.tenant}" (operator token in temporal-dev.yaml); SWITCHBOARD_DEMO=0 turns it off`);
  say('press Ctrl-C to stop');
}

main().catch((error: unknown) => {
  if (shuttingDown) return;
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`switchboard: ${message.split('\n')[0]}\n`);
  void shutdown(1, 'start-up failed').catch(() => exitWithError('start', error));
});
