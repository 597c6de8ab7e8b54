/**
 * The chaos run's traffic: open loop at a fixed rate (each delivery leaves at its slot whatever
 * the answers, as in bench/open-loop.ts), signed as the real senders sign (sandboxes/pbx-simulator.ts),
 * spread over both API processes. Calls come through every phone system (PBX, Twilio, voice-AI),
 * leads through the CRM webhook with meetings whose reminders fall due during the run. Senders
 * behave as the README asks of them: 5xx, 429, timeouts and refused connections are retried with
 * backoff (honouring Retry-After), each retry to the other API process; a few deliveries are sent
 * twice on purpose, and some analytics arrive just as their call's workflow wraps up.
 */
import http from 'node:http';
import { pbxEvents, random, signedJsonRequest, signedTwilioRequest, twilioCallbacks, voiceAiEvents } from '../sandboxes/pbx-simulator.js';
import type { CallPlan } from '../sandboxes/pbx-simulator.js';

export type Provider = 'pbx' | 'twilio' | 'voice-ai' | 'crm';

export type CallKind = 'pbx-answered' | 'pbx-missed' | 'pbx-outbound' | 'twilio-answered' | 'twilio-missed' | 'voice-ai-resolved' | 'voice-ai-unresolved';

/** A row the journal must hold once a delivery is accepted. */
export type JournalEntry = { kind: 'call'; tenantId: string; callId: string; eventId: string } | { kind: 'lead'; tenantId: string; leadId: string; entryKey: string };

export interface PlannedDelivery {
  index: number;
  tenantIndex: number;
  provider: Provider;
  path: string;
  /** Built at the first send (times in it are the sender's clock then), kept for every retry. */
  build: (nowMs: number) => { json: Record<string, unknown> } | { form: Array<[string, string]> };
  /** When its slot comes, ms after the start of the traffic. */
  offsetMs: number;
  /** Goes only once `index` was accepted, `delayMs` after that. */
  after?: { index: number; delayMs: number };
  /** The API process the first attempt goes to. */
  api: number;
  journal: JournalEntry[];
  /** A second delivery of an earlier one (same body), as a sender that retries on its own. */
  redeliveryOf?: number;
  unit: number;
}

export interface PlannedCall {
  unit: number;
  tenantIndex: number;
  /** `<provider>:<provider call id>`, as the journal names it. */
  callId: string;
  kind: CallKind;
  inbound: boolean;
  /** A missed inbound call: a call-back task in the CRM. */
  missedInbound: boolean;
  /** Answered but unresolved (voice-AI analytics): a ticket. */
  ticket: boolean;
  /** The deliveries of its own events (no redeliveries). */
  deliveries: number[];
  endDelivery: number;
  analyticsDelivery?: number;
  lateAnalytics: boolean;
}

export interface PlannedLead {
  unit: number;
  tenantIndex: number;
  leadId: string;
  created: number;
  booked: number;
  /** Filled in when the booking is first sent: the meeting's start (epoch ms). */
  meetingStartsAt?: number;
}

export interface TrafficPlan {
  deliveries: PlannedDelivery[];
  calls: PlannedCall[];
  leads: PlannedLead[];
}

export interface PlanOptions {
  runTag: string;
  tenants: Array<{ id: string; callerPhones: string[] }>;
  ratePerSecond: number;
  durationMs: number;
  seed: number;
  /** The call workflows' wrap-up: late analytics are aimed at its end. */
  wrapUpMs: number;
  /** How far after its booking a meeting's 1 h reminder falls due. */
  reminderLeadMs: [number, number];
}

const leadUnitShare = 0.2;
const redeliveryShare = 0.05;
const lateAnalyticsShare = 0.3;
const linePhone = '+12125550100';

function pickCallKind(value: number): CallKind {
  const table: Array<[number, CallKind]> = [
    [0.35, 'pbx-answered'],
    [0.47, 'pbx-missed'],
    [0.53, 'pbx-outbound'],
    [0.72, 'twilio-answered'],
    [0.78, 'twilio-missed'],
    [0.92, 'voice-ai-resolved'],
    [1, 'voice-ai-unresolved'],
  ];
  return table.find(([upTo]) => value < upTo)?.[1] ?? 'pbx-answered';
}

/**
 * `ratePerSecond × duration` deliveries: call and lead "units", each placed at a random moment of
 * the run with its events seconds apart, then the k-th delivery in time gets the k-th slot
 * (k / rate), so arrivals are constant and each unit's events keep their order (as bench/open-loop-scenarios.ts).
 */
