/**
 * A lead-messaging deployment for tests: the real API over HTTP, real workers (calls, leads and the
 * rate-limited messaging queue), a database of its own and the WhatsApp sandbox, on the run's
 * time-skipping server (days pass in seconds) or its dev server.
 */
import { Client } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { NativeConnection } from '@temporalio/worker';
import type { Worker } from '@temporalio/worker';
import type { AppConfig } from '../../config/load.js';
import { tenantSchema } from '../../config/schema.js';
import type { TenantConfig } from '../../config/schema.js';
import type { Db } from '../../db/pool.js';
import { createLogger } from '../../observability/logger.js';
import { temporalDataConverter } from '../../security/payload-codec.js';
import { metaSignature } from '../../security/signatures.js';
import { signedJsonRequest } from '../../sandboxes/pbx-simulator.js';
import { startWhatsAppSandbox } from '../../sandboxes/whatsapp.js';
import { startTwilioMessagingSandbox } from '../../sandboxes/twilio-messaging.js';
import type { TwilioMessagingSandbox, TwilioMessagingSandboxOptions, TwilioStoredMessage } from '../../sandboxes/twilio-messaging.js';
import type { WhatsAppSandbox, WhatsAppStoredMessage } from '../../sandboxes/whatsapp.js';
import type { LeadView } from '../../shared/lead-plan.js';
import { leadPolicySchema, leadWorkflowId } from '../../shared/leads.js';
import type { LeadPolicy, TimelineEntry } from '../../shared/leads.js';
import { templateVersions } from '../../shared/templates.js';
import { waitUntil } from '../../stack/processes.js';
import { createWorkers } from '../../workers/create-workers.js';
import { createIntegrations } from '../../workers/integrations.js';
import { startApi, testConfig } from './api.js';
import { waitForEmptyInbox } from './inbox.js';
import type { RunningApi } from './api.js';
import { createTestDatabase } from './postgres.js';
import { freePort, uniqueId } from './resources.js';
import { getDevServer, getTimeSkippingServer, getWorkflowBundle } from './temporal.js';

export interface LeadWorld {
  env: TestWorkflowEnvironment;
  tenantId: string;
  tenant: TenantConfig;
  config: AppConfig;
  db: Db;
  api: RunningApi;
  client: Client;
  whatsapp: WhatsAppSandbox;
  /** The Twilio Messaging sandbox, in a world started with `sms`. */
  twilio?: TwilioMessagingSandbox;
  /** SMS the Twilio sandbox took for this number, in order (none without `sms`). */
  smsTo(phone: string): TwilioStoredMessage[];
  /** The lead texts our Twilio number (delivered to /webhooks/{tenant}/sms like Twilio does). */
  textUs(phone: string, body: string): Promise<void>;
  /** POSTs a signed CRM event to /webhooks/{tenant}/crm. */
  crm(body: Record<string, unknown>): Promise<Response>;
  /** The lead texts us on WhatsApp. */
  reply(phone: string, text: string): Promise<void>;
  /** An inbound-message webhook straight to our API, signed as Meta signs it (the sandbox never saw it). */
  inboundWebhook(phone: string, text: string): Promise<void>;
  /** Messages the sandbox accepted for this number, in order, as "template:<name>" or "text:<flow key>". */
  sentTo(phone: string): WhatsAppStoredMessage[];
  view(leadId: string): Promise<LeadView>;
  timeline(leadId: string): Promise<TimelineEntry[]>;
  now(): Promise<number>;
  /** Lets `ms` of (skipped) time pass, then waits until the lead has nothing due or running. */
  advance(leadId: string, ms: number): Promise<void>;
  /** Waits until nothing is due, no activity runs and every webhook was delivered. */
  idle(leadId: string): Promise<void>;
  operator(leadId: string, action: Record<string, unknown>, headers?: Record<string, string>): Promise<Response>;
  stopWorkers(): Promise<void>;
  stop(): Promise<void>;
}

/** Every language version of the flows' templates, each with as many placeholders as it declares: what the tenant registered with Meta. */
export function sandboxTemplates(policy: LeadPolicy) {
  return Object.values(policy.messages).flatMap((message) =>
    templateVersions(message.template).map(([language, version]) => ({
      name: message.template.name,
      language,
      category: message.template.category,
      body: `${message.template.name} ${version.placeholders.map((_, index) => `{{${index + 1}}}`).join(' ')}`.trim(),
    })),
  );
}

/** The Twilio account of a world started with `sms`. */
export const twilioAccount = { accountSid: `AC${'1'.repeat(32)}`, authToken: 'twilio-test-token', messagingServiceSid: `MG${'2'.repeat(32)}`, number: '+15005550006' } as const;

