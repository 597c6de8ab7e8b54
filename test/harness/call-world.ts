/**
 * A complete call-journaling deployment for integration tests: the real API over HTTP, a real
 * worker on the run's Temporal dev server, a database of its own, and every outside system as a
 * sandbox server. Each world has its own tenant, task queues and ports.
 */
import type { Worker } from '@temporalio/worker';
import { Client } from '@temporalio/client';
import type { AppConfig } from '../../config/load.js';
import { tenantSchema } from '../../config/schema.js';
import type { TenantConfig } from '../../config/schema.js';
import { currentSecret, switchboardSigningSecret } from '../../security/secrets.js';
import { loadCall } from '../../db/call-journal.js';
import type { Db } from '../../db/pool.js';
import { createLogger } from '../../observability/logger.js';
import { temporalDataConverter } from '../../security/payload-codec.js';
import { startHubspotSandbox } from '../../sandboxes/hubspot.js';
import type { HubspotSandbox, HubspotSandboxOptions } from '../../sandboxes/hubspot.js';
import { startKommoSandbox } from '../../sandboxes/kommo.js';
import type { KommoSandbox, KommoSandboxOptions } from '../../sandboxes/kommo.js';
import { signedJsonRequest, signedTwilioRequest } from '../../sandboxes/pbx-simulator.js';
import { startRecordingHost } from '../../sandboxes/recordings.js';
import { startSlackSandbox } from '../../sandboxes/slack.js';
import { startSmtpSandbox } from '../../sandboxes/smtp.js';
import { startTicketingSandbox } from '../../sandboxes/ticketing.js';
import type { CallPolicy, CallSnapshot } from '../../shared/calls.js';
import { waitUntil } from '../../stack/processes.js';
import { createWorkers } from '../../workers/create-workers.js';
import { createIntegrations } from '../../workers/integrations.js';
import { startApi, testConfig } from './api.js';
import { hubspotView, kommoView } from './crm-view.js';
import type { CrmKind, CrmView } from './crm-view.js';
import type { RunningApi } from './api.js';
import { createTestDatabase } from './postgres.js';
import { freePort, uniqueId } from './resources.js';
import { getDevServer, getWorkflowBundle } from './temporal.js';

type Sandbox<T> = Awaited<T>;

export interface CallWorld {
  tenantId: string;
  tenant: TenantConfig;
  config: AppConfig;
  db: Db;
  api: RunningApi;
  client: Client;
  kommo: KommoSandbox;
  /** Started when the tenant's CRM is HubSpot (`crmKind: 'hubspot'`). */
  hubspot?: HubspotSandbox;
  /** The tenant's CRM, whichever kind it is. */
  crm: CrmView;
  ticketing: Sandbox<ReturnType<typeof startTicketingSandbox>>;
  slack: Sandbox<ReturnType<typeof startSlackSandbox>>;
  smtp: Sandbox<ReturnType<typeof startSmtpSandbox>>;
  recordings: Sandbox<ReturnType<typeof startRecordingHost>>;
  /** POSTs a signed JSON webhook (/pbx, /voice-ai). */
  postSigned(provider: 'pbx' | 'voice-ai', body: unknown, options?: { nowSeconds?: number }): Promise<Response>;
  postTwilio(params: Record<string, string>): Promise<Response>;
  postResult(callId: string, body: unknown, headers?: Record<string, string>): Promise<Response>;
  operatorGet(path: string, headers?: Record<string, string>): Promise<Response>;
  call(callId: string): Promise<CallSnapshot | undefined>;
  /** Polls the journal until the call satisfies `done` (or fails with the last state seen). */
  waitForCall(callId: string, done: (call: CallSnapshot) => boolean, timeoutMs?: number): Promise<CallSnapshot>;
  stopWorker(): Promise<void>;
  startWorker(): Promise<void>;
  stop(): Promise<void>;
}