export function planTraffic(options: PlanOptions): TrafficPlan {
  const next = random(options.seed);
  const total = Math.max(1, Math.round(options.ratePerSecond * (options.durationMs / 1000)));
  const seconds = options.durationMs / 1000;
  const drafts: Array<Omit<PlannedDelivery, 'index' | 'offsetMs'> & { at: number; order: number; draft: number }> = [];
  const calls: PlannedCall[] = [];
  const leads: PlannedLead[] = [];
  let draftCount = 0;
  const accountSid = `AC${'c'.repeat(32)}`;

  for (let unit = 0; draftCount < total; unit++) {
    const tenantIndex = unit % options.tenants.length;
    const tenant = options.tenants[tenantIndex] as PlanOptions['tenants'][number];
    const api = Math.floor(next() * 2);
    const push = (delivery: Omit<PlannedDelivery, 'index' | 'offsetMs' | 'unit' | 'tenantIndex' | 'api'> & { at: number; order: number; api?: number }): number => {
      drafts.push({ ...delivery, unit, tenantIndex, api: delivery.api ?? api, draft: draftCount });
      return draftCount++;
    };
    const begin = next() * Math.max(1, seconds - 15);

    if (next() < leadUnitShare) {
      const leadId = `${options.runTag}-L${unit}`;
      const phone = `+1917${2_000_000 + unit}`;
      const created = push({
        at: begin,
        order: 0,
        provider: 'crm',
        path: `/webhooks/${tenant.id}/crm`,
        build: (now) => ({ json: { event_id: `${leadId}-created`, event: 'lead.created', lead_id: leadId, occurred_at: new Date(now).toISOString(), lead: { name: `Lead ${unit}`, phone, time_zone: 'America/New_York' } } }),
        journal: [{ kind: 'lead', tenantId: tenant.id, leadId, entryKey: `event:crm:${leadId}-created` }],
      });
      const lead: PlannedLead = { unit, tenantIndex, leadId, created, booked: -1 };
      const reminderLeadMs = options.reminderLeadMs[0] + next() * (options.reminderLeadMs[1] - options.reminderLeadMs[0]);
      lead.booked = push({
        at: begin + 12,
        order: 1,
        provider: 'crm',
        path: `/webhooks/${tenant.id}/crm`,
        // After the creation was accepted: a booking applied first would leave the lead without its welcome.
        after: { index: created, delayMs: 10_000 + next() * 5_000 },
        build: (now) => {
          const startsAt = now + 3_600_000 + reminderLeadMs;
          lead.meetingStartsAt = startsAt;
          return {
            json: {
              event_id: `${leadId}-booked`,
              event: 'meeting.booked',
              lead_id: leadId,
              occurred_at: new Date(now).toISOString(),
              meeting: { id: `${leadId}-m1`, starts_at: new Date(startsAt).toISOString(), ends_at: new Date(startsAt + 1_800_000).toISOString() },
            },
          };
        },
        journal: [{ kind: 'lead', tenantId: tenant.id, leadId, entryKey: `event:crm:${leadId}-booked` }],
      });
      leads.push(lead);
      continue;
    }

    const kind = pickCallKind(next());
    const providerCallId = `${options.runTag}-c${unit}`;
    const customerPhone = tenant.callerPhones[unit % tenant.callerPhones.length] ?? '+16465551000';
    const startedAt = (now: number): Date => new Date(now - 1_000);
    const ids: number[] = [];
    let endDelivery: number;
    let analyticsDelivery: number | undefined;
    let lateAnalytics = false;
    let callId: string;
    const inbound = kind !== 'pbx-outbound';
    const missed = kind === 'pbx-missed' || kind === 'twilio-missed';
    const ringSeconds = 1 + Math.floor(next() * 3);
    const talkSeconds = 2 + Math.floor(next() * 7);

    if (kind.startsWith('pbx')) {
      callId = `pbx:${providerCallId}`;
      // The events of one call are built together at its first send, so their times agree.
      let bodies: Array<Record<string, unknown>> | undefined;
      const bodiesAt = (now: number): Array<Record<string, unknown>> => {
        const plan: CallPlan = { callId: providerCallId, direction: inbound ? 'inbound' : 'outbound', customerPhone, linePhone, agentId: `agent-${unit % 20}`, outcome: missed ? 'missed' : 'answered', startedAt: startedAt(now), ringSeconds, talkSeconds };
        return (bodies ??= pbxEvents(plan));
      };
      const count = missed ? 2 : 3;
      const offsets = missed ? [0, ringSeconds] : [0, ringSeconds, ringSeconds + talkSeconds];
      for (let order = 0; order < count; order++) {
        const eventId = order === 0 ? `${providerCallId}-ring` : order === count - 1 ? `${providerCallId}-end` : `${providerCallId}-answer`;
        ids.push(
          push({
            at: begin + (offsets[order] ?? 0),
            order,
            provider: 'pbx',
            path: `/webhooks/${tenant.id}/pbx`,
            build: (now) => ({ json: bodiesAt(now)[order] ?? {} }),
            journal: [{ kind: 'call', tenantId: tenant.id, callId, eventId: `pbx:${eventId}` }],
          }),
        );
      }
      endDelivery = ids[ids.length - 1] ?? -1;
    } else if (kind.startsWith('twilio')) {
      const callSid = `CA${providerCallId.replace(/[^A-Za-z0-9]/g, '')}`;
      callId = `twilio:${callSid}`;
      let forms: Array<Record<string, string>> | undefined;
      const formsAt = (now: number): Array<Record<string, string>> =>
        (forms ??= twilioCallbacks({ callId: callSid, direction: 'inbound', customerPhone, linePhone, agentId: 'agent-1', outcome: missed ? 'missed' : 'answered', startedAt: startedAt(now), ringSeconds, talkSeconds, accountSid }));
      const statuses = missed ? ['ringing', 'no-answer'] : ['ringing', 'in-progress', 'completed'];
      const offsets = missed ? [0, ringSeconds] : [0, ringSeconds, ringSeconds + talkSeconds];
      for (const [order, status] of statuses.entries()) {
        ids.push(
          push({
            at: begin + (offsets[order] ?? 0),
            order,
            provider: 'twilio',
            path: `/webhooks/${tenant.id}/twilio`,
            build: (now) => ({ form: Object.entries(formsAt(now)[order] ?? {}) }),
            journal: [{ kind: 'call', tenantId: tenant.id, callId, eventId: `twilio:${status}` }],
          }),
        );
      }
      endDelivery = ids[ids.length - 1] ?? -1;
    } else {
      callId = `voice-ai:${providerCallId}`;
      const resolved = kind === 'voice-ai-resolved';
      const durationSeconds = 3 + Math.floor(next() * 8);
      let bodies: Array<Record<string, unknown>> | undefined;
      const bodiesAt = (now: number): Array<Record<string, unknown>> =>
        (bodies ??= voiceAiEvents({ callId: providerCallId, agentId: 'ai-agent', direction: 'inbound', customerPhone, agentPhone: linePhone, startedAt: startedAt(now), durationSeconds, satisfaction: resolved ? 5 : 3, resolved, issueType: 'Billing' }));
      const journalIds = [['voice-ai:start', 'voice-ai:answered'], ['voice-ai:end'], ['voice-ai:analytics']];
      lateAnalytics = next() < lateAnalyticsShare;
      const offsets = [0, durationSeconds, durationSeconds + 1];
      for (let order = 0; order < 3; order++) {
        const late = order === 2 && lateAnalytics;
        ids.push(
          push({
            at: begin + (offsets[order] ?? 0),
            order,
            provider: 'voice-ai',
            path: `/webhooks/${tenant.id}/voice-ai`,
            build: (now) => ({ json: bodiesAt(now)[order] ?? {} }),
            // Aimed at the moment the workflow wraps up and writes its final journal row.
            ...(late ? { after: { index: draftCount - 1, delayMs: options.wrapUpMs - 2_500 + next() * 5_000 } } : {}),
            journal: (journalIds[order] ?? []).map((eventId) => ({ kind: 'call' as const, tenantId: tenant.id, callId, eventId })),
          }),
        );
      }
      endDelivery = ids[1] ?? -1;
      analyticsDelivery = ids[2];
    }
    calls.push({ unit, tenantIndex, callId, kind, inbound, missedInbound: inbound && missed, ticket: kind === 'voice-ai-unresolved', deliveries: ids, endDelivery, ...(analyticsDelivery === undefined ? {} : { analyticsDelivery }), lateAnalytics });
  }

  // A few deliveries again, to the other API process, seconds after the first was accepted.
  const originals = drafts.length;
  for (let draft = 0; draft < originals; draft++) {
    if (next() >= redeliveryShare) continue;
    const original = drafts[draft];
    if (!original) continue;
    drafts.push({ ...original, api: 1 - original.api, at: original.at + 3, order: original.order + 0.5, after: { index: draft, delayMs: 1_000 + next() * 4_000 }, redeliveryOf: draft, draft: draftCount++ });
  }

  // Slots in time order; each delivery's index is its draft number, so `after` and the plans keep pointing right.
  const byTime = [...drafts].sort((a, b) => a.at - b.at || a.unit - b.unit || a.order - b.order);
  const deliveries: PlannedDelivery[] = new Array<PlannedDelivery>(drafts.length);
  for (const [slot, draft] of byTime.entries()) {
    const { at: _at, order: _order, draft: index, ...rest } = draft;
    deliveries[index] = { ...rest, index, offsetMs: (slot * 1000) / options.ratePerSecond };
  }
  return { deliveries, calls, leads };
}

