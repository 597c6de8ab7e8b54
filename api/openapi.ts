/**
 * The public API's OpenAPI 3.1 description, generated from the same zod schemas the routes
 * validate with (z.toJSONSchema), served at /openapi.json and browsable at /docs.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import express, { Router } from 'express';
import { z } from 'zod';
import { callResultSchema, callStatuses, dispositionSchema } from '../shared/calls.js';
import { crmEventSchema } from '../ingestion/providers/crm-events.js';
import { pbxEventSchema } from '../ingestion/providers/pbx.js';
import { twilioCallbackSchema } from '../ingestion/providers/twilio.js';
import { smsEffectKeySchema, twilioInboundMessageSchema, twilioMessageStatusSchema } from '../ingestion/providers/twilio-sms.js';
import { voiceAiAnalyticsSchema, voiceAiEndSchema, voiceAiStartSchema } from '../ingestion/providers/voice-ai.js';
import { whatsappWebhookSchema } from '../ingestion/providers/whatsapp-webhook.js';
import { rejectionStatus } from '../ingestion/rejections.js';
import { tenantIdSchema } from '../config/schema.js';
import { callPageSchema, listCallsQuerySchema } from './routes/calls.js';
import { backlogEventSchema, crmBacklogSchema, dashboardSnapshotSchema, dashboardStreamEvents, ingestBacklogSchema, liveChangeSchema } from './routes/dashboard.js';
import { callIdParamSchema, leadIdParamSchema } from './validation.js';
import { leadActionSchema, leadPreviewQuerySchema, leadPreviewRequestSchema } from './routes/leads.js';
import { dashboardChartsSchema, defaultOutcomeDays, maxOutcomeDays, outcomeAnalyticsSchema } from './routes/analytics.js';
import { codecAllowedHeaders, codecBodyLimit, codecPayloadsSchema } from './routes/codec.js';

type JsonSchema = Record<string, unknown>;

/** What a request may carry (`input`: defaults optional, coercions), or what a response holds (`output`: no other properties). */
const schema = (zodSchema: z.ZodType, io: 'input' | 'output' = 'input'): JsonSchema => {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(zodSchema, { io, unrepresentable: 'any' }) as JsonSchema;
  return rest;
};
const responseSchema = (zodSchema: z.ZodType): JsonSchema => schema(zodSchema, 'output');

/** 503s that are not refusals: the sender should retry after `Retry-After` seconds. */
const unavailableReasons = ['backlog_full', 'temporarily_unavailable'] as const;
/** Reasons the routes and the app answer themselves, beside ingestion's refusals. */
const routeReasons = ['not_found', 'method_not_allowed', 'malformed_path', 'bad_request', 'invalid_lead_id', 'call_not_found', 'recording_not_found', 'lead_not_found', 'verification_failed', 'action_rejected', 'internal_error'] as const;
export const errorResponseSchema = z.object({
  error: z.enum([...unavailableReasons, ...Object.keys(rejectionStatus), ...routeReasons]).describe('Machine-readable reason'),
  message: z.string(),
  details: z.unknown().optional(),
});
export const acceptedResponseSchema = z.object({
  status: z.literal('accepted'),
  callId: z.string().optional(),
  leadId: z.string().optional(),
  events: z.number().int().optional(),
  via: z.enum(['inbox', 'temporal']).describe('`inbox`: committed to PostgreSQL, forwarded to Temporal in the background; `temporal`: PostgreSQL was slow, so it went to Temporal directly'),
  duplicates: z.number().int().describe('Events of this delivery already waiting in the inbox (a repeated delivery)'),
});
const readinessCheckSchema = z.looseObject({ ok: z.boolean(), latencyMs: z.number(), error: z.string().optional() });
const liveFeedCheckSchema = z.object({
  ok: z.boolean(),
  latencyMs: z.number(),
  state: z.enum(['connected', 'reconnecting']),
  since: z.iso.datetime().describe('When the connection was made, or lost'),
  failedAttempts: z.number().int().min(0).optional().describe('Reconnection attempts that failed since then'),
  lastError: z.string().optional().describe('The last failure\'s kind: a PostgreSQL SQLSTATE (57P01: terminated by the server), a socket code (ECONNREFUSED), or connection_ended'),
  error: z.string().optional(),
});
const readinessSchema = z.object({
  status: z.enum(['ready', 'degraded', 'not_ready']).describe('`degraded`: events are accepted, but one store is down, forwarding is behind (see `checks.inbox`), or the dashboards\' live feed is reconnecting (`checks.liveFeed`)'),
  checks: z
    .object({ liveFeed: liveFeedCheckSchema.optional().describe('The dashboards\' LISTEN connection (API processes that serve them); it reconnects on its own with backoff') })
    .catchall(readinessCheckSchema)
    .describe('temporal, postgres, migrations, inbox, and liveFeed'),
});
const smsStatusProcessedSchema = z.object({
  status: z.literal('ok'),
  duplicate: z.boolean().describe('This status of this message was already recorded'),
  matched: z.boolean().describe('Whether the message is one a lead step sent (otherwise the callback is kept for inspection)'),
});
const whatsappProcessedSchema = z.object({
  status: z.literal('ok'),
  statuses: z.number().int().min(0),
  duplicates: z.number().int().min(0),
  messages: z.number().int().min(0),
  unmatched: z.number().int().min(0).describe('Inbound messages from numbers no lead has (kept for inspection)'),
});

