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

export interface WhatsAppSandboxNumber {
  phoneNumberId: string;
  displayPhoneNumber: string;
  messagesPerSecond?: number;
}

export interface WhatsAppSandboxOptions {
  port?: number;
  token: string;
  appSecret: string;
  phoneNumberId: string;
  displayPhoneNumber?: string;
  /** More business numbers of the same account, each with its own throughput limit (default: `messagesPerSecond`). */
  extraNumbers?: WhatsAppSandboxNumber[];
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
  /**
   * With autoRead: report `read` without the `delivered` before it, as Meta does when a message is
   * read as it arrives ("the delivered webhook is not sent because it's implied").
   */
  readWithoutDelivered?: boolean;
  /**
   * How each failure of an accepted-looking send is reported: `webhook` (200 with a wamid, then a
   * `failed` status; the default), `response` (the send is answered with the Graph error at once,
   * HTTP 400) or `both` (that answer and a `failed` status). Meta: errors come "synchronously as a
   * Graph API response, asynchronously via Webhook, or sometimes through both methods".
   */
  errorReporting?: Partial<Record<WhatsAppOutcomeCode, WhatsAppErrorVia>>;
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

/** How an error is reported: in the send's answer, in a `failed` status webhook, or both. */
export type WhatsAppErrorVia = 'response' | 'webhook' | 'both';

/** The failures the sandbox produces by itself after a send: 24 h window, marketing cap, unreachable. */
export type WhatsAppOutcomeCode = 131047 | 131049 | 131026;

/** A failure a test arranges for coming sends (codes the sandbox cannot provoke, e.g. 131048, 4, 80007). */
export interface WhatsAppInjectedFailure {
  code: number;
  /** Default `response`. */
  via?: WhatsAppErrorVia;
  /** Only sends to this recipient (digits, `+` tolerated); default any. */
  to?: string;
  /** How many sends it fails (default 1). */
  times?: number;
  /** The HTTP status of the answer (default: Meta's for the code, else 400). */
  httpStatus?: number;
}

/** An error tied to no message (the `value.errors` webhook): system, app or account level. */
export interface WhatsAppAccountErrorInput {
  code: number;
  title?: string;
  details?: string;
}

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
  errors?: Array<WhatsAppStatusError & { href: string }>;
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
  /** The business number written to (its phone number id): by default the one that last wrote to this user, else the main one. */
  to?: string;
}

export interface WhatsAppSandbox {
  url: string;
  state(): WhatsAppState;
  setOutage(down: boolean): void;
  setWebhookUrl(url: string | undefined): void;
  /** A user's message: queues its webhook and opens that user's 24 h window. */
  inbound(input: WhatsAppInboundInput): Promise<void>;
  /** Makes coming sends fail with this code (also POST /_sandbox/failures). */
  failNext(failure: WhatsAppInjectedFailure): void;
  /** Drops every arranged failure not used up yet (also DELETE /_sandbox/failures). */
  clearFailures(): void;
  /** Delivers an errors webhook tied to no message (also POST /_sandbox/errors). */
  accountError(error: WhatsAppAccountErrorInput): void;
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

/**
 * Titles, details and HTTP statuses for the codes tests inject, as Meta's error-code reference
 * gives them. Sources differ on the HTTP status of 4 (400 or 429); the sandbox answers 400, the
 * stricter case for a client (Meta: key on `code`, not on the HTTP status).
 */
const KNOWN_ERRORS: Record<number, { httpStatus: number; title: string; details: string }> = {
  4: { httpStatus: 400, title: 'Too many API calls', details: 'This app has reached its API call rate limit.' },
  80007: { httpStatus: 400, title: 'Rate limit issues', details: 'The WhatsApp Business Account has reached its rate limit.' },
  130429: { httpStatus: 429, title: 'Rate limit hit', details: 'Cloud API message throughput has been reached.' },
  131048: {
    httpStatus: 400,
    title: 'Spam rate limit hit',
    details: 'Message failed to send because there are restrictions on how many messages can be sent from this phone number. This may be because too many previous messages were blocked or flagged as spam.',
  },
  131056: {
    httpStatus: 400,
    title: '(Business Account, Consumer Account) pair rate limit hit',
    details: 'Message failed to send because there were too many messages sent from this phone number to the same phone number in a short period of time.',
  },
  131047: { httpStatus: 400, title: STATUS_ERRORS.reengagement.title, details: STATUS_ERRORS.reengagement.error_data.details },
  131049: { httpStatus: 400, title: STATUS_ERRORS.marketingCap.title, details: STATUS_ERRORS.marketingCap.error_data.details },
  131026: { httpStatus: 400, title: STATUS_ERRORS.undeliverable.title, details: STATUS_ERRORS.undeliverable.error_data.details },
};

function errorFor(code: number): { httpStatus: number; error: WhatsAppStatusError } {
  const known = KNOWN_ERRORS[code] ?? { httpStatus: 400, title: `Error ${code}`, details: `Injected error ${code}` };
  return { httpStatus: known.httpStatus, error: { code, title: known.title, message: known.title, error_data: { details: known.details } } };
}

const ERROR_CODES_HREF = 'https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/';

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
  const messagesPerSecond = options.messagesPerSecond ?? 80;
  // Each business number has its own throughput limit; pair spacing and the 24 h window are per
  // business number and user (Meta's "(Business Account, Consumer Account) pair").
  const numbers = new Map<string, Required<WhatsAppSandboxNumber>>(
    [{ phoneNumberId: options.phoneNumberId, displayPhoneNumber: options.displayPhoneNumber ?? '15555550100' }, ...(options.extraNumbers ?? [])].map((number) => [
      number.phoneNumberId,
      { messagesPerSecond, ...number },
    ]),
  );
  const pair = (phoneNumberId: string, waId: string): string => `${phoneNumberId}\u0000${waId}`;
  /** The business number a user last got a message from: where their reply goes. */
  const lastNumberOf = new Map<string, string>();
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

