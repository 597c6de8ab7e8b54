/**
 * Twilio voice status callbacks (and recording status callbacks): form-encoded, keyed by CallSid,
 * signed with X-Twilio-Signature over the full URL and the sorted POST parameters, checked in every
 * URL form twilio-node's validateRequest tries (security/signatures.ts). Twilio may
 * deliver a callback more than once; each status happens once per call, so it names the event.
 */
import { z } from 'zod';
import type { CallEvent, Disposition } from '../../shared/calls.js';
import { acceptedSecrets } from '../../security/secrets.js';
import { verifyTwilioSignature } from '../../security/signatures.js';
import { Rejection } from '../rejections.js';
import type { CallProviderAdapter, ProviderRequest } from './types.js';
import { contentTypeOf, header, isoTime, phone, validate } from './types.js';

export const twilioCallStatuses = ['queued', 'initiated', 'ringing', 'in-progress', 'completed', 'busy', 'no-answer', 'canceled', 'failed'] as const;

const numeric = z.string().regex(/^\d+$/, 'must be a whole number').transform(Number);

export const twilioCallbackSchema = z
  .object({
    CallSid: z.string().min(1).max(64),
    AccountSid: z.string().max(64).optional(),
    CallStatus: z.enum(twilioCallStatuses).optional(),
    Direction: z.enum(['inbound', 'outbound-api', 'outbound-dial', 'trunking-originating', 'trunking-terminating']).optional(),
    From: z.string().max(64).optional(),
    To: z.string().max(64).optional(),
    CallDuration: numeric.optional(),
    Timestamp: z.string().max(64).optional(),
    SequenceNumber: numeric.optional(),
    RecordingSid: z.string().max(64).optional(),
    RecordingUrl: z.url().optional(),
    RecordingStatus: z.enum(['in-progress', 'completed', 'absent', 'failed']).optional(),
    RecordingDuration: numeric.optional(),
  })
  .refine((callback) => callback.CallStatus !== undefined || callback.RecordingStatus !== undefined, {
    message: 'CallStatus (or RecordingStatus) is required',
    path: ['CallStatus'],
  })
  .refine((callback) => callback.RecordingStatus !== 'completed' || (callback.RecordingUrl && callback.RecordingSid), {
    message: 'RecordingUrl and RecordingSid are required for a completed recording',
    path: ['RecordingUrl'],
  });

function endedDisposition(status: (typeof twilioCallStatuses)[number], inbound: boolean): Disposition {
  switch (status) {
    case 'busy':
      return 'busy';
    case 'no-answer':
      return inbound ? 'missed' : 'no_answer';
    case 'canceled':
      return inbound ? 'abandoned' : 'canceled';
    case 'failed':
      return 'failed';
    default:
      return 'answered';
  }
}

/** The form-encoded body Twilio posts (its signature covers these parameters). */
export function readForm(request: ProviderRequest): URLSearchParams {
  const type = contentTypeOf(request);
  if (type !== 'application/x-www-form-urlencoded') throw new Rejection('unsupported_media_type', `expected application/x-www-form-urlencoded, got ${type || 'nothing'}`);
  const text = request.rawBody.toString('utf8');
  if (text.trim() === '') throw new Rejection('malformed_form', 'the form body is empty');
  return new URLSearchParams(text);
}

export const twilioProvider: CallProviderAdapter = {
  provider: 'twilio',
  authenticate(request) {
    const authTokens = acceptedSecrets(request.tenant.secrets.twilioAuthToken);
    if (authTokens.length === 0) throw new Rejection('not_configured', 'this tenant has no Twilio auth token configured');
    const check = verifyTwilioSignature({
      authTokens,
      signature: header(request.headers, 'x-twilio-signature'),
      urls: request.signedUrls,
      params: readForm(request),
    });
    if (!check.ok) throw new Rejection(check.reason, 'the request signature could not be verified');
  },
  parse(request) {
    const form = readForm(request);
    const status = form.get('CallStatus');
    if (status !== null && !(twilioCallStatuses as readonly string[]).includes(status)) {
      throw new Rejection('unknown_event_type', `unknown CallStatus "${status.slice(0, 50)}"`, { known: twilioCallStatuses });
    }
    const callback = validate(twilioCallbackSchema, Object.fromEntries(form.entries()));
    const inbound = callback.Direction === undefined || callback.Direction === 'inbound' || callback.Direction === 'trunking-originating';
    const from = phone(callback.From, request, 'From');
    const to = phone(callback.To, request, 'To');
    const customerPhone = inbound ? from : to;
    const linePhone = inbound ? to : from;
    const base = {
      occurredAt: isoTime(callback.Timestamp, request.receivedAt),
      ...(callback.Direction ? { direction: inbound ? ('inbound' as const) : ('outbound' as const) } : {}),
      ...(customerPhone ? { customerPhone } : {}),
      ...(linePhone ? { linePhone } : {}),
    };
    const events: CallEvent[] = [];
    if (callback.CallStatus) {
      const eventId = `twilio:${callback.CallStatus}`;
      switch (callback.CallStatus) {
        case 'queued':
        case 'initiated':
          events.push({ ...base, eventId, type: 'call.started' });
          break;
        case 'ringing':
          events.push({ ...base, eventId, type: 'call.ringing' });
          break;
        case 'in-progress':
          events.push({ ...base, eventId, type: 'call.answered' });
          break;
        default:
          events.push({
            ...base,
            eventId,
            type: 'call.ended',
            disposition: endedDisposition(callback.CallStatus, inbound),
            ...(callback.CallDuration !== undefined ? { durationSeconds: callback.CallDuration } : {}),
          });
      }
    }
    if (callback.RecordingStatus === 'completed' && callback.RecordingUrl && callback.RecordingSid) {
      events.push({
        ...base,
        eventId: `twilio:recording:${callback.RecordingSid}`,
        type: 'call.recording',
        recordingUrl: callback.RecordingUrl,
        ...(callback.RecordingDuration !== undefined ? { recordingDurationSeconds: callback.RecordingDuration } : {}),
      });
    }
    return { providerCallId: callback.CallSid, events };
  },
};
