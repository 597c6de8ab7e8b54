/**
 * The system under test for `npm run bench`: the real launcher (`stack/start.ts`) with PostgreSQL,
 * the Temporal dev server, a worker and the API as separate processes, configured for a `bench`
 * tenant whose outside systems are sandboxes running in the benchmark process.
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
import type { ConfigFile } from '../config/schema.js';
import { startKommoSandbox } from '../sandboxes/kommo.js';
import type { KommoSandbox } from '../sandboxes/kommo.js';
import { startSlackSandbox } from '../sandboxes/slack.js';
import { startSmtpSandbox } from '../sandboxes/smtp.js';
import { startTicketingSandbox } from '../sandboxes/ticketing.js';
import { startWhatsAppSandbox } from '../sandboxes/whatsapp.js';
import type { WhatsAppSandbox } from '../sandboxes/whatsapp.js';
import { leadPolicySchema } from '../shared/leads.js';
import { waitUntil } from '../stack/processes.js';
import { freePort } from '../test/harness/resources.js';

export interface BenchStack {
  /** The configuration the stack's processes run with. */
  config: AppConfig;
  tenantId: string;
  webhookSecret: string;
  operatorToken: string;
  apiUrl: string;
  databaseUrl: string;
  temporalAddress: string;
  namespace: string;
  taskQueues: { calls: string; leads: string; messaging: string };
  messagingRatePerSecond: number;
  workerMetricsUrl: string;
  /** The call-side task queues the worker polls, for its schedule-to-start figures. */
  workerTaskQueues: string[];
  kommo: KommoSandbox;
  whatsapp: WhatsAppSandbox;
  ticketing: Awaited<ReturnType<typeof startTicketingSandbox>>;
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

