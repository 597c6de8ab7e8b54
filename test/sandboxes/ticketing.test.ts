import assert from 'node:assert/strict';
import { startTicketingSandbox } from '../../sandboxes/ticketing.js';
import type { Ticket, TicketingSandbox } from '../../sandboxes/ticketing.js';

const TOKEN = 'helpdesk-token';

interface Reply {
  status: number;
  headers: Headers;
  body: unknown;
}

async function request(base: string, path: string, init: { body?: unknown; token?: string | null; raw?: string } = {}): Promise<Reply> {
  const headers: Record<string, string> = {};
  const token = init.token === undefined ? TOKEN : init.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  const payload = init.raw ?? (init.body === undefined ? undefined : JSON.stringify(init.body));
  if (payload !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${base}${path}`, { method: payload === undefined ? 'GET' : 'POST', headers, ...(payload === undefined ? {} : { body: payload }) });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text === '' ? undefined : JSON.parse(text) };
}

const as = <T>(reply: Reply): T => reply.body as T;

function ticket(extra: Record<string, unknown> = {}): { ticket: Record<string, unknown> } {
  return {
    ticket: {
      subject: 'Missed call from +1 415 555 0100',
      description: 'Caller hung up after 40 s in queue.',
      priority: 'high',
      queue: 'support',
      requester: { name: 'Ada', phone: '+14155550100' },
      ...extra,
    },
  };
}

describe('ticketing sandbox (Zendesk-like, real HTTP)', () => {
  describe('contracts', () => {
    let desk: TicketingSandbox;
    before(async () => {
      desk = await startTicketingSandbox({ port: 0, token: TOKEN });
    });
    after(async () => {
      await desk.stop();
    });

    it('answers 401 {"error":"unauthorized"} without or with a wrong token', async () => {
      for (const token of [null, 'nope']) {
        const reply = await request(desk.url, '/api/v2/tickets', { token });
        assert.equal(reply.status, 401);
        assert.deepEqual(reply.body, { error: 'unauthorized' });
      }
    });

    it('creates tickets with status "new" and incrementing ids, and reads them back', async () => {
      const first = await request(desk.url, '/api/v2/tickets', { body: ticket({ external_id: 'call-1', tags: ['missed'] }) });
      assert.equal(first.status, 201);
      const created = as<{ ticket: Ticket }>(first).ticket;
      assert.equal(created.status, 'new');
      assert.equal(created.priority, 'high');
      assert.equal(created.queue, 'support');
      assert.equal(created.external_id, 'call-1');
      assert.deepEqual(created.tags, ['missed']);
      assert.deepEqual(created.requester, { name: 'Ada', phone: '+14155550100' });
      assert.equal(first.headers.get('location'), `/api/v2/tickets/${created.id}`);

      const second = as<{ ticket: Ticket }>(await request(desk.url, '/api/v2/tickets', { body: ticket({ priority: undefined }) })).ticket;
      assert.equal(second.id, created.id + 1);
      assert.equal(second.priority, 'normal');
      assert.equal(second.external_id, null);

      const read = await request(desk.url, `/api/v2/tickets/${created.id}`);
      assert.equal(read.status, 200);
      assert.deepEqual(read.body, { ticket: created });
      const missing = await request(desk.url, '/api/v2/tickets/999999');
      assert.equal(missing.status, 404);
      assert.deepEqual(missing.body, { error: 'not_found' });
    });

    it('rejects bad input with 422 invalid_ticket naming each field', async () => {
      const before = desk.state().tickets.length;
      const reply = await request(desk.url, '/api/v2/tickets', {
        body: ticket({ subject: '', description: undefined, priority: 'critical', requester: { email: 5 }, tags: 'x' }),
      });
      assert.equal(reply.status, 422);
      const body = as<{ error: string; details: Record<string, string> }>(reply);
      assert.equal(body.error, 'invalid_ticket');
      assert.deepEqual(Object.keys(body.details).sort(), ['description', 'priority', 'requester.email', 'subject', 'tags']);
      assert.ok(body.details.priority?.includes('urgent'));

      const unwrapped = await request(desk.url, '/api/v2/tickets', { body: { subject: 'no wrapper' } });
      assert.equal(unwrapped.status, 422);
      assert.deepEqual(unwrapped.body, { error: 'invalid_ticket', details: { ticket: 'is required' } });
      assert.equal((await request(desk.url, '/api/v2/tickets', { raw: '{"ticket":' })).status, 400);
      assert.equal(desk.state().tickets.length, before);
    });

    it('finds tickets by external_id, allowing duplicates', async () => {
      const a = as<{ ticket: Ticket }>(await request(desk.url, '/api/v2/tickets', { body: ticket({ external_id: 'call-dup' }) })).ticket;
      const b = as<{ ticket: Ticket }>(await request(desk.url, '/api/v2/tickets', { body: ticket({ external_id: 'call-dup' }) })).ticket;
      assert.notEqual(a.id, b.id);
      const found = await request(desk.url, '/api/v2/tickets?external_id=call-dup');
      assert.equal(found.status, 200);
      assert.deepEqual(as<{ tickets: Ticket[] }>(found).tickets.map((t) => t.id), [a.id, b.id]);
      const none = await request(desk.url, '/api/v2/tickets?external_id=never');
      assert.equal(none.status, 200);
      assert.deepEqual(none.body, { tickets: [] });
    });

    it('answers 503 {"error":"unavailable"} during an outage and counts requests', async () => {
      const existing = as<{ ticket: Ticket }>(await request(desk.url, '/api/v2/tickets', { body: ticket({ external_id: 'call-outage' }) })).ticket;
      const path = `/api/v2/tickets/${existing.id}`;
      const readsBefore = desk.state().requests.byRoute['GET /api/v2/tickets/:id'] ?? 0;
      desk.setOutage(true);
      const down = await request(desk.url, path);
      assert.equal(down.status, 503);
      assert.deepEqual(down.body, { error: 'unavailable' });
      desk.setOutage(false);
      assert.equal((await request(desk.url, path)).status, 200);

      await request(desk.url, '/_sandbox/outage', { body: { down: true }, token: null });
      assert.equal((await request(desk.url, path)).status, 503);
      await request(desk.url, '/_sandbox/outage', { body: { down: false }, token: null });

      const state = as<{ tickets: Ticket[]; requests: { total: number; byRoute: Record<string, number> } }>(
        await request(desk.url, '/_sandbox/state', { token: null }),
      );
      assert.ok(state.tickets.length > 0);
      assert.equal((state.requests.byRoute['GET /api/v2/tickets/:id'] ?? 0) - readsBefore, 3, 'refused requests are counted too');
      assert.equal(state.requests.total, desk.state().requests.total);
    });
  });

  it('answers 429 {"error":"rate_limited"} with Retry-After past 100 requests per 60 s', async () => {
    let now = 10_000_000;
    const desk = await startTicketingSandbox({ port: 0, token: TOKEN, clock: () => now });
    try {
      const replies = await Promise.all(Array.from({ length: 105 }, () => request(desk.url, '/api/v2/tickets?external_id=x')));
      assert.equal(replies.filter((r) => r.status === 200).length, 100);
      const limited = replies.filter((r) => r.status === 429);
      assert.equal(limited.length, 5);
      assert.deepEqual(limited[0]?.body, { error: 'rate_limited' });
      assert.equal(limited[0]?.headers.get('retry-after'), '60');
      assert.equal(desk.state().requests.rateLimited, 5);

      now += 59_999;
      assert.equal((await request(desk.url, '/api/v2/tickets?external_id=x')).status, 429);
      now += 1;
      assert.equal((await request(desk.url, '/api/v2/tickets?external_id=x')).status, 200);
    } finally {
      await desk.stop();
    }
  });
});
