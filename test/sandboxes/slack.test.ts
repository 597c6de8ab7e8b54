import assert from 'node:assert/strict';
import { startSlackSandbox } from '../../sandboxes/slack.js';
import type { SlackSandbox } from '../../sandboxes/slack.js';

const HOOK = '/services/T1/B1/abc';
const OTHER = '/services/T1/B2/def';

interface Reply {
  status: number;
  headers: Headers;
  text: string;
}

async function post(base: string, path: string, body: string, contentType = 'application/json'): Promise<Reply> {
  const response = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': contentType }, body });
  return { status: response.status, headers: response.headers, text: await response.text() };
}

const json = (value: unknown): string => JSON.stringify(value);

describe('Slack incoming-webhook sandbox (real HTTP)', () => {
  let now = 1_700_000_000_000;
  let slack: SlackSandbox;
  before(async () => {
    slack = await startSlackSandbox({ port: 0, webhooks: [HOOK, OTHER], clock: () => now });
  });
  after(async () => {
    await slack.stop();
  });
  // Each test starts with a full burst allowance.
  beforeEach(() => {
    now += 60_000;
  });

  it('answers 404 no_service for unknown webhook paths', async () => {
    for (const path of ['/services/T1/B1/wrong', '/services/T9/B9/abc', '/elsewhere']) {
      const reply = await post(slack.url, path, json({ text: 'hi' }));
      assert.equal(reply.status, 404, path);
      assert.equal(reply.text, 'no_service');
    }
    assert.equal(slack.state().messages.length, 0);
  });

  it('answers 400 invalid_payload without text and blocks, or with malformed JSON', async () => {
    for (const body of [json({ channel: '#ops' }), json({ text: '', blocks: [] }), '{"text":', 'just text']) {
      const reply = await post(slack.url, HOOK, body);
      assert.equal(reply.status, 400, body);
      assert.equal(reply.text, 'invalid_payload');
    }
  });

  it('answers 200 "ok" (text/html) and records the message', async () => {
    const before = slack.state().messages.length;
    const reply = await post(slack.url, HOOK, json({ text: 'Missed call from +1 415 555 0100', channel: '#calls' }));
    assert.equal(reply.status, 200);
    assert.equal(reply.text, 'ok');
    assert.match(reply.headers.get('content-type') ?? '', /^text\/html/);

    const blocks = [{ type: 'section', text: { type: 'mrkdwn', text: '*Lead*' } }];
    assert.equal((await post(slack.url, OTHER, json({ blocks }))).text, 'ok');
    const form = `payload=${encodeURIComponent(json({ text: 'from a form' }))}`;
    assert.equal((await post(slack.url, HOOK, form, 'application/x-www-form-urlencoded')).text, 'ok');

    const messages = slack.state().messages.slice(before);
    assert.deepEqual(
      messages.map(({ path, text, blocks: b, channel }) => ({ path, text, blocks: b, channel })),
      [
        { path: HOOK, text: 'Missed call from +1 415 555 0100', blocks: null, channel: '#calls' },
        { path: OTHER, text: null, blocks, channel: null },
        { path: HOOK, text: 'from a form', blocks: null, channel: null },
      ],
    );
    assert.equal(messages[0]?.receivedAt, new Date(now).toISOString());
  });

  it('answers 429 rate_limited with Retry-After: 1 past a burst of 5, per webhook, refilling at 1 per second', async () => {
    const before = slack.state().messages.length;
    const replies = await Promise.all(Array.from({ length: 8 }, (_, i) => post(slack.url, HOOK, json({ text: `burst ${i}` }))));
    assert.equal(replies.filter((r) => r.status === 200).length, 5);
    const limited = replies.filter((r) => r.status === 429);
    assert.equal(limited.length, 3);
    assert.equal(limited[0]?.text, 'rate_limited');
    assert.equal(limited[0]?.headers.get('retry-after'), '1');
    assert.equal(slack.state().messages.length, before + 5);

    assert.equal((await post(slack.url, OTHER, json({ text: 'other hook' }))).status, 200);
    now += 999;
    assert.equal((await post(slack.url, HOOK, json({ text: 'too soon' }))).status, 429);
    now += 1;
    assert.equal((await post(slack.url, HOOK, json({ text: 'refilled' }))).status, 200);
    assert.equal((await post(slack.url, HOOK, json({ text: 'again' }))).status, 429);
    assert.ok(slack.state().requests.rateLimited >= 5);
  });

  it('answers 503 during an outage, switched by the handle or /_sandbox/outage', async () => {
    slack.setOutage(true);
    assert.equal((await post(slack.url, HOOK, json({ text: 'down' }))).status, 503);
    slack.setOutage(false);
    assert.equal((await post(slack.url, HOOK, json({ text: 'up' }))).status, 200);

    assert.equal((await post(slack.url, '/_sandbox/outage', json({ down: true }))).status, 200);
    assert.equal((await post(slack.url, HOOK, json({ text: 'down' }))).status, 503);
    assert.equal((await post(slack.url, '/_sandbox/outage', json({ down: false }))).status, 200);

    const state = (await (await fetch(`${slack.url}/_sandbox/state`)).json()) as { messages: { text: string }[]; requests: { total: number; byRoute: Record<string, number> } };
    assert.ok(state.messages.some((m) => m.text === 'up'));
    assert.ok(!state.messages.some((m) => m.text === 'down'));
    assert.ok((state.requests.byRoute[`POST ${HOOK}`] ?? 0) > 0);
  });
});
