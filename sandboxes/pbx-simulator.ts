/**
 * Realistic phone-system traffic for tests, benchmarks and the `npm start` demo: signed PBX JSON,
 * voice-AI events and Twilio status callbacks, with duplicates and reordering as real systems
 * produce them.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { switchboardSignature, twilioSignature } from '../security/signatures.js';

export type Outcome = 'answered' | 'missed' | 'abandoned' | 'busy' | 'voicemail';

export interface CallPlan {
  callId: string;
  direction: 'inbound' | 'outbound';
  customerPhone: string;
  linePhone: string;
  agentId: string;
  outcome: Outcome;
  startedAt: Date;
  ringSeconds: number;
  talkSeconds: number;
  recordingUrl?: string;
}

/** A small deterministic PRNG (mulberry32), so a seed reproduces the same traffic. */
export function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

export function shuffle<T>(items: readonly T[], next: () => number): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [copy[i], copy[j]] = [copy[j] as T, copy[i] as T];
  }
  return copy;
}

const iso = (at: Date, plusSeconds: number): string => new Date(at.getTime() + plusSeconds * 1000).toISOString();

/** The PBX webhooks of one call, in the order they happened. */
export function pbxEvents(plan: CallPlan): Array<Record<string, unknown>> {
  const common = { call_id: plan.callId, direction: plan.direction, from: plan.direction === 'inbound' ? plan.customerPhone : plan.linePhone, to: plan.direction === 'inbound' ? plan.linePhone : plan.customerPhone };
  const events: Array<Record<string, unknown>> = [
    { ...common, event_id: `${plan.callId}-ring`, event: 'call.ringing', timestamp: iso(plan.startedAt, 0) },
  ];
  const answered = plan.outcome === 'answered';
  if (answered) events.push({ ...common, event_id: `${plan.callId}-answer`, event: 'call.answered', timestamp: iso(plan.startedAt, plan.ringSeconds), agent_id: plan.agentId });
  const endAt = plan.ringSeconds + (answered ? plan.talkSeconds : 0);
  events.push({
    ...common,
    event_id: `${plan.callId}-end`,
    event: 'call.ended',
    timestamp: iso(plan.startedAt, endAt),
    duration: answered ? plan.talkSeconds : 0,
    disposition: plan.outcome,
    ...(answered ? { agent_id: plan.agentId } : {}),
  });
  if (answered && plan.recordingUrl) {
    events.push({ ...common, event_id: `${plan.callId}-rec`, event: 'call.recording_ready', timestamp: iso(plan.startedAt, endAt + 2), recording_url: plan.recordingUrl });
  }
  return events;
}

export interface VoiceAiPlan {
  callId: string;
  agentId: string;
  direction: 'inbound' | 'outbound';
  customerPhone: string;
  agentPhone: string;
  startedAt: Date;
  durationSeconds: number;
  satisfaction?: number;
  resolved?: boolean;
  sentiment?: 'positive' | 'neutral' | 'negative';
  issueType?: string;
  transferRequested?: boolean;
  email?: string;
}

/** call.start, call.end (transcript, variables) and analytics.completed of a voice-AI agent's call. */
export function voiceAiEvents(plan: VoiceAiPlan): Array<Record<string, unknown>> {
  const envelope = { agent_id: plan.agentId, call_id: plan.callId };
  const events: Array<Record<string, unknown>> = [
    { ...envelope, event: 'call.start', timestamp: iso(plan.startedAt, 0), call_direction: plan.direction, caller_phone: plan.customerPhone, agent_phone: plan.agentPhone },
    {
      ...envelope,
      event: 'call.end',
      timestamp: iso(plan.startedAt, plan.durationSeconds),
      duration_seconds: plan.durationSeconds,
      disposition: plan.transferRequested ? 'transferred' : 'completed',
      transcript: [
        { role: 'agent', text: 'Thanks for calling, how can I help?' },
        { role: 'user', text: `I have a question about ${plan.issueType ?? 'my account'}.` },
        { role: 'agent', text: plan.resolved === false ? 'Let me pass this on to a specialist.' : 'That is sorted for you now.' },
      ],
      variables: { ...(plan.email ? { email: plan.email } : {}), plan: 'pro' },
    },
  ];
  if (plan.satisfaction !== undefined || plan.resolved !== undefined) {
    events.push({
      ...envelope,
      event: 'analytics.completed',
      timestamp: iso(plan.startedAt, plan.durationSeconds + 5),
      metrics: {
        ...(plan.satisfaction !== undefined ? { satisfaction: plan.satisfaction } : {}),
        ...(plan.resolved !== undefined ? { resolved: plan.resolved } : {}),
        ...(plan.sentiment ? { sentiment: plan.sentiment } : {}),
        ...(plan.issueType ? { issue_type: plan.issueType } : {}),
        summary: `Caller asked about ${plan.issueType ?? 'their account'}.`,
        ...(plan.transferRequested !== undefined ? { transfer_requested: plan.transferRequested } : {}),
        talk_ratio: 0.55,
      },
    });
  }
  return events;
}

