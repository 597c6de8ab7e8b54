/**
 * The deployment the chaos run attacks: PostgreSQL (embedded) and the Temporal dev server as
 * processes the run can restart and freeze, the outside systems as sandboxes in this process,
 * and 2 API and 2 worker processes started as production starts them (`npm run api`, `npm run
 * worker`: each API runs its own inbox forwarder, the documented default) under a supervisor that
 * restarts them. A small front door (a load balancer with failover) stands where outside systems
 * reach the API: the WhatsApp sandbox's status webhooks go through it, and it is the public URL
 * Twilio signs. The config file is written the way the bench writes its own (bench/stack.ts).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createWriteStream, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import proto from '@temporalio/proto';
import { parse, stringify } from 'yaml';
import { benchTenant, pidsWithArgument, postgresPids } from '../bench/stack.js';
import { defaultConfigPath, loadConfig } from '../config/load.js';
import type { AppConfig } from '../config/load.js';
import type { ConfigFile, TenantConfig } from '../config/schema.js';
import { startEmbeddedPostgres } from '../db/embedded.js';
import type { RunningPostgres } from '../db/embedded.js';
import { createPool } from '../db/pool.js';
import type { Db } from '../db/pool.js';
import type { KommoSandbox } from '../sandboxes/kommo.js';
import { startTenantSandboxes } from '../sandboxes/tenant.js';
import type { TicketingSandbox } from '../sandboxes/ticketing.js';
import type { WhatsAppSandbox } from '../sandboxes/whatsapp.js';
import { temporalDataConverter } from '../security/payload-codec.js';
import { currentSecret, switchboardSigningSecret } from '../security/secrets.js';
import { prepareDatabase } from '../stack/lifecycle.js';
import { freePort, processPriorities, waitUntil } from '../stack/processes.js';
import { ensureTemporalCli } from '../stack/provision.js';
import { startDevServer } from '../stack/temporal-dev-server.js';
import type { RunningDevServer } from '../stack/temporal-dev-server.js';
import { supervise } from './supervisor.js';
import type { Supervised } from './supervisor.js';

export interface ChaosTenant {
  id: string;
  secrets: { pbx: string; voiceAi: string; crm: string; twilio: string; operator: string };
  kommo: KommoSandbox;
  ticketing: TicketingSandbox;
  whatsapp: WhatsAppSandbox;
  /** Every caller is a known contact in the tenant's CRM: each call ends in exactly one call note. */
  callerPhones: string[];
}

export interface Deployment {
  dir: string;
  config: AppConfig;
  configPath: string;
  databaseUrl: string;
  /** The run's own connections (a pool that survives restarts of PostgreSQL). */
  db: Db;
  temporal: Client;
  namespace: string;
  tenants: ChaosTenant[];
  /** Where outside systems reach the API: the front door; Twilio signs this URL. */
  publicUrl: string;
  apis: Array<Supervised & { url: string }>;
  workers: Supervised[];
  postgres: { pids(): number[]; restart(downMs: number): Promise<{ stoppedAt: number; startedAt: number }> };
  temporalServer: { pids(): number[]; restart(downMs: number): Promise<{ stoppedAt: number; startedAt: number }> };
  /** The PostgreSQL backends (pids) serving a process: its connections, found by their local ports. */
  backendsOf(pid: number): Promise<number[]>;
  /** The pollers on the calls task queue, by identity. */
  pollers(): Promise<string[]>;
  stop(options?: { keep?: boolean }): Promise<void>;
}

export interface DeploymentOptions {
  tenants: number;
  callersPerTenant: number;
  wrapUpMinutes: number;
  log: (line: string) => void;
  onFolder?: (dir: string) => void;
}

const localUrl = (port: number): string => `http://127.0.0.1:${port}`;

