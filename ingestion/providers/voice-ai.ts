/**
 * Voice-AI agent platforms. Envelope `{event, timestamp, agent_id, call_id}`; `call.start` adds
 * direction and phones, `call.end` adds duration, disposition, transcript and variables,
 * `analytics.completed` adds metrics. The `call_started` / `call_ended` / `call_analyzed`
 * spelling other platforms use is accepted too. Signed like /pbx.
 */
import { z } from 'zod';
import type { CallAnalytics, CallEvent, Disposition, TranscriptTurn } from '../../shared/calls.js';
import { variablesSchema } from '../../shared/calls.js';
import { authenticateSwitchboardSignature, rejectUnknownEvent } from './pbx.js';
import type { CallProviderAdapter } from './types.js';
import { isoTime, phone, readJson, validate } from './types.js';

const eventAliases = {
  'call.start': 'start',
  call_started: 'start',
  'call.end': 'end',
  call_ended: 'end',
  'analytics.completed': 'analytics',
  call_analyzed: 'analytics',
} as const;
export const voiceAiEventNames = Object.keys(eventAliases);

const envelope = {
  timestamp: z.union([z.number().positive(), z.iso.datetime({ offset: true })]),
  agent_id: z.string().min(1).max(200),
  call_id: z.string().min(1).max(200),
};

const transcriptTurn = z
  .object({
    role: z.string().max(30).optional(),
    speaker: z.string().max(30).optional(),
    text: z.string().max(10_000).optional(),
    content: z.string().max(10_000).optional(),
    message: z.string().max(10_000).optional(),
    time: z.number().nonnegative().optional(),
    timestamp: z.number().nonnegative().optional(),
  })
  .refine((turn) => (turn.text ?? turn.content ?? turn.message) !== undefined, { message: 'a transcript turn needs text' });

export const voiceAiStartSchema = z.object({
  ...envelope,
  event: z.enum(['call.start', 'call_started']),
  call_direction: z.enum(['inbound', 'outbound']),
  caller_phone: z.string().max(64).optional(),
  agent_phone: z.string().max(64).optional(),
});

export const voiceAiEndSchema = z.object({
  ...envelope,
  event: z.enum(['call.end', 'call_ended']),
  duration_seconds: z.number().nonnegative(),
  disposition: z.string().max(50).optional(),
  transcript: z.array(transcriptTurn).max(5_000).optional(),
  variables: variablesSchema.optional(),
  summary: z.string().max(5_000).optional(),
  recording_url: z.url().optional(),
});

const metricsSchema = z
  .object({
    satisfaction: z.number().int().min(1).max(5).optional(),
    satisfaction_score: z.number().int().min(1).max(5).optional(),
    resolved: z.boolean().optional(),
    resolution: z.union([z.boolean(), z.enum(['resolved', 'unresolved'])]).optional(),
    sentiment: z.enum(['positive', 'neutral', 'negative']).optional(),
    issue_type: z.string().max(200).optional(),
    summary: z.string().max(5_000).optional(),
    transfer_requested: z.boolean().optional(),
  })
  .catchall(z.union([z.number(), z.string().max(500), z.boolean(), z.null()]));

export const voiceAiAnalyticsSchema = z.object({
  ...envelope,
  event: z.enum(['analytics.completed', 'call_analyzed']),
  metrics: metricsSchema,
});

function speakerOf(role: string | undefined): TranscriptTurn['speaker'] {
  const value = (role ?? '').toLowerCase();
  if (['agent', 'assistant', 'bot', 'ai'].includes(value)) return 'agent';
  if (['system', 'tool'].includes(value)) return 'system';
  return 'customer';
}

function dispositionOf(value: string | undefined): Disposition | undefined {
  switch ((value ?? '').toLowerCase().replace(/[-\s]/g, '_')) {
    case 'completed':
    case 'answered':
    case 'transferred':
    case 'transfer_requested':
    case 'hangup':
      return 'answered';
    case 'voicemail':
      return 'voicemail';
    case 'no_answer':
      return 'no_answer';
    case 'abandoned':
      return 'abandoned';
    case 'busy':
      return 'busy';
    case 'failed':
    case 'error':
      return 'failed';
    default:
      return undefined;
  }
}

