/**
 * The system under test for `npm run bench`: by default the real launcher (`stack/start.ts`) with
 * PostgreSQL, the Temporal dev server, a worker and the API as separate processes, configured for a
 * `bench` tenant whose outside systems are sandboxes running in the benchmark process; or a stack
 * that is already running, whose config has the bench tenant (`--stack-config`).
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import proto from '@temporalio/proto';
import { parse, stringify } from 'yaml';
import { defaultConfigPath, loadConfig, repoRoot } from '../config/load.js';
import type { AppConfig } from '../config/load.js';
import { switchboardSignedProviders } from '../config/schema.js';
import type { ConfigFile, SwitchboardSignedProvider, TenantConfig, TenantSecrets } from '../config/schema.js';
import type { KommoSandbox } from '../sandboxes/kommo.js';
import { switchboardSigningSecret } from '../security/secrets.js';
import { startTenantSandboxes } from '../sandboxes/tenant.js';
import type { TicketingSandbox } from '../sandboxes/ticketing.js';
import type { WhatsAppSandbox } from '../sandboxes/whatsapp.js';
import { freePort, waitUntil } from '../stack/processes.js';

/** A setup the bench cannot run against, with what to do about it (printed without a stack trace). */
export class BenchSetupError extends Error {
  override name = 'BenchSetupError';
}

export interface BenchStack {
  /** The configuration the stack's processes run with, and its file. */
  config: AppConfig;
  configPath: string;
  tenantId: string;
  /** Prefixes this run's call and lead ids, so runs against one stack never meet. */
  runTag: string;
  /** The key each signed provider's requests are signed with. */
  signingSecrets: Record<SwitchboardSignedProvider, string>;
  operatorToken: string;
  apiUrl: string;
  databaseUrl: string;
  temporalAddress: string;
  namespace: string;
  taskQueues: AppConfig['temporal']['taskQueues'];
  messagingRatePerSecond: number;
  /** The worker's Prometheus endpoint, when the bench can find it. */
  workerMetricsUrl?: string;
  /** The call-side task queues the worker polls, for its schedule-to-start figures. */
  workerTaskQueues: string[];
  kommo: KommoSandbox;
  whatsapp: WhatsAppSandbox;
  ticketing: TicketingSandbox;
  /**
   * A tenant with no outside systems, for the open-loop phases: thousands of calls a minute would
   * otherwise queue for hours behind the CRM's 7 requests a second.
   */
  ingestTenant?: { id: string; signingSecrets: Record<SwitchboardSignedProvider, string>; operatorToken: string };
  /** The Temporal and PostgreSQL processes, for the freeze phases; only for a stack the bench started. */
  processes?: { temporal: () => number[]; postgres: () => number[] };
  /** The worker process's pid, for RSS sampling. */
  workerPid(): number | undefined;
  stop(): Promise<void>;
}

function pidsOf(pattern: string, configPath: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ');
      const environ = readFileSync(`/proc/${entry}/environ`, 'utf8');
      if (cmdline.includes(pattern) && environ.includes(configPath)) found.push(Number(entry));
    } catch {
      // gone
    }
  }
  return found;
}

const processIds = (): number[] => readdirSync('/proc').filter((entry) => /^\d+$/.test(entry)).map(Number);

/** The processes whose command line contains `text` (a data path only this stack uses). */
export function pidsWithArgument(text: string): number[] {
  return processIds().filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').includes(text);
    } catch {
      return false; // gone
    }
  });
}

/** The postmaster (from its pid file) and every process it forked: backends, WAL writer, checkpointer ... */
export function postgresPids(dataDir: string): number[] {
  let postmaster: number;
  try {
    postmaster = Number.parseInt(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0] ?? '', 10);
  } catch {
    return [];
  }
  if (!Number.isInteger(postmaster)) return [];
  const children = processIds().filter((pid) => {
    try {
      // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so read after the last ')'.
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === postmaster;
    } catch {
      return false; // gone
    }
  });
  return [postmaster, ...children];
}

export const ingestTenantId = (tenantId: string): string => `${tenantId}-ingest`;

/** The open-loop tenant: signed webhooks only, so its calls never wait on (or load) an outside system. */
function ingestTenant(): Record<string, unknown> {
  return {
    displayName: 'Bench Ingest Co',
    defaultRegion: 'US',
    timeZone: 'America/New_York',
    secrets: { webhookSigningSecret: 'bench-ingest-webhook-secret', operatorToken: 'bench-ingest-operator-token' },
    vipPhones: [],
    calls: { crmSyncDelaySeconds: 0, outcomeWaitSeconds: 0, wrapUpMinutes: 2, maxCallHours: 6, tickets: { enabled: false }, email: { enabled: false }, callbackTaskForMissedCalls: false },
  };
}

