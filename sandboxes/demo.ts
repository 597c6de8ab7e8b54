/**
 * Demo mode: the sandbox servers, listening at the URLs the demo tenant's configuration names
 * (so the product talks to them exactly as it would to the real systems), plus the PBX simulator.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { AppConfig } from '../config/load.js';
import { startKommoSandbox } from './kommo.js';
import { runLeadSimulator } from './lead-simulator.js';
import { runPbxSimulator } from './pbx-simulator.js';
import { deterministicWav, startRecordingHost } from './recordings.js';
import { startSlackSandbox } from './slack.js';
import { startSmtpSandbox } from './smtp.js';
import { startTicketingSandbox } from './ticketing.js';
import { startWhatsAppSandbox } from './whatsapp.js';
import type { WhatsAppSandbox } from './whatsapp.js';

async function waitForApi(apiUrl: string, signal: AbortSignal): Promise<void> {
  while (!signal.aborted) {
    if (await fetch(`${apiUrl}/healthz`).then((response) => response.ok, () => false)) return;
    await delay(500, undefined, { signal }).catch(() => undefined);
  }
}

const portOf = (url: string): number => Number(new URL(url).port || (url.startsWith('https') ? 443 : 80));
const isLocal = (url: string): boolean => ['127.0.0.1', 'localhost'].includes(new URL(url).hostname);

export interface DemoSandboxes {
  urls: Record<string, string>;
  stop(): Promise<void>;
}

export async function startDemoSandboxes(config: AppConfig, log: (message: string) => void): Promise<DemoSandboxes> {
  const tenant = config.tenants[config.demo.tenant];
  if (!tenant) throw new Error(`demo tenant ${config.demo.tenant} is not configured`);
  const stops: Array<() => Promise<void>> = [];
  const urls: Record<string, string> = {};

  if (tenant.crm?.kind === 'kommo' && isLocal(tenant.crm.baseUrl)) {
    const kommo = await startKommoSandbox({ port: portOf(tenant.crm.baseUrl), token: tenant.crm.token });
    // Every other simulated caller is already a contact; the rest become incoming leads.
    for (let index = 0; index < 40; index += 2) {
      kommo.seedContact({ name: `Demo Customer ${index + 1}`, phone: `+1415555${String(1000 + index).padStart(4, '0')}`, email: `customer${index + 1}@demo.example`, company: index % 4 === 0 ? 'Acme Corp' : 'Globex' });
    }
    kommo.seedUser({ id: 1, name: 'Dana Rep', email: 'dana@demo.example' });
    stops.push(() => kommo.stop());
    urls.kommo = kommo.url;
  }
  if (tenant.ticketing && isLocal(tenant.ticketing.baseUrl)) {
    const ticketing = await startTicketingSandbox({ port: portOf(tenant.ticketing.baseUrl), token: tenant.ticketing.token });
    stops.push(() => ticketing.stop());
    urls.ticketing = ticketing.url;
  }
  const slackUrls = Object.values(tenant.slack ?? {}).filter((url): url is string => typeof url === 'string' && isLocal(url));
  const [firstSlack] = slackUrls;
  if (firstSlack) {
    const slack = await startSlackSandbox({ port: portOf(firstSlack), webhooks: slackUrls.map((url) => new URL(url).pathname) });
    stops.push(() => slack.stop());
    urls.slack = slack.url;
  }
  if (tenant.email && isLocal(tenant.email.smtpUrl.replace(/^smtps?/, 'http'))) {
    const smtp = await startSmtpSandbox({ smtpPort: portOf(tenant.email.smtpUrl.replace(/^smtps?/, 'http')), httpPort: config.demo.smtpInspectionPort });
    stops.push(() => smtp.stop());
    urls.smtp = smtp.url;
  }
  let whatsapp: WhatsAppSandbox | undefined;
  if (tenant.whatsapp && isLocal(tenant.whatsapp.baseUrl)) {
    whatsapp = await startWhatsAppSandbox({
      port: portOf(tenant.whatsapp.baseUrl),
      token: tenant.whatsapp.token,
      appSecret: tenant.secrets.whatsappAppSecret ?? 'demo-whatsapp-app-secret',
      phoneNumberId: tenant.whatsapp.phoneNumberId,
      wabaId: tenant.whatsapp.wabaId,
      // The approved templates the demo tenant's flows use.
      templates: Object.values(tenant.leads.messages).map((message) => ({
        name: message.template.name,
        language: message.template.language,
        category: message.template.category,
        body: `${message.text.replace(/\{\{\w+\}\}/g, '…')} ${message.template.params.map((_, index) => `{{${index + 1}}}`).join(' ')}`,
      })),
      webhookUrl: `http://127.0.0.1:${config.api.port}/webhooks/${config.demo.tenant}/whatsapp`,
      autoRead: true,
    });
    const sandbox = whatsapp;
    stops.push(() => sandbox.stop());
    urls.whatsapp = sandbox.url;
  }
  const recordings = await startRecordingHost({
    port: config.demo.recordingsPort,
    ...(tenant.pbxRecordingAuth ? { basicAuth: tenant.pbxRecordingAuth } : {}),
  });
  stops.push(() => recordings.stop());
  urls.recordings = recordings.url;

  const simulation = new AbortController();
  const apiUrl = `http://127.0.0.1:${config.api.port}`;
  // Calls start once the API answers; until then the sandboxes already serve the workers.
  const simulator = waitForApi(apiUrl, simulation.signal).then(() => runPbxSimulator({
    apiUrl,
    tenantId: config.demo.tenant,
    webhookSecret: tenant.secrets.webhookSigningSecret,
    callsPerMinute: config.demo.callsPerMinute,
    recordingBaseUrl: recordings.url,
    signal: simulation.signal,
    onRecording: (path, seconds) => recordings.put(path, deterministicWav(Math.min(seconds, 30), path), 'audio/wav'),
    onError: (error) => log(`simulator: ${(error as Error).message}`),
  }));
  const leadSimulator =
    whatsapp === undefined
      ? Promise.resolve()
      : waitForApi(apiUrl, simulation.signal).then(() =>
          runLeadSimulator({
            apiUrl,
            tenantId: config.demo.tenant,
            webhookSecret: tenant.secrets.webhookSigningSecret,
            whatsapp: whatsapp,
            leadsPerMinute: config.demo.leadsPerMinute,
            signal: simulation.signal,
            onError: (error) => log(`lead simulator: ${(error as Error).message}`),
          }),
        );
  return {
    urls,
    async stop() {
      simulation.abort();
      await Promise.all([simulator, leadSimulator]);
      for (const stop of stops.reverse()) await stop();
    },
  };
}