export async function startBenchStack(options: { messagingRatePerSecond: number; cpuProfileDir?: string; log: (line: string) => void }): Promise<BenchStack> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'switchboard-bench-'));
  const tenantId = 'bench';
  const ports = await Promise.all(Array.from({ length: 7 }, () => freePort()));
  const [apiPort, frontendPort, httpPort, uiPort, metricsPort, pgPort, workerMetricsPort] = ports as [number, number, number, number, number, number, number];

  const kommo = await startKommoSandbox({ token: 'bench-kommo' });
  const ticketing = await startTicketingSandbox({ token: 'bench-ticketing', rateLimit: 1_000_000 });
  const slack = await startSlackSandbox({ webhooks: ['/services/B/B/support', '/services/B/B/alerts', '/services/B/B/vip'], burst: 1_000_000, perSecond: 1_000_000 });
  const smtp = await startSmtpSandbox({});
  const policy = leadPolicySchema.parse({
    sendWindow: { days: [1, 2, 3, 4, 5, 6, 7], start: '00:00', end: '23:59' },
    reminderHoursBefore: [1],
    reorderWindowSeconds: 0,
    rewarm: { maxAttempts: 0 },
    continueAsNewAfterEvents: 400,
  });
  const whatsapp = await startWhatsAppSandbox({
    token: 'bench-whatsapp',
    appSecret: 'bench-app-secret',
    phoneNumberId: 'PN-BENCH',
    wabaId: 'WABA-BENCH',
    templates: Object.values(policy.messages).map((message) => ({
      name: message.template.name,
      language: message.template.language,
      category: message.template.category,
      body: `${message.template.name} ${message.template.params.map((_, index) => `{{${index + 1}}}`).join(' ')}`,
    })),
    webhookUrl: `http://127.0.0.1:${apiPort}/webhooks/${tenantId}/whatsapp`,
    messagesPerSecond: 1_000,
  });

  const doc = parse(readFileSync(defaultConfigPath, 'utf8')) as ConfigFile;
  Object.assign(doc.temporal, { frontendPort, httpPort, uiPort, metricsPort, dbFilename: path.join(dir, 'temporal.sqlite'), messagingRatePerSecond: options.messagingRatePerSecond });
  Object.assign(doc.postgres.embedded, { port: pgPort, dataDir: path.join(dir, 'postgres') });
  Object.assign(doc.api, { port: apiPort, host: '127.0.0.1', publicUrl: `http://127.0.0.1:${apiPort}` });
  doc.demo.enabled = false;
  doc.tenants = {
    [tenantId]: {
      displayName: 'Bench Co',
      defaultRegion: 'US',
      timeZone: 'America/New_York',
      secrets: { webhookSigningSecret: 'bench-webhook-secret', operatorToken: 'bench-operator-token', whatsappAppSecret: 'bench-app-secret' },
      vipPhones: [],
      crm: { kind: 'kommo', baseUrl: kommo.url, token: 'bench-kommo', source: 'Switchboard', rateLimitPerSecond: 6, callbackDueMinutes: 60 },
      ticketing: { baseUrl: ticketing.url, token: 'bench-ticketing', defaultQueue: 'Support', queueByIssueType: {} },
      slack: { supportWebhookUrl: `${slack.url}/services/B/B/support`, alertsWebhookUrl: `${slack.url}/services/B/B/alerts`, vipWebhookUrl: `${slack.url}/services/B/B/vip` },
      email: { smtpUrl: `smtp://${smtp.host}:${smtp.smtpPort}`, from: 'Bench <bench@example.com>', resourcesUrl: 'https://example.com/help' },
      whatsapp: { baseUrl: whatsapp.url, apiVersion: 'v21.0', phoneNumberId: 'PN-BENCH', wabaId: 'WABA-BENCH', token: 'bench-whatsapp' },
      calls: { crmSyncDelaySeconds: 0, outcomeWaitSeconds: 0, wrapUpMinutes: 2, maxCallHours: 6, crmRetry: { initialIntervalSeconds: 1, maximumIntervalSeconds: 10, giveUpAfterHours: 1 }, tickets: { enabled: true }, slack: { transferRequested: true, lowSatisfactionAtOrBelow: 2, vip: true }, email: { enabled: true }, callbackTaskForMissedCalls: true },
      dashboard: { serviceLevelSeconds: 20 },
      leads: policy,
    },
  } as unknown as ConfigFile['tenants'];
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
  options.log('starting the stack (PostgreSQL, Temporal dev server, worker, API)');
  const launcher: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'stack/start.ts'], { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  launcher.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  launcher.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  await waitUntil(async () => (await fetch(`${apiUrl}/readyz`)).ok && output.includes('switchboard | ready'), 300_000, 'the stack did not become ready').catch((error: unknown) => {
    throw new Error(`${(error as Error).message}\n${output.slice(-3000)}`);
  });
  // The worker bundles its workflows after the API is ready: measuring starts once it polls every queue.
  const connection = await Connection.connect({ address: `127.0.0.1:${frontendPort}` });
  const polled = async (name: string, taskQueueType: proto.temporal.api.enums.v1.TaskQueueType): Promise<boolean> => {
    const described = await connection.workflowService.describeTaskQueue({ namespace: doc.temporal.namespace, taskQueue: { name }, taskQueueType });
    return (described.pollers?.length ?? 0) > 0;
  };
  const { TASK_QUEUE_TYPE_WORKFLOW: workflowQueue, TASK_QUEUE_TYPE_ACTIVITY: activityQueue } = proto.temporal.api.enums.v1.TaskQueueType;
  await waitUntil(
    async () =>
      (await polled(doc.temporal.taskQueues.calls, workflowQueue)) && (await polled(doc.temporal.taskQueues.leads, workflowQueue)) && (await polled(doc.temporal.taskQueues.messaging, activityQueue)) &&
      (await polled(doc.temporal.taskQueues.integrations, activityQueue)),
    120_000,
    'the worker did not start polling',
  ).finally(() => connection.close());

  return {
    config: loadConfig({ ...env, SWITCHBOARD_CONFIG: configPath }),
    tenantId,
    webhookSecret: 'bench-webhook-secret',
    operatorToken: 'bench-operator-token',
    apiUrl,
    databaseUrl: `postgres://switchboard:switchboard-dev@127.0.0.1:${pgPort}/switchboard`,
    temporalAddress: `127.0.0.1:${frontendPort}`,
    namespace: doc.temporal.namespace,
    taskQueues: doc.temporal.taskQueues,
    messagingRatePerSecond: options.messagingRatePerSecond,
    workerMetricsUrl: `http://127.0.0.1:${workerMetricsPort}/metrics`,
    workerTaskQueues: [doc.temporal.taskQueues.calls, doc.temporal.taskQueues.integrations],
    kommo,
    whatsapp,
    ticketing,
    workerPid: () => pidsOf('workers/main.ts', configPath)[0],
    async stop() {
      launcher.kill('SIGTERM');
      await new Promise((resolve) => (launcher.exitCode !== null ? resolve(undefined) : launcher.once('exit', resolve)));
      await Promise.all([kommo.stop(), ticketing.stop(), slack.stop(), smtp.stop(), whatsapp.stop()]);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