const signingSecretsOf = (secrets: TenantSecrets): Record<SwitchboardSignedProvider, string> =>
  Object.fromEntries(switchboardSignedProviders.map((provider) => [provider, switchboardSigningSecret(secrets, provider)])) as Record<SwitchboardSignedProvider, string>;

function ingestTenantOf(config: AppConfig, tenantId: string): BenchStack['ingestTenant'] {
  const id = ingestTenantId(tenantId);
  const tenant = config.tenants[id];
  return tenant ? { id, signingSecrets: signingSecretsOf(tenant.secrets), operatorToken: tenant.secrets.operatorToken } : undefined;
}

/** Where the bench tenant's outside systems listen (0: any free port). */
export interface SandboxPorts {
  kommo: number;
  ticketing: number;
  slack: number;
  smtp: number;
  whatsapp: number;
}

/** The ports `--print-tenant` puts in the bench tenant, for a stack the bench attaches to. */
const runningStackSandboxPorts: SandboxPorts = { kommo: 7401, ticketing: 7402, slack: 7403, smtp: 7404, whatsapp: 7405 };
const slackPaths = { support: '/services/B/B/support', alerts: '/services/B/B/alerts', vip: '/services/B/B/vip' };

/** Reminders only (T-1 h), any hour of the day, no reorder wait: lead scale measures the send path. */
const benchLeadPolicy = {
  sendWindow: { days: [1, 2, 3, 4, 5, 6, 7], start: '00:00', end: '23:59' },
  reminderHoursBefore: [1],
  reorderWindowSeconds: 0,
  rewarm: { maxAttempts: 0 },
  continueAsNewAfterEvents: 400,
};

/** The bench tenant as it goes into a config file, with its outside systems at the given sandboxes. */
export function benchTenant(ports: SandboxPorts): Record<string, unknown> {
  const local = (port: number): string => `http://127.0.0.1:${port}`;
  return {
    displayName: 'Bench Co',
    defaultRegion: 'US',
    timeZone: 'America/New_York',
    secrets: { webhookSigningSecret: 'bench-webhook-secret', operatorToken: 'bench-operator-token', whatsappAppSecret: 'bench-app-secret' },
    vipPhones: [],
    crm: { kind: 'kommo', baseUrl: local(ports.kommo), token: 'bench-kommo', source: 'Switchboard', rateLimitPerSecond: 6, callbackDueMinutes: 60 },
    ticketing: { baseUrl: local(ports.ticketing), token: 'bench-ticketing', defaultQueue: 'Support', queueByIssueType: {} },
    slack: { supportWebhookUrl: `${local(ports.slack)}${slackPaths.support}`, alertsWebhookUrl: `${local(ports.slack)}${slackPaths.alerts}`, vipWebhookUrl: `${local(ports.slack)}${slackPaths.vip}` },
    email: { smtpUrl: `smtp://127.0.0.1:${ports.smtp}`, from: 'Bench <bench@example.com>', resourcesUrl: 'https://example.com/help' },
    whatsapp: { baseUrl: local(ports.whatsapp), apiVersion: 'v21.0', phoneNumberId: 'PN-BENCH', wabaId: 'WABA-BENCH', token: 'bench-whatsapp' },
    calls: { crmSyncDelaySeconds: 0, outcomeWaitSeconds: 0, wrapUpMinutes: 2, maxCallHours: 6, crmRetry: { initialIntervalSeconds: 1, maximumIntervalSeconds: 10, giveUpAfterHours: 1 }, tickets: { enabled: true }, slack: { transferRequested: true, lowSatisfactionAtOrBelow: 2, vip: true }, email: { enabled: true }, callbackTaskForMissedCalls: true },
    dashboard: { serviceLevelSeconds: 20 },
    leads: benchLeadPolicy,
  };
}

/** The tenant block to add to a running stack's config before `npm run bench -- --stack-config <file>`. */
export function printableBenchTenant(tenantId: string): string {
  return stringify({ tenants: { [tenantId]: benchTenant(runningStackSandboxPorts), [ingestTenantId(tenantId)]: ingestTenant() } });
}

