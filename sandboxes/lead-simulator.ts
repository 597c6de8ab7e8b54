/**
 * Simulated CRM traffic for the demo: new leads, some of whom reply on WhatsApp, book meetings,
 * reschedule or opt out, so every lead flow shows up in the timeline and the dashboard.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { random, signedJsonRequest } from './pbx-simulator.js';
import type { WhatsAppSandbox } from './whatsapp.js';

export interface LeadSimulatorOptions {
  apiUrl: string;
  tenantId: string;
  webhookSecret: string;
  whatsapp: WhatsAppSandbox;
  leadsPerMinute: number;
  seed?: number;
  signal?: AbortSignal;
  onError?: (error: unknown) => void;
}

const names = ['Ana Gil', 'Bo Chen', 'Cy Dow', 'Di Eze', 'Ed Fox', 'Flo Gray', 'Gus Hall', 'Hana Ito', 'Ivo Jung', 'Jo Kay'];
const zones = ['America/New_York', 'America/Los_Angeles', 'Europe/London', 'Europe/Berlin', 'Asia/Tokyo'];

export async function runLeadSimulator(options: LeadSimulatorOptions): Promise<void> {
  if (options.leadsPerMinute <= 0) return;
  const next = random(options.seed ?? Date.now());
  const post = async (body: Record<string, unknown>): Promise<void> => {
    const request = signedJsonRequest(options.webhookSecret, body);
    await fetch(`${options.apiUrl}/webhooks/${options.tenantId}/crm`, { method: 'POST', headers: request.headers, body: request.body, signal: AbortSignal.timeout(10_000) });
  };
  const wait = (ms: number) => delay(ms, undefined, { signal: options.signal }).catch(() => undefined);
  const inFlight = new Set<Promise<void>>();
  let sequence = 0;
  while (!options.signal?.aborted) {
    sequence++;
    const leadId = `demo-${Date.now().toString(36)}-${sequence}`;
    const phone = `+1628555${String(2000 + Math.floor(next() * 7000))}`;
    const story = next();
    const lead = (async () => {
      let event = 0;
      const send = (body: Record<string, unknown>) => post({ event_id: `${leadId}-${++event}`, lead_id: leadId, occurred_at: new Date().toISOString(), ...body }).catch(options.onError ?? (() => undefined));
      await send({ event: 'lead.created', lead: { name: names[Math.floor(next() * names.length)], phone, time_zone: zones[Math.floor(next() * zones.length)] } });
      await wait(20_000 + next() * 40_000);
      if (options.signal?.aborted) return;
      if (story < 0.35) {
        await options.whatsapp.inbound({ from: phone, text: 'Hi, can you tell me more?' }).catch(options.onError ?? (() => undefined));
      } else if (story < 0.7) {
        const startsAt = Date.now() + (1 + Math.floor(next() * 3)) * 86_400_000;
        await send({ event: 'meeting.booked', meeting: { id: `${leadId}-m1`, starts_at: new Date(startsAt).toISOString(), ends_at: new Date(startsAt + 1_800_000).toISOString() } });
        if (story < 0.45) {
          await wait(30_000);
          await send({ event: 'meeting.rescheduled', meeting: { id: `${leadId}-m1`, starts_at: new Date(startsAt + 86_400_000).toISOString() } });
        }
      } else if (story < 0.78) {
        await options.whatsapp.inbound({ from: phone, text: 'STOP' }).catch(options.onError ?? (() => undefined));
      }
    })();
    inFlight.add(lead);
    void lead.finally(() => inFlight.delete(lead));
    await wait((60_000 / options.leadsPerMinute) * (0.5 + next()));
  }
  await Promise.allSettled(inFlight);
}
