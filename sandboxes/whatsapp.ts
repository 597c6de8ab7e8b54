// WhatsApp Business Cloud API stand-in: Graph-shaped sends, templates, and signed, at-least-once webhooks (see CONTRACTS.md).
import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import express from 'express';
import type { NextFunction, Request, Response } from 'express';
import { metaSignature } from '../security/signatures.js';
import {
  bearerToken,
  controlRoutes,
  CONTROL_PREFIX,
  createApp,
  defaultRouteKey,
  isControlPath,
  isRecord,
  jsonBody,
  listen,
  OutageSwitch,
  RequestCounter,
  RollingWindow,
} from './http.js';
import type { RequestCounts } from './http.js';

export const GRAPH_VERSION = 'v21.0';

/** May be async so tests on Temporal's time-skipping server can follow workflow time. */
export type WhatsAppClock = () => number | Promise<number>;

export type WhatsAppTemplateCategory = 'MARKETING' | 'UTILITY' | 'AUTHENTICATION';

export interface WhatsAppTemplateInput {
  name: string;
  language: string;
  category: WhatsAppTemplateCategory;
  /** Body text with {{1}} {{2}} placeholders; the distinct placeholders are the parameter count. */
  body: string;
  /** Not in the brief: lets tests exercise "unapproved template" (132001). Defaults to APPROVED. */
  status?: 'APPROVED' | 'PENDING' | 'REJECTED';
}

export interface WhatsAppSandboxOptions {
  port?: number;
  token: string;
  appSecret: string;
  phoneNumberId: string;
  displayPhoneNumber?: string;
  wabaId: string;
  webhookUrl?: string;
  templates: WhatsAppTemplateInput[];
  /** Accepted sends per rolling second per phone-number-id (80). */
  messagesPerSecond?: number;
  /** Minimum gap between accepted messages to one recipient (6000 ms). */
  pairSpacingMs?: number;
  /** Delivered marketing templates per recipient per rolling 24 h (2). */
  marketingPerUserPerDay?: number;
  /** Recipients (digits, `+` tolerated) whose messages fail with 131026. */
  unreachable?: string[];
  /** Also report `read` after `delivered`. */
  autoRead?: boolean;
  /** Probability (0–1) that a webhook delivery is sent twice. */
  duplicateRate?: number;
  /** Deliver the statuses of one message in a random (seeded) order. */
  shuffleStatuses?: boolean;
  seed?: number;
  clock?: WhatsAppClock;
  /**
   * Holds the answer to each accepted send this long, while the message is already accepted and its
   * statuses are on their way: for tests of a client that dies waiting for the answer.
   */
  responseDelayMs?: number;
}

export type WhatsAppStatusName = 'sent' | 'delivered' | 'read' | 'failed';

export interface WhatsAppStatusError {
  code: number;
  title: string;
  message: string;
  error_data: { details: string };
}

export interface WhatsAppStatus {
  id: string;
  status: WhatsAppStatusName;
  timestamp: string;
  recipient_id: string;
  biz_opaque_callback_data?: string;
  errors?: WhatsAppStatusError[];
}

export interface WhatsAppInboundMessage {
  from: string;
  id: string;
  timestamp: string;
  type: 'text';
  text: { body: string };
}

export interface WhatsAppWebhookValue {
  messaging_product: 'whatsapp';
  metadata: { display_phone_number: string; phone_number_id: string };
  statuses?: WhatsAppStatus[];
  contacts?: { profile: { name: string }; wa_id: string }[];
  messages?: WhatsAppInboundMessage[];
}

export interface WhatsAppWebhookPayload {
  object: 'whatsapp_business_account';
  entry: { id: string; changes: { field: 'messages'; value: WhatsAppWebhookValue }[] }[];
}

export interface WhatsAppStoredMessage {
  id: string;
  phoneNumberId: string;
  /** Recipient digits (the wa_id). */
  to: string;
  type: 'text' | 'template';
  text?: string;
  template?: { name: string; language: string; category: WhatsAppTemplateCategory; parameters: string[]; body: string };
  bizOpaqueCallbackData?: string;
  acceptedAt: string;
  /** In the order they happened; webhooks may deliver them otherwise. */
  statuses: WhatsAppStatus[];
}