/** The stream events' data schemas, by event name. */
const streamEventComponents: Record<keyof typeof dashboardStreamEvents, string> = { snapshot: 'DashboardSnapshot', change: 'DashboardChange', backlog: 'DashboardBacklog' };
/** The backlogs inside a generated schema point at their own components, so each is described once. */
function withBacklogRefs(generated: JsonSchema): JsonSchema {
  const properties = { ...(generated.properties as Record<string, JsonSchema>) };
  if (properties.ingestBacklog) properties.ingestBacklog = { $ref: '#/components/schemas/IngestBacklog' };
  if (properties.crmBacklog) properties.crmBacklog = { $ref: '#/components/schemas/CrmBacklog' };
  return { ...generated, properties };
}

const json = (body: JsonSchema) => ({ content: { 'application/json': { schema: body } } });
const retryLater = {
  503: {
    description: '`backlog_full` (too many events waiting to be forwarded) or `temporarily_unavailable` (neither PostgreSQL nor Temporal answered). Nothing was stored; retry after `Retry-After` seconds.',
    headers: { 'Retry-After': { schema: { type: 'integer', minimum: 1 }, description: 'Seconds to wait before retrying' } },
    content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
  },
};
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
/** What each refusal status means; the body's `error` names the reason. */
const refusalDescriptions: Record<number, string> = {
  400: 'The request could not be read: `malformed_json`, `malformed_form`, `malformed_path` (a path segment that is not percent-encoded UTF-8), `invalid_call_id`, `invalid_lead_id`, `bad_request`',
  401: '`missing_signature`, `invalid_signature`, `invalid_timestamp`, `stale_timestamp`, `missing_token` or `invalid_token`',
  403: '`forbidden_tenant`: the credential belongs to another tenant; `insufficient_role`: the operator\'s role is below what the route needs (viewer < operator < admin); `forbidden_origin`: a state-changing request signed in by the dashboard session came from another origin (or `verification_failed` for the WhatsApp handshake)',
  404: '`unknown_tenant`, `unknown_provider`, or the named call, recording or lead does not exist (`call_not_found`, `recording_not_found`, `lead_not_found`)',
  409: '`not_configured`: the tenant has no credentials for this provider',
  413: '`payload_too_large`',
  415: '`unsupported_media_type`',
  422: '`invalid_payload` (with `details.fields`), `invalid_phone_number`, `unknown_event_type` or `action_rejected`',
};
const errors = (...statuses: number[]) =>
  Object.fromEntries(statuses.map((status) => [String(status), { description: refusalDescriptions[status] ?? 'Refused', ...json(ref('Error')) }]));
const signed = [{ switchboardSignature: [] }];
const operator = [{ operatorToken: [] }, { dashboardSession: [] }];
const pathParam = (name: string, zodSchema: z.ZodType) => {
  const { description, ...rules } = schema(zodSchema);
  return { name, in: 'path', required: true, ...(description ? { description } : {}), schema: rules };
};
const tenantParam = pathParam('tenant', tenantIdSchema.describe('A configured tenant id; any other is `404 unknown_tenant`'));
const callIdParam = pathParam('callId', callIdParamSchema);
const leadIdParam = pathParam('leadId', leadIdParamSchema);
const object = (description: string) => ({ description, ...json({ type: 'object', additionalProperties: true }) });
/** Mentioned in the description of every route that takes JSON: PostgreSQL can store no U+0000. */
const noNul = 'No string in the body may contain U+0000 (`422 invalid_payload`).';

function queryParameters(zodSchema: z.ZodObject): Array<Record<string, unknown>> {
  const shape = schema(zodSchema) as { properties?: Record<string, JsonSchema>; required?: string[] };
  return Object.entries(shape.properties ?? {}).map(([name, { description, ...property }]) => ({
    name,
    in: 'query',
    required: shape.required?.includes(name) ?? false,
    ...(typeof description === 'string' ? { description } : {}),
    schema: property,
  }));
}

