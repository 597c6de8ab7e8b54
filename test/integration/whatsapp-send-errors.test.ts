/**
 * A refused WhatsApp send, decided by its error code: the adapter and the messaging activity
 * against the sandbox answering as the Cloud API does (developers.facebook.com, WhatsApp error
 * codes: errors come "synchronously as a Graph API response, asynchronously via Webhook, or
 * sometimes through both methods"; handle them by `code`). One table decides for both ways.
 */
import assert from 'node:assert/strict';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { createMessagingActivities } from '../../activities/messaging.js';
import type { SendWhatsAppInput, SendWhatsAppOutcome } from '../../activities/messaging.js';
import { createWhatsAppAdapter } from '../../adapters/whatsapp.js';
import type { AppConfig } from '../../config/load.js';
import { tenantSchema } from '../../config/schema.js';
import type { Db } from '../../db/pool.js';
import { startWhatsAppSandbox } from '../../sandboxes/whatsapp.js';
import type { WhatsAppSandbox } from '../../sandboxes/whatsapp.js';
import { leadWorkflowId } from '../../shared/leads.js';
import type { LeadEvent } from '../../shared/leads.js';
import { decideWhatsAppError, whatsappRetryDelayMs } from '../../shared/whatsapp-errors.js';
import type { WhatsAppErrorDecision } from '../../shared/whatsapp-errors.js';
import { testConfig } from '../harness/api.js';
import { createTestDatabase } from '../harness/postgres.js';
import { uniqueId } from '../harness/resources.js';

const second = 1_000;
const minute = 60 * second;