/** pending → delivered | failed (gave up after 5 attempts) | cancelled (stop()) | skipped (no webhook URL). */
export type WhatsAppDeliveryStatus = 'pending' | 'delivered' | 'failed' | 'cancelled' | 'skipped';

export interface WhatsAppDelivery {
  body: WhatsAppWebhookPayload;
  status: WhatsAppDeliveryStatus;
  attempts: number;
}

export interface WhatsAppState {
  messages: WhatsAppStoredMessage[];
  deliveries: WhatsAppDelivery[];
  requests: RequestCounts;
}

export interface WhatsAppInboundInput {
  from: string;
  text: string;
  name?: string;
}

export interface WhatsAppSandbox {
  url: string;
  state(): WhatsAppState;
  setOutage(down: boolean): void;
  setWebhookUrl(url: string | undefined): void;
  /** A user's message: queues its webhook and opens that user's 24 h window. */
  inbound(input: WhatsAppInboundInput): Promise<void>;
  /** Resolves when every webhook delivery queued so far has finished (delivered or given up). */
  settle(): Promise<void>;
  stop(): Promise<void>;
}

const DAY_MS = 24 * 60 * 60 * 1000;
const MAX_ATTEMPTS = 5;
const BACKOFF_BASE_MS = 200;
const ATTEMPT_TIMEOUT_MS = 10_000;

class GraphError {
  constructor(
    readonly httpStatus: number,
    readonly code: number,
    readonly message: string,
    readonly details: string,
    readonly subcode?: number,
  ) {}
}

const invalid = (details: string): GraphError => new GraphError(400, 100, 'Invalid parameter', details);

function fbtraceId(): string {
  return `A${randomBytes(16).toString('base64url').slice(0, 22)}`;
}

function sendGraphError(res: Response, error: GraphError): void {
  res.status(error.httpStatus).json({
    error: {
      message: error.message,
      type: 'OAuthException',
      code: error.code,
      ...(error.subcode === undefined ? {} : { error_subcode: error.subcode }),
      error_data: { messaging_product: 'whatsapp', details: error.details },
      fbtrace_id: fbtraceId(),
    },
  });
}

function unknownObject(id: string, method: 'get' | 'post'): GraphError {
  return new GraphError(
    400,
    100,
    `Unsupported ${method} request. Object with ID '${id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation.`,
    'Unknown object id',
    33,
  );
}

// Failure outcomes reported through the status webhook, after a 200.
const STATUS_ERRORS = {
  reengagement: {
    code: 131047,
    title: 'Re-engagement message',
    message: 'Re-engagement message',
    error_data: { details: 'Message failed to send because more than 24 hours have passed since the customer last replied to this number.' },
  },
  marketingCap: {
    code: 131049,
    title: 'This message was not delivered to maintain healthy ecosystem engagement.',
    message: 'This message was not delivered to maintain healthy ecosystem engagement.',
    error_data: { details: 'In order to maintain a healthy ecosystem engagement, the message failed to be delivered.' },
  },
  undeliverable: {
    code: 131026,
    title: 'Message undeliverable',
    message: 'Message undeliverable',
    error_data: { details: 'Unable to deliver message. The recipient may not be a WhatsApp user or may not have accepted the latest terms.' },
  },
} satisfies Record<string, WhatsAppStatusError>;

/** Distinct {{n}} placeholders: WhatsApp counts `{{1}} … {{1}}` as one parameter. */
export function templateParameterCount(body: string): number {
  return new Set([...body.matchAll(/\{\{\s*(\d+)\s*\}\}/g)].map((match) => match[1])).size;
}

function render(body: string, parameters: string[]): string {
  return body.replace(/\{\{\s*(\d+)\s*\}\}/g, (placeholder, index: string) => parameters[Number(index) - 1] ?? placeholder);
}

const digitsOf = (phone: string): string => phone.replace(/\D/g, '');

