/**
 * Activities that wait on outside systems heartbeat while they wait and abort their request when
 * the attempt is cancelled (Temporal gave up on it: timed out, cancelled, worker shutting down),
 * instead of leaving it running beside the retry. Each outside system here is a real server on
 * loopback that takes the request and never answers; it notes when the connection closes. The
 * attempt runs in MockActivityEnvironment, which delivers the cancellation the way a worker does.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { createCrmActivities } from '../../activities/crm.js';
import type { CrmSyncInput } from '../../activities/crm.js';
import { createMessagingActivities } from '../../activities/messaging.js';
import type { SendWhatsAppInput } from '../../activities/messaging.js';
import { createNotificationActivities } from '../../activities/notifications.js';
import { createRecordingActivities } from '../../activities/recordings.js';
import { createTicketActivities } from '../../activities/tickets.js';
import type { OpenTicketInput } from '../../activities/tickets.js';
import { createHubspotAdapter } from '../../adapters/crm/hubspot.js';
import { createKommoAdapter } from '../../adapters/crm/kommo.js';
import type { CrmAdapter } from '../../adapters/crm/types.js';
import { RequestNotSentError, withCancellation } from '../../adapters/http.js';
import { createMailer } from '../../adapters/mailer.js';
import { RateBucket, RequestGate, slotsFrom } from '../../adapters/request-gate.js';
import { createTicketingAdapter } from '../../adapters/ticketing.js';
import { createWhatsAppAdapter } from '../../adapters/whatsapp.js';
import { emailConfigSchema, hubspotConfigSchema, kommoConfigSchema, tenantSchema, ticketingConfigSchema, whatsappConfigSchema } from '../../config/schema.js';
import type { Db } from '../../db/pool.js';
import { waitUntil } from '../../stack/processes.js';
import { testConfig } from '../harness/api.js';
import { createTestDatabase } from '../harness/postgres.js';
import { uniqueId } from '../harness/resources.js';

/** A server that accepts every connection and never answers on it. */
interface Silent {
  url: string;
  port: number;
  /** Connections received, and whether each has been closed by the client since. */
  connections: Array<{ closed: boolean }>;
  stop(): Promise<void>;
}