/** Twilio status callbacks (form fields) of one call. */
export function twilioCallbacks(plan: CallPlan & { accountSid: string }): Array<Record<string, string>> {
  const from = plan.direction === 'inbound' ? plan.customerPhone : plan.linePhone;
  const to = plan.direction === 'inbound' ? plan.linePhone : plan.customerPhone;
  const base = { AccountSid: plan.accountSid, CallSid: plan.callId, From: from, To: to, Direction: plan.direction === 'inbound' ? 'inbound' : 'outbound-api', ApiVersion: '2010-04-01' };
  const at = (seconds: number): string => new Date(plan.startedAt.getTime() + seconds * 1000).toUTCString();
  const callbacks: Array<Record<string, string>> = [{ ...base, CallStatus: 'ringing', Timestamp: at(0), SequenceNumber: '0' }];
  const answered = plan.outcome === 'answered';
  if (answered) callbacks.push({ ...base, CallStatus: 'in-progress', Timestamp: at(plan.ringSeconds), SequenceNumber: '1' });
  const finalStatus = answered ? 'completed' : plan.outcome === 'busy' ? 'busy' : plan.outcome === 'abandoned' ? 'canceled' : 'no-answer';
  callbacks.push({ ...base, CallStatus: finalStatus, Timestamp: at(plan.ringSeconds + plan.talkSeconds), SequenceNumber: '2', CallDuration: String(answered ? plan.talkSeconds : 0) });
  return callbacks;
}

export function signedJsonRequest(secret: string, body: unknown, nowSeconds = Math.floor(Date.now() / 1000)): { body: string; headers: Record<string, string> } {
  const text = JSON.stringify(body);
  return {
    body: text,
    headers: {
      'content-type': 'application/json',
      'x-switchboard-timestamp': String(nowSeconds),
      'x-switchboard-signature': switchboardSignature(secret, nowSeconds, text),
    },
  };
}

/** A form body signed as Twilio signs it; pairs (in body order) allow a repeated parameter. */
export function signedTwilioRequest(authToken: string, url: string, params: Record<string, string> | Array<[string, string]>): { body: string; headers: Record<string, string> } {
  const form = new URLSearchParams(params);
  return {
    body: form.toString(),
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': twilioSignature(authToken, url, form) },
  };
}

export interface SimulatorOptions {
  apiUrl: string;
  tenantId: string;
  webhookSecret: string;
  /** Average new calls per minute. */
  callsPerMinute: number;
  seed?: number;
  recordingBaseUrl?: string;
  /** Publishes a recording before the PBX announces it (the demo's recording host). */
  onRecording?: (path: string, seconds: number) => void;
  signal?: AbortSignal;
  onError?: (error: unknown) => void;
}

const lines = ['+12025550100', '+12025550101'];
const customers = Array.from({ length: 40 }, (_, index) => `+1415555${String(1000 + index).padStart(4, '0')}`);
const outcomes: Outcome[] = ['answered', 'answered', 'answered', 'answered', 'missed', 'abandoned', 'busy', 'voicemail'];

/**
 * Sends calls to a running API until aborted, as a flaky PBX does: events a little late, some
 * out of order, some twice. Used by `npm start` so a newcomer sees calls flow.
 */
export async function runPbxSimulator(options: SimulatorOptions): Promise<void> {
  const next = random(options.seed ?? Date.now());
  const post = async (event: Record<string, unknown>): Promise<void> => {
    const request = signedJsonRequest(options.webhookSecret, event);
    await fetch(`${options.apiUrl}/webhooks/${options.tenantId}/pbx`, { method: 'POST', headers: request.headers, body: request.body, signal: AbortSignal.timeout(10_000) });
  };
  let sequence = 0;
  const inFlight = new Set<Promise<void>>();
  while (!options.signal?.aborted) {
    sequence++;
    const ringSeconds = 2 + Math.floor(next() * 25);
    const talkSeconds = 20 + Math.floor(next() * 160);
    const plan: CallPlan = {
      callId: `sim-${Date.now().toString(36)}-${sequence}`,
      direction: next() < 0.8 ? 'inbound' : 'outbound',
      customerPhone: customers[Math.floor(next() * customers.length)] ?? '+14155551000',
      linePhone: lines[Math.floor(next() * lines.length)] ?? '+12025550100',
      agentId: `agent-${1 + Math.floor(next() * 6)}`,
      outcome: outcomes[Math.floor(next() * outcomes.length)] ?? 'answered',
      startedAt: new Date(),
      ringSeconds,
      talkSeconds,
    };
    if (options.recordingBaseUrl && plan.outcome === 'answered') {
      const path = `/recordings/${plan.callId}.wav`;
      options.onRecording?.(path, talkSeconds);
      plan.recordingUrl = `${options.recordingBaseUrl}${path}`;
    }
    // Events go out when they happen (calls last as long as they claim), a few of them late.
    const timeline = pbxEvents(plan).map((event) => ({ event, at: Date.parse(String(event.timestamp)) - plan.startedAt.getTime() }));
    const call = (async () => {
      const started = Date.now();
      for (const { event, at } of timeline) {
        const jitter = next() < 0.2 ? 1_500 * next() : 0; // late delivery reorders events
        await delay(Math.max(0, at - (Date.now() - started)) + jitter, undefined, { signal: options.signal }).catch(() => undefined);
        if (options.signal?.aborted) return;
        await post(event).catch(options.onError ?? (() => undefined));
        if (next() < 0.15) await post(event).catch(options.onError ?? (() => undefined)); // a retried delivery
      }
    })();
    inFlight.add(call);
    void call.finally(() => inFlight.delete(call));
    await delay((60_000 / options.callsPerMinute) * (0.5 + next()), undefined, { signal: options.signal }).catch(() => undefined);
  }
  await Promise.allSettled(inFlight);
}
