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
import { voiceAiAnalyticsSchema, voiceAiEndSchema, voiceAiStartSchema } from '../ingestion/providers/voice-ai.js';
import { whatsappWebhookSchema } from '../ingestion/providers/whatsapp-webhook.js';
import { rejectionStatus } from '../ingestion/rejections.js';
import { listCallsQuerySchema } from './routes/calls.js';
import { crmBacklogSchema, ingestBacklogSchema } from './routes/dashboard.js';
import { leadActionSchema } from './routes/leads.js';

type JsonSchema = Record<string, unknown>;

const schema = (zodSchema: z.ZodType): JsonSchema => {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(zodSchema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  return rest;
};

/** 503s that are not refusals: the sender should retry after `Retry-After` seconds. */
const unavailableReasons = ['backlog_full', 'temporarily_unavailable'] as const;
export const errorResponseSchema = z.object({
  error: z.enum([...unavailableReasons, ...Object.keys(rejectionStatus)]).describe('Machine-readable reason'),
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
const readinessSchema = z.object({
  status: z.enum(['ready', 'degraded', 'not_ready']).describe('`degraded`: events are accepted, but one store is down or forwarding is behind (see `checks.inbox`)'),
  checks: z.record(z.string(), z.object({ ok: z.boolean(), latencyMs: z.number(), error: z.string().optional() })),
});

const json = (body: JsonSchema) => ({ content: { 'application/json': { schema: body } } });
const retryLater = {
  503: {
    description: '`backlog_full` (too many events waiting to be forwarded) or `temporarily_unavailable` (neither PostgreSQL nor Temporal answered). Nothing was stored; retry after `Retry-After` seconds.',
    headers: { 'Retry-After': { schema: { type: 'integer', minimum: 1 }, description: 'Seconds to wait before retrying' } },
    content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
  },
};
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const errors = (...statuses: number[]) =>
  Object.fromEntries(statuses.map((status) => [String(status), { description: 'Refused; the request is stored for inspection and replay', ...json(ref('Error')) }]));
const signed = [{ switchboardSignature: [] }];
const operator = [{ operatorToken: [] }, { dashboardSession: [] }];
const tenantParam = { name: 'tenant', in: 'path', required: true, schema: { type: 'string' } };
const callIdParam = { name: 'callId', in: 'path', required: true, description: '`<provider>:<provider call id>`, e.g. `pbx:abc123`', schema: { type: 'string' } };
const leadIdParam = { name: 'leadId', in: 'path', required: true, schema: { type: 'string' } };
const object = (description: string) => ({ description, ...json({ type: 'object', additionalProperties: true }) });

function queryParameters(zodSchema: z.ZodObject): Array<Record<string, unknown>> {
  const shape = schema(zodSchema) as { properties?: Record<string, JsonSchema>; required?: string[] };
  return Object.entries(shape.properties ?? {}).map(([name, property]) => ({ name, in: 'query', required: shape.required?.includes(name) ?? false, schema: property }));
}

export function openApiDocument(): Record<string, unknown> {
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
          description: '`sha256=<hex HMAC-SHA256(tenant secret, X-Switchboard-Timestamp + "." + raw body)>`; the timestamp (unix seconds) in `X-Switchboard-Timestamp` must be at most 5 minutes old.',
        },
        twilioSignature: { type: 'apiKey', in: 'header', name: 'X-Twilio-Signature', description: "Twilio's own scheme, with the tenant's auth token." },
        metaSignature: { type: 'apiKey', in: 'header', name: 'X-Hub-Signature-256', description: "`sha256=<hex HMAC-SHA256(app secret, raw body)>`, Meta's scheme." },
        operatorToken: { type: 'http', scheme: 'bearer', description: "The tenant's operator token." },
        dashboardSession: { type: 'apiKey', in: 'cookie', name: 'sb_operator', description: 'Set by signing in at /dashboard.' },
      },
      schemas: {
        Error: schema(errorResponseSchema),
        Accepted: schema(acceptedResponseSchema),
        PbxEvent: schema(pbxEventSchema),
        TwilioStatusCallback: schema(twilioCallbackSchema),
        VoiceAiEvent: { oneOf: [schema(voiceAiStartSchema), schema(voiceAiEndSchema), schema(voiceAiAnalyticsSchema)] },
        CallResult: schema(callResultSchema),
        CrmEvent: schema(crmEventSchema),
        WhatsAppWebhook: schema(whatsappWebhookSchema),
        LeadAction: schema(leadActionSchema),
        Readiness: schema(readinessSchema),
        CallStatus: { type: 'string', enum: [...callStatuses] },
        Disposition: schema(dispositionSchema),
        IngestBacklog: schema(ingestBacklogSchema),
        CrmBacklog: schema(crmBacklogSchema),
        // Only the backlog is described field by field; the figures are documented in the README.
        DashboardSnapshot: { type: 'object', additionalProperties: true, required: ['ingestBacklog', 'crmBacklog'], properties: { ingestBacklog: ref('IngestBacklog'), crmBacklog: ref('CrmBacklog') } },
      },
    },
    paths: {
      '/healthz': { get: { summary: 'Liveness', responses: { 200: object('The process is alive') } } },
      '/readyz': { get: { summary: 'Readiness: Temporal, PostgreSQL, migrations, inbox backlog', responses: { 200: { description: 'Ready, or degraded but accepting events', ...json(ref('Readiness')) }, 503: { description: 'Not ready', ...json(ref('Readiness')) } } } },
      '/metrics': { get: { summary: 'Prometheus metrics', responses: { 200: { description: 'Prometheus text format', content: { 'text/plain': { schema: { type: 'string' } } } } } } },
      '/webhooks/{tenant}/pbx': {
        post: { summary: 'PBX call event', security: signed, parameters: [tenantParam], requestBody: { required: true, ...json(ref('PbxEvent')) }, responses: { 202: { description: 'Accepted', ...json(ref('Accepted')) }, ...errors(400, 401, 404, 413, 415, 422), ...retryLater } },
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
        post: { summary: 'Voice-AI agent event: call.start, call.end, analytics.completed', security: signed, parameters: [tenantParam], requestBody: { required: true, ...json(ref('VoiceAiEvent')) }, responses: { 202: { description: 'Accepted', ...json(ref('Accepted')) }, ...errors(400, 401, 404, 413, 415, 422), ...retryLater } },
      },
      '/webhooks/{tenant}/crm': {
        post: { summary: 'CRM lead or meeting event', security: signed, parameters: [tenantParam], requestBody: { required: true, ...json(ref('CrmEvent')) }, responses: { 202: { description: 'Accepted', ...json(ref('Accepted')) }, ...errors(400, 401, 404, 413, 415, 422), ...retryLater } },
      },
      '/webhooks/{tenant}/whatsapp': {
        get: {
          summary: "Meta's webhook verification handshake",
          parameters: [tenantParam, { name: 'hub.mode', in: 'query', schema: { type: 'string' } }, { name: 'hub.verify_token', in: 'query', schema: { type: 'string' } }, { name: 'hub.challenge', in: 'query', schema: { type: 'string' } }],
          responses: { 200: { description: 'The challenge', content: { 'text/plain': { schema: { type: 'string' } } } }, 403: object('Wrong verify token') },
        },
        post: { summary: 'WhatsApp statuses and inbound messages', security: [{ metaSignature: [] }], parameters: [tenantParam], requestBody: { required: true, ...json(ref('WhatsAppWebhook')) }, responses: { 200: object('Processed (duplicates included)'), ...errors(400, 401, 404, 409, 413, 415, 422), ...retryLater } },
      },
      '/api/{tenant}/calls': {
        get: { summary: 'Search the call journal, newest first (keyset paging)', security: operator, parameters: [tenantParam, ...queryParameters(listCallsQuerySchema)], responses: { 200: object('`{calls, nextCursor}`'), ...errors(401, 403, 404, 422) } },
      },
      '/api/{tenant}/calls/{callId}': {
        get: { summary: 'One call: journal row, events, enrichment, CRM links, outcome actions', security: operator, parameters: [tenantParam, callIdParam], responses: { 200: object('`{call, events, recording?}`'), 404: object('No such call'), ...errors(401, 403) } },
      },
      '/api/{tenant}/calls/{callId}/result': {
        post: { summary: "The manager's call-result form (CRM widget)", security: operator, parameters: [tenantParam, callIdParam, { name: 'Idempotency-Key', in: 'header', schema: { type: 'string' } }], requestBody: { required: true, ...json(ref('CallResult')) }, responses: { 202: { description: 'Accepted', ...json(ref('Accepted')) }, ...errors(400, 401, 403, 404, 413, 422), ...retryLater } },
      },
      '/api/{tenant}/calls/{callId}/recording': {
        get: {
          summary: 'The recording, with HTTP range support',
          description: 'Authorized by the operator token or the signed link (`?sig=`) given to the CRM player.',
          security: [...operator, {}],
          parameters: [tenantParam, callIdParam, { name: 'sig', in: 'query', schema: { type: 'string' } }, { name: 'Range', in: 'header', schema: { type: 'string' } }],
          responses: { 200: { description: 'The whole file (`Accept-Ranges: bytes`)', content: { 'audio/*': { schema: { type: 'string', format: 'binary' } } } }, 206: { description: 'Partial content', content: { 'audio/*': { schema: { type: 'string', format: 'binary' } } } }, 404: object('No recording yet'), 416: object('Range not satisfiable') },
        },
      },
      '/api/{tenant}/leads/{leadId}': {
        get: { summary: "The lead's current flow state", security: operator, parameters: [tenantParam, leadIdParam], responses: { 200: object('`{lead, workflowId}`'), 404: object('No such lead'), ...errors(401, 403) } },
      },
      '/api/{tenant}/leads/{leadId}/timeline': {
        get: { summary: 'Every step of the lead: scheduled, sent, skipped (why), failed, delivered, read, replied, operator actions', security: operator, parameters: [tenantParam, leadIdParam], responses: { 200: object('`{leadId, timeline}`'), 404: object('No such lead'), ...errors(401, 403) } },
      },
      '/api/{tenant}/leads/{leadId}/actions': {
        post: {
          summary: 'Operator intervention (a Temporal update with a validator)',
          security: operator,
          parameters: [tenantParam, leadIdParam, { name: 'Idempotency-Key', in: 'header', schema: { type: 'string' } }],
          requestBody: { required: true, ...json(ref('LeadAction')) },
          responses: { 200: object('`{lead, updateId}`'), 404: object('No running flow'), 422: object('`invalid_payload` or `action_rejected` with the reason'), 503: object('Temporal did not answer'), ...errors(401, 403) },
        },
      },
      '/api/{tenant}/dashboard/context': { get: { summary: 'Tenant facts the dashboard pages need (name, time zone, Temporal Web UI)', security: operator, parameters: [tenantParam], responses: { 200: object('`{tenant, displayName, timeZone, serviceLevelSeconds, temporal}`'), ...errors(401, 403, 404) } } },
      '/api/{tenant}/dashboard/snapshot': { get: { summary: "The supervisor dashboard's figures", security: operator, parameters: [tenantParam], responses: { 200: { description: 'DashboardSnapshot', ...json(ref('DashboardSnapshot')) }, ...errors(401, 403, 404) } } },
      '/api/{tenant}/dashboard/stream': {
        get: { summary: 'Live dashboard updates (Server-Sent Events: `snapshot`, `change`, `backlog` = `{generatedAt, ingestBacklog}` when it changed; Last-Event-ID catches up)', security: operator, parameters: [tenantParam], responses: { 200: { description: 'Event stream', content: { 'text/event-stream': { schema: { type: 'string' } } } }, ...errors(401, 403, 404) } },
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