async function startSilent(kind: 'http' | 'tcp'): Promise<Silent> {
  const connections: Array<{ closed: boolean }> = [];
  const sockets = new Set<net.Socket>();
  const track = (socket: net.Socket): void => {
    const seen = { closed: false };
    connections.push(seen);
    sockets.add(socket);
    socket.once('close', () => {
      seen.closed = true;
      sockets.delete(socket);
    });
  };
  // HTTP: the request is read, no answer is ever written. TCP (SMTP): not even a greeting.
  const server = kind === 'http' ? http.createServer((req) => track(req.socket)) : net.createServer(track);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    connections,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

const quiet = { logger: new DefaultLogger('ERROR') };

describe('outside calls: heartbeats while waiting, and the request aborted when the attempt is cancelled', function () {
  this.timeout(60_000);
  let db: Db;
  let silent: Silent;
  const tenantId = uniqueId('cancel');
  const extra: Silent[] = [];
  before(async () => {
    ({ db } = await createTestDatabase('cancel'));
    silent = await startSilent('http');
  });
  after(async () => {
    await Promise.all([silent, ...extra].map((server) => server.stop()));
  });

  /**
   * Runs one attempt against a server that never answers: it must heartbeat while it waits, and
   * on cancellation end as cancelled with the connection closed (the request was aborted, not
   * left to its own timeout, which is 10 s or more for every one of these).
   */
  async function cancelledWhileWaiting(server: Silent, attempt: (env: MockActivityEnvironment) => Promise<unknown>, reason?: 'TIMED_OUT' | 'CANCELLED'): Promise<void> {
    const env = new MockActivityEnvironment({ heartbeatTimeoutMs: 300, startToCloseTimeoutMs: 60_000 }, quiet);
    let heartbeats = 0;
    env.on('heartbeat', () => heartbeats++);
    const before = server.connections.length;
    let settled = false;
    const outcome = attempt(env)
      .then(
        () => assert.fail('the attempt was expected to end cancelled'),
        (error: unknown) => error,
      )
      .finally(() => (settled = true));
    await waitUntil(() => Promise.resolve(server.connections.length > before), 10_000, 'the request never reached the server');
    const connection = server.connections[before] ?? assert.fail('no connection');
    await waitUntil(() => Promise.resolve(heartbeats >= 3), 5_000, `the attempt did not heartbeat while it waited (${heartbeats} heartbeats)`);
    env.cancel(reason);
    // Well before the request's own timeout would have ended it.
    await waitUntil(() => Promise.resolve(settled), 5_000, 'the attempt went on waiting for its request after it was cancelled');
    const error = await outcome;
    assert.ok(error instanceof CancelledFailure, `expected the attempt to end cancelled, got ${String(error)}`);
    await waitUntil(() => Promise.resolve(connection.closed), 5_000, 'the request was left running: its connection stayed open');
  }

  const ledgerRow = async (key: string) =>
    (await db.query<{ state: string; attempts: number; claimed_until: Date | null }>('SELECT state, attempts, claimed_until FROM external_effects WHERE tenant_id = $1 AND effect_key = $2', [tenantId, key])).rows[0];

  it('ticket creation: cancelled by Temporal, the request is aborted and the key released for the retry, which looks the ticket up', async () => {
    const ticketing = createTicketingAdapter(ticketingConfigSchema.parse({ baseUrl: silent.url, token: 't' }));
    const activities = createTicketActivities({ db, ticketing: () => ticketing });
    const input: OpenTicketInput = { tenantId, callId: `pbx:${uniqueId('c')}`, draft: { title: 'Help', description: 'Unresolved', priority: 'normal' }, customer: {} };
    await cancelledWhileWaiting(silent, (env) => env.run((one: OpenTicketInput) => activities.openTicket(one), input), 'TIMED_OUT');
    const row = await ledgerRow(`ticket:${input.callId}`);
    // The request may have reached the helpdesk: the attempt still counts, so the retry looks first.
    assert.deepEqual({ state: row?.state, attempts: row?.attempts, claimed_until: row?.claimed_until }, { state: 'pending', attempts: 1, claimed_until: null });
  });

  it('CRM sync (Kommo, request budget in PostgreSQL): the hanging request is aborted', async () => {
    const kommo = createKommoAdapter(kommoConfigSchema.parse({ kind: 'kommo', baseUrl: silent.url, token: 'k' }), { db });
    const activities = crmActivities(kommo);
    const input = crmInput();
    await cancelledWhileWaiting(silent, (env) => env.run((one: CrmSyncInput) => activities.logCallToCrm(one), input));
    assert.equal((await ledgerRow(`crm:call:${input.callId}`))?.claimed_until, null);
  });

  it('CRM enrichment (HubSpot): the hanging search is aborted', async () => {
    const hubspot = createHubspotAdapter(hubspotConfigSchema.parse({ kind: 'hubspot', baseUrl: silent.url, token: 'h' }), { db });
    const activities = crmActivities(hubspot);
    await cancelledWhileWaiting(silent, (env) => env.run(() => activities.enrichCall({ tenantId, callId: 'pbx:e', customerPhone: '+14155550142' })));
  });

  it('WhatsApp send: the hanging send is aborted and the key released', async () => {
    const whatsapp = createWhatsAppAdapter(whatsappConfigSchema.parse({ baseUrl: silent.url, phoneNumberId: 'PN1', wabaId: 'W1', token: 'w' }), { db });
    const activities = createMessagingActivities({ db, config: testConfig(), whatsapp: () => whatsapp });
    const leadId = uniqueId('L');
    const input: SendWhatsAppInput = { tenantId, leadId, effectKey: `wa:${leadId}:welcome:message`, to: '+14155550142', message: { type: 'text', text: 'Hello' } };
    await cancelledWhileWaiting(silent, (env) => env.run((one: SendWhatsAppInput) => activities.sendWhatsApp(one), input));
    assert.equal((await ledgerRow(input.effectKey))?.claimed_until, null);
  });

  it('Slack alert and follow-up e-mail (an SMTP server that never greets): both aborted', async () => {
    const smtp = await startSilent('tcp');
    extra.push(smtp);
    const mailer = createMailer(emailConfigSchema.parse({ smtpUrl: `smtp://127.0.0.1:${smtp.port}`, from: 'calls@example.com' }));
    const activities = createNotificationActivities({
      db,
      slack: () => ({ alertsWebhookUrl: `${silent.url}/services/T1/B1/x` }),
      email: () => ({ config: emailConfigSchema.parse({ smtpUrl: `smtp://127.0.0.1:${smtp.port}`, from: 'calls@example.com' }), mailer }),
      displayName: () => 'Acme',
    });
    try {
      const callId = `pbx:${uniqueId('n')}`;
      await cancelledWhileWaiting(silent, (env) => env.run(() => activities.sendSlackAlert({ tenantId, callId, trigger: 'low_satisfaction', customerLabel: 'a caller' })));
      await cancelledWhileWaiting(smtp, (env) => env.run(() => activities.sendFollowUpEmail({ tenantId, callId, template: 'thank_you', to: 'caller@example.com' })));
    } finally {
      mailer.close();
    }
  });

  it('recording download: the hanging download is aborted', async () => {
    const tenant = tenantSchema.parse({
      displayName: 'Acme',
      defaultRegion: 'US',
      timeZone: 'UTC',
      secrets: { webhookSigningSecret: 's', operatorToken: 'o' },
      recordings: { privateNetworkHosts: ['127.0.0.1'], allowPlainHttp: true },
    });
    const activities = createRecordingActivities({ db, tenant: () => tenant });
    await cancelledWhileWaiting(silent, (env) => env.run(() => activities.fetchRecording({ tenantId, callId: 'pbx:r', provider: 'pbx', url: `${silent.url}/recordings/r.wav` })));
  });

  it('a request waiting for its rate-limit slot stops waiting when cancelled, and is known not to have been sent', async () => {
    const gate = new RequestGate('Test', slotsFrom(undefined, [new RateBucket('test', 0.01)]), 1);
    await gate.take();
    const controller = new AbortController();
    // The next slot is 100 s away.
    const waiting = withCancellation(controller.signal, () => gate.take()).then(
      () => assert.fail('the wait was expected to end cancelled'),
      (error: unknown) => error,
    );
    controller.abort();
    assert.ok((await waiting) instanceof RequestNotSentError);
  });

  function crmActivities(crm: CrmAdapter) {
    return createCrmActivities({
      db,
      crm: () => crm,
      tenant: () => tenantSchema.parse({ displayName: 'Acme', defaultRegion: 'US', timeZone: 'UTC', secrets: { webhookSigningSecret: 's', operatorToken: 'o' } }),
      publicUrl: 'http://localhost:3000',
      isVipPhone: () => false,
    });
  }

  function crmInput(): CrmSyncInput {
    return { tenantId, callId: `pbx:${uniqueId('k')}`, direction: 'inbound', customerPhone: '+14155550142', startedAt: new Date().toISOString(), durationSeconds: 30, disposition: 'answered', hasRecording: false };
  }
});