/** A tenant of the chaos run: the bench tenant's outside systems (Kommo, ticketing, WhatsApp), with short call timings and leads that send at any hour. */
function chaosTenant(index: number, ports: { kommo: number; ticketing: number; slack: number; smtp: number; whatsapp: number }, wrapUpMinutes: number): Record<string, unknown> {
  const { slack: _slack, email: _email, ...base } = benchTenant(ports);
  const suffix = String.fromCharCode(97 + index);
  return {
    ...base,
    displayName: `Chaos ${suffix.toUpperCase()} Co`,
    secrets: {
      webhookSigningSecret: `chaos-${suffix}-webhook-secret`,
      twilioAuthToken: `chaos-${suffix}-twilio-token`,
      operatorToken: `chaos-${suffix}-operator-token`,
      whatsappAppSecret: `chaos-${suffix}-app-secret`,
    },
    calls: {
      crmSyncDelaySeconds: 2,
      outcomeWaitSeconds: 5,
      wrapUpMinutes,
      maxCallHours: 1,
      crmRetry: { initialIntervalSeconds: 1, maximumIntervalSeconds: 10, giveUpAfterHours: 1 },
      tickets: { enabled: true },
      email: { enabled: false },
      callbackTaskForMissedCalls: true,
    },
    leads: {
      sendWindow: { days: [1, 2, 3, 4, 5, 6, 7], start: '00:00', end: '23:59' },
      reminderHoursBefore: [1],
      reorderWindowSeconds: 3,
      rewarm: { maxAttempts: 0 },
      // Low, so lead workflows continue as new during the run, with their buffered events.
      continueAsNewAfterEvents: 60,
    },
  };
}

/**
 * An HTTP load balancer over the API processes: round robin, and a request whose connection is
 * refused (that process is down) goes to the next one, as nginx's `proxy_next_upstream error` does.
 */
async function startFrontDoor(targets: () => string[]): Promise<{ url: string; port: number; stop: () => Promise<void> }> {
  let turn = 0;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const list = targets();
      const first = turn++;
      const attempt = (tried: number): void => {
        const target = new URL(list[(first + tried) % list.length] ?? '');
        const outgoing = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers, agent }, (upstream) => {
          res.writeHead(upstream.statusCode ?? 502, upstream.headers);
          upstream.pipe(res);
        });
        outgoing.setTimeout(15_000, () => outgoing.destroy(new Error('upstream timeout')));
        outgoing.on('error', (error: NodeJS.ErrnoException) => {
          // Only a refused connection is safe to send elsewhere: nothing reached that process.
          if (error.code === 'ECONNREFUSED' && tried + 1 < list.length) return attempt(tried + 1);
          if (!res.headersSent) res.writeHead(502, { 'content-type': 'application/json' });
          res.end('{"error":"bad_gateway"}');
        });
        outgoing.end(body);
      };
      attempt(0);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: localUrl(port),
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        agent.destroy();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Local TCP ports of a process's sockets connected to `remotePort` (Linux /proc). */
function localPortsTo(pid: number, remotePort: number): number[] {
  const inodes = new Set<string>();
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (match?.[1]) inodes.add(match[1]);
      } catch {
        // closed meanwhile
      }
    }
  } catch {
    return []; // the process is gone
  }
  const ports: number[] = [];
  for (const table of ['tcp', 'tcp6']) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/net/${table}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      const [local, remote, inode] = [fields[1], fields[2], fields[9]];
      if (!local || !remote || !inode || !inodes.has(inode)) continue;
      if (Number.parseInt(remote.split(':')[1] ?? '', 16) !== remotePort) continue;
      ports.push(Number.parseInt(local.split(':')[1] ?? '', 16));
    }
  }
  return ports;
}