/** mulberry32: small, seedable, good enough to shuffle and pick duplicates reproducibly. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffled<T>(items: T[], random: () => number): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [copy[i], copy[j]] = [copy[j] as T, copy[i] as T];
  }
  return copy;
}

interface ParsedSend {
  to: string;
  waId: string;
  type: 'text' | 'template';
  text?: string;
  template?: { name: string; language: string; parameters: string[] };
  bizOpaqueCallbackData?: string;
}

/** Template body parameters, or the GraphError describing the first bad field. */
function bodyParameters(components: unknown): string[] | GraphError | undefined {
  if (components === undefined) return undefined;
  if (!Array.isArray(components)) return invalid('template.components must be an array');
  let found: string[] | undefined;
  for (const [index, component] of (components as unknown[]).entries()) {
    const path = `template.components[${index}]`;
    if (!isRecord(component) || typeof component.type !== 'string') return invalid(`${path}.type is required`);
    // Header and button components carry their own parameters; only the body counts here.
    if (component.type.toLowerCase() !== 'body') continue;
    const parameters = component.parameters ?? [];
    if (!Array.isArray(parameters)) return invalid(`${path}.parameters must be an array`);
    const values: string[] = [];
    for (const [p, parameter] of (parameters as unknown[]).entries()) {
      const paramPath = `${path}.parameters[${p}]`;
      if (!isRecord(parameter) || typeof parameter.type !== 'string') return invalid(`${paramPath}.type is required`);
      if (parameter.type === 'text') {
        if (typeof parameter.text !== 'string' || parameter.text === '') return invalid(`${paramPath}.text must be a non-empty string`);
        values.push(parameter.text);
      } else if (parameter.type === 'currency' || parameter.type === 'date_time') {
        const value = parameter[parameter.type];
        if (!isRecord(value)) return invalid(`${paramPath}.${parameter.type} is required`);
        values.push(typeof value.fallback_value === 'string' ? value.fallback_value : JSON.stringify(value));
      } else {
        return invalid(`${paramPath}.type must be one of text, currency, date_time`);
      }
    }
    found = [...(found ?? []), ...values];
  }
  return found;
}

function parseSend(body: unknown): ParsedSend | GraphError {
  if (!isRecord(body)) return invalid('The request body must be a JSON object');
  if (body.messaging_product !== 'whatsapp') return invalid('messaging_product is required and must be "whatsapp"');
  if (body.recipient_type !== undefined && body.recipient_type !== 'individual') return invalid('recipient_type must be "individual"');
  if (typeof body.to !== 'string' || body.to === '') return invalid('to is required');
  if (!/^\+?\d{5,15}$/.test(body.to)) return invalid('to must be a phone number in digits (a leading + is allowed)');
  let bizOpaqueCallbackData: string | undefined;
  if (body.biz_opaque_callback_data !== undefined) {
    if (typeof body.biz_opaque_callback_data !== 'string' || body.biz_opaque_callback_data.length > 512) {
      return invalid('biz_opaque_callback_data must be a string of at most 512 characters');
    }
    bizOpaqueCallbackData = body.biz_opaque_callback_data;
  }
  const base = { to: body.to, waId: digitsOf(body.to), ...(bizOpaqueCallbackData === undefined ? {} : { bizOpaqueCallbackData }) };

  if (body.type === 'text') {
    const text = body.text;
    if (!isRecord(text)) return invalid('text is required for type text');
    if (typeof text.body !== 'string' || text.body.trim() === '') return invalid('text.body is required');
    if (text.body.length > 4096) return invalid('text.body must be at most 4096 characters');
    if (text.preview_url !== undefined && typeof text.preview_url !== 'boolean') return invalid('text.preview_url must be a boolean');
    return { ...base, type: 'text', text: text.body };
  }
  if (body.type === 'template') {
    const template = body.template;
    if (!isRecord(template)) return invalid('template is required for type template');
    if (typeof template.name !== 'string' || template.name === '') return invalid('template.name is required');
    if (!isRecord(template.language) || typeof template.language.code !== 'string' || template.language.code === '') {
      return invalid('template.language.code is required');
    }
    const parameters = bodyParameters(template.components);
    if (parameters instanceof GraphError) return parameters;
    return { ...base, type: 'template', template: { name: template.name, language: template.language.code, parameters: parameters ?? [] } };
  }
  return invalid(body.type === undefined ? 'type is required' : 'type must be one of text, template');
}