  function envelope(value: Omit<WhatsAppWebhookValue, 'messaging_product' | 'metadata'>, phoneNumberId = options.phoneNumberId): WhatsAppWebhookPayload {
    const number = numbers.get(phoneNumberId) ?? { displayPhoneNumber: '', phoneNumberId };
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
                metadata: { display_phone_number: number.displayPhoneNumber, phone_number_id: number.phoneNumberId },
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
  function outcomeOf(phoneNumberId: string, send: ParsedSend, category: WhatsAppTemplateCategory | undefined, nowMs: number): WhatsAppStatusError | undefined {
    if (unreachable.has(send.waId)) return STATUS_ERRORS.undeliverable;
    if (send.type === 'text') {
      const inboundAt = lastInboundAt.get(pair(phoneNumberId, send.waId));
      if (inboundAt === undefined || nowMs - inboundAt > DAY_MS) return STATUS_ERRORS.reengagement;
    }
    if (category === 'MARKETING') {
      if (marketingDelivered.count(send.waId) >= marketingCap) return STATUS_ERRORS.marketingCap;
      marketingDelivered.record(send.waId);
    }
    return undefined;
  }

  async function handleSend(req: Request, res: Response): Promise<void> {
    const number = numbers.get(String(req.params.phoneNumberId));
    if (!number) return sendGraphError(res, unknownObject(String(req.params.phoneNumberId), 'post'));
    const from = number.phoneNumberId;
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
    if (throughput.count(from) >= number.messagesPerSecond) {
      counter.rateLimited();
      return sendGraphError(res, new GraphError(429, 130429, 'Rate limit hit', 'Cloud API message throughput has been reached.'));
    }
    const previous = lastAcceptedAt.get(pair(from, send.waId));
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
    const timestamp = unixSeconds(nowMs);
    const injected = takeInjected(send.waId);
    const failure = injected ? errorFor(injected.code).error : outcomeOf(from, send, template?.category, nowMs);
    const via: WhatsAppErrorVia = injected ? (injected.via ?? 'response') : failure ? (options.errorReporting?.[failure.code as WhatsAppOutcomeCode] ?? 'webhook') : 'webhook';
    if (failure && via !== 'webhook') {
      // Refused in the answer: nothing was sent, so it counts towards no limit. With `both` a
      // `failed` status follows, under an id the sender never saw.
      if (via === 'both') {
        enqueue([
          envelope({
            statuses: [
              {
                id: wamid(),
                status: 'failed',
                timestamp,
                recipient_id: send.waId,
                ...(send.bizOpaqueCallbackData === undefined ? {} : { biz_opaque_callback_data: send.bizOpaqueCallbackData }),
                errors: [failure],
              },
            ],
          }, from),
        ]);
      }
      const httpStatus = injected?.httpStatus ?? errorFor(failure.code).httpStatus;
      return sendGraphError(res, new GraphError(httpStatus, failure.code, failure.message, failure.error_data.details));
    }
    throughput.record(from);
    lastAcceptedAt.set(pair(from, send.waId), nowMs);
    lastNumberOf.set(send.waId, from);

    const id = wamid();
    const status = (name: WhatsAppStatusName, error?: WhatsAppStatusError): WhatsAppStatus => ({
      id,
      status: name,
      timestamp,
      recipient_id: send.waId,
      ...(send.bizOpaqueCallbackData === undefined ? {} : { biz_opaque_callback_data: send.bizOpaqueCallbackData }),
      ...(error === undefined ? {} : { errors: [error] }),
    });
    const impliedDelivery = options.autoRead === true && options.readWithoutDelivered === true;
    const statuses = failure
      ? [status('sent'), status('failed', failure)]
      : [status('sent'), ...(impliedDelivery ? [] : [status('delivered')]), ...(options.autoRead ? [status('read')] : [])];

    messages.push({
      id,
      phoneNumberId: from,
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
    enqueue(ordered.map((s) => envelope({ statuses: [s] }, from)));
    if (options.responseDelayMs) await new Promise((resolve) => setTimeout(resolve, options.responseDelayMs).unref());
    res.json({ messaging_product: 'whatsapp', contacts: [{ input: send.to, wa_id: send.waId }], messages: [{ id }] });
  }

  const injectedFailures: Array<WhatsAppInjectedFailure & { remaining: number }> = [];
  function failNext(failure: WhatsAppInjectedFailure): void {
    injectedFailures.push({ ...failure, ...(failure.to === undefined ? {} : { to: digitsOf(failure.to) }), remaining: failure.times ?? 1 });
  }
  /** The first arranged failure for this recipient, used up by this send. */
  function takeInjected(waId: string): WhatsAppInjectedFailure | undefined {
    const index = injectedFailures.findIndex((failure) => failure.to === undefined || failure.to === waId);
    const found = injectedFailures[index];
    if (!found) return undefined;
    if (--found.remaining <= 0) injectedFailures.splice(index, 1);
    return found;
  }

  function accountError(input: WhatsAppAccountErrorInput): void {
    const known = errorFor(input.code).error;
    const title = input.title ?? known.title;
    enqueue([envelope({ errors: [{ code: input.code, title, message: title, error_data: { details: input.details ?? known.error_data.details }, href: ERROR_CODES_HREF }] })]);
  }

  async function inbound(input: WhatsAppInboundInput): Promise<void> {
    const waId = digitsOf(input.from);
    const to = input.to ?? lastNumberOf.get(waId) ?? options.phoneNumberId;
    if (!numbers.has(to)) throw new Error(`no business number ${to} in this sandbox`);
    const nowMs = await now();
    lastInboundAt.set(pair(to, waId), nowMs);
    enqueue([
      envelope(
        {
          contacts: [{ profile: { name: input.name ?? 'WhatsApp User' }, wa_id: waId }],
          messages: [{ from: waId, id: wamid(), timestamp: unixSeconds(nowMs), type: 'text', text: { body: input.text } }],
        },
        to,
      ),
    ]);
  }

  const state = (): WhatsAppState => structuredClone({ messages, deliveries, requests: counter.snapshot() });

  const app = createApp();
  controlRoutes(app, state, outage);
  app.post(`${CONTROL_PREFIX}inbound`, express.json(), async (req: Request, res: Response) => {
    const body: unknown = req.body;
    if (!isRecord(body) || typeof body.from !== 'string' || digitsOf(body.from) === '' || typeof body.text !== 'string' || (body.to !== undefined && (typeof body.to !== 'string' || !numbers.has(body.to)))) {
      res.status(400).json({ error: 'expected {from, text, name?, to?: one of the sandbox\'s phone number ids}' });
      return;
    }
    await inbound({ from: body.from, text: body.text, ...(typeof body.name === 'string' ? { name: body.name } : {}), ...(typeof body.to === 'string' ? { to: body.to } : {}) });
    res.json({ ok: true });
  });

  app.post(`${CONTROL_PREFIX}failures`, express.json(), (req: Request, res: Response) => {
    const body: unknown = req.body;
    const vias: unknown[] = ['response', 'webhook', 'both'];
    if (
      !isRecord(body) ||
      typeof body.code !== 'number' ||
      (body.via !== undefined && !vias.includes(body.via)) ||
      (body.to !== undefined && typeof body.to !== 'string') ||
      (body.times !== undefined && (typeof body.times !== 'number' || body.times < 1)) ||
      (body.httpStatus !== undefined && (typeof body.httpStatus !== 'number' || body.httpStatus < 400 || body.httpStatus > 599))
    ) {
      res.status(400).json({ error: 'expected {code, via?: response|webhook|both, to?, times?, httpStatus?: 4xx|5xx}' });
      return;
    }
    failNext({
      code: body.code,
      ...(body.via === undefined ? {} : { via: body.via as WhatsAppErrorVia }),
      ...(typeof body.to === 'string' ? { to: body.to } : {}),
      ...(typeof body.times === 'number' ? { times: body.times } : {}),
      ...(typeof body.httpStatus === 'number' ? { httpStatus: body.httpStatus } : {}),
    });
    res.json({ ok: true });
  });
  app.delete(`${CONTROL_PREFIX}failures`, (_req: Request, res: Response) => {
    injectedFailures.length = 0;
    res.json({ ok: true });
  });
  app.post(`${CONTROL_PREFIX}errors`, express.json(), (req: Request, res: Response) => {
    const body: unknown = req.body;
    if (!isRecord(body) || typeof body.code !== 'number' || (body.title !== undefined && typeof body.title !== 'string') || (body.details !== undefined && typeof body.details !== 'string')) {
      res.status(400).json({ error: 'expected {code, title?, details?}' });
      return;
    }
    accountError({ code: body.code, ...(typeof body.title === 'string' ? { title: body.title } : {}), ...(typeof body.details === 'string' ? { details: body.details } : {}) });
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
    failNext,
    clearFailures: () => {
      injectedFailures.length = 0;
    },
    accountError,
    settle: async () => {
      await Promise.all([...inFlight]);
    },
    stop: async () => {
      stopping.abort();
      await Promise.all([server.stop(), ...inFlight]);
    },
  };
}