export async function startDeployment(options: DeploymentOptions): Promise<Deployment> {
  const { log } = options;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'switchboard-chaos-'));
  await mkdir(path.join(dir, 'logs'));
  options.onFolder?.(dir);
  const stops: Array<() => Promise<void>> = [];
  const stopAll = async (): Promise<void> => {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
  };
  try {
    const ports = await Promise.all(Array.from({ length: 7 + options.tenants * 5 }, () => freePort()));
    const take = (): number => {
      const port = ports.shift();
      if (port === undefined) throw new Error('out of ports');
      return port;
    };
    const [frontendPort, httpPort, uiPort, metricsPort, pgPort] = [take(), take(), take(), take(), take()];

    const apiUrls: string[] = [];
    const frontDoor = await startFrontDoor(() => apiUrls);
    stops.push(frontDoor.stop);

    const tenantPorts = Array.from({ length: options.tenants }, () => ({ kommo: take(), ticketing: take(), slack: take(), smtp: take(), whatsapp: take() }));
    const tenantIds = tenantPorts.map((_, index) => `chaos-${String.fromCharCode(97 + index)}`);
    const doc = parse(readFileSync(defaultConfigPath, 'utf8')) as ConfigFile;
    Object.assign(doc.temporal, { frontendPort, httpPort, uiPort, metricsPort, dbFilename: path.join(dir, 'temporal.sqlite') });
    Object.assign(doc.postgres.embedded, { port: pgPort, dataDir: path.join(dir, 'postgres') });
    Object.assign(doc.api, { host: '127.0.0.1', publicUrl: frontDoor.url });
    doc.demo.enabled = false;
    doc.tenants = Object.fromEntries(tenantIds.map((id, index) => [id, chaosTenant(index, tenantPorts[index] as (typeof tenantPorts)[number], options.wrapUpMinutes)])) as unknown as ConfigFile['tenants'];
    const configPath = path.join(dir, 'switchboard.yaml');
    await writeFile(configPath, stringify(doc));

    const { DATABASE_URL: _database, TEMPORAL_ADDRESS: _temporal, ...inherited } = process.env;
    const config = loadConfig({ ...inherited, SWITCHBOARD_CONFIG: configPath });

    log(`PostgreSQL (embedded) on port ${pgPort}`);
    let postgres: RunningPostgres = await startEmbeddedPostgres(config.devStack.postgres);
    stops.push(() => postgres.stop());
    const databaseUrl = postgres.url;
    await prepareDatabase(databaseUrl);

    const settings = config.devStack.temporal;
    const cli = await ensureTemporalCli({ version: settings.cliVersion, progress: (line) => log(line) });
    if (!cli) throw new Error('no Temporal CLI: run `npm run provision` (Go >= 1.25 builds it once) or set TEMPORAL_CLI');
    const temporalLog = createWriteStream(path.join(dir, 'logs', 'temporal.log'), { flags: 'a' });
    stops.push(() => new Promise<void>((resolve) => temporalLog.end(() => resolve())));
    const startTemporal = (): Promise<RunningDevServer> => startDevServer(cli, settings, (line) => temporalLog.write(`${line}\n`), { codecEndpoint: `${frontDoor.url}/codec`, niceness: processPriorities.temporal });
    log(`Temporal dev server on ${settings.ip}:${settings.frontendPort} (history in ${path.basename(settings.dbFilename)})`);
    let temporalServer = await startTemporal();
    stops.push(() => temporalServer.process.stop(15_000));

    const db = createPool(databaseUrl, { max: 4, applicationName: 'switchboard-chaos', queryTimeoutMs: 5_000 });
    stops.push(() => db.end());
    const connection = await Connection.connect({ address: temporalServer.address });
    stops.push(() => connection.close());
    const temporal = new Client({ connection, namespace: settings.namespace, dataConverter: temporalDataConverter(config.temporal.payloadEncryption) });

    const tenants: ChaosTenant[] = [];
    for (const id of tenantIds) {
      const tenant = config.tenants[id] as TenantConfig;
      const sandboxes = await startTenantSandboxes(id, tenant, { apiUrl: frontDoor.url, unlimited: true });
      stops.push(() => sandboxes.stop());
      if (!sandboxes.kommo || !sandboxes.ticketing || !sandboxes.whatsapp) throw new Error(`tenant ${id}: its sandboxes did not start`);
      const callerPhones = Array.from({ length: options.callersPerTenant }, (_, index) => `+1646555${String(1000 + index).padStart(4, '0')}`);
      for (const [index, phone] of callerPhones.entries()) sandboxes.kommo.seedContact({ name: `Caller ${index}`, phone });
      tenants.push({
        id,
        secrets: {
          pbx: switchboardSigningSecret(tenant.secrets, 'pbx'),
          voiceAi: switchboardSigningSecret(tenant.secrets, 'voice-ai'),
          crm: switchboardSigningSecret(tenant.secrets, 'crm'),
          twilio: currentSecret(tenant.secrets.twilioAuthToken) ?? '',
          operator: tenant.secrets.operatorToken,
        },
        kommo: sandboxes.kommo,
        ticketing: sandboxes.ticketing,
        whatsapp: sandboxes.whatsapp,
        callerPhones,
      });
    }

    const childEnv: NodeJS.ProcessEnv = {
      ...inherited,
      SWITCHBOARD_CONFIG: configPath,
      DATABASE_URL: databaseUrl,
      TEMPORAL_ADDRESS: temporalServer.address,
      TEMPORAL_NAMESPACE: settings.namespace,
      LOG_LEVEL: 'warn',
      SHUTDOWN_GRACE_SECONDS: '3',
    };
    const graceMs = 8_000;
    const apis: Deployment['apis'] = [];
    for (let index = 1; index <= 2; index++) {
      const port = take();
      const url = localUrl(port);
      apiUrls.push(url);
      const api = await supervise({ name: `api-${index}`, entry: 'api/main.ts', env: { ...childEnv, API_HOST: '127.0.0.1', API_PORT: String(port) }, logFile: path.join(dir, 'logs', `api-${index}.log`), niceness: processPriorities.api, graceMs });
      stops.push(() => api.stop());
      apis.push(Object.assign(api, { url }));
    }
    const workers: Supervised[] = [];
    for (let index = 1; index <= 2; index++) {
      const worker = await supervise({
        name: `worker-${index}`,
        entry: 'workers/main.ts',
        env: { ...childEnv, WORKER_METRICS_ADDRESS: `127.0.0.1:${await freePort()}` },
        logFile: path.join(dir, 'logs', `worker-${index}.log`),
        niceness: processPriorities.worker,
        graceMs,
      });
      stops.push(() => worker.stop());
      workers.push(worker);
    }

    const pollers = async (): Promise<string[]> => {
      const described = await connection.workflowService.describeTaskQueue({
        namespace: settings.namespace,
        taskQueue: { name: config.temporal.taskQueues.calls },
        taskQueueType: proto.temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
      });
      return [...new Set((described.pollers ?? []).map((poller) => poller.identity ?? ''))];
    };
    log('starting 2 API and 2 worker processes');
    /** What the processes said last, when one of them never came up. */
    const why = (processes: Supervised[]): string =>
      processes.map((process) => `\n--- ${process.name} (${process.history.filter((entry) => entry.event === 'started').length} starts):\n${process.recentOutput().map((line) => line.slice(0, 300)).join('\n')}`).join('');
    await waitUntil(async () => (await Promise.all(apis.map(async (api) => (await fetch(`${api.url}/readyz`)).ok))).every(Boolean), 180_000, 'the API processes did not become ready').catch((error: unknown) => {
      throw new Error(`${(error as Error).message}${why(apis)}`);
    });
    // Each worker bundles its workflows before it polls.
    await waitUntil(async () => (await pollers()).length >= 2, 240_000, 'the two workers did not start polling').catch((error: unknown) => {
      throw new Error(`${(error as Error).message}${why(workers)}`);
    });

    const restartable = <T>(label: string, stop: () => Promise<void>, start: () => Promise<T>, onStarted: (value: T) => void) => async (downMs: number) => {
      const stoppedAt = Date.now();
      await stop();
      await new Promise((resolve) => setTimeout(resolve, downMs));
      onStarted(await start());
      log(`  ${label} is back`);
      return { stoppedAt, startedAt: Date.now() };
    };

    return {
      dir,
      config,
      configPath,
      databaseUrl,
      db,
      temporal,
      namespace: settings.namespace,
      tenants,
      publicUrl: frontDoor.url,
      apis,
      workers,
      postgres: {
        pids: () => postgresPids(config.devStack.postgres.dataDir),
        restart: restartable('PostgreSQL', () => postgres.stop(), () => startEmbeddedPostgres(config.devStack.postgres), (started) => (postgres = started)),
      },
      temporalServer: {
        pids: () => pidsWithArgument(settings.dbFilename),
        restart: restartable('Temporal', () => temporalServer.process.stop(15_000), startTemporal, (started) => (temporalServer = started)),
      },
      async backendsOf(pid) {
        const ports = localPortsTo(pid, config.devStack.postgres.port);
        if (ports.length === 0) return [];
        const rows = await db.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE client_port = ANY($1::int[])', [ports]);
        return rows.rows.map((row) => row.pid);
      },
      pollers,
      async stop(stopOptions = {}) {
        await stopAll();
        if (!stopOptions.keep) await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await stopAll();
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}