/** HTTP status of an attempt, or one of these. */
export const timedOut = 0;
export const connectionFailed = -1;

export interface Attempt {
  delivery: number;
  attempt: number;
  api: number;
  /** Epoch ms when it was sent. */
  at: number;
  status: number;
  latencyMs: number;
  /** The `error` of a refusal, or the connection error's code. */
  reason?: string;
  /** `inbox` or `temporal`: where the accepted event went first. */
  via?: string;
}

export interface DeliveryOutcome {
  /** Epoch ms of the first 2xx answer. */
  acceptedAt?: number;
  attempts: number;
  /** Last status seen. */
  status?: number;
  /** Never accepted: retries ran out, or it was refused for good. */
  gaveUp?: boolean;
  /** Not sent: what it depends on was never accepted. */
  skipped?: boolean;
  /** Epoch ms of the first send. */
  firstSentAt?: number;
}

export interface TrafficResult {
  /** Epoch ms of slot 0. */
  startedAt: number;
  /** Epoch ms when the last delivery settled. */
  endedAt: number;
  attempts: Attempt[];
  outcomes: DeliveryOutcome[];
}

export interface TrafficOptions {
  plan: TrafficPlan;
  apiUrls: string[];
  /** The URL Twilio signs (the front door). */
  publicUrl: string;
  secrets: Array<{ pbx: string; voiceAi: string; crm: string; twilio: string }>;
  timeoutMs?: number;
  maxAttempts?: number;
  seed: number;
  onStart?: (startedAt: number) => void;
}

