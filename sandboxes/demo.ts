/**
 * Demo mode: the sandbox servers, listening at the URLs the demo tenant's configuration names
 * (so the product talks to them exactly as it would to the real systems), plus the PBX simulator.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { AppConfig } from '../config/load.js';
import { switchboardSigningSecret } from '../security/secrets.js';
import { runLeadSimulator } from './lead-simulator.js';
import { runPbxSimulator } from './pbx-simulator.js';
import { deterministicWav, startRecordingHost } from './recordings.js';
import { startTenantSandboxes } from './tenant.js';

async function waitForApi(apiUrl: string, signal: AbortSignal): Promise<void> {
  while (!signal.aborted) {
    if (await fetch(`${apiUrl}/healthz`).then((response) => response.ok, () => false)) return;
    await delay(500, undefined, { signal }).catch(() => undefined);
  }
}

export interface DemoSandboxes {
  urls: Record<string, string>;
  stop(): Promise<void>;
}

export async function startDemoSandboxes(config: AppConfig, log: (message: string) => void): Promise<DemoSandboxes> {
  const tenant = config.tenants[config.demo.tenant];
  if (!tenant) throw new Error(`demo tenant ${config.demo.tenant} is not configured`);
  const apiUrl = `http://127.0.0.1:${config.api.port}`;
  const sandboxes = await startTenantSandboxes(config.demo.tenant, tenant, {
    apiUrl,
    smtpInspectionPort: config.demo.smtpInspectionPort,
    autoRead: true,
  });
  const stops: Array<() => Promise<void>> = [() => sandboxes.stop()];
  const { urls, kommo, hubspot, whatsapp } = sandboxes;
  // Every other simulated caller is already a contact in the tenant's CRM; the rest are unknown callers.
  const knownCallers = Array.from({ length: 20 }, (_, half) => half * 2).map((index) => ({
    firstName: 'Demo',
    lastName: `Customer ${index + 1}`,
    phone: `+1415555${String(1000 + index).padStart(4, '0')}`,
    email: `customer${index + 1}@demo.example`,
    company: index % 4 === 0 ? 'Acme Corp' : 'Globex',
  }));
  if (kommo) {
    for (const caller of knownCallers) kommo.seedContact({ name: `${caller.firstName} ${caller.lastName}`, phone: caller.phone, email: caller.email, company: caller.company });
    kommo.seedUser({ id: 1, name: 'Dana Rep', email: 'dana@demo.example' });
  }
  if (hubspot) {
    const owner = hubspot.seedOwner({ email: 'dana@demo.example', firstName: 'Dana', lastName: 'Rep' });
    for (const caller of knownCallers) hubspot.seedContact({ firstname: caller.firstName, lastname: caller.lastName, phone: caller.phone, email: caller.email, company: caller.company, ownerId: owner.id });
  }
  const recordings = await startRecordingHost({
    port: config.demo.recordingsPort,
    ...(tenant.pbxRecordingAuth ? { basicAuth: tenant.pbxRecordingAuth } : {}),
  });
  stops.push(() => recordings.stop());
  urls.recordings = recordings.url;

  const simulation = new AbortController();
  // Calls start once the API answers; until then the sandboxes already serve the workers.
  const simulator = waitForApi(apiUrl, simulation.signal).then(() => runPbxSimulator({
    apiUrl,
    tenantId: config.demo.tenant,
    webhookSecret: switchboardSigningSecret(tenant.secrets, 'pbx'),
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
            webhookSecret: switchboardSigningSecret(tenant.secrets, 'crm'),
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
