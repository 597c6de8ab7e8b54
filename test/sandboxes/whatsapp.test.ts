import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { metaSignature, verifyMetaSignature } from '../../security/signatures.js';
import { startWhatsAppSandbox } from '../../sandboxes/whatsapp.js';
import type { WhatsAppSandbox, WhatsAppSandboxOptions, WhatsAppStatus, WhatsAppTemplateInput, WhatsAppWebhookPayload } from '../../sandboxes/whatsapp.js';

const TOKEN = 'wa-token';
const APP_SECRET = 'wa-app-secret';
const PHONE_ID = '109876543210';
const WABA_ID = '204958371600';
const DISPLAY = '15550100200';
const START = 1_700_000_000_000;
const DAY = 24 * 60 * 60 * 1000;
const MESSAGES = `/v21.0/${PHONE_ID}/messages`;

const TEMPLATES: WhatsAppTemplateInput[] = [
  { name: 'appointment_reminder', language: 'en_US', category: 'UTILITY', body: 'Hi {{1}}, see you on {{2}}. Bye {{1}}!' },
  { name: 'appointment_reminder', language: 'es', category: 'UTILITY', body: 'Hola {{1}}, nos vemos el {{2}}.' },
  { name: 'spring_sale', language: 'en_US', category: 'MARKETING', body: 'Save {{1}} this week' },
  { name: 'hello_world', language: 'en_US', category: 'UTILITY', body: 'Hello from Switchboard' },
  { name: 'login_code', language: 'en_US', category: 'AUTHENTICATION', body: '{{1}} is your code' },
  { name: 'not_yet', language: 'en_US', category: 'UTILITY', body: 'Pending review', status: 'PENDING' },
];

interface Reply {
  status: number;
  body: unknown;
}

interface GraphErrorBody {
  error: {
    message: string;
    type: string;
    code: number;
    error_subcode?: number;
    error_data?: { messaging_product: string; details: string };
    fbtrace_id: string;
  };
}

interface SendBody {
  messaging_product: string;
  contacts: { input: string; wa_id: string }[];
  messages: { id: string }[];
}

async function request(base: string, path: string, init: { body?: unknown; raw?: string; token?: string | null; method?: string } = {}): Promise<Reply> {
  const headers: Record<string, string> = {};
  const token = init.token === undefined ? TOKEN : init.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  let body: string | undefined;
  if (init.raw !== undefined || init.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = init.raw ?? JSON.stringify(init.body);
  }
  const response = await fetch(`${base}${path}`, { method: init.method ?? (body === undefined ? 'GET' : 'POST'), headers, ...(body === undefined ? {} : { body }) });
  const text = await response.text();
  return { status: response.status, body: text === '' ? undefined : (JSON.parse(text) as unknown) };
}

const send = (wa: WhatsAppSandbox, body: unknown): Promise<Reply> => request(wa.url, MESSAGES, { body });

function text(to: string, body: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { messaging_product: 'whatsapp', recipient_type: 'individual', to, type: 'text', text: { body }, ...extra };
}

function template(to: string, name: string, params: string[] = [], extra: Record<string, unknown> = {}, language = 'en_US'): Record<string, unknown> {
  return {
    messaging_product: 'whatsapp',
    to,
    type: 'template',
    template: {
      name,
      language: { code: language },
      ...(params.length === 0 ? {} : { components: [{ type: 'body', parameters: params.map((p) => ({ type: 'text', text: p })) }] }),
    },
    ...extra,
  };
}

const graphError = (reply: Reply): GraphErrorBody['error'] => (reply.body as GraphErrorBody).error;
const wamidOf = (reply: Reply): string => {
  assert.equal(reply.status, 200, JSON.stringify(reply.body));
  const id = (reply.body as SendBody).messages[0]?.id;
  assert.ok(id !== undefined);
  return id;
};

function assertGraphError(reply: Reply, status: number, code: number, detailsPattern?: RegExp): void {
  assert.equal(reply.status, status, JSON.stringify(reply.body));
  const error = graphError(reply);
  assert.equal(error.code, code, JSON.stringify(reply.body));
  assert.equal(error.type, 'OAuthException');
  assert.equal(typeof error.message, 'string');
  assert.ok(error.fbtrace_id.length > 0);
  assert.equal(error.error_data?.messaging_product, 'whatsapp');
  if (detailsPattern) assert.match(error.error_data.details, detailsPattern);
}

interface Received {
  headers: http.IncomingHttpHeaders;
  raw: Buffer;
  body: WhatsAppWebhookPayload;
}

/** A webhook endpoint that records raw bodies; it can fail, drop or hold the first requests. */
interface Receiver {
  url: string;
  received: Received[];
  /** Requests seen, including failed and dropped ones. */
  hits: number;
  firstHit: Promise<void>;
  stop(): Promise<void>;
}