export function openApiDocument(): Record<string, unknown> {
  const previewQuery = schema(leadPreviewQuerySchema) as { properties: { from: JsonSchema } };
  return {
    openapi: '3.1.0',
    info: {
      title: 'Switchboard API',
      version: '0.1.0',
      description: 'Durable call and lead lifecycles on Temporal. Webhooks are acknowledged with 202 once committed to the PostgreSQL inbox (or, when PostgreSQL is slow, handed to Temporal directly); a forwarder takes them to Temporal. Refusals carry a machine-readable `error` and are stored. `503` with `Retry-After` (`backlog_full`, `temporarily_unavailable`) means retry later: nothing was stored.',
    },
    components: {
      securitySchemes: {
        switchboardSignature: {
          type: 'apiKey',
          in: 'header',
          name: 'X-Switchboard-Signature',
          description: '`sha256=<hex HMAC-SHA256(key, X-Switchboard-Timestamp + "." + raw body)>` with the key of that provider (PBX, voice-AI and CRM events each may have their own; during a rotation the new and the old key are both accepted); the timestamp (unix seconds) in `X-Switchboard-Timestamp` must be at most 5 minutes old.',
        },
        twilioSignature: { type: 'apiKey', in: 'header', name: 'X-Twilio-Signature', description: "Twilio's own scheme, with the tenant's auth token." },
        metaSignature: { type: 'apiKey', in: 'header', name: 'X-Hub-Signature-256', description: "`sha256=<hex HMAC-SHA256(app secret, raw body)>`, Meta's scheme." },
        operatorToken: { type: 'http', scheme: 'bearer', description: "The tenant's operator token." },
        dashboardSession: { type: 'apiKey', in: 'cookie', name: 'sb_operator', description: 'Set by signing in at /dashboard.' },
        recordingLink: {
          type: 'apiKey',
          in: 'query',
          name: 'sig',
          description:
            "The signed recording link given to the CRM's player: `?expires=<unix seconds>&sig=<hex HMAC-SHA256(the tenant's recordingLinkSecret, \"recording-link:v2:\" + tenant + \":\" + callId + \":\" + expires)>`. Valid until `expires` (`recordings.linkTtlHours` after the CRM sync, 7 days by default); signed with a key of its own, never a webhook secret.",
        },
      },
      schemas: {
        Error: responseSchema(errorResponseSchema),
        CodecPayloads: schema(codecPayloadsSchema),
        Accepted: responseSchema(acceptedResponseSchema),
        PbxEvent: schema(pbxEventSchema),
        TwilioStatusCallback: schema(twilioCallbackSchema),
        VoiceAiEvent: { oneOf: [schema(voiceAiStartSchema), schema(voiceAiEndSchema), schema(voiceAiAnalyticsSchema)] },
        CallResult: schema(callResultSchema),
        CrmEvent: schema(crmEventSchema),
        WhatsAppWebhook: schema(whatsappWebhookSchema),
        LeadAction: schema(leadActionSchema),
        LeadPreviewRequest: schema(leadPreviewRequestSchema),
        Readiness: responseSchema(readinessSchema),
        WhatsAppProcessed: responseSchema(whatsappProcessedSchema),
        TwilioMessageStatus: schema(twilioMessageStatusSchema),
        TwilioInboundMessage: schema(twilioInboundMessageSchema),
        SmsStatusProcessed: responseSchema(smsStatusProcessedSchema),
        CallPage: responseSchema(callPageSchema),
        CallStatus: { type: 'string', enum: [...callStatuses] },
        Disposition: schema(dispositionSchema),
        IngestBacklog: responseSchema(ingestBacklogSchema),
        CrmBacklog: responseSchema(crmBacklogSchema),
        DashboardSnapshot: withBacklogRefs(responseSchema(dashboardSnapshotSchema)),
        OutcomeAnalytics: responseSchema(outcomeAnalyticsSchema),
        DashboardCharts: responseSchema(dashboardChartsSchema),
        DashboardChange: responseSchema(liveChangeSchema),
        DashboardBacklog: withBacklogRefs(responseSchema(backlogEventSchema)),
        // One event of the dashboard stream (as a 3.1 document's `text/event-stream` schema describes each event; 3.2 calls it `itemSchema`): `data` is JSON of the schema its `event` names.
        DashboardStreamEvent: {
          oneOf: Object.keys(dashboardStreamEvents).map((event) => ({
            type: 'object',
            required: ['event', 'data'],
            additionalProperties: false,
            properties: {
              event: { const: event },
              id: { type: 'string' },
              retry: { type: 'integer', minimum: 0 },
              data: { type: 'string', contentMediaType: 'application/json', contentSchema: ref(streamEventComponents[event as keyof typeof dashboardStreamEvents]) },
            },
          })),
        },
      },
    },
    paths: {
      ...Object.fromEntries(
        (['decode', 'encode'] as const).map((direction) => [
          `/codec/${direction}`,
          {
            post: {
              summary: direction === 'decode' ? 'Codec server: decrypt payloads for the Temporal Web UI' : 'Codec server: encrypt payloads (the Web UI encodes what it sends)',
              description: `Temporal's remote codec protocol. Payloads without \`encoding: binary/encrypted\` pass through unchanged. An operator credential (bearer token or dashboard session) of any tenant is required, the operator role to encode: the namespace's keys are shared by its tenants; browsers may call it only from \`api.codecAllowedOrigins\` (CORS with credentials: a browser sends the dashboard session cookie once the UI's codec setting "Include cross-origin credentials" is on). Body at most ${codecBodyLimit}.`,
              security: operator,
              parameters: [
                { name: 'X-Namespace', in: 'header', required: false, description: 'Sent by the Web UI; a namespace other than ours is `400 unknown_namespace`', schema: { type: 'string' } },
                { name: 'Origin', in: 'header', required: false, description: 'A browser origin; one not in `api.codecAllowedOrigins` is `403 forbidden_origin`', schema: { type: 'string' } },
              ],
              requestBody: { required: true, ...json(ref('CodecPayloads')) },
              responses: {
                200: { description: direction === 'decode' ? 'The payloads, decrypted, in the same order' : 'The payloads, encrypted (`encoding: binary/encrypted`, `encryption-key-id`)', ...json(ref('CodecPayloads')) },
                400: { description: '`malformed_json`, or `unknown_namespace`', ...json(ref('Error')) },
                401: { description: '`missing_token` or `invalid_token`', ...json(ref('Error')) },
                403: { description: '`forbidden_origin`, or `insufficient_role`', ...json(ref('Error')) },
                413: { description: '`payload_too_large`', ...json(ref('Error')) },
                415: { description: '`unsupported_media_type` (send `application/json`)', ...json(ref('Error')) },
                422: { description: '`invalid_payload` (not `{payloads: [...]}` with base64 values), or `undecodable_payload` (a key id that is not configured, or altered ciphertext; the message names the key id, never the data)', ...json(ref('Error')) },
              },
            },
            options: {
              summary: 'CORS preflight',
              parameters: [
                { name: 'Origin', in: 'header', required: false, schema: { type: 'string' } },
                { name: 'Access-Control-Request-Method', in: 'header', required: false, schema: { type: 'string' } },
                { name: 'Access-Control-Request-Headers', in: 'header', required: false, schema: { type: 'string' } },
              ],
              responses: {
                204: {
                  description: `Allowed: \`Access-Control-Allow-Origin\` (the origin), \`Access-Control-Allow-Credentials: true\`, \`Access-Control-Allow-Methods: POST, OPTIONS\`, \`Access-Control-Allow-Headers: ${codecAllowedHeaders.join(', ')}\``,
                  headers: { 'Access-Control-Allow-Origin': { schema: { type: 'string' } }, 'Access-Control-Allow-Credentials': { schema: { type: 'string', enum: ['true'] } } },
                },
                403: { description: '`forbidden_origin`: no CORS headers, so the browser refuses', ...json(ref('Error')) },
              },
            },
          },
        ]),
      ),
      '/healthz': { get: { summary: 'Liveness', responses: { 200: object('The process is alive') } } },
      '/openapi.json': { get: { summary: 'This document', responses: { 200: object('OpenAPI 3.1') } } },
      '/readyz': { get: { summary: 'Readiness: Temporal, PostgreSQL, migrations, inbox backlog, live feed', responses: { 200: { description: 'Ready, or degraded but accepting events', ...json(ref('Readiness')) }, 503: { description: 'Not ready', ...json(ref('Readiness')) } } } },
      '/metrics': { get: { summary: 'Prometheus metrics', responses: { 200: { description: 'Prometheus text format', content: { 'text/plain': { schema: { type: 'string' } } } } } } },
      '/webhooks/{tenant}/pbx': {
        post: { summary: 'PBX call event', security: signed, parameters: [tenantParam], requestBody: { required: true, ...json(ref('PbxEvent')) }, responses: { 202: { description: 'Accepted', ...json(ref('Accepted')) }, ...errors(400, 401, 404, 409, 413, 415, 422), ...retryLater } },
      },
      '/webhooks/{tenant}/twilio': {
        post: {
          summary: 'Twilio voice or recording status callback',
          security: [{ twilioSignature: [] }],
          parameters: [tenantParam],
          requestBody: { required: true, content: { 'application/x-www-form-urlencoded': { schema: ref('TwilioStatusCallback') } } },
          responses: { 202: { description: 'Accepted', ...json(ref('Accepted')) }, ...errors(400, 401, 404, 409, 413, 415, 422), ...retryLater },
        },
      },
      '/webhooks/{tenant}/voice-ai': {
        post: { summary: 'Voice-AI agent event: call.start, call.end, analytics.completed', security: signed, parameters: [tenantParam], requestBody: { required: true, ...json(ref('VoiceAiEvent')) }, responses: { 202: { description: 'Accepted', ...json(ref('Accepted')) }, ...errors(400, 401, 404, 409, 413, 415, 422), ...retryLater } },
      },
      '/webhooks/{tenant}/crm': {
        post: { summary: 'CRM lead or meeting event', security: signed, parameters: [tenantParam], requestBody: { required: true, ...json(ref('CrmEvent')) }, responses: { 202: { description: 'Accepted', ...json(ref('Accepted')) }, ...errors(400, 401, 404, 409, 413, 415, 422), ...retryLater } },
      },
      '/webhooks/{tenant}/whatsapp': {
        get: {
          summary: "Meta's webhook verification handshake",
          parameters: [tenantParam, { name: 'hub.mode', in: 'query', schema: { type: 'string' } }, { name: 'hub.verify_token', in: 'query', schema: { type: 'string' } }, { name: 'hub.challenge', in: 'query', schema: { type: 'string' } }],
          responses: { 200: { description: 'The challenge', content: { 'text/plain': { schema: { type: 'string' } } } }, ...errors(400), 403: { description: '`verification_failed`: wrong `hub.verify_token`, or `hub.mode` is not `subscribe`', ...json(ref('Error')) } },
        },
        post: {
          summary: 'WhatsApp statuses and inbound messages',
          description:
            "Each `messages` change must name the business number in `value.metadata.phone_number_id` (`422 invalid_payload` without one), and it must be one of the tenant's: `whatsapp.phoneNumberId` or a number under `whatsapp.senders`. Another is `403 unknown_phone_number_id`, kept for inspection and replay. A reply is routed to the lead by the sender's number and recorded with the tenant's number it came to.",
          security: [{ metaSignature: [] }],
          parameters: [tenantParam],
          requestBody: { required: true, ...json(ref('WhatsAppWebhook')) },
          responses: { 200: { description: 'Processed (duplicates included)', ...json(ref('WhatsAppProcessed')) }, ...errors(400, 401, 404, 409, 413, 415, 422), 403: { description: "`unknown_phone_number_id`: a `messages` change for a business number the tenant does not have", ...json(ref('Error')) }, ...retryLater },
        },
      },
      '/webhooks/{tenant}/sms/status': {
        post: {
          summary: 'Twilio message status callback of an SMS a lead step sent (deduplicated per message and status; updates the message ledger and the lead timeline)',
          description:
            'Form-encoded as Twilio posts it, signed with `X-Twilio-Signature` over the full URL (query included) and the sorted POST parameters with the tenant\'s auth token. Unknown parameters are accepted. Refused: 401 without or with a wrong signature, 409 `not_configured` for a tenant without `sms`, 415 for another content type, 422 `invalid_payload` naming each bad field (`MessageSid` SM/MM + 32 hex, `MessageStatus` one of Twilio\'s, `AccountSid`, `ErrorCode` digits, `key` the SMS ledger key).',
          security: [{ twilioSignature: [] }],
          parameters: [tenantParam, { name: 'key', in: 'query', required: false, description: 'The SMS ledger key (`wa:<lead>:<flow>:<step>[:<meeting>]#sms`) Switchboard put in the callback URL it gave Twilio; at most once', schema: schema(smsEffectKeySchema) }],
          requestBody: { required: true, content: { 'application/x-www-form-urlencoded': { schema: ref('TwilioMessageStatus') } } },
          responses: { 200: { description: 'Recorded (a duplicate too)', ...json(ref('SmsStatusProcessed')) }, ...errors(400, 401, 404, 409, 413, 415, 422), ...retryLater },
        },
      },
      '/webhooks/{tenant}/sms': {
        post: {
          summary: "Inbound text message from Twilio: a lead's reply, or an opt-out keyword (STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, or `OptOutType=STOP`) that suppresses the number and opts the lead out",
          description:
            'Form-encoded, signed with `X-Twilio-Signature` like the status callback. A message from a number no lead has is answered 200 and kept for inspection. Refused: 401, 409 `not_configured`, 415, 422 `invalid_payload` (`MessageSid`, `AccountSid`, `From`, `Body` at most 1,600 characters) or `invalid_phone_number` (`From`).',
          security: [{ twilioSignature: [] }],
          parameters: [tenantParam],
          requestBody: { required: true, content: { 'application/x-www-form-urlencoded': { schema: ref('TwilioInboundMessage') } } },
          responses: { 200: { description: 'Processed: empty TwiML (no reply)', content: { 'text/xml': { schema: { type: 'string' } } } }, ...errors(400, 401, 404, 409, 413, 415, 422), ...retryLater },
        },
      },
      '/api/{tenant}/calls': {
        get: { summary: 'Search the call journal, newest first (keyset paging)', security: operator, parameters: [tenantParam, ...queryParameters(listCallsQuerySchema)], responses: { 200: { description: 'A page of calls', ...json(ref('CallPage')) }, ...errors(400, 401, 403, 404, 422) } },
      },
      '/api/{tenant}/calls/{callId}': {
        get: { summary: 'One call: journal row, events, enrichment, CRM links, outcome actions', security: operator, parameters: [tenantParam, callIdParam], responses: { 200: object('`{call, events, recording?}`'), ...errors(400, 401, 403, 404) } },
      },
      '/api/{tenant}/calls/{callId}/result': {
        post: { summary: "The manager's call-result form (CRM widget)", description: `Needs the operator role. \`submittedBy\` is the credential's operator, whatever the body says. ${noNul}`, security: operator, parameters: [tenantParam, callIdParam, { name: 'Idempotency-Key', in: 'header', description: 'The first 200 characters identify the form; a repeat is one event', schema: { type: 'string' } }], requestBody: { required: true, ...json(ref('CallResult')) }, responses: { 202: { description: 'Accepted', ...json(ref('Accepted')) }, ...errors(400, 401, 403, 404, 413, 422), ...retryLater } },
      },
      '/api/{tenant}/calls/{callId}/recording': {
        get: {
          summary: 'The recording, with HTTP range support',
          description:
            "Authorized by the operator token (or dashboard session) or by the signed, expiring link given to the CRM player (`?expires=&sig=`). Served only as an audio type (`audio/wav`, `audio/mpeg`, `audio/ogg`, `audio/webm`, `audio/mp4`, `audio/aac`, `audio/flac`, `audio/basic`, `audio/amr`, `audio/3gpp`), never the recording host's own type; bytes of no known audio type go out as `application/octet-stream` with `Content-Disposition: attachment`. Always `X-Content-Type-Options: nosniff`.",
          security: [...operator, { recordingLink: [] }],
          parameters: [
            tenantParam,
            callIdParam,
            { name: 'expires', in: 'query', description: "The signed link's expiry (unix seconds); part of what is signed", schema: { type: 'string', pattern: '^[0-9]{1,12}$' } },
            { name: 'sig', in: 'query', description: "The signed link's signature (64 hex digits)", schema: { type: 'string' } },
            { name: 'Range', in: 'header', description: 'One range, `bytes=a-b`, `bytes=a-` or `bytes=-n`', schema: { type: 'string' } },
          ],
          responses: {
            200: { description: 'The whole file (`Accept-Ranges: bytes`, `X-Content-Type-Options: nosniff`)', headers: { 'X-Content-Type-Options': { schema: { type: 'string', enum: ['nosniff'] } } }, content: { 'audio/*': { schema: { type: 'string', format: 'binary' } }, 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } },
            206: { description: 'Partial content', headers: { 'X-Content-Type-Options': { schema: { type: 'string', enum: ['nosniff'] } } }, content: { 'audio/*': { schema: { type: 'string', format: 'binary' } }, 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } },
            400: { description: '`invalid_call_id`', ...json(ref('Error')) },
            401: { description: '`missing_token`, `invalid_token`, or `invalid_link` (a link that was altered or signed with a key the tenant no longer has)', ...json(ref('Error')) },
            403: { description: '`forbidden_tenant`, or `expired_link` (a signed link past its `expires`)', ...json(ref('Error')) },
            404: object('`unknown_tenant`, or no recording yet (`recording_not_found`)'),
            416: object('Range not satisfiable'),
          },
        },
      },
      '/api/{tenant}/leads/{leadId}': {
        get: { summary: "The lead's current flow state", security: operator, parameters: [tenantParam, leadIdParam], responses: { 200: object('`{lead, workflowId}`'), ...errors(400, 401, 403, 404) } },
      },
      '/api/{tenant}/leads/{leadId}/timeline': {
        get: {
          summary: 'Every step of the lead: scheduled, sent, skipped (why), failed, delivered, read, replied, operator actions',
          description:
            "A `sent` entry (and a `failed` send) names the language the message went in: `detail.language` (as WhatsApp spells it, e.g. `es`, `pt_BR`), `detail.languageMatch` (`lead`: the lead's language, its base language or another region of it; `fallback`: the tenant's `languageFallback` chain; `default`: the template's default version) and `detail.requestedLanguage` (the lead's language, when another went). A WhatsApp send names the number it went from in `detail.sender` (`default` or a name under `whatsapp.senders`); an SMS has `detail.channel: sms`. A `sender` entry records the lead getting its number (`detail.rule`: `owner`, `team`, `country`, `default`, `reply` when the lead wrote first, `operator` for a reassignment, `unavailable` when its number was taken out of the configuration; `detail.from` names the previous one). A send stopped before WhatsApp because its template message no longer fits the tenant's registration (a language not registered, or a parameter count other than the version's placeholders) is a `failed` entry with `detail.reason: template_mismatch` and the problem in `detail.error`; it is not retried.",
          security: operator,
          parameters: [tenantParam, leadIdParam],
          responses: { 200: object('`{leadId, timeline}`'), ...errors(400, 401, 403, 404) },
        },
      },
      '/api/{tenant}/leads/{leadId}/preview': {
        get: {
          summary: 'Flow preview (dry run): every send the flows would make for this lead, from its journaled state',
          description: `Runs the workflow's own planning code forward; nothing is sent. Each send names when it goes (UTC and the lead's clock), its message (template or free text, language, parameters), its \`language\` (\`{language, match, requested?}\`: \`match\` is \`lead\` when the lead's language, its base language or another region of it has a version, \`fallback\` when the tenant's \`languageFallback\` chain chose, \`default\` for the template's default version; \`requested\` is the lead's language when another goes), its \`channel\` (\`whatsapp\`, or \`sms\` for a fallback already planned), the \`sender\` number of a WhatsApp send (\`{name, rule}\`: \`kept\` when the lead already has it, else \`owner\`, \`team\`, \`country\` or \`default\`, the rule that will choose it at the first send) and the guards that moved or shaped it (\`send_window\`: quiet hours or a day without sending; \`recipient_spacing\`; \`outside_24h_window\`). Each skip names its reason. It assumes nothing else happens: no reply, no attendance (a booked meeting ends as a no-show), no CRM event. Only \`days\` and \`from\` are accepted as query parameters; any other is \`422 invalid_payload\`.`,
          security: operator,
          parameters: [tenantParam, leadIdParam, { name: 'days', in: 'query', description: 'How far ahead to look (1 to 90, default 30)', schema: { type: 'integer', minimum: 1, maximum: 90, default: 30 } }, { name: 'from', in: 'query', description: 'The moment the preview starts from (an ISO instant; default: now)', schema: previewQuery.properties.from }],
          responses: { 200: object('`{preview: {leadId, timeZone, stage, paused, from, until, sends, skips, truncated, assumptions}, basedOn: {journalVersion}}`'), ...errors(400, 401, 403, 404, 422) },
        },
      },
      '/api/{tenant}/lead-preview': {
        post: {
          summary: 'Flow preview of a hypothetical lead (time zone, stage, meeting, last inbound message)',
          description: `The same dry run as \`GET /api/{tenant}/leads/{leadId}/preview\`, for a lead that does not exist. The body takes exactly its own fields (\`additionalProperties: false\`): an unknown or missing required field is \`422 invalid_payload\` with \`details.fields\`. ${noNul}`,
          security: operator,
          parameters: [tenantParam],
          requestBody: { required: true, ...json(ref('LeadPreviewRequest')) },
          responses: { 200: object('`{preview}`'), ...errors(400, 401, 403, 404, 413, 415, 422) },
        },
      },
      '/api/{tenant}/leads/{leadId}/actions': {
        post: {
          summary: 'Operator intervention (a Temporal update with a validator)',
          description: `Needs the operator role; the timeline names the credential's operator. Each action takes exactly its own fields (\`additionalProperties: false\`): an unknown field (\`operator\` among them: the operator is the credential's) or a missing required one is \`422 invalid_payload\`, with \`details.fields\` naming each field. The workflow's update validators refuse the same input sent from the Temporal CLI or Web UI. ${noNul}`,
          security: operator,
          parameters: [tenantParam, leadIdParam, { name: 'Idempotency-Key', in: 'header', description: 'The update id (first 200 characters): a repeat returns the first outcome', schema: { type: 'string' } }],
          requestBody: { required: true, ...json(ref('LeadAction')) },
          responses: {
            200: object('`{lead, updateId}`'),
            ...errors(400, 401, 403, 404, 413, 415, 422),
            503: { description: '`temporarily_unavailable`: Temporal did not answer; retry with the same Idempotency-Key', headers: { 'Retry-After': { schema: { type: 'integer', minimum: 1 } } }, ...json(ref('Error')) },
          },
        },
      },
      '/api/{tenant}/dashboard/context': { get: { summary: 'Tenant facts the dashboard pages need (name, time zone, Temporal Web UI)', security: operator, parameters: [tenantParam], responses: { 200: object('`{tenant, displayName, timeZone, serviceLevelSeconds, temporal}`'), ...errors(400, 401, 403, 404) } } },
      '/api/{tenant}/dashboard/snapshot': { get: { summary: "The supervisor dashboard's figures", security: operator, parameters: [tenantParam], responses: { 200: { description: 'DashboardSnapshot', ...json(ref('DashboardSnapshot')) }, ...errors(400, 401, 403, 404) } } },
      '/api/{tenant}/analytics/outcomes': {
        get: {
          summary: 'Outcome analytics of the lead flows: per flow and step, template, hour and weekday (the reporting_lead_sends view)',
          description: `Sends made on the leads' own dates \`from\` to \`to\` (inclusive; either defaults to ${defaultOutcomeDays} days from the other, both to the ${defaultOutcomeDays} days up to the tenant's today). What follows a send (its first reply, a booking, attendance, an opt-out) counts for it until the lead's next send. Figures only. Only \`from\` and \`to\` are accepted: any other parameter, a date that is not YYYY-MM-DD, \`from\` after \`to\` or a span over ${maxOutcomeDays} days is \`422 invalid_payload\` with \`details.fields\`.`,
          security: operator,
          parameters: [
            tenantParam,
            { name: 'from', in: 'query', description: 'First date (YYYY-MM-DD) on the leads\' clocks', schema: { type: 'string', format: 'date' } },
            { name: 'to', in: 'query', description: 'Last date (YYYY-MM-DD) on the leads\' clocks', schema: { type: 'string', format: 'date' } },
          ],
          responses: { 200: { description: 'OutcomeAnalytics', ...json(ref('OutcomeAnalytics')) }, ...errors(400, 401, 403, 404, 422) },
        },
      },
      '/api/{tenant}/analytics/charts': {
        get: {
          summary: "The dashboard's charts: calls per hour today and the same weekday last week, service level and handle time per hour, sends and replies per hour, the outcome funnel",
          description: 'Calls on the tenant\'s clock; sends and replies on each lead\'s own clock. Takes no query parameters: any is `422 invalid_payload`.',
          security: operator,
          parameters: [tenantParam],
          responses: { 200: { description: 'DashboardCharts', ...json(ref('DashboardCharts')) }, ...errors(400, 401, 403, 404, 422) },
        },
      },
      '/api/{tenant}/dashboard/stream': {
        get: {
          summary: 'Live dashboard updates (Server-Sent Events; Last-Event-ID catches up)',
          description:
            'Events: `snapshot` (a DashboardSnapshot, first and after changes), `change` (a DashboardChange, with its `id`), `backlog` (a DashboardBacklog, when the ingest backlog changed with no journal write). The schema describes each event (DashboardStreamEvent), as OpenAPI 3.1 reads a `text/event-stream` schema.',
          security: operator,
          parameters: [tenantParam, { name: 'Last-Event-ID', in: 'header', description: 'The last `id` seen: the changes after it come first, when this process still has them', schema: { type: 'string' } }],
          responses: { 200: { description: 'Event stream', content: { 'text/event-stream': { schema: ref('DashboardStreamEvent') } } }, ...errors(400, 401, 403, 404) },
        },
      },
    },
  };
}

const swaggerUiDist = path.dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));

const docsPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Switchboard API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script></body></html>`;

export function createOpenApiRouter(): Router {
  const router = Router();
  const document = openApiDocument();
  router.get('/openapi.json', (_req, res) => {
    res.json(document);
  });
  router.get('/docs', (_req, res) => {
    res.type('html').send(docsPage);
  });
  router.get('/docs/init.js', (_req, res) => {
    res.type('application/javascript').send("window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#ui', deepLinking: true });\n");
  });
  router.use('/docs/assets', express.static(swaggerUiDist, { fallthrough: false, maxAge: '1h' }));
  return router;
}