export async function startLeadWorld(
  options: {
    policy?: Record<string, unknown>;
    timeSkipping?: boolean;
    sandbox?: Partial<Parameters<typeof startWhatsAppSandbox>[0]>;
    inProcessWorkers?: boolean;
    /** Starts the Twilio Messaging sandbox and configures the tenant's `sms` (the SMS fallback itself is `policy.smsFallback`). */
    sms?: Partial<TwilioMessagingSandboxOptions>;
    /** More of the tenant's `whatsapp` settings (`senders`, `messagesPerSecond`, …). */
    whatsapp?: Record<string, unknown>;
    /**
     * Runs this many worker sets side by side (default 1), each with its own adapters: they share
     * the numbers' throughput budgets through PostgreSQL only.
     */
    workerSets?: number;
  } = {},
): Promise<LeadWorld> {
  const env = options.timeSkipping === false ? await getDevServer() : await getTimeSkippingServer();
  const { url, db } = await createTestDatabase('leads');
  const tenantId = uniqueId('l').toLowerCase();
  const apiPort = await freePort();
  const policy = leadPolicySchema.parse(options.policy ?? {});
  const whatsapp = await startWhatsAppSandbox({
    token: 'wa-test-token',
    appSecret: 'wa-app-secret',
    phoneNumberId: 'PN1',
    wabaId: 'WABA1',
    templates: sandboxTemplates(policy),
    webhookUrl: `http://127.0.0.1:${apiPort}/webhooks/${tenantId}/whatsapp`,
    marketingPerUserPerDay: 10,
    ...(options.timeSkipping === false ? {} : { clock: () => env.currentTimeMs() }),
    ...options.sandbox,
  });
  const twilio = options.sms
    ? await startTwilioMessagingSandbox({
        accountSid: twilioAccount.accountSid,
        authToken: twilioAccount.authToken,
        phoneNumbers: [twilioAccount.number],
        messagingServiceSid: twilioAccount.messagingServiceSid,
        inboundWebhookUrl: `http://127.0.0.1:${apiPort}/webhooks/${tenantId}/sms`,
        ...options.sms,
      })
    : undefined;
  const tenant = tenantSchema.parse({
    displayName: 'Acme',
    defaultRegion: 'US',
    timeZone: 'America/New_York',
    secrets: {
      webhookSigningSecret: 'lead-webhook-secret',
      whatsappAppSecret: 'wa-app-secret',
      operatorToken: `operator-${tenantId}`,
      ...(twilio ? { twilioAuthToken: twilioAccount.authToken } : {}),
    },
    whatsapp: { baseUrl: whatsapp.url, phoneNumberId: 'PN1', wabaId: 'WABA1', token: 'wa-test-token', verifyToken: 'verify-me', ...options.whatsapp },
    ...(twilio ? { sms: { baseUrl: twilio.url, accountSid: twilioAccount.accountSid, messagingServiceSid: twilioAccount.messagingServiceSid } } : {}),
    leads: options.policy ?? {},
    // Calls from leads' numbers reach the lead soon after they end.
    calls: { crmSyncDelaySeconds: 1, outcomeWaitSeconds: 1, wrapUpMinutes: 0.05 },
  });
  const namespace = env.client.options.namespace;
  const base = testConfig({ databaseUrl: url, namespace, address: env.connection.options.address });
  const config: AppConfig = { ...base, api: { ...base.api, publicUrl: `http://127.0.0.1:${apiPort}` }, tenants: { [tenantId]: tenant } };

  const logger = createLogger({ name: 'switchboard-test', level: 'silent' });
  const workerSets = options.workerSets ?? 1;
  // Several worker sets stand for several worker processes: their adapters share only the database.
  const integrationSets = Array.from({ length: workerSets }, () => createIntegrations(config, workerSets > 1 ? { db } : {}));
  // Tests that kill a worker run it as a process of its own instead.
  const workers: Worker[] = [];
  // The SDK allows one worker per task queue and connection: each further set gets its own connection, like a process.
  const extraConnections: NativeConnection[] = [];
  if (options.inProcessWorkers !== false) {
    for (const [index, integrations] of integrationSets.entries()) {
      const connection = index === 0 ? env.nativeConnection : await NativeConnection.connect({ address: env.connection.options.address });
      if (index > 0) extraConnections.push(connection);
      workers.push(...(await createWorkers({ config, connection, db, logger, integrations, workflowBundle: await getWorkflowBundle() })));
    }
  }
  const running = workers.map((worker) => worker.run());
  const api = await startApi({ config, db, connection: env.connection, port: apiPort });
  const client = new Client({ connection: env.connection, namespace, dataConverter: temporalDataConverter(config.temporal.payloadEncryption) });

  // Acknowledged events reach Temporal in the background; a journey skips time only once they have.
  const inboxDrained = (): Promise<void> => waitForEmptyInbox(db, tenantId, 30_000);
  const view = (leadId: string): Promise<LeadView> => client.workflow.getHandle(leadWorkflowId(tenantId, leadId)).query<LeadView>('leadState');
  const idle = async (leadId: string): Promise<void> => {
    await waitUntil(
      async () => {
        await whatsapp.settle();
        await twilio?.settle();
        const waiting = await db.query('SELECT 1 FROM event_inbox WHERE tenant_id = $1 AND dead_at IS NULL LIMIT 1', [tenantId]);
        if ((waiting.rowCount ?? 0) > 0) return false;
        const handle = client.workflow.getHandle(leadWorkflowId(tenantId, leadId));
        const described = await handle.describe();
        if (described.status.name !== 'RUNNING') return true;
        if ((described.raw.pendingActivities ?? []).length > 0) return false;
        const current = await view(leadId);
        const now = await env.currentTimeMs();
        if (current.bufferReleaseAt) {
          // Let the reorder buffer release its events (skipped time on the test server).
          await env.sleep(Math.max(1, Date.parse(current.bufferReleaseAt) - now));
          return false;
        }
        const nextDue = current.nextActionAt ? Date.parse(current.nextActionAt) : Number.POSITIVE_INFINITY;
        return nextDue > now && (described.raw.pendingWorkflowTask === null || described.raw.pendingWorkflowTask === undefined);
      },
      60_000,
      `lead ${leadId} did not settle`,
    );
  };
  // Every workflow this world started: terminated at stop, so none holds the shared test server's
  // clock (time cannot skip while a workflow task or activity of a stopped world is pending).
  const started = new Set<string>();
  let stopped = false;
  const stopWorkers = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    for (const worker of workers) if (worker.getState() === 'RUNNING') worker.shutdown();
    await Promise.allSettled(running);
    await Promise.allSettled(extraConnections.map((connection) => connection.close()));
  };

  return {
    env,
    tenantId,
    tenant,
    config,
    db,
    api,
    client,
    whatsapp,
    ...(twilio ? { twilio } : {}),
    smsTo(phone) {
      return twilio?.state().messages.filter((message) => message.to === phone) ?? [];
    },
    async textUs(phone, body) {
      if (!twilio) throw new Error('this world has no Twilio sandbox (start it with sms)');
      await twilio.inbound({ from: phone, body });
      await twilio.settle();
      await inboxDrained();
    },
    async crm(body) {
      if (typeof body.lead_id === 'string') started.add(leadWorkflowId(tenantId, body.lead_id));
      // Signed with the wall clock, as a CRM would: replay protection checks real time.
      const request = signedJsonRequest('lead-webhook-secret', body);
      const response = await fetch(`${api.baseUrl}/webhooks/${tenantId}/crm`, { method: 'POST', headers: request.headers, body: request.body });
      await inboxDrained();
      return response;
    },
    async reply(phone, text) {
      await whatsapp.inbound({ from: phone.replace(/^\+/, ''), text });
      await whatsapp.settle();
      await inboxDrained();
    },
    async inboundWebhook(phone, text) {
      const body = JSON.stringify({
        object: 'whatsapp_business_account',
        entry: [{ id: 'WABA1', changes: [{ field: 'messages', value: { messaging_product: 'whatsapp', metadata: { phone_number_id: 'PN1' }, messages: [{ from: phone.replace(/^\+/, ''), id: `wamid.direct-${uniqueId('in')}`, timestamp: String(Math.floor((await env.currentTimeMs()) / 1000)), type: 'text', text: { body: text } }] } }] }],
      });
      const response = await fetch(`${api.baseUrl}/webhooks/${tenantId}/whatsapp`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-hub-signature-256': metaSignature('wa-app-secret', body) },
        body,
      });
      if (response.status !== 200) throw new Error(`inbound webhook answered ${response.status}: ${await response.text()}`);
      await inboxDrained();
    },
    sentTo(phone) {
      const digits = phone.replace(/^\+/, '');
      return whatsapp.state().messages.filter((message) => message.to === digits);
    },
    view,
    async timeline(leadId) {
      const response = await fetch(`${api.baseUrl}/api/${tenantId}/leads/${encodeURIComponent(leadId)}/timeline`, {
        headers: { authorization: `Bearer ${tenant.secrets.operatorToken}` },
      });
      return ((await response.json()) as { timeline: TimelineEntry[] }).timeline;
    },
    now: () => env.currentTimeMs(),
    async advance(leadId, ms) {
      await inboxDrained();
      await env.sleep(ms);
      await idle(leadId);
    },
    idle,
    operator(leadId, action, headers = {}) {
      return fetch(`${api.baseUrl}/api/${tenantId}/leads/${encodeURIComponent(leadId)}/actions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${tenant.secrets.operatorToken}`, ...headers },
        body: JSON.stringify(action),
      });
    },
    stopWorkers,
    async stop() {
      await api.close();
      for (const workflowId of started) {
        await client.workflow.getHandle(workflowId).terminate('test world stopped').catch(() => undefined);
      }
      await stopWorkers();
      for (const integrations of integrationSets) integrations.close();
      await whatsapp.stop();
      await twilio?.stop();
    },
  };
}

/** A message as the journey tables write it: `template:<name>` or `text`. */
export function signature(message: WhatsAppStoredMessage): string {
  return message.type === 'template' ? `template:${message.template?.name ?? '?'}` : 'text';
}