/** The tenant's outside systems as sandboxes at the URLs its config names, without their own rate limits (Kommo keeps its). */
async function startBenchSandboxes(tenantId: string, tenant: TenantConfig, apiUrl: string) {
  const sandboxes = await startTenantSandboxes(tenantId, tenant, { apiUrl, unlimited: true });
  const { kommo, ticketing, whatsapp, urls } = sandboxes;
  // Slack and e-mail are not counted, but a benchmark must not reach real ones either.
  if (!kommo || !ticketing || !whatsapp || (tenant.slack && !urls.slack) || (tenant.email && !urls.smtp)) {
    await sandboxes.stop();
    throw new BenchSetupError(`tenant "${tenantId}" needs a Kommo CRM, ticketing and WhatsApp, and any Slack or e-mail, at sandbox URLs on this machine (http://127.0.0.1:<port>), so the bench can count what reaches them (see --print-tenant)`);
  }
  return { kommo, ticketing, whatsapp, stop: () => sandboxes.stop() };
}

/** Waits until a worker polls every queue the scenarios need: measuring starts once it does. */
async function waitForWorker(temporalAddress: string, namespace: string, taskQueues: AppConfig['temporal']['taskQueues']): Promise<void> {
  const connection = await Connection.connect({ address: temporalAddress });
  const polled = async (name: string, taskQueueType: proto.temporal.api.enums.v1.TaskQueueType): Promise<boolean> => {
    const described = await connection.workflowService.describeTaskQueue({ namespace, taskQueue: { name }, taskQueueType });
    return (described.pollers?.length ?? 0) > 0;
  };
  const { TASK_QUEUE_TYPE_WORKFLOW: workflowQueue, TASK_QUEUE_TYPE_ACTIVITY: activityQueue } = proto.temporal.api.enums.v1.TaskQueueType;
  await waitUntil(
    async () =>
      (await polled(taskQueues.calls, workflowQueue)) && (await polled(taskQueues.leads, workflowQueue)) && (await polled(taskQueues.messaging, activityQueue)) && (await polled(taskQueues.integrations, activityQueue)),
    120_000,
    'no worker polls the calls, leads, messaging and integrations queues',
  ).finally(() => connection.close());
}

/** A stack already running with `configPath` (say, `npm start` with the bench tenant added): the bench brings only the sandboxes. */
export async function attachToRunningStack(options: { configPath: string; tenantId: string; log: (line: string) => void }): Promise<BenchStack> {
  const configPath = path.resolve(options.configPath);
  const config = loadConfig({ ...process.env, SWITCHBOARD_CONFIG: configPath });
  const tenant = config.tenants[options.tenantId];
  if (!tenant) throw new BenchSetupError(`tenant "${options.tenantId}" is not in ${configPath}: add the block printed by \`npm run bench -- --print-tenant\` and restart the stack`);
  const apiUrl = `http://127.0.0.1:${config.api.port}`;
  const ready = await fetch(`${apiUrl}/readyz`).then((response) => response.ok, () => false);
  if (!ready) throw new BenchSetupError(`the API at ${apiUrl} is not ready: start the stack with SWITCHBOARD_CONFIG=${configPath} first`);
  const sandboxes = await startBenchSandboxes(options.tenantId, tenant, apiUrl);
  await waitForWorker(config.temporal.address, config.temporal.namespace, config.temporal.taskQueues);
  const workerPid = (): number | undefined => pidsOf('workers/main.ts', configPath)[0] ?? pidsOf('workers/main.ts', '')[0];
  const metricsAddress = (() => {
    const pid = workerPid();
    if (pid === undefined) return undefined;
    try {
      return /(?:^|\0)WORKER_METRICS_ADDRESS=([^\0]+)/.exec(readFileSync(`/proc/${pid}/environ`, 'utf8'))?.[1];
    } catch {
      return undefined;
    }
  })();
  if (!metricsAddress) options.log('  note: no local worker with WORKER_METRICS_ADDRESS found; worker queue figures and RSS are left out');
  const ingest = ingestTenantOf(config, options.tenantId);
  return {
    config,
    configPath,
    tenantId: options.tenantId,
    runTag: Date.now().toString(36),
    signingSecrets: signingSecretsOf(tenant.secrets),
    operatorToken: tenant.secrets.operatorToken,
    apiUrl,
    databaseUrl: config.database.url,
    temporalAddress: config.temporal.address,
    namespace: config.temporal.namespace,
    taskQueues: config.temporal.taskQueues,
    messagingRatePerSecond: config.temporal.messagingRatePerSecond,
    ...(metricsAddress ? { workerMetricsUrl: `http://${metricsAddress}/metrics` } : {}),
    workerTaskQueues: [config.temporal.taskQueues.calls, config.temporal.taskQueues.integrations],
    kommo: sandboxes.kommo,
    whatsapp: sandboxes.whatsapp,
    ticketing: sandboxes.ticketing,
    ...(ingest ? { ingestTenant: ingest } : {}),
    workerPid,
    stop: sandboxes.stop,
  };
}