export async function startWhatsAppSandbox(options: WhatsAppSandboxOptions): Promise<WhatsAppSandbox> {
  const readClock = options.clock ?? Date.now;
  // The shared windows want a synchronous clock: each request reads the (maybe async) clock once,
  // then does all its bookkeeping synchronously against that instant.
  let instant = 0;
  const at = (): number => instant;
  const now = async (): Promise<number> => {
    instant = await readClock();
    return instant;
  };
  const unixSeconds = (ms: number): string => String(Math.floor(ms / 1000));

  const templates = options.templates.map((template) => ({
    ...template,
    status: template.status ?? 'APPROVED',
    parameterCount: templateParameterCount(template.body),
  }));
  const displayPhoneNumber = options.displayPhoneNumber ?? '15555550100';
  const messagesPerSecond = options.messagesPerSecond ?? 80;
  const pairSpacingMs = options.pairSpacingMs ?? 6000;
  const marketingCap = options.marketingPerUserPerDay ?? 2;
  const unreachable = new Set((options.unreachable ?? []).map(digitsOf));
  const duplicateRate = options.duplicateRate ?? 0;
  const random = seededRandom(options.seed ?? Math.floor(Math.random() * 2 ** 32));
  let webhookUrl = options.webhookUrl;

  const messages: WhatsAppStoredMessage[] = [];
  const deliveries: WhatsAppDelivery[] = [];
  const throughput = new RollingWindow(1000, at);
  const marketingDelivered = new RollingWindow(DAY_MS, at);
  const lastAcceptedAt = new Map<string, number>();
  const lastInboundAt = new Map<string, number>();
  let wamidSeq = 0;

  const counter = new RequestCounter(defaultRouteKey);
  const outage = new OutageSwitch();
  const stopping = new AbortController();
  const inFlight = new Set<Promise<void>>();

  function wamid(): string {
    const bytes = Buffer.alloc(20);
    bytes.writeBigUInt64BE(BigInt(++wamidSeq));
    randomBytes(12).copy(bytes, 8);
    return `wamid.${bytes.toString('base64url')}`;
  }

  function envelope(value: Omit<WhatsAppWebhookValue, 'messaging_product' | 'metadata'>): WhatsAppWebhookPayload {
    return {
      object: 'whatsapp_business_account',
      entry: [
        {
          id: options.wabaId,
          changes: [
            {
              field: 'messages',
              value: {
                messaging_product: 'whatsapp',
                metadata: { display_phone_number: displayPhoneNumber, phone_number_id: options.phoneNumberId },
                ...value,
              },
            },
          ],
        },
      ],
    };
  }

  /** Posts one delivery, retrying non-2xx and connection errors with exponential backoff. */
  async function deliver(delivery: WhatsAppDelivery, raw: Buffer): Promise<void> {
    while (delivery.attempts < MAX_ATTEMPTS) {
      const url = webhookUrl;
      if (url === undefined || stopping.signal.aborted) break;
      delivery.attempts++;
      try {
        const response = await fetch(url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'user-agent': 'facebookexternalua',
            'x-hub-signature-256': metaSignature(options.appSecret, raw),
          },
          body: raw,
          signal: AbortSignal.any([stopping.signal, AbortSignal.timeout(ATTEMPT_TIMEOUT_MS)]),
        });
        // Drain so the keep-alive socket can be reused.
        await response.arrayBuffer();
        if (response.ok) {
          delivery.status = 'delivered';
          return;
        }
      } catch {
        // Connection refused, reset or timed out: retried like a non-2xx answer.
      }
      if (delivery.attempts >= MAX_ATTEMPTS || stopping.signal.aborted) break;
      try {
        await delay(BACKOFF_BASE_MS * 2 ** (delivery.attempts - 1), undefined, { signal: stopping.signal, ref: false });
      } catch {
        break;
      }
    }
    delivery.status = stopping.signal.aborted ? 'cancelled' : 'failed';
  }

  /**
   * Queues payloads to go out one after another once the current response is written;
   * each may be sent twice (duplicateRate). Returns at once: sends never wait on webhooks.
   */
  function enqueue(payloads: WhatsAppWebhookPayload[]): void {
    const queued: { delivery: WhatsAppDelivery; raw: Buffer }[] = [];
    for (const body of payloads) {
      const copies = random() < duplicateRate ? 2 : 1;
      // Both copies carry the same bytes, as a redelivery would.
      const raw = Buffer.from(JSON.stringify(body));
      for (let copy = 0; copy < copies; copy++) {
        const delivery: WhatsAppDelivery = { body, status: webhookUrl === undefined ? 'skipped' : 'pending', attempts: 0 };
        deliveries.push(delivery);
        if (delivery.status === 'pending') queued.push({ delivery, raw });
      }
    }
    if (queued.length === 0) return;
    const chain = (async () => {
      await new Promise((resolve) => setImmediate(resolve));
      for (const { delivery, raw } of queued) {
        if (stopping.signal.aborted) delivery.status = 'cancelled';
        else await deliver(delivery, raw);
      }
    })();
    inFlight.add(chain);
    void chain.finally(() => inFlight.delete(chain));
  }

  /** What happens to an accepted message after the 200: its failure, if any. */
  function outcomeOf(send: ParsedSend, category: WhatsAppTemplateCategory | undefined, nowMs: number): WhatsAppStatusError | undefined {
    if (unreachable.has(send.waId)) return STATUS_ERRORS.undeliverable;
    if (send.type === 'text') {
      const inboundAt = lastInboundAt.get(send.waId);
      if (inboundAt === undefined || nowMs - inboundAt > DAY_MS) return STATUS_ERRORS.reengagement;
    }
    if (category === 'MARKETING') {
      if (marketingDelivered.count(send.waId) >= marketingCap) return STATUS_ERRORS.marketingCap;
      marketingDelivered.record(send.waId);
    }
    return undefined;
  }

  async function handleSend(req: Request, res: Response): Promise<void> {
    if (req.params.phoneNumberId !== options.phoneNumberId) return sendGraphError(res, unknownObject(String(req.params.phoneNumberId), 'post'));
    const send = parseSend(req.body);
    if (send instanceof GraphError) return sendGraphError(res, send);

    let template: (typeof templates)[number] | undefined;
    if (send.template) {
      const { name, language, parameters } = send.template;
      template = templates.find((t) => t.name === name && t.language === language && t.status === 'APPROVED');
      if (!template) {
        return sendGraphError(res, new GraphError(400, 132001, 'Template name does not exist in the translation', `template name (${name}) does not exist in ${language}`));
      }
      if (parameters.length !== template.parameterCount) {
        return sendGraphError(
          res,
          new GraphError(
            400,
            132000,
            'Number of parameters does not match the expected number of params',
            `body: number of localizable_params (${parameters.length}) does not match the expected number of params (${template.parameterCount})`,
          ),
        );
      }
    }

    // Everything below runs synchronously after this await, so concurrent sends cannot interleave.
    const nowMs = await now();
    if (throughput.count(options.phoneNumberId) >= messagesPerSecond) {
      counter.rateLimited();
      return sendGraphError(res, new GraphError(429, 130429, 'Rate limit hit', 'Cloud API message throughput has been reached.'));
    }
    const previous = lastAcceptedAt.get(send.waId);
    if (previous !== undefined && nowMs - previous < pairSpacingMs) {
      counter.rateLimited();
      return sendGraphError(
        res,
        new GraphError(
          400,
          131056,
          '(Business Account, Consumer Account) pair rate limit hit',
          'Message failed to send because there were too many messages sent from this phone number to the same phone number in a short period of time.',
        ),
      );
    }
    throughput.record(options.phoneNumberId);
    lastAcceptedAt.set(send.waId, nowMs);

    const id = wamid();
    const timestamp = unixSeconds(nowMs);
    const status = (name: WhatsAppStatusName, error?: WhatsAppStatusError): WhatsAppStatus => ({
      id,
      status: name,
      timestamp,
      recipient_id: send.waId,
      ...(send.bizOpaqueCallbackData === undefined ? {} : { biz_opaque_callback_data: send.bizOpaqueCallbackData }),
      ...(error === undefined ? {} : { errors: [error] }),
    });
    const failure = outcomeOf(send, template?.category, nowMs);
    const statuses = failure
      ? [status('sent'), status('failed', failure)]
      : [status('sent'), status('delivered'), ...(options.autoRead ? [status('read')] : [])];

    messages.push({
      id,
      phoneNumberId: options.phoneNumberId,
      to: send.waId,
      type: send.type,
      ...(send.text === undefined ? {} : { text: send.text }),
      ...(send.template && template
        ? {
            template: {
              name: template.name,
              language: template.language,
              category: template.category,
              parameters: send.template.parameters,
              body: render(template.body, send.template.parameters),
            },
          }
        : {}),
      ...(send.bizOpaqueCallbackData === undefined ? {} : { bizOpaqueCallbackData: send.bizOpaqueCallbackData }),
      acceptedAt: new Date(nowMs).toISOString(),
      statuses,
    });
    const ordered = options.shuffleStatuses ? shuffled(statuses, random) : statuses;
    enqueue(ordered.map((s) => envelope({ statuses: [s] })));
    if (options.responseDelayMs) await new Promise((resolve) => setTimeout(resolve, options.responseDelayMs).unref());
    res.json({ messaging_product: 'whatsapp', contacts: [{ input: send.to, wa_id: send.waId }], messages: [{ id }] });
  }

  async function inbound(input: WhatsAppInboundInput): Promise<void> {
    const waId = digitsOf(input.from);
    const nowMs = await now();
    lastInboundAt.set(waId, nowMs);
    enqueue([
      envelope({
        contacts: [{ profile: { name: input.name ?? 'WhatsApp User' }, wa_id: waId }],
        messages: [{ from: waId, id: wamid(), timestamp: unixSeconds(nowMs), type: 'text', text: { body: input.text } }],
      }),
    ]);
  }

  const state = (): WhatsAppState => structuredClone({ messages, deliveries, requests: counter.snapshot() });

  const app = createApp();
  controlRoutes(app, state, outage);
  app.post(`${CONTROL_PREFIX}inbound`, express.json(), async (req: Request, res: Response) => {
    const body: unknown = req.body;
    if (!isRecord(body) || typeof body.from !== 'string' || digitsOf(body.from) === '' || typeof body.text !== 'string') {
      res.status(400).json({ error: 'expected {from, text, name?}' });
      return;
    }
    await inbound({ from: body.from, text: body.text, ...(typeof body.name === 'string' ? { name: body.name } : {}) });
    res.json({ ok: true });
  });

  app.use(counter.middleware());
  app.use(outage.middleware((res) => sendGraphError(res, new GraphError(503, 2, 'Service temporarily unavailable', 'Service temporarily unavailable'))));
  app.use((req, res, next) => {
    if (isControlPath(req) || bearerToken(req) === options.token) return next();
    // The contract's 401 body carries no error_data, like Graph's own.
    res.status(401).json({ error: { message: 'Invalid OAuth access token.', type: 'OAuthException', code: 190, fbtrace_id: fbtraceId() } });
  });
  const json = jsonBody((res, status) =>
    sendGraphError(res, invalid(status === 413 ? 'The request body is too large' : 'The request body is not valid JSON')),
  );

  app.post(`/${GRAPH_VERSION}/:phoneNumberId/messages`, json, handleSend);
  app.get(`/${GRAPH_VERSION}/:wabaId/message_templates`, (req, res) => {
    if (req.params.wabaId !== options.wabaId) return sendGraphError(res, unknownObject(req.params.wabaId, 'get'));
    res.json({
      data: templates.map((t) => ({
        name: t.name,
        language: t.language,
        category: t.category,
        status: t.status,
        components: [{ type: 'BODY', text: t.body }],
      })),
    });
  });
  app.use((req, res) => sendGraphError(res, new GraphError(400, 2500, `Unknown path components: ${req.path}`, 'Unknown path')));
  // Express 5 forwards rejected async handlers here (e.g. a clock that throws), and body-parser errors of control routes.
  app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const status = isRecord(error) && typeof error.status === 'number' ? error.status : 500;
    if (status >= 400 && status < 500) return sendGraphError(res, invalid('The request body is not valid JSON'));
    sendGraphError(res, new GraphError(500, 1, 'An unknown error occurred', 'An unknown error occurred'));
  });

  const server = await listen(app, options.port ?? 0);
  return {
    url: server.url,
    state,
    setOutage: (down) => {
      outage.down = down;
    },
    setWebhookUrl: (url) => {
      webhookUrl = url;
    },
    inbound,
    settle: async () => {
      await Promise.all([...inFlight]);
    },
    stop: async () => {
      stopping.abort();
      await Promise.all([server.stop(), ...inFlight]);
    },
  };
}