async function startReceiver(behaviour: { fail?: number; drop?: number; hang?: boolean } = {}): Promise<Receiver> {
  let signalFirst: () => void = () => undefined;
  const receiver: Receiver = {
    url: '',
    received: [],
    hits: 0,
    firstHit: new Promise<void>((resolve) => {
      signalFirst = resolve;
    }),
    stop: () => Promise.resolve(),
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const hit = ++receiver.hits;
      signalFirst();
      if (behaviour.hang) return;
      if (hit <= (behaviour.drop ?? 0)) return void req.socket.destroy();
      if (hit <= (behaviour.drop ?? 0) + (behaviour.fail ?? 0)) return void res.writeHead(500).end('nope');
      const raw = Buffer.concat(chunks);
      receiver.received.push({ headers: req.headers, raw, body: JSON.parse(raw.toString('utf8')) as WhatsAppWebhookPayload });
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks/whatsapp`;
  receiver.stop = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return receiver;
}

const statusesIn = (received: Received[]): WhatsAppStatus[] =>
  received.flatMap((r) => r.body.entry.flatMap((e) => e.changes.flatMap((c) => c.value.statuses ?? [])));

/** Status names delivered for one wamid, in arrival order. */
const delivered = (receiver: Receiver, id: string): string[] => statusesIn(receiver.received).filter((s) => s.id === id).map((s) => s.status);

const failureCode = (receiver: Receiver, id: string): number | undefined =>
  statusesIn(receiver.received).find((s) => s.id === id && s.status === 'failed')?.errors?.[0]?.code;

describe('WhatsApp Cloud API sandbox (real HTTP)', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    await Promise.all(cleanups.splice(0).map((cleanup) => cleanup()));
  });

  async function setup(
    overrides: Partial<WhatsAppSandboxOptions> = {},
    behaviour: Parameters<typeof startReceiver>[0] = {},
  ): Promise<{ wa: WhatsAppSandbox; receiver: Receiver; clock: { now: number } }> {
    const receiver = await startReceiver(behaviour);
    const clock = { now: START };
    const wa = await startWhatsAppSandbox({
      port: 0,
      token: TOKEN,
      appSecret: APP_SECRET,
      phoneNumberId: PHONE_ID,
      displayPhoneNumber: DISPLAY,
      wabaId: WABA_ID,
      webhookUrl: receiver.url,
      templates: TEMPLATES,
      clock: () => clock.now,
      ...overrides,
    });
    cleanups.push(() => wa.stop(), () => receiver.stop());
    return { wa, receiver, clock };
  }

  describe('requests and errors', () => {
    it('answers 401 with code 190 without or with a wrong bearer token', async () => {
      const { wa } = await setup();
      for (const token of [null, 'wrong']) {
        for (const [path, body] of [
          [MESSAGES, template('15550001001', 'hello_world')],
          [`/v21.0/${WABA_ID}/message_templates`, undefined],
        ] as const) {
          const reply = await request(wa.url, path, { token, body });
          assert.equal(reply.status, 401);
          const error = graphError(reply);
          assert.equal(typeof error.fbtrace_id, 'string');
          assert.deepEqual(reply.body, { error: { message: 'Invalid OAuth access token.', type: 'OAuthException', code: 190, fbtrace_id: error.fbtrace_id } });
        }
      }
      assert.equal(wa.state().messages.length, 0);
    });

    it('answers 400 code 100 for an unknown phone-number-id or WABA id', async () => {
      const { wa } = await setup();
      const reply = await request(wa.url, '/v21.0/999999/messages', { body: template('15550001001', 'hello_world') });
      assertGraphError(reply, 400, 100);
      assert.equal(graphError(reply).error_subcode, 33);
      assertGraphError(await request(wa.url, '/v21.0/999999/message_templates'), 400, 100);
      assert.equal(wa.state().messages.length, 0);
    });

    it('answers 400 code 100 naming the field for validation problems', async () => {
      const { wa } = await setup();
      const cases: [unknown, RegExp][] = [
        [{}, /messaging_product/],
        [[text('15550001001', 'hi')], /JSON object/],
        [text('15550001001', 'hi', { messaging_product: 'sms' }), /messaging_product/],
        [text('15550001001', 'hi', { recipient_type: 'group' }), /recipient_type/],
        [{ messaging_product: 'whatsapp', type: 'text', text: { body: 'hi' } }, /\bto\b/],
        [text('not-a-phone', 'hi'), /\bto\b/],
        [text('15550001001', 'hi', { to: 15550001001 }), /\bto\b/],
        [{ messaging_product: 'whatsapp', to: '15550001001', text: { body: 'hi' } }, /\btype\b/],
        [{ messaging_product: 'whatsapp', to: '15550001001', type: 'image', image: { link: 'https://x' } }, /\btype\b/],
        [{ messaging_product: 'whatsapp', to: '15550001001', type: 'text' }, /\btext\b/],
        [text('15550001001', ''), /text\.body/],
        [text('15550001001', 'x'.repeat(4097)), /text\.body/],
        [text('15550001001', 'hi', { text: { body: 'hi', preview_url: 'yes' } }), /text\.preview_url/],
        [{ messaging_product: 'whatsapp', to: '15550001001', type: 'template' }, /\btemplate\b/],
        [template('15550001001', ''), /template\.name/],
        [{ ...template('15550001001', 'hello_world'), template: { name: 'hello_world' } }, /template\.language\.code/],
        [{ ...template('15550001001', 'hello_world'), template: { name: 'hello_world', language: { code: 'en_US' }, components: {} } }, /template\.components/],
        [
          { ...template('15550001001', 'spring_sale'), template: { name: 'spring_sale', language: { code: 'en_US' }, components: [{ type: 'body', parameters: [{ type: 'text' }] }] } },
          /template\.components\[0\]\.parameters\[0\]\.text/,
        ],
        [template('15550001001', 'hello_world', [], { biz_opaque_callback_data: 'x'.repeat(513) }), /biz_opaque_callback_data/],
      ];
      for (const [body, details] of cases) {
        assertGraphError(await send(wa, body), 400, 100, details);
      }
      assertGraphError(await request(wa.url, MESSAGES, { raw: '{"messaging_product":' }), 400, 100, /JSON/);
      assert.equal(wa.state().messages.length, 0);
    });

    it('answers 400 code 132001 for an unknown or unapproved template (name + language)', async () => {
      const { wa } = await setup();
      for (const body of [
        template('15550001001', 'no_such_template'),
        template('15550001001', 'hello_world', [], {}, 'es'),
        template('15550001001', 'appointment_reminder', ['Ada', 'Monday'], {}, 'de'),
        template('15550001001', 'not_yet'),
      ]) {
        assertGraphError(await send(wa, body), 400, 132001, /does not exist/);
      }
      assert.equal(wa.state().messages.length, 0);
    });

    it('answers 400 code 132000 when the body parameters do not match the distinct placeholders', async () => {
      const { wa, clock } = await setup();
      // appointment_reminder uses {{1}} twice and {{2}} once: two parameters.
      for (const params of [[], ['Ada'], ['Ada', 'Monday', 'Ada']]) {
        assertGraphError(await send(wa, template('15550001001', 'appointment_reminder', params)), 400, 132000, /localizable_params/);
      }
      assertGraphError(await send(wa, template('15550001001', 'hello_world', ['unexpected'])), 400, 132000);
      assert.equal(wa.state().messages.length, 0);

      wamidOf(await send(wa, template('15550001001', 'appointment_reminder', ['Ada', 'Monday'])));
      clock.now += 6000;
      // Header components do not count towards the body's parameters.
      const withHeader = template('15550001001', 'hello_world');
      (withHeader.template as Record<string, unknown>).components = [{ type: 'header', parameters: [{ type: 'text', text: 'h' }] }];
      wamidOf(await send(wa, withHeader));
      const stored = wa.state().messages.map((m) => m.template);
      assert.deepEqual(stored[0], {
        name: 'appointment_reminder',
        language: 'en_US',
        category: 'UTILITY',
        parameters: ['Ada', 'Monday'],
        body: 'Hi Ada, see you on Monday. Bye Ada!',
      });
    });

    it('answers 200 with the contact and a wamid, and keeps the message', async () => {
      const { wa } = await setup();
      const reply = await send(wa, template('+15550001001', 'hello_world', [], { biz_opaque_callback_data: 'lead-7:step-2' }));
      const id = wamidOf(reply);
      assert.match(id, /^wamid\.[A-Za-z0-9_-]+$/);
      assert.deepEqual(reply.body, { messaging_product: 'whatsapp', contacts: [{ input: '+15550001001', wa_id: '15550001001' }], messages: [{ id }] });

      const [message, ...rest] = wa.state().messages;
      assert.equal(rest.length, 0);
      assert.deepEqual({ ...message, statuses: message?.statuses.map((s) => s.status) }, {
        id,
        phoneNumberId: PHONE_ID,
        to: '15550001001',
        type: 'template',
        template: { name: 'hello_world', language: 'en_US', category: 'UTILITY', parameters: [], body: 'Hello from Switchboard' },
        bizOpaqueCallbackData: 'lead-7:step-2',
        acceptedAt: new Date(START).toISOString(),
        statuses: ['sent', 'delivered'],
      });
    });

    it('takes no idempotency key: the same body twice is two messages with different wamids', async () => {
      const { wa, clock } = await setup();
      const body = template('15550001001', 'hello_world', [], { biz_opaque_callback_data: 'same' });
      const first = wamidOf(await send(wa, body));
      clock.now += 6000; // past the pair spacing, which is a separate rule
      const second = wamidOf(await send(wa, body));
      assert.notEqual(first, second);
      assert.deepEqual(wa.state().messages.map((m) => m.id), [first, second]);
    });

    it('lists the templates with status and body component', async () => {
      const { wa } = await setup();
      const reply = await request(wa.url, `/v21.0/${WABA_ID}/message_templates`);
      assert.equal(reply.status, 200);
      assert.deepEqual(reply.body, {
        data: TEMPLATES.map((t) => ({
          name: t.name,
          language: t.language,
          category: t.category,
          status: t.status ?? 'APPROVED',
          components: [{ type: 'BODY', text: t.body }],
        })),
      });
    });

    it('answers 503 code 2 during an outage (handle or /_sandbox/outage) and exposes state and request counts', async () => {
      const { wa } = await setup({ webhookUrl: undefined });
      wa.setOutage(true);
      const down = await send(wa, template('15550001001', 'hello_world'));
      assertGraphError(down, 503, 2);
      assert.equal(graphError(down).message, 'Service temporarily unavailable');
      assertGraphError(await request(wa.url, `/v21.0/${WABA_ID}/message_templates`), 503, 2);
      wa.setOutage(false);
      wamidOf(await send(wa, template('15550001001', 'hello_world')));

      assert.equal((await request(wa.url, '/_sandbox/outage', { body: { down: true }, token: null })).status, 200);
      assertGraphError(await send(wa, template('15550001002', 'hello_world')), 503, 2);
      assert.equal((await request(wa.url, '/_sandbox/outage', { body: { down: false }, token: null })).status, 200);

      const state = (await request(wa.url, '/_sandbox/state', { token: null })).body as Record<string, unknown> & {
        messages: unknown[];
        deliveries: { status: string; attempts: number }[];
        requests: { total: number; byRoute: Record<string, number> };
      };
      assert.deepEqual(Object.keys(state).sort(), ['deliveries', 'messages', 'requests']);
      assert.equal(state.messages.length, 1);
      // No webhook URL configured: the deliveries are recorded but not sent.
      assert.deepEqual(state.deliveries.map((d) => [d.status, d.attempts]), [['skipped', 0], ['skipped', 0]]);
      assert.equal(state.requests.total, 4);
      assert.equal(state.requests.byRoute['POST /v21.0/:id/messages'], 3);
    });
  });

  describe('send-time limits', () => {
    const tally = (replies: Reply[]): Record<string, number> =>
      replies.reduce<Record<string, number>>((acc, reply) => {
        const key = reply.status === 200 ? '200' : `${reply.status}/${graphError(reply).code}`;
        return { ...acc, [key]: (acc[key] ?? 0) + 1 };
      }, {});

    it('answers 429 code 130429 past 80 sends accepted in a second (concurrent, default limit)', async () => {
      const { wa, clock } = await setup({ webhookUrl: undefined });
      const burst = await Promise.all(
        Array.from({ length: 90 }, (_, i) => send(wa, template(`1555200${String(i).padStart(4, '0')}`, 'hello_world'))),
      );
      assert.deepEqual(tally(burst), { '200': 80, '429/130429': 10 });
      const limited = burst.find((reply) => reply.status === 429);
      assert.ok(limited);
      assert.equal(graphError(limited).message, 'Rate limit hit');
      assert.equal(wa.state().messages.length, 80);
      assert.equal(wa.state().requests.rateLimited, 10);

      clock.now += 1000;
      wamidOf(await send(wa, template('15553000001', 'hello_world')));
    });

    it('uses a rolling second, and rejected sends do not use up the allowance', async () => {
      const { wa, clock } = await setup({ webhookUrl: undefined, messagesPerSecond: 3 });
      let n = 0;
      const burst = async (count: number): Promise<Record<string, number>> =>
        tally(await Promise.all(Array.from({ length: count }, () => send(wa, template(`1555400${String(++n).padStart(4, '0')}`, 'hello_world')))));
      assert.deepEqual(await burst(2), { '200': 2 });
      clock.now += 600;
      assert.deepEqual(await burst(2), { '200': 1, '429/130429': 1 });
      clock.now += 399; // the first two are still inside the second
      assert.deepEqual(await burst(1), { '429/130429': 1 });
      clock.now += 1; // now they have left it; the one from +600 ms remains
      assert.deepEqual(await burst(3), { '200': 2, '429/130429': 1 });
    });

    it('answers 400 code 131056 for a message to the same recipient within 6 s of the previous accepted one', async () => {
      const { wa, clock } = await setup();
      wamidOf(await send(wa, template('15550001001', 'hello_world')));
      clock.now += 5999;
      const tooSoon = await send(wa, template('+15550001001', 'hello_world'));
      assertGraphError(tooSoon, 400, 131056);
      assert.equal(graphError(tooSoon).message, '(Business Account, Consumer Account) pair rate limit hit');
      wamidOf(await send(wa, template('15550001002', 'hello_world'))); // other recipients are unaffected
      clock.now += 1; // measured from the previous accepted message, not the rejected one
      wamidOf(await send(wa, template('15550001001', 'hello_world')));
      assert.equal(wa.state().messages.length, 3);
      assert.equal(wa.state().requests.rateLimited, 1);
    });

    it('takes the pair spacing from the options', async () => {
      const { wa, clock } = await setup({ webhookUrl: undefined, pairSpacingMs: 100 });
      wamidOf(await send(wa, template('15550001001', 'hello_world')));
      clock.now += 99;
      assertGraphError(await send(wa, template('15550001001', 'hello_world')), 400, 131056);
      clock.now += 1;
      wamidOf(await send(wa, template('15550001001', 'hello_world')));
    });
  });

  describe('outcomes reported by webhook', () => {
    it('fails a text outside the 24 h window with 131047, delivers it inside, and allows templates any time (async clock)', async () => {
      const clock = { now: START };
      const { wa, receiver } = await setup({ clock: () => Promise.resolve(clock.now) });
      const user = '15550001001';

      const cold = wamidOf(await send(wa, text(user, 'Hello?')));
      await wa.settle();
      assert.deepEqual(delivered(receiver, cold), ['sent', 'failed']);
      assert.equal(failureCode(receiver, cold), 131047);
      const coldFailure = statusesIn(receiver.received).find((s) => s.id === cold && s.status === 'failed');
      assert.deepEqual(coldFailure?.errors, [
        {
          code: 131047,
          title: 'Re-engagement message',
          message: 'Re-engagement message',
          error_data: { details: 'Message failed to send because more than 24 hours have passed since the customer last replied to this number.' },
        },
      ]);

      clock.now += 10_000;
      const inboundAt = clock.now;
      await wa.inbound({ from: `+${user}`, text: 'Hi, I am interested', name: 'Ada' });
      clock.now += 6000;
      const warm = wamidOf(await send(wa, text(user, 'Great, when suits you?')));
      await wa.settle();
      assert.deepEqual(delivered(receiver, warm), ['sent', 'delivered']);

      clock.now = inboundAt + DAY + 1;
      const stale = wamidOf(await send(wa, text(user, 'Still there?')));
      clock.now += 6000;
      const viaTemplate = wamidOf(await send(wa, template(user, 'appointment_reminder', ['Ada', 'Monday'])));
      await wa.settle();
      assert.deepEqual(delivered(receiver, stale), ['sent', 'failed']);
      assert.equal(failureCode(receiver, stale), 131047);
      assert.deepEqual(delivered(receiver, viaTemplate), ['sent', 'delivered']);
      assert.deepEqual(delivered(receiver, cold), ['sent', 'failed'], 'no extra statuses');
    });

    it('keeps the window open up to exactly 24 h after the last inbound message', async () => {
      const { wa, receiver, clock } = await setup();
      await wa.inbound({ from: '15550001002', text: 'hello' });
      clock.now += DAY;
      const edge = wamidOf(await send(wa, text('15550001002', 'just in time')));
      await wa.settle();
      assert.deepEqual(delivered(receiver, edge), ['sent', 'delivered']);
    });

    it('fails the third marketing template to one recipient within 24 h with 131049', async () => {
      const { wa, receiver, clock } = await setup();
      const user = '15550001003';
      const promos: string[] = [];
      for (let i = 0; i < 3; i++) {
        if (i > 0) clock.now += 6000;
        promos.push(wamidOf(await send(wa, template(user, 'spring_sale', [`${10 + i}%`]))));
      }
      const other = wamidOf(await send(wa, template('15550001004', 'spring_sale', ['10%'])));
      clock.now += 6000;
      const utility = wamidOf(await send(wa, template(user, 'hello_world')));
      await wa.settle();
      assert.deepEqual(
        promos.map((id) => delivered(receiver, id)),
        [['sent', 'delivered'], ['sent', 'delivered'], ['sent', 'failed']],
      );
      assert.equal(failureCode(receiver, promos[2] ?? ''), 131049);
      assert.deepEqual(delivered(receiver, other), ['sent', 'delivered'], 'the cap is per recipient');
      assert.deepEqual(delivered(receiver, utility), ['sent', 'delivered'], 'only marketing templates count');

      clock.now = START + DAY + 1; // the first promo has left the 24 h window
      const later = wamidOf(await send(wa, template(user, 'spring_sale', ['20%'])));
      await wa.settle();
      assert.deepEqual(delivered(receiver, later), ['sent', 'delivered']);
    });

    it('fails messages to an unreachable recipient with 131026', async () => {
      const { wa, receiver, clock } = await setup({ unreachable: ['+1 555 000 9999'] });
      await wa.inbound({ from: '15550009999', text: 'hi' });
      const viaTemplate = wamidOf(await send(wa, template('15550009999', 'hello_world')));
      clock.now += 6000;
      const viaText = wamidOf(await send(wa, text('+15550009999', 'hi')));
      await wa.settle();
      for (const id of [viaTemplate, viaText]) {
        assert.deepEqual(delivered(receiver, id), ['sent', 'failed']);
        assert.equal(failureCode(receiver, id), 131026);
      }
    });
  });

  // developers.facebook.com, WhatsApp error codes: "Cloud API errors are returned either
  // synchronously as a Graph API response, asynchronously via Webhook, or sometimes through both
  // methods"; errors tied to no message come in `value.errors` (errors messages webhook reference).
  describe('errors reported in the answer, by webhook, or both', () => {
    const failedStatuses = (receiver: Receiver): WhatsAppStatus[] => statusesIn(receiver.received).filter((s) => s.status === 'failed');

    it('answers a text outside the 24 h window with 400 code 131047 at once, sending nothing and counting towards no limit (errorReporting response)', async () => {
      const { wa, receiver } = await setup({ errorReporting: { 131047: 'response' } });
      const refused = await send(wa, text('15550001001', 'Hello?', { biz_opaque_callback_data: 'wa:L1:welcome:message' }));
      assertGraphError(refused, 400, 131047, /more than 24 hours have passed/);
      assert.equal(graphError(refused).message, 'Re-engagement message');
      await wa.settle();
      assert.deepEqual(wa.state().messages, []);
      assert.equal(receiver.received.length, 0, 'no webhook');
      // Nothing went out, so the pair spacing does not hold the template back.
      const viaTemplate = wamidOf(await send(wa, template('15550001001', 'hello_world')));
      await wa.settle();
      assert.deepEqual(delivered(receiver, viaTemplate), ['sent', 'delivered']);
    });

    it('reports 131047 both ways: the 400 answer and a failed status under an id the sender never saw, echoing biz_opaque_callback_data', async () => {
      const { wa, receiver } = await setup({ errorReporting: { 131047: 'both' } });
      assertGraphError(await send(wa, text('15550001001', 'Hello?', { biz_opaque_callback_data: 'wa:L1:welcome:message' })), 400, 131047);
      await wa.settle();
      assert.deepEqual(wa.state().messages, []);
      const [failed, ...more] = failedStatuses(receiver);
      assert.equal(more.length, 0);
      assert.match(failed?.id ?? '', /^wamid\./);
      assert.equal(failed?.biz_opaque_callback_data, 'wa:L1:welcome:message');
      assert.equal(failed?.recipient_id, '15550001001');
      assert.equal(failed?.errors?.[0]?.code, 131047);
      assert.deepEqual(delivered(receiver, failed?.id ?? ''), ['failed'], 'no "sent" for a refused message');
      for (const { headers, raw } of receiver.received) assert.equal(headers['x-hub-signature-256'], metaSignature(APP_SECRET, raw));
    });

    it('reports the marketing cap (131049) and an unreachable recipient (131026) in the answer when told to', async () => {
      const { wa, clock } = await setup({ errorReporting: { 131049: 'response', 131026: 'response' }, marketingPerUserPerDay: 1, unreachable: ['15550009999'] });
      wamidOf(await send(wa, template('15550001003', 'spring_sale', ['10%'])));
      clock.now += 6000;
      assertGraphError(await send(wa, template('15550001003', 'spring_sale', ['20%'])), 400, 131049, /healthy ecosystem engagement/);
      assertGraphError(await send(wa, template('15550009999', 'hello_world')), 400, 131026, /Unable to deliver message/);
      assert.equal(wa.state().messages.length, 1);
    });

    it('fails coming sends with arranged codes (131048, 4, 80007, 130429, 131056), in the answer with Meta\'s title and details', async () => {
      const { wa } = await setup();
      const cases: Array<[number, number, RegExp]> = [
        [131048, 400, /restrictions on how many messages/],
        [4, 400, /API call rate limit/],
        [80007, 400, /WhatsApp Business Account has reached its rate limit/],
        [130429, 429, /throughput has been reached/],
        [131056, 400, /same phone number in a short period/],
      ];
      for (const [code, status, details] of cases) {
        wa.failNext({ code });
        assertGraphError(await send(wa, template('15550001001', 'hello_world')), status, code, details);
      }
      assert.equal(wa.state().messages.length, 0);
      wamidOf(await send(wa, template('15550001001', 'hello_world')));
    });

    it('fails arranged sends by webhook or both, only for the recipient named, as many times as asked, and takes arrangements over HTTP', async () => {
      const { wa, receiver, clock } = await setup();
      wa.failNext({ code: 131048, via: 'webhook', to: '+15550001002', times: 2 });
      const other = wamidOf(await send(wa, template('15550001001', 'hello_world')));
      const first = wamidOf(await send(wa, template('15550001002', 'hello_world')));
      clock.now += 6000;
      const second = wamidOf(await send(wa, template('15550001002', 'hello_world')));
      clock.now += 6000;
      const third = wamidOf(await send(wa, template('15550001002', 'hello_world')));
      await wa.settle();
      assert.deepEqual(delivered(receiver, other), ['sent', 'delivered']);
      for (const id of [first, second]) {
        assert.deepEqual(delivered(receiver, id), ['sent', 'failed']);
        assert.equal(failureCode(receiver, id), 131048);
      }
      assert.deepEqual(delivered(receiver, third), ['sent', 'delivered']);

      const arranged = await request(wa.url, '/_sandbox/failures', { token: null, body: { code: 80007, via: 'both', httpStatus: 400 } });
      assert.equal(arranged.status, 200);
      for (const bad of [{}, { code: '80007' }, { code: 4, via: 'later' }, { code: 4, times: 0 }, { code: 4, httpStatus: 200 }]) {
        assert.equal((await request(wa.url, '/_sandbox/failures', { token: null, body: bad })).status, 400, JSON.stringify(bad));
      }
      clock.now += 6000;
      assertGraphError(await send(wa, template('15550001001', 'hello_world', [], { biz_opaque_callback_data: 'k-80007' })), 400, 80007);
      await wa.settle();
      const failed = failedStatuses(receiver).find((s) => s.biz_opaque_callback_data === 'k-80007');
      assert.equal(failed?.errors?.[0]?.code, 80007);
    });

    it('drops the arranged failures not used up yet (the end of a 130429 storm), from the handle and over HTTP', async () => {
      const { wa, clock } = await setup();
      wa.failNext({ code: 130429, times: 1_000 });
      assertGraphError(await send(wa, template('15550001001', 'hello_world')), 429, 130429);
      wa.clearFailures();
      wamidOf(await send(wa, template('15550001001', 'hello_world')));
      wa.failNext({ code: 130429, times: 1_000 });
      assert.equal((await request(wa.url, '/_sandbox/failures', { method: 'DELETE', token: null })).status, 200);
      clock.now += 6000;
      wamidOf(await send(wa, template('15550001001', 'hello_world')));
    });

    it('delivers an errors webhook tied to no message (value.errors), from the handle and over HTTP', async () => {
      const { wa, receiver } = await setup();
      wa.accountError({ code: 130429 });
      assert.equal((await request(wa.url, '/_sandbox/errors', { token: null, body: { code: 131000, title: 'Something went wrong', details: 'Try again later' } })).status, 200);
      assert.equal((await request(wa.url, '/_sandbox/errors', { token: null, body: { title: 'no code' } })).status, 400);
      await wa.settle();
      const values = receiver.received.map((r) => r.body.entry[0]?.changes[0]?.value);
      assert.deepEqual(values, [
        {
          messaging_product: 'whatsapp',
          metadata: { display_phone_number: DISPLAY, phone_number_id: PHONE_ID },
          errors: [
            {
              code: 130429,
              title: 'Rate limit hit',
              message: 'Rate limit hit',
              error_data: { details: 'Cloud API message throughput has been reached.' },
              href: 'https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/',
            },
          ],
        },
        {
          messaging_product: 'whatsapp',
          metadata: { display_phone_number: DISPLAY, phone_number_id: PHONE_ID },
          errors: [
            {
              code: 131000,
              title: 'Something went wrong',
              message: 'Something went wrong',
              error_data: { details: 'Try again later' },
              href: 'https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/',
            },
          ],
        },
      ]);
      for (const { headers, raw } of receiver.received) assert.equal(headers['x-hub-signature-256'], metaSignature(APP_SECRET, raw));
    });
  });

  describe('webhooks', () => {
    it('posts the standard envelope, signed with X-Hub-Signature-256 over the exact bytes, echoing biz_opaque_callback_data', async () => {
      const { wa, receiver } = await setup();
      const id = wamidOf(await send(wa, template('+15550001001', 'login_code', ['123456'], { biz_opaque_callback_data: 'lead-42' })));
      await wa.settle();
      assert.equal(receiver.received.length, 2);
      for (const { headers, raw } of receiver.received) {
        assert.equal(headers['x-hub-signature-256'], metaSignature(APP_SECRET, raw));
        assert.deepEqual(verifyMetaSignature({ appSecrets: [APP_SECRET], signature: headers['x-hub-signature-256'], rawBody: raw }), { ok: true });
        assert.deepEqual(verifyMetaSignature({ appSecrets: ['other-secret'], signature: headers['x-hub-signature-256'], rawBody: raw }).ok, false);
        assert.match(headers['content-type'] ?? '', /^application\/json/);
      }
      const timestamp = String(Math.floor(START / 1000));
      assert.deepEqual(
        receiver.received.map((r) => r.body),
        (['sent', 'delivered'] as const).map((status) => ({
          object: 'whatsapp_business_account',
          entry: [
            {
              id: WABA_ID,
              changes: [
                {
                  field: 'messages',
                  value: {
                    messaging_product: 'whatsapp',
                    metadata: { display_phone_number: DISPLAY, phone_number_id: PHONE_ID },
                    statuses: [{ id, status, timestamp, recipient_id: '15550001001', biz_opaque_callback_data: 'lead-42' }],
                  },
                },
              ],
            },
          ],
        })),
      );
      assert.deepEqual(wa.state().deliveries.map((d) => [d.status, d.attempts]), [['delivered', 1], ['delivered', 1]]);
    });

    it('reports sent, delivered and read with autoRead', async () => {
      const { wa, receiver } = await setup({ autoRead: true });
      const id = wamidOf(await send(wa, template('15550001001', 'hello_world')));
      await wa.settle();
      assert.deepEqual(delivered(receiver, id), ['sent', 'delivered', 'read']);
      assert.deepEqual(wa.state().messages[0]?.statuses.map((s) => s.status), ['sent', 'delivered', 'read']);
      assert.equal(statusesIn(receiver.received).some((s) => 'biz_opaque_callback_data' in s), false);
    });

    // Status messages webhook reference: a message read as it arrives gets no "delivered" webhook ("it's implied").
    it('reports read without delivered with readWithoutDelivered', async () => {
      const { wa, receiver } = await setup({ autoRead: true, readWithoutDelivered: true });
      const id = wamidOf(await send(wa, template('15550001001', 'hello_world')));
      await wa.settle();
      assert.deepEqual(delivered(receiver, id), ['sent', 'read']);
    });

    it('delivers each status twice, byte for byte, with duplicateRate 1', async () => {
      const { wa, receiver } = await setup({ duplicateRate: 1 });
      const id = wamidOf(await send(wa, template('15550001001', 'hello_world')));
      await wa.settle();
      assert.deepEqual(delivered(receiver, id), ['sent', 'sent', 'delivered', 'delivered']);
      assert.ok(receiver.received[0]?.raw.equals(receiver.received[1]?.raw ?? Buffer.alloc(0)));
      assert.ok(receiver.received[2]?.raw.equals(receiver.received[3]?.raw ?? Buffer.alloc(0)));
      assert.equal(wa.state().deliveries.length, 4);
    });

    it('shuffles the statuses of each message reproducibly for a seed', async () => {
      const orders = async (seed: number): Promise<string[][]> => {
        const { wa, receiver } = await setup({ shuffleStatuses: true, autoRead: true, seed });
        const ids: string[] = [];
        for (let i = 0; i < 12; i++) {
          ids.push(wamidOf(await send(wa, template(`1555500${String(i).padStart(4, '0')}`, 'hello_world'))));
        }
        await wa.settle();
        return ids.map((id) => delivered(receiver, id));
      };
      const first = await orders(7);
      assert.deepEqual(await orders(7), first);
      for (const order of first) assert.deepEqual([...order].sort(), ['delivered', 'read', 'sent']);
      assert.ok(
        first.some((order) => order.join() !== 'sent,delivered,read'),
        'some message has its statuses out of order',
      );
    });

    it('retries a delivery answered 500, with backoff, then succeeds', async () => {
      const { wa, receiver } = await setup({}, { fail: 1 });
      const started = Date.now();
      const id = wamidOf(await send(wa, template('15550001001', 'hello_world')));
      await wa.settle();
      assert.ok(Date.now() - started >= 190, 'waited for the backoff');
      assert.equal(receiver.hits, 3);
      assert.deepEqual(delivered(receiver, id), ['sent', 'delivered']);
      assert.deepEqual(wa.state().deliveries.map((d) => [d.status, d.attempts]), [['delivered', 2], ['delivered', 1]]);
    });

    it('retries a delivery whose connection was dropped', async () => {
      const { wa, receiver } = await setup({}, { drop: 1 });
      const id = wamidOf(await send(wa, template('15550001001', 'hello_world')));
      await wa.settle();
      assert.deepEqual(delivered(receiver, id), ['sent', 'delivered']);
      assert.deepEqual(wa.state().deliveries.map((d) => d.attempts), [2, 1]);
    });

    it('gives up on a delivery after 5 attempts and goes on with the next', async () => {
      const { wa, receiver } = await setup({}, { fail: 5 });
      const id = wamidOf(await send(wa, template('15550001001', 'hello_world')));
      await wa.settle();
      assert.equal(receiver.hits, 6);
      assert.deepEqual(delivered(receiver, id), ['delivered']);
      assert.deepEqual(wa.state().deliveries.map((d) => [d.status, d.attempts]), [['failed', 5], ['delivered', 1]]);
    });

    it('never blocks the send on the webhook, and stop() cancels pending deliveries promptly', async () => {
      const { wa, receiver } = await setup({}, { hang: true });
      wamidOf(await send(wa, template('15550001001', 'hello_world')));
      wamidOf(await send(wa, template('15550001002', 'hello_world')));
      await receiver.firstHit;
      const stopping = Date.now();
      await wa.stop();
      assert.ok(Date.now() - stopping < 1000, 'stop() did not wait for the hanging webhook');
      await wa.settle();
      assert.deepEqual(new Set(wa.state().deliveries.map((d) => d.status)), new Set(['cancelled']));
    });

    it('records deliveries as skipped without a webhook URL, and uses one set later', async () => {
      const { wa, receiver } = await setup({ webhookUrl: undefined });
      wamidOf(await send(wa, template('15550001001', 'hello_world')));
      await wa.settle();
      assert.deepEqual(wa.state().deliveries.map((d) => d.status), ['skipped', 'skipped']);
      wa.setWebhookUrl(receiver.url);
      const id = wamidOf(await send(wa, template('15550001002', 'hello_world')));
      await wa.settle();
      assert.deepEqual(delivered(receiver, id), ['sent', 'delivered']);
      assert.equal(receiver.received.length, 2);
    });
  });

  describe('inbound messages', () => {
    it('delivers a user message webhook from the handle and from POST /_sandbox/inbound', async () => {
      const { wa, receiver, clock } = await setup();
      await wa.inbound({ from: '+15550001001', text: 'Can I book for Monday?', name: 'Ada' });
      clock.now += 1000;
      const control = await request(wa.url, '/_sandbox/inbound', { token: null, body: { from: '15550001002', text: 'Stop' } });
      assert.equal(control.status, 200);
      assert.equal((await request(wa.url, '/_sandbox/inbound', { token: null, body: { text: 'no sender' } })).status, 400);
      assert.equal((await request(wa.url, '/_sandbox/inbound', { token: null, raw: '{"from":' })).status, 400);
      await wa.settle();

      assert.equal(receiver.received.length, 2);
      const values = receiver.received.map((r) => r.body.entry[0]?.changes[0]?.value);
      const ids = values.map((v) => v?.messages?.[0]?.id ?? '');
      for (const id of ids) assert.match(id, /^wamid\.[A-Za-z0-9_-]+$/);
      assert.notEqual(ids[0], ids[1]);
      assert.deepEqual(values, [
        {
          messaging_product: 'whatsapp',
          metadata: { display_phone_number: DISPLAY, phone_number_id: PHONE_ID },
          contacts: [{ profile: { name: 'Ada' }, wa_id: '15550001001' }],
          messages: [{ from: '15550001001', id: ids[0], timestamp: String(START / 1000), type: 'text', text: { body: 'Can I book for Monday?' } }],
        },
        {
          messaging_product: 'whatsapp',
          metadata: { display_phone_number: DISPLAY, phone_number_id: PHONE_ID },
          contacts: [{ profile: { name: 'WhatsApp User' }, wa_id: '15550001002' }],
          messages: [{ from: '15550001002', id: ids[1], timestamp: String(START / 1000 + 1), type: 'text', text: { body: 'Stop' } }],
        },
      ]);
      for (const { headers, raw } of receiver.received) assert.equal(headers['x-hub-signature-256'], metaSignature(APP_SECRET, raw));

      // The control route opened the window too.
      const reply = wamidOf(await send(wa, text('15550001002', 'Unsubscribed.')));
      await wa.settle();
      assert.deepEqual(delivered(receiver, reply), ['sent', 'delivered']);
    });
  });
});
