/**
 * The generic PBX webhook: one JSON event per request, signed with X-Switchboard-Timestamp and
 * X-Switchboard-Signature. PBXs retry deliveries; a retry carries the same event_id (or, for PBXs
 * that send none, the same event name, which happens once per call).
 */
import { z } from 'zod';
import { dispositionSchema } from '../../shared/calls.js';
import type { CallEvent } from '../../shared/calls.js';
import type { SwitchboardSignedProvider } from '../../config/schema.js';
import { switchboardSigningSecrets } from '../../security/secrets.js';
import { verifySwitchboardSignature } from '../../security/signatures.js';
import { Rejection } from '../rejections.js';
import type { CallProviderAdapter, ProviderRequest } from './types.js';
import { header, isoTime, phone, readJson, validate } from './types.js';

export const pbxEventNames = ['call.started', 'call.ringing', 'call.answered', 'call.ended', 'call.recording_ready'] as const;

export const pbxEventSchema = z
  .object({
    event_id: z.string().min(1).max(200).optional(),
    event: z.enum(pbxEventNames),
    call_id: z.string().min(1).max(200),
    timestamp: z.union([z.number().positive(), z.iso.datetime({ offset: true })]),
    direction: z.enum(['inbound', 'outbound']).optional(),
    from: z.string().max(64).optional(),
    to: z.string().max(64).optional(),
    agent_id: z.string().max(200).optional(),
    duration: z.number().int().nonnegative().optional(),
    disposition: dispositionSchema.optional(),
    recording_url: z.url().optional(),
  })
  .refine((event) => event.event !== 'call.recording_ready' || event.recording_url !== undefined, {
    message: 'recording_url is required for call.recording_ready',
    path: ['recording_url'],
  });
export type PbxEvent = z.infer<typeof pbxEventSchema>;

/** Shared by the signed JSON providers (PBX, voice-AI, CRM events), each checked against its own keys. */
export function authenticateSwitchboardSignature(request: ProviderRequest, provider: SwitchboardSignedProvider): void {
  const check = verifySwitchboardSignature({
    secrets: switchboardSigningSecrets(request.tenant.secrets, provider),
    timestamp: header(request.headers, 'x-switchboard-timestamp'),
    signature: header(request.headers, 'x-switchboard-signature'),
    rawBody: request.rawBody,
    nowSeconds: request.nowSeconds,
  });
  if (!check.ok) throw new Rejection(check.reason, 'the request signature could not be verified');
}

/** An `event` we do not know is its own 422, so a PBX sending new event kinds is easy to spot. */
export function rejectUnknownEvent(body: unknown, known: readonly string[], field = 'event'): void {
  if (typeof body === 'object' && body !== null && field in body) {
    const name = (body as Record<string, unknown>)[field];
    if (typeof name === 'string' && !known.includes(name)) {
      throw new Rejection('unknown_event_type', `unknown ${field} "${name.slice(0, 50)}"`, { known });
    }
  }
}

export const pbxProvider: CallProviderAdapter = {
  provider: 'pbx',
  authenticate: (request) => authenticateSwitchboardSignature(request, 'pbx'),
  parse(request) {
    const body = readJson(request);
    rejectUnknownEvent(body, pbxEventNames);
    const event = validate(pbxEventSchema, body);
    const from = phone(event.from, request, 'from');
    const to = phone(event.to, request, 'to');
    const inbound = event.direction !== 'outbound';
    const base = {
      eventId: `pbx:${event.event_id ?? event.event}`,
      occurredAt: isoTime(event.timestamp, request.receivedAt),
      ...(event.direction ? { direction: event.direction } : {}),
      ...((inbound ? from : to) ? { customerPhone: inbound ? from : to } : {}),
      ...((inbound ? to : from) ? { linePhone: inbound ? to : from } : {}),
      ...(event.agent_id ? { agentId: event.agent_id } : {}),
    };
    let canonical: CallEvent;
    switch (event.event) {
      case 'call.started':
        canonical = { ...base, type: 'call.started' };
        break;
      case 'call.ringing':
        canonical = { ...base, type: 'call.ringing' };
        break;
      case 'call.answered':
        canonical = { ...base, type: 'call.answered' };
        break;
      case 'call.ended':
        canonical = {
          ...base,
          type: 'call.ended',
          ...(event.duration !== undefined ? { durationSeconds: event.duration } : {}),
          ...(event.disposition ? { disposition: event.disposition } : {}),
          ...(event.recording_url ? { recordingUrl: event.recording_url } : {}),
        };
        break;
      case 'call.recording_ready':
        canonical = { ...base, type: 'call.recording', recordingUrl: event.recording_url ?? '' };
        break;
    }
    return { providerCallId: event.call_id, events: [canonical] };
  },
};