const retryable = (status: number): boolean => status === timedOut || status === connectionFailed || status === 408 || status === 429 || status >= 500;
/** Signatures older than 5 minutes are refused as stale: a sender re-signs a retry well before that. */
const resignAfterMs = 240_000;

export async function runTraffic(options: TrafficOptions): Promise<TrafficResult> {
  const { plan } = options;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const maxAttempts = options.maxAttempts ?? 12;
  const jitter = random(options.seed ^ 0x5eed);
  const agents = options.apiUrls.map(() => new http.Agent({ keepAlive: true, maxSockets: 256 }));
  const targets = options.apiUrls.map((url) => new URL(url));
  const attempts: Attempt[] = [];
  const outcomes: DeliveryOutcome[] = plan.deliveries.map(() => ({ attempts: 0 }));
  const signed = new Map<number, { at: number; headers: Record<string, string>; body: string }>();
  const bodies = new Map<number, ReturnType<PlannedDelivery['build']>>();
  /** Retries and deliveries waiting for what they depend on: due time (epoch ms). */
  const waiting = new Map<number, { dueAt: number; attempt: number; api: number }>();
  let inFlight = 0;
  let nextSlot = 0;
  const slots = [...plan.deliveries].sort((a, b) => a.offsetMs - b.offsetMs);
  const startedAt = Date.now() + 100;
  options.onStart?.(startedAt);

  const requestFor = (delivery: PlannedDelivery, now: number): { headers: Record<string, string>; body: string } => {
    const existing = signed.get(delivery.index);
    if (existing && now - existing.at < resignAfterMs) return existing;
    const sourceIndex = delivery.redeliveryOf ?? delivery.index;
    let built = bodies.get(sourceIndex);
    if (!built) {
      built = (plan.deliveries[sourceIndex] ?? delivery).build(now);
      bodies.set(sourceIndex, built);
    }
    const secrets = options.secrets[delivery.tenantIndex];
    if (!secrets) throw new Error(`no secrets for tenant ${delivery.tenantIndex}`);
    const request =
      'form' in built
        ? signedTwilioRequest(secrets.twilio, `${options.publicUrl}${delivery.path}`, built.form)
        : signedJsonRequest(delivery.provider === 'voice-ai' ? secrets.voiceAi : delivery.provider === 'crm' ? secrets.crm : secrets.pbx, built.json, Math.floor(now / 1000));
    const entry = { at: now, ...request };
    signed.set(delivery.index, entry);
    return entry;
  };

  const send = (delivery: PlannedDelivery, attempt: number, api: number): void => {
    const now = Date.now();
    const outcome = outcomes[delivery.index] as DeliveryOutcome;
    outcome.attempts = attempt;
    outcome.firstSentAt ??= now;
    const { headers, body } = requestFor(delivery, now);
    const target = targets[api] as URL;
    const started = performance.now();
    inFlight++;
    let settled = false;
    const settle = (status: number, reason?: string, via?: string, retryAfterMs?: number): void => {
      if (settled) return;
      settled = true;
      inFlight--;
      clearTimeout(timer);
      attempts.push({ delivery: delivery.index, attempt, api, at: now, status, latencyMs: performance.now() - started, ...(reason ? { reason } : {}), ...(via ? { via } : {}) });
      outcome.status = status;
      if (status >= 200 && status < 300) {
        outcome.acceptedAt ??= Date.now();
        return;
      }
      if (outcome.acceptedAt !== undefined) return; // a redelivery's own retry is not needed once one copy got in
      if (!retryable(status) || attempt >= maxAttempts) {
        outcome.gaveUp = true;
        return;
      }
      const backoffMs = retryAfterMs ?? Math.min(10_000, 1_000 * 2 ** (attempt - 1));
      waiting.set(delivery.index, { dueAt: Date.now() + Math.min(10_000, backoffMs) + jitter() * 250, attempt: attempt + 1, api: (api + 1) % targets.length });
    };
    const outgoing = http.request(
      { host: target.hostname, port: target.port, path: delivery.path, method: 'POST', agent: agents[api], headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) } },
      (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => {
          if (text.length < 4_000) text += chunk;
        });
        response.once('end', () => {
          let parsed: { error?: unknown; via?: unknown } = {};
          try {
            parsed = JSON.parse(text) as typeof parsed;
          } catch {
            // not JSON
          }
          const retryAfter = Number(response.headers['retry-after']);
          settle(response.statusCode ?? 0, typeof parsed.error === 'string' ? parsed.error : undefined, typeof parsed.via === 'string' ? parsed.via : undefined, Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : undefined);
        });
        response.once('error', () => settle(connectionFailed, 'response_error'));
      },
    );
    // The sender's own deadline, as a phone system's webhook client has.
    const timer = setTimeout(() => {
      settle(timedOut, 'timeout');
      outgoing.destroy();
    }, timeoutMs);
    outgoing.on('error', (error: NodeJS.ErrnoException) => settle(connectionFailed, error.code ?? 'connection_error'));
    outgoing.end(body);
  };

  /** Sends now, later (waiting on what it depends on), or never (that was never accepted). */
  const offer = (delivery: PlannedDelivery, attempt: number, api: number): void => {
    if (attempt === 1 && delivery.after) {
      const dependency = outcomes[delivery.after.index] as DeliveryOutcome;
      if (dependency.acceptedAt === undefined) {
        if (dependency.gaveUp || dependency.skipped) {
          (outcomes[delivery.index] as DeliveryOutcome).skipped = true;
          return;
        }
        waiting.set(delivery.index, { dueAt: Date.now() + 250, attempt, api });
        return;
      }
      const dueAt = dependency.acceptedAt + delivery.after.delayMs;
      if (Date.now() < dueAt) {
        waiting.set(delivery.index, { dueAt, attempt, api });
        return;
      }
    }
    send(delivery, attempt, api);
  };

  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const now = Date.now();
      for (let delivery = slots[nextSlot]; delivery && startedAt + delivery.offsetMs <= now; delivery = slots[nextSlot]) {
        nextSlot++;
        offer(delivery, 1, delivery.api);
      }
      for (const [index, entry] of [...waiting]) {
        if (entry.dueAt > now) continue;
        waiting.delete(index);
        const delivery = plan.deliveries[index];
        if (delivery) offer(delivery, entry.attempt, entry.api);
      }
      if (nextSlot >= slots.length && waiting.size === 0 && inFlight === 0) return resolve();
      setTimeout(tick, 10);
    };
    setTimeout(tick, Math.max(0, startedAt - Date.now()));
  });
  for (const agent of agents) agent.destroy();
  return { startedAt, endedAt: Date.now(), attempts, outcomes };
}