/** Short timers so whole call lifecycles finish within a test (production defaults are minutes). */
export const fastPolicy: Partial<CallPolicy> = {
  crmSyncDelaySeconds: 2,
  outcomeWaitSeconds: 2,
  wrapUpMinutes: 0.05,
  crmRetry: { initialIntervalSeconds: 1, maximumIntervalSeconds: 2, giveUpAfterHours: 1 },
};

export async function startCallWorld(
  options: { policy?: Partial<CallPolicy>; crm?: boolean; liveFeed?: boolean; kommoToken?: string; kommo?: Partial<KommoSandboxOptions>; kommoCrm?: (sandboxUrl: string) => Record<string, unknown>; crmKind?: CrmKind; hubspot?: Partial<HubspotSandboxOptions>; codecAllowedOrigins?: string[] } = {},
): Promise<CallWorld> {
  const temporal = await getDevServer();
  const { url, db } = await createTestDatabase('calls');
  // `kommoToken` other than the tenant's makes every CRM call fail with 401 (a misconfigured CRM).
  const kommo = await startKommoSandbox({ token: options.kommoToken ?? 'kommo-test-token', ...options.kommo });
  // The HubSpot tenant keeps our call id in a custom call property, which its account must define.
  const hubspotCallIdProperty = 'switchboard_call_id';
  const hubspot =
    options.crmKind === 'hubspot'
      ? await startHubspotSandbox({ token: 'hubspot-test-token', customProperties: { calls: [hubspotCallIdProperty] }, searchIndexDelayMs: 1_500, ...options.hubspot })
      : undefined;
  const hubspotCrm = hubspot
    ? // The ledger's wait for HubSpot's search index is longer than the sandbox's index delay.
      { kind: 'hubspot', baseUrl: hubspot.url, token: 'hubspot-test-token', callIdProperty: hubspotCallIdProperty, searchIndexLagSeconds: 3 }
    : undefined;
  const ticketing = await startTicketingSandbox({ token: 'ticketing-test-token' });
  const slackPaths = ['/services/T1/B1/support', '/services/T1/B1/alerts', '/services/T1/B1/vip'];
  const slack = await startSlackSandbox({ webhooks: slackPaths });
  const smtp = await startSmtpSandbox({});
  const recordings = await startRecordingHost({ basicAuth: { user: 'pbx', pass: 'pbx-recordings' } });

  const tenantId = uniqueId('t').toLowerCase();
  const apiPort = await freePort();
  const tenant = tenantSchema.parse({
    displayName: 'Test Co',
    defaultRegion: 'US',
    timeZone: 'America/New_York',
    secrets: {
      webhookSigningSecret: 'test-webhook-secret',
      twilioAuthToken: 'test-twilio-token',
      operatorToken: `operator-${tenantId}`,
      recordingLinkSecret: 'test-recording-link-secret',
    },
    vipPhones: ['+1 415 555 0199'],
    ...(options.crm === false ? {} : { crm: hubspotCrm ?? options.kommoCrm?.(kommo.url) ?? { kind: 'kommo', baseUrl: kommo.url, token: 'kommo-test-token', source: 'Switchboard' } }),
    ticketing: { baseUrl: ticketing.url, token: 'ticketing-test-token', defaultQueue: 'Support', queueByIssueType: { billing: 'Billing' } },
    slack: {
      supportWebhookUrl: `${slack.url}${slackPaths[0]}`,
      alertsWebhookUrl: `${slack.url}${slackPaths[1]}`,
      vipWebhookUrl: `${slack.url}${slackPaths[2]}`,
    },
    email: { smtpUrl: `smtp://${smtp.host}:${smtp.smtpPort}`, from: 'Test Co <support@test.example>', escalationTo: 'escalations@test.example' },
    twilio: { accountSid: 'AC00000000000000000000000000000001' },
    pbxRecordingAuth: { user: 'pbx', pass: 'pbx-recordings', host: '127.0.0.1' },
    // The recording sandbox listens on 127.0.0.1 over plain http, which only an explicit allowance reaches.
    recordings: { privateNetworkHosts: ['127.0.0.1'], allowPlainHttp: true },
    calls: { ...fastPolicy, ...options.policy },
  });
  const base = testConfig({ databaseUrl: url, address: temporal.connection.options.address, namespace: temporal.client.options.namespace });
  const config: AppConfig = {
    ...base,
    api: { ...base.api, publicUrl: `http://127.0.0.1:${apiPort}`, ...(options.codecAllowedOrigins ? { codecAllowedOrigins: options.codecAllowedOrigins } : {}) },
    tenants: { [tenantId]: tenant },
  };

  const logger = createLogger({ name: 'switchboard-test', level: 'silent' });
  const integrations = createIntegrations(config, { db });
  const workflowBundle = await getWorkflowBundle();
  let workers: Worker[] = [];
  let running: Array<Promise<void>> = [];
  const startWorker = async (): Promise<void> => {
    workers = await createWorkers({ config, connection: temporal.nativeConnection, db, logger, integrations, workflowBundle });
    running = workers.map((worker) => worker.run());
  };
  const stopWorker = async (): Promise<void> => {
    for (const worker of workers) if (worker.getState() === 'RUNNING') worker.shutdown();
    await Promise.allSettled(running);
    workers = [];
  };
  await startWorker();
  const api = await startApi({ config, db, connection: temporal.connection, port: apiPort, liveFeed: options.liveFeed ?? false });
  const client = new Client({ connection: temporal.connection, namespace: config.temporal.namespace, dataConverter: temporalDataConverter(config.temporal.payloadEncryption) });

  const call = (callId: string): Promise<CallSnapshot | undefined> => loadCall(db, tenantId, callId);
  return {
    tenantId,
    tenant,
    config,
    db,
    api,
    client,
    kommo,
    ...(hubspot ? { hubspot } : {}),
    crm: hubspot ? hubspotView(hubspot, hubspotCallIdProperty) : kommoView(kommo),
    ticketing,
    slack,
    smtp,
    recordings,
    async postSigned(provider, body, postOptions = {}) {
      const request = signedJsonRequest(switchboardSigningSecret(tenant.secrets, provider), body, postOptions.nowSeconds);
      return fetch(`${api.baseUrl}/webhooks/${tenantId}/${provider}`, { method: 'POST', headers: request.headers, body: request.body });
    },
    async postTwilio(params) {
      const path = `/webhooks/${tenantId}/twilio`;
      const request = signedTwilioRequest(currentSecret(tenant.secrets.twilioAuthToken) ?? '', `${config.api.publicUrl}${path}`, params);
      return fetch(`${api.baseUrl}${path}`, { method: 'POST', headers: request.headers, body: request.body });
    },
    async postResult(callId, body, headers = {}) {
      return fetch(`${api.baseUrl}/api/${tenantId}/calls/${encodeURIComponent(callId)}/result`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${tenant.secrets.operatorToken}`, ...headers },
        body: JSON.stringify(body),
      });
    },
    async operatorGet(path, headers = {}) {
      return fetch(`${api.baseUrl}${path}`, { headers: { authorization: `Bearer ${tenant.secrets.operatorToken}`, ...headers } });
    },
    call,
    async waitForCall(callId, done, timeoutMs = 60_000) {
      let last: CallSnapshot | undefined;
      await waitUntil(
        async () => {
          last = await call(callId);
          return last !== undefined && done(last);
        },
        timeoutMs,
        `call ${callId} did not reach the expected state`,
      ).catch((error: unknown) => {
        throw new Error(`${(error as Error).message}; last journaled state: ${JSON.stringify(last)}`);
      });
      return last as CallSnapshot;
    },
    stopWorker,
    startWorker,
    async stop() {
      await api.close();
      await stopWorker();
      integrations.close();
      await Promise.all([kommo.stop(), hubspot?.stop(), ticketing.stop(), slack.stop(), smtp.stop(), recordings.stop()]);
    },
  };
}