describe('WhatsApp send errors: one decision per code (adapter and messaging activity, real HTTP)', () => {
  let db: Db;
  let wa: WhatsAppSandbox;
  let config: AppConfig;
  let tenantId: string;
  let activities: ReturnType<typeof createMessagingActivities>;

  before(async () => {
    ({ db } = await createTestDatabase('wa_errors'));
    wa = await startWhatsAppSandbox({
      token: 'wa-token',
      appSecret: 'wa-secret',
      phoneNumberId: 'PN1',
      wabaId: 'WABA1',
      templates: [
        { name: 'promo', language: 'en_US', category: 'MARKETING', body: 'Save today' },
        { name: 'hello', language: 'en_US', category: 'UTILITY', body: 'Hello {{1}}' },
      ],
      // Errors the sandbox produces by itself come back in the send's answer here.
      errorReporting: { 131047: 'response', 131049: 'response', 131026: 'response' },
      marketingPerUserPerDay: 1,
      pairSpacingMs: 0,
      unreachable: ['+16285550999'],
    });
    tenantId = uniqueId('w').toLowerCase();
    const tenant = tenantSchema.parse({
      displayName: 'Acme',
      defaultRegion: 'US',
      timeZone: 'America/New_York',
      secrets: { webhookSigningSecret: 'secret', whatsappAppSecret: 'wa-secret', operatorToken: 'operator' },
      whatsapp: { baseUrl: wa.url, phoneNumberId: 'PN1', wabaId: 'WABA1', token: 'wa-token' },
      // The templates these sends use, as the tenant registered them ('missing' is in our
      // configuration but not at Meta: WhatsApp refuses it with 132001).
      leads: {
        messages: {
          welcome: { text: 'Hello {{name}}', template: { name: 'hello', languages: { en_US: { placeholders: ['name'] } }, params: ['name'] } },
          follow_up: { text: 'Save today', template: { name: 'promo', language: 'en_US', params: [], category: 'MARKETING' } },
          booking_confirmation: { text: 'Missing', template: { name: 'missing', language: 'en_US', params: [] } },
        },
      },
    });
    config = { ...testConfig(), tenants: { [tenantId]: tenant } };
    const adapter = createWhatsAppAdapter(tenant.whatsapp ?? assert.fail('no WhatsApp configured'));
    activities = createMessagingActivities({ db, config, whatsapp: () => adapter });
  });
  after(async () => {
    await wa.stop();
  });

  const phoneFor = (): string => `+1628555${String(Math.floor(Math.random() * 9000) + 1000)}`;
  function input(overrides: Partial<SendWhatsAppInput> = {}): SendWhatsAppInput {
    const leadId = uniqueId('L');
    return { tenantId, leadId, effectKey: `wa:${leadId}:welcome:message`, to: phoneFor(), message: { type: 'template', template: { name: 'hello', language: 'en_US', params: ['Ann'] } }, ...overrides };
  }
  // The worker's own "Activity failed" warnings would only repeat what each test asserts.
  const quiet = { logger: new DefaultLogger('ERROR') };
  const send = (sendInput: SendWhatsAppInput, attempt = 1): Promise<SendWhatsAppOutcome> =>
    new MockActivityEnvironment({ attempt }, quiet).run((one: SendWhatsAppInput) => activities.sendWhatsApp(one), sendInput);
  async function failure(work: Promise<unknown>): Promise<ApplicationFailure> {
    const error = await work.then(
      () => assert.fail('the send was expected to fail'),
      (caught: unknown) => caught,
    );
    assert.ok(error instanceof ApplicationFailure, String(error));
    return error;
  }
  /** The event the activity handed to the lead's workflow through the inbox, if any. */
  async function reported(sendInput: SendWhatsAppInput): Promise<{ event: LeadEvent; workflowId: string; signalName: string } | undefined> {
    const rows = await db.query<{ payload: { events: LeadEvent[]; workflowId: string; signalName: string } }>('SELECT payload FROM event_inbox WHERE tenant_id = $1 AND event_id = $2', [
      tenantId,
      `wa-failed:${sendInput.effectKey}`,
    ]);
    assert.ok(rows.rows.length <= 1);
    const payload = rows.rows[0]?.payload;
    return payload && payload.events[0] ? { event: payload.events[0], workflowId: payload.workflowId, signalName: payload.signalName } : undefined;
  }
  const messagesFor = (sendInput: SendWhatsAppInput) => wa.state().messages.filter((message) => message.bizOpaqueCallbackData === sendInput.effectKey);

  describe('the table', () => {
    it('decides each code as documented: template, 24 h, retry, permanent', () => {
      const action = (code: number): WhatsAppErrorDecision['action'] => decideWhatsAppError(code).action;
      assert.equal(action(131047), 'resend_as_template');
      assert.equal(action(131049), 'retry_after_24h');
      for (const code of [130429, 131056, 131048, 4, 80007]) assert.equal(action(code), 'retry', String(code));
      const undeliverable = decideWhatsAppError(131026);
      assert.deepEqual(undeliverable.action === 'permanent' && [undeliverable.kind, /undeliverable/.test(undeliverable.reason)], ['rejected', true]);
      assert.deepEqual(decideWhatsAppError(132001), { action: 'permanent', code: 132001, reason: 'WhatsApp error 132001', kind: 'rejected' });
      const token = decideWhatsAppError(190);
      assert.equal(token.action === 'permanent' && token.kind, 'unauthorized');
    });

    it('backs off exponentially from each code\'s floor, at most 5 minutes, and never sooner than Retry-After', () => {
      const pair = decideWhatsAppError(131056);
      const waba = decideWhatsAppError(80007);
      assert.ok(pair.action === 'retry' && waba.action === 'retry');
      assert.deepEqual([1, 2, 3].map((attempt) => whatsappRetryDelayMs(pair, attempt)), [6 * second, 12 * second, 24 * second]);
      assert.deepEqual([1, 3, 4, 10].map((attempt) => whatsappRetryDelayMs(waba, attempt)), [minute, 4 * minute, 5 * minute, 5 * minute]);
      assert.equal(whatsappRetryDelayMs(pair, 1, 30 * second), 30 * second);
    });
  });

  it('treats each throttling code (130429, 131056, 131048, 4, 80007) as temporary: retried with backoff, nothing reported, then sent once', async () => {
    const floors: Record<number, number> = { 130429: second, 131056: 6 * second, 131048: minute, 4: minute, 80007: minute };
    for (const [code, floor] of Object.entries(floors).map(([code, floor]) => [Number(code), floor] as const)) {
      const sendInput = input();
      wa.failNext({ code, to: sendInput.to, times: 2 });
      const first = await failure(send(sendInput, 1));
      assert.equal(first.nonRetryable, false, `${code} is temporary`);
      assert.equal(first.type, 'RateLimited');
      assert.equal(first.nextRetryDelay, floor);
      assert.match(first.message, new RegExp(`code ${code}`));
      const third = await failure(send(sendInput, 3));
      assert.equal(third.nextRetryDelay, Math.min(4 * floor, 5 * minute), `${code}: the third attempt waits longer`);
      assert.equal(await reported(sendInput), undefined, 'a throttled send is no news for the lead');
      const sent = await send(sendInput, 4);
      assert.equal(sent.status, 'sent');
      assert.equal(messagesFor(sendInput).length, 1, `${code}: exactly one message once the limit passed`);
    }
  });

  it('131047 in the answer: this send fails for good, and the lead\'s workflow gets the failure a status webhook would bring (resend as the template)', async () => {
    const sendInput = input({ message: { type: 'text', text: 'Hi Ann, still interested?' } });
    const refused = await failure(send(sendInput));
    assert.equal(refused.nonRetryable, true);
    assert.equal(refused.type, 'Rejected');
    assert.match(refused.message, /code 131047: re-engagement/);
    assert.doesNotMatch(refused.message, /\+?1628555\d{4}/, 'no phone number in the failure');
    const handed = await reported(sendInput);
    assert.equal(handed?.workflowId, leadWorkflowId(tenantId, sendInput.leadId));
    assert.equal(handed?.signalName, 'leadEvents');
    assert.ok(handed?.event.type === 'whatsapp.failed');
    assert.deepEqual({ ...handed.event, messageId: undefined, occurredAt: undefined }, {
      eventId: `wa-failed:${sendInput.effectKey}`,
      type: 'whatsapp.failed',
      effectKey: sendInput.effectKey,
      errorCode: 131047,
      errorTitle: 'Re-engagement message',
      messageId: undefined,
      occurredAt: undefined,
    });
    assert.match(handed.event.messageId, /^refused:A/, "Meta's trace id stands in for the message id");
    const effect = await db.query<{ state: string; claimed_until: Date | null }>('SELECT state, claimed_until FROM external_effects WHERE tenant_id = $1 AND effect_key = $2', [tenantId, sendInput.effectKey]);
    assert.deepEqual(effect.rows, [{ state: 'pending', claimed_until: null }], 'nothing was sent: the key is free');
    assert.equal(messagesFor(sendInput).length, 0);
  });

  it('131049 in the answer: reported for the workflow to send again in 24 h', async () => {
    const first = input({ message: { type: 'template', template: { name: 'promo', language: 'en_US', params: [] } } });
    assert.equal((await send(first)).status, 'sent');
    const capped = input({ to: first.to, message: first.message });
    const refused = await failure(send(capped));
    assert.equal(refused.nonRetryable, true);
    assert.match(refused.message, /code 131049/);
    const handed = await reported(capped);
    assert.ok(handed?.event.type === 'whatsapp.failed');
    assert.equal(handed.event.errorCode, 131049);
  });

  it('131026 (undeliverable): permanent with its reason, reported with its code', async () => {
    const sendInput = input({ to: '+16285550999' });
    const refused = await failure(send(sendInput));
    assert.equal(refused.nonRetryable, true);
    assert.equal(refused.type, 'Rejected');
    assert.match(refused.message, /code 131026: undeliverable: the recipient cannot receive this message; Unable to deliver message/);
    const handed = await reported(sendInput);
    assert.ok(handed?.event.type === 'whatsapp.failed');
    assert.equal(handed.event.errorCode, 131026);
  });

  it('refuses a template message that does not fit its registration before WhatsApp is called: nothing claimed, nothing sent, never retried', async () => {
    for (const [template, problem] of [
      [{ name: 'hello', language: 'es', params: ['Ann'] }, /not sent: template "hello" has no "es" version \(registered: en_US\)/],
      [{ name: 'hello', language: 'en_US', params: ['Ann', 'extra'] }, /not sent: template "hello" \(en_US\) declares 1 placeholder\(s\), the message carries 2 parameter\(s\)/],
      [{ name: 'unregistered', language: 'en_US', params: [] }, /not sent: template "unregistered" is not registered/],
    ] as const) {
      const sendInput = input({ message: { type: 'template', template: { ...template, params: [...template.params] } } });
      const refused = await failure(send(sendInput));
      assert.equal(refused.nonRetryable, true);
      assert.equal(refused.type, 'TemplateMismatch');
      assert.match(refused.message, problem);
      assert.equal(messagesFor(sendInput).length, 0, 'WhatsApp never saw it (no 132000 or 132001)');
      const effect = await db.query('SELECT 1 FROM external_effects WHERE tenant_id = $1 AND effect_key = $2', [tenantId, sendInput.effectKey]);
      assert.equal(effect.rowCount, 0, 'no ledger claim');
      assert.equal(await reported(sendInput), undefined, 'a configuration problem is no news about the lead');
    }
  });

  it("records the language a message went in, in the message ledger", async () => {
    const template = input();
    const text = input({ message: { type: 'text', text: 'Hola Ann' }, language: 'es' });
    await wa.inbound({ from: text.to.replace(/^\+/, ''), text: 'hola' });
    const sent = [await send(template), await send(text)];
    const rows = await db.query<{ kind: string; language: string | null }>('SELECT kind, language FROM whatsapp_messages WHERE tenant_id = $1 AND wamid = ANY($2) ORDER BY kind', [
      tenantId,
      sent.map((outcome) => (outcome.status === 'sent' ? outcome.wamid : '')),
    ]);
    assert.deepEqual(rows.rows, [{ kind: 'template', language: 'en_US' }, { kind: 'text', language: 'es' }]);
  });

  it('any other code is permanent and named (132001: no such template)', async () => {
    const sendInput = input({ message: { type: 'template', template: { name: 'missing', language: 'en_US', params: [] } } });
    const refused = await failure(send(sendInput));
    assert.equal(refused.nonRetryable, true);
    assert.match(refused.message, /code 132001: WhatsApp error 132001/);
    const handed = await reported(sendInput);
    assert.ok(handed?.event.type === 'whatsapp.failed');
    assert.equal(handed.event.errorCode, 132001);
  });

  it('a bad token (190) is Unauthorized and no news for the lead; an outage (503) stays temporary', async () => {
    const tenant = config.tenants[tenantId] ?? assert.fail('no tenant');
    const wrongToken = createMessagingActivities({ db, config, whatsapp: () => createWhatsAppAdapter({ ...(tenant.whatsapp ?? assert.fail('no WhatsApp')), token: 'wrong' }) });
    const sendInput = input();
    const unauthorized = await failure(new MockActivityEnvironment({}, quiet).run((one: SendWhatsAppInput) => wrongToken.sendWhatsApp(one), sendInput));
    assert.equal(unauthorized.nonRetryable, true);
    assert.equal(unauthorized.type, 'Unauthorized');
    assert.equal(await reported(sendInput), undefined);

    wa.setOutage(true);
    try {
      const down = input();
      const outage = await failure(send(down));
      assert.equal(outage.nonRetryable, false);
      assert.equal(outage.type, 'Unavailable');
      assert.equal(await reported(down), undefined);
    } finally {
      wa.setOutage(false);
    }
  });
});