function analyticsOf(metrics: z.infer<typeof metricsSchema>): CallAnalytics {
  const resolution = metrics.resolved ?? (metrics.resolution === undefined ? undefined : metrics.resolution === true || metrics.resolution === 'resolved');
  const satisfaction = metrics.satisfaction ?? metrics.satisfaction_score;
  const known = new Set(['satisfaction', 'satisfaction_score', 'resolved', 'resolution', 'sentiment', 'issue_type', 'summary', 'transfer_requested']);
  const numbers = Object.fromEntries(Object.entries(metrics).filter((entry): entry is [string, number] => !known.has(entry[0]) && typeof entry[1] === 'number'));
  return {
    ...(satisfaction !== undefined ? { satisfaction } : {}),
    ...(resolution !== undefined ? { resolved: resolution } : {}),
    ...(metrics.sentiment ? { sentiment: metrics.sentiment } : {}),
    ...(metrics.issue_type ? { issueType: metrics.issue_type } : {}),
    ...(metrics.summary ? { summary: metrics.summary } : {}),
    ...(metrics.transfer_requested !== undefined ? { transferRequested: metrics.transfer_requested } : {}),
    ...(Object.keys(numbers).length > 0 ? { metrics: numbers } : {}),
  };
}

export const voiceAiProvider: CallProviderAdapter = {
  provider: 'voice-ai',
  authenticate: (request) => authenticateSwitchboardSignature(request, 'voice-ai'),
  parse(request) {
    const body = readJson(request);
    rejectUnknownEvent(body, voiceAiEventNames);
    // `null` or an array is JSON too: it has no event, and is refused by the schema below.
    const named = typeof body === 'object' && body !== null ? (body as { event?: keyof typeof eventAliases }).event : undefined;
    const kind = eventAliases[named ?? 'call.start'];
    const events: CallEvent[] = [];
    let callId: string;
    if (kind === 'start') {
      const event = validate(voiceAiStartSchema, body);
      callId = event.call_id;
      const customerPhone = phone(event.caller_phone, request, 'caller_phone');
      const linePhone = phone(event.agent_phone, request, 'agent_phone');
      const base = {
        occurredAt: isoTime(event.timestamp, request.receivedAt),
        direction: event.call_direction,
        agentId: event.agent_id,
        ...(customerPhone ? { customerPhone } : {}),
        ...(linePhone ? { linePhone } : {}),
      };
      // An AI agent picks up at once: the start is also the answer.
      events.push({ ...base, eventId: 'voice-ai:start', type: 'call.started' }, { ...base, eventId: 'voice-ai:answered', type: 'call.answered' });
    } else if (kind === 'end') {
      const event = validate(voiceAiEndSchema, body);
      callId = event.call_id;
      const disposition = dispositionOf(event.disposition);
      const transferred = /transfer/i.test(event.disposition ?? '');
      events.push({
        eventId: 'voice-ai:end',
        type: 'call.ended',
        occurredAt: isoTime(event.timestamp, request.receivedAt),
        agentId: event.agent_id,
        durationSeconds: Math.round(event.duration_seconds),
        ...(disposition ? { disposition } : {}),
        ...(event.transcript
          ? {
              transcript: event.transcript.map((turn) => ({
                speaker: speakerOf(turn.role ?? turn.speaker),
                text: turn.text ?? turn.content ?? turn.message ?? '',
                ...(turn.time ?? turn.timestamp ? { at: turn.time ?? turn.timestamp } : {}),
              })),
            }
          : {}),
        ...(event.variables || transferred ? { variables: { ...event.variables, ...(transferred ? { transfer_requested: true } : {}) } } : {}),
        ...(event.summary ? { summary: event.summary } : {}),
        ...(event.recording_url ? { recordingUrl: event.recording_url } : {}),
      });
    } else {
      const event = validate(voiceAiAnalyticsSchema, body);
      callId = event.call_id;
      events.push({
        eventId: 'voice-ai:analytics',
        type: 'call.analytics',
        occurredAt: isoTime(event.timestamp, request.receivedAt),
        agentId: event.agent_id,
        analytics: analyticsOf(event.metrics),
      });
    }
    return { providerCallId: callId, events };
  },
};