export async function startBenchStack(options: { messagingRatePerSecond: number; cpuProfileDir?: string; log: (line: string) => void }): Promise<BenchStack> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'switchboard-bench-'));
  const tenantId = 'bench';
  const ports = await Promise.all(Array.from({ length: 12 }, () => freePort()));
  const [apiPort, frontendPort, httpPort, uiPort, metricsPort, pgPort, workerMetricsPort, kommoPort, ticketingPort, slackPort, smtpPort, whatsappPort] = ports as [number, number, number, number, number, number, number, number, number, number, number, number];
  const sandboxPorts: SandboxPorts = { kommo: kommoPort, ticketing: ticketingPort, slack: slackPort, smtp: smtpPort, whatsapp: whatsappPort };
  const apiUrl = `http://127.0.0.1:${apiPort}`;

  const doc = parse(readFileSync(defaultConfigPath, 'utf8')) as ConfigFile;
  Object.assign(doc.temporal, { frontendPort, httpPort, uiPort, metricsPort, dbFilename: path.join(dir, 'temporal.sqlite'), messagingRatePerSecond: options.messagingRatePerSecond });
  Object.assign(doc.postgres.embedded, { port: pgPort, dataDir: path.join(dir, 'postgres') });
  Object.assign(doc.api, { port: apiPort, host: '127.0.0.1', publicUrl: apiUrl });
  doc.demo.enabled = false;
  doc.tenants = { [tenantId]: benchTenant(sandboxPorts), [ingestTenantId(tenantId)]: ingestTenant() } as unknown as ConfigFile['tenants'];
  const configPath = path.join(dir, 'switchboard.yaml');
  await writeFile(configPath, stringify(doc));

  const env: NodeJS.ProcessEnv = {
    ...process.env,
    SWITCHBOARD_CONFIG: configPath,
    LOG_LEVEL: 'warn',
    SHUTDOWN_GRACE_SECONDS: '3',
    WORKER_METRICS_ADDRESS: `127.0.0.1:${workerMetricsPort}`,
    ...(options.cpuProfileDir ? { NODE_OPTIONS: `--import=${path.join(repoRoot, 'bench', 'cpu-profiler.mjs')}`, SWITCHBOARD_CPU_PROFILE_DIR: options.cpuProfileDir } : {}),
  };
  delete env.DATABASE_URL;
  delete env.TEMPORAL_ADDRESS;
  const config = loadConfig({ ...env, SWITCHBOARD_CONFIG: configPath });
  const bench = config.tenants[tenantId];
  const ingest = ingestTenantOf(config, tenantId);
  if (!bench || !ingest) throw new Error('the bench tenants did not survive the config round trip');
  const sandboxes = await startBenchSandboxes(tenantId, bench, apiUrl);

  options.log('starting the stack (PostgreSQL, Temporal dev server, worker, API)');
  const launcher: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'stack/start.ts'], { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  launcher.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  launcher.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  await waitUntil(async () => (await fetch(`${apiUrl}/readyz`)).ok && output.includes('switchboard | ready'), 300_000, 'the stack did not become ready').catch((error: unknown) => {
    throw new Error(`${(error as Error).message}\n${output.slice(-3000)}`);
  });
  // The worker bundles its workflows after the API is ready.
  await waitForWorker(config.temporal.address, config.temporal.namespace, config.temporal.taskQueues);

  return {
    config,
    tenantId,
    runTag: Date.now().toString(36),
    signingSecrets: signingSecretsOf(bench.secrets),
    operatorToken: bench.secrets.operatorToken,
    apiUrl,
    databaseUrl: config.database.url,
    temporalAddress: config.temporal.address,
    namespace: config.temporal.namespace,
    taskQueues: config.temporal.taskQueues,
    messagingRatePerSecond: options.messagingRatePerSecond,
    configPath,
    workerMetricsUrl: `http://127.0.0.1:${workerMetricsPort}/metrics`,
    workerTaskQueues: [config.temporal.taskQueues.calls, config.temporal.taskQueues.integrations],
    kommo: sandboxes.kommo,
    whatsapp: sandboxes.whatsapp,
    ticketing: sandboxes.ticketing,
    ingestTenant: ingest,
    processes: { temporal: () => pidsWithArgument(config.devStack.temporal.dbFilename), postgres: () => postgresPids(config.devStack.postgres.dataDir) },
    workerPid: () => pidsOf('workers/main.ts', configPath)[0],
    async stop() {
      launcher.kill('SIGTERM');
      await new Promise((resolve) => (launcher.exitCode !== null ? resolve(undefined) : launcher.once('exit', resolve)));
      await sandboxes.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
