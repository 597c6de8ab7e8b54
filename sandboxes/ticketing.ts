// Zendesk-like helpdesk stand-in: create tickets, look them up by id or external_id (see CONTRACTS.md).
import type { Response } from 'express';
import {
  bearerToken,
  controlRoutes,
  createApp,
  isControlPath,
  isRecord,
  jsonBody,
  listen,
  OutageSwitch,
  RequestCounter,
  RollingWindowLimiter,
  systemClock,
} from './http.js';
import type { Clock, RequestCounts } from './http.js';

export const TICKET_PRIORITIES = ['low', 'normal', 'high', 'urgent'] as const;
export type TicketPriority = (typeof TICKET_PRIORITIES)[number];

export interface TicketingSandboxOptions {
  port?: number;
  token: string;
  /** Requests allowed per window (100). */
  rateLimit?: number;
  /** Window length (60 s). */
  rateLimitWindowMs?: number;
  clock?: Clock;
}

export interface Ticket {
  id: number;
  status: 'new';
  subject: string;
  description: string;
  priority: TicketPriority;
  queue: string;
  requester: { name?: string; phone?: string; email?: string };
  external_id: string | null;
  tags: string[];
  created_at: string;
  updated_at: string;
}

export interface TicketingState {
  tickets: Ticket[];
  requests: RequestCounts;
}

export interface TicketingSandbox {
  url: string;
  state(): TicketingState;
  setOutage(down: boolean): void;
  stop(): Promise<void>;
}

type Details = Record<string, string>;

function optionalString(body: Record<string, unknown>, field: string, path: string, details: Details): string | undefined {
  const value = body[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') {
    details[path] = 'must be a string';
    return undefined;
  }
  return value;
}

function requiredString(body: Record<string, unknown>, field: string, details: Details): string | undefined {
  const value = optionalString(body, field, field, details);
  if (details[field] === undefined && (value === undefined || value.trim() === '')) details[field] = 'is required';
  return value;
}

type TicketInput = Omit<Ticket, 'id' | 'status' | 'created_at' | 'updated_at'>;

function parseTicket(body: unknown): { ticket?: TicketInput; details: Details } {
  const details: Details = {};
  if (!isRecord(body) || !isRecord(body.ticket)) return { details: { ticket: 'is required' } };
  const input = body.ticket;
  const subject = requiredString(input, 'subject', details);
  const description = requiredString(input, 'description', details);
  const queue = requiredString(input, 'queue', details);
  const priority = optionalString(input, 'priority', 'priority', details) ?? 'normal';
  if (!(TICKET_PRIORITIES as readonly string[]).includes(priority)) details.priority = `must be one of ${TICKET_PRIORITIES.join(', ')}`;

  const requester: Ticket['requester'] = {};
  if (input.requester !== undefined && input.requester !== null) {
    if (!isRecord(input.requester)) details.requester = 'must be an object';
    else {
      for (const field of ['name', 'phone', 'email'] as const) {
        const value = optionalString(input.requester, field, `requester.${field}`, details);
        if (value !== undefined) requester[field] = value;
      }
    }
  }
  const externalId = optionalString(input, 'external_id', 'external_id', details) ?? null;
  let tags: string[] = [];
  if (input.tags !== undefined && input.tags !== null) {
    if (Array.isArray(input.tags) && input.tags.every((tag): tag is string => typeof tag === 'string')) tags = input.tags;
    else details.tags = 'must be an array of strings';
  }
  if (Object.keys(details).length > 0 || subject === undefined || description === undefined || queue === undefined) return { details };
  return {
    ticket: { subject, description, priority: priority as TicketPriority, queue, requester, external_id: externalId, tags },
    details,
  };
}

export async function startTicketingSandbox(options: TicketingSandboxOptions): Promise<TicketingSandbox> {
  const clock = options.clock ?? systemClock;
  const tickets: Ticket[] = [];
  let nextId = 0;

  const counter = new RequestCounter();
  const outage = new OutageSwitch();
  const limiter = new RollingWindowLimiter(options.rateLimit ?? 100, options.rateLimitWindowMs ?? 60_000, clock);
  const state = (): TicketingState => structuredClone({ tickets, requests: counter.snapshot() });
  const error = (res: Response, status: number, code: string, extra: Record<string, unknown> = {}): void => {
    res.status(status).json({ error: code, ...extra });
  };

  const app = createApp();
  controlRoutes(app, state, outage);
  app.use(counter.middleware());
  app.use(outage.middleware((res) => error(res, 503, 'unavailable')));
  app.use((req, res, next) => {
    if (isControlPath(req) || limiter.tryAcquire()) return next();
    counter.rateLimited();
    res.set('Retry-After', String(limiter.retryAfterSeconds()));
    error(res, 429, 'rate_limited');
  });
  app.use((req, res, next) => {
    if (isControlPath(req) || bearerToken(req) === options.token) return next();
    error(res, 401, 'unauthorized');
  });

  const json = jsonBody((res, status) => error(res, status === 413 ? 413 : 400, status === 413 ? 'payload_too_large' : 'invalid_json'));

  app.post('/api/v2/tickets', json, (req, res) => {
    const { ticket, details } = parseTicket(req.body);
    if (!ticket) return error(res, 422, 'invalid_ticket', { details });
    const now = new Date(clock()).toISOString();
    const created: Ticket = { id: ++nextId, status: 'new', ...ticket, created_at: now, updated_at: now };
    tickets.push(created);
    res.status(201).location(`/api/v2/tickets/${created.id}`).json({ ticket: created });
  });

  app.get('/api/v2/tickets', (req, res) => {
    const externalId = typeof req.query.external_id === 'string' ? req.query.external_id : undefined;
    res.json({ tickets: externalId === undefined ? tickets : tickets.filter((t) => t.external_id === externalId) });
  });

  app.get('/api/v2/tickets/:id', (req, res) => {
    const ticket = tickets.find((t) => String(t.id) === req.params.id);
    if (!ticket) return error(res, 404, 'not_found');
    res.json({ ticket });
  });

  app.use((_req, res) => error(res, 404, 'not_found'));

  const server = await listen(app, options.port ?? 0);
  return {
    url: server.url,
    state,
    setOutage: (down) => {
      outage.down = down;
    },
    stop: server.stop,
  };
}
