/**
 * Activities whose dependencies are plain objects, run in @temporalio/testing's
 * MockActivityEnvironment: failure mapping, heartbeats and cancellation, CRM enrichment against an
 * in-memory CRM, and the notification paths decided before the effect ledger. Paths that need
 * PostgreSQL (the ledger, the journal) stay with the full suite: the database dependency here
 * fails the test if an activity touches it.
 */
import assert from 'node:assert/strict';
import { ApplicationFailure, CancelledFailure } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import type { Info } from '@temporalio/activity';
import { createCrmActivities } from '../../activities/crm.js';
import { callOutside, failureTypes, toActivityFailure } from '../../activities/failures.js';
import { effectLeaseSeconds, whileHeartbeating } from '../../activities/lease.js';
import { createNotificationActivities, followUpEmail, slackText } from '../../activities/notifications.js';
import type { CrmAdapter, CrmContact } from '../../adapters/crm/types.js';
import { OutsideSystemError, requestSignal } from '../../adapters/http.js';
import type { Mailer } from '../../adapters/mailer.js';
import type { EmailConfig, SlackConfig } from '../../config/schema.js';
import { EffectBusyError } from '../../db/effects.js';
import type { Db } from '../../db/pool.js';

/** Stands in for PostgreSQL where the path under test must not reach it: any use fails the test. */
const databaseNotAllowed = new Proxy({}, {
  get(_target, property) {
    throw new Error(`the activity touched the database (db.${String(property)}) on a path that must not`);
  },
}) as Db;

/** An activity context; failed attempts (provoked on purpose) are not logged. */
const activityEnv = (info: Partial<Info> = {}): MockActivityEnvironment => new MockActivityEnvironment(info, { logger: new DefaultLogger('ERROR') });

/** `work`'s result, run in the environment's activity context. */
const inActivity = <T>(env: MockActivityEnvironment, work: () => Promise<T>): Promise<T> => env.run<[], T, () => Promise<T>>(work);

/** The failure `work` throws (the test fails if it throws nothing). */
async function thrown(work: () => unknown): Promise<unknown> {
  try {
    await work();
  } catch (error) {
    return error;
  }
  return assert.fail('expected a failure');
}

/** A request that runs until the attempt's cancellation aborts it, failing then as the HTTP adapter's requests do. */
function requestUntilAborted(system: string): Promise<never> {
  const signal = requestSignal(60_000);
  return new Promise((_resolve, reject) => {
    const abort = (): void => reject(new OutsideSystemError(system, 'unavailable', 'request aborted'));
    if (signal.aborted) abort();
    else signal.addEventListener('abort', abort, { once: true });
  });
}

describe('activity failures (fast)', () => {
  it('retries rate limits and outages, after the Retry-After when given (at least 250 ms)', async () => {
    const limited = await thrown(() => toActivityFailure(new OutsideSystemError('kommo', 'rate_limited', 'HTTP 429', 429, 100)));
    assert.ok(limited instanceof ApplicationFailure);
    assert.deepEqual([limited.type, limited.nonRetryable, limited.nextRetryDelay], [failureTypes.rateLimited, false, 250]);

    const later = await thrown(() => toActivityFailure(new OutsideSystemError('kommo', 'rate_limited', 'HTTP 429', 429, 5_000)));
    assert.ok(later instanceof ApplicationFailure);
    assert.equal(later.nextRetryDelay, 5_000);

    const down = await thrown(() => toActivityFailure(new OutsideSystemError('hubspot', 'unavailable', 'HTTP 503', 503)));
    assert.ok(down instanceof ApplicationFailure);
    assert.deepEqual([down.type, down.nonRetryable, down.nextRetryDelay], [failureTypes.unavailable, false, undefined]);
  });

  it('makes refusals permanent, typed as the workflows\' retry policies name them', async () => {
    const cases = [
      ['rejected', failureTypes.rejected],
      ['unauthorized', failureTypes.unauthorized],
      ['not_found', failureTypes.notFound],
    ] as const;
    for (const [kind, type] of cases) {
      const failure = await thrown(() => toActivityFailure(new OutsideSystemError('kommo', kind, `refused (${kind})`, 400)));
      assert.ok(failure instanceof ApplicationFailure, kind);
      assert.deepEqual([failure.type, failure.nonRetryable, failure.message], [type, true, `kommo: refused (${kind})`]);
    }
  });

  it('keeps phone numbers out of failure messages', async () => {
    const failure = await thrown(() => toActivityFailure(new OutsideSystemError('kommo', 'rejected', 'no contact for +1 (415) 555-0123', 400)));
    assert.ok(failure instanceof ApplicationFailure);
    assert.doesNotMatch(failure.message, /555/);
    assert.match(failure.message, /\[phone …23\]/);
  });

  it('retries a busy effect key after the holder\'s lease, and passes other errors through unchanged', async () => {
    const busy = await thrown(() => toActivityFailure(new EffectBusyError('crm:call:pbx:1', 1_500.2)));
    assert.ok(busy instanceof ApplicationFailure);
    assert.deepEqual([busy.type, busy.nonRetryable, busy.nextRetryDelay], ['EffectBusy', false, 1_501]);

    const bug = new TypeError('undefined is not a function');
    assert.equal(await thrown(() => callOutside(() => Promise.reject(bug))), bug);
    assert.equal(await callOutside(() => Promise.resolve(42)), 42);
  });
});

describe('activity heartbeats and cancellation (fast)', () => {
  it('holds an effect key just past the attempt\'s start-to-close timeout', async () => {
    const env = activityEnv({ startToCloseTimeoutMs: 30_000 });
    assert.equal(await env.run(() => Promise.resolve(effectLeaseSeconds())), 35);
  });

  it('heartbeats at once and then every third of the heartbeat timeout while the work runs', async () => {
    const env = activityEnv({ heartbeatTimeoutMs: 300 });
    let beats = 0;
    let third!: () => void;
    const thirdBeat = new Promise<void>((resolve) => (third = resolve));
    env.on('heartbeat', () => {
      beats++;
      if (beats === 3) third();
    });
    const result = await env.run(() =>
      whileHeartbeating(async () => {
        assert.equal(beats, 1, 'one heartbeat before the work starts');
        await thirdBeat;
        return 'done';
      }),
    );
    assert.equal(result, 'done');
    assert.equal(beats, 3, 'no heartbeat after the work ended');
  });

  it('aborts the attempt\'s requests once it is cancelled, and reports the cancellation rather than the aborted request', async () => {
    const env = activityEnv({ heartbeatTimeoutMs: 30_000 });
    const failure = await thrown(() =>
      env.run(() =>
        whileHeartbeating(async () => {
          const request = requestUntilAborted('kommo');
          env.cancel();
          return request;
        }),
      ),
    );
    assert.ok(failure instanceof CancelledFailure, `got ${String(failure)}`);
  });

  it('passes a failure of the work through unchanged while not cancelled', async () => {
    const env = activityEnv();
    const refusal = new OutsideSystemError('kommo', 'rejected', 'HTTP 400', 400);
    assert.equal(await thrown(() => env.run(() => whileHeartbeating(() => Promise.reject(refusal)))), refusal);
  });
});

describe('CRM enrichment with an in-memory CRM (fast)', () => {
  const tenantId = 'fast-tenant';
  const phone = '+14155550123';
  const contact: CrmContact = { id: 501, name: 'Ada Lovelace', phone };

  /** A CRM adapter that knows one contact; what the enrichment must not use fails the test. */
  function fakeCrm(overrides: Partial<CrmAdapter> = {}): CrmAdapter & { lookups: Array<{ phone: string; live: boolean | undefined }> } {
    const lookups: Array<{ phone: string; live: boolean | undefined }> = [];
    const unused = (): Promise<never> => Promise.reject(new Error('not used by enrichment'));
    return {
      name: 'kommo',
      lookups,
      findContactByPhone: (lookedUp, options) => {
        lookups.push({ phone: lookedUp, live: options?.live });
        return Promise.resolve(lookedUp === phone ? contact : undefined);
      },
      enrich: () => Promise.resolve({ contact: { id: contact.id, name: contact.name }, previousInteractions: [{ at: '2026-01-02T10:00:00.000Z', type: 'call', summary: 'asked about pricing' }], assignedRepresentative: { id: 9, name: 'Rep' } }),
      logCall: unused,
      findLoggedCall: unused,
      createIncomingLead: unused,
      findIncomingLead: unused,
      createCallbackTask: unused,
      findCallbackTask: unused,
      ...overrides,
    };
  }

  function activities(crm: CrmAdapter | undefined, vip = false) {
    return createCrmActivities({
      db: databaseNotAllowed,
      crm: () => crm,
      tenant: () => assert.fail('enrichment needs no tenant settings'),
      publicUrl: 'https://switchboard.example',
      isVipPhone: (tenant, number) => vip && tenant === tenantId && number === phone,
    });
  }

  it('returns the contact\'s details with the VIP flag, looked up as a live call', async () => {
    const crm = fakeCrm();
    const outcome = await inActivity(activityEnv(), () => activities(crm, true).enrichCall({ tenantId, callId: 'pbx:1', customerPhone: phone }));
    assert.equal(outcome.state, 'done');
    assert.deepEqual(outcome.enrichment, {
      contact: { id: 501, name: 'Ada Lovelace' },
      previousInteractions: [{ at: '2026-01-02T10:00:00.000Z', type: 'call', summary: 'asked about pricing' }],
      assignedRepresentative: { id: 9, name: 'Rep' },
      vip: true,
    });
    assert.deepEqual(crm.lookups, [{ phone, live: true }]);
  });

  it('answers not found for an unknown caller, and skipped for a tenant without a CRM', async () => {
    const env = activityEnv();
    const unknown = await env.run(() => activities(fakeCrm()).enrichCall({ tenantId, callId: 'pbx:2', customerPhone: '+14155550999' }));
    assert.deepEqual(unknown, { state: 'not_found', enrichment: { previousInteractions: [], vip: false } });
    const none = await env.run(() => activities(undefined, true).enrichCall({ tenantId, callId: 'pbx:3', customerPhone: phone }));
    assert.deepEqual(none, { state: 'skipped', enrichment: { previousInteractions: [], vip: true } });
  });

  it('turns a CRM outage into a retryable failure with the CRM\'s Retry-After', async () => {
    const crm = fakeCrm({ findContactByPhone: () => Promise.reject(new OutsideSystemError('kommo', 'rate_limited', 'HTTP 429', 429, 2_000)) });
    const failure = await thrown(() => activityEnv().run(() => activities(crm).enrichCall({ tenantId, callId: 'pbx:4', customerPhone: phone })));
    assert.ok(failure instanceof ApplicationFailure);
    assert.deepEqual([failure.type, failure.nonRetryable, failure.nextRetryDelay], [failureTypes.rateLimited, false, 2_000]);
  });

  it('cuts a hanging CRM lookup off when the attempt is cancelled', async () => {
    const env = activityEnv({ heartbeatTimeoutMs: 30_000 });
    const crm = fakeCrm({
      findContactByPhone: () => {
        const request = requestUntilAborted('kommo');
        env.cancel();
        return request;
      },
    });
    const failure = await thrown(() => env.run(() => activities(crm).enrichCall({ tenantId, callId: 'pbx:5', customerPhone: phone })));
    assert.ok(failure instanceof CancelledFailure, `got ${String(failure)}`);
  });

  it('skips logging a call with no CRM or no caller number, before the effect ledger', async () => {
    const env = activityEnv();
    const call = { tenantId, callId: 'pbx:6', direction: 'inbound' as const, startedAt: '2026-01-05T15:00:00.000Z', durationSeconds: 0, disposition: 'missed' as const, hasRecording: false };
    assert.deepEqual(await env.run(() => activities(undefined).logCallToCrm({ ...call, customerPhone: phone })), { state: 'skipped', skippedReason: 'no_crm_configured' });
    assert.deepEqual(await env.run(() => activities(fakeCrm()).logCallToCrm(call)), { state: 'skipped', skippedReason: 'caller_id_withheld' });
  });
});

describe('notifications decided before the effect ledger (fast)', () => {
  const tenantId = 'fast-tenant';
  const emailConfig: EmailConfig = { smtpUrl: 'smtp://localhost:2525', from: 'calls@example.com', resourcesUrl: 'https://example.com/help' };

  function notifications(options: { slack?: SlackConfig; email?: boolean } = {}) {
    const sent: unknown[] = [];
    const mailer: Mailer = {
      send: (email) => {
        sent.push(email);
        return Promise.resolve({ messageId: 'm' });
      },
      close: () => undefined,
    };
    const activities = createNotificationActivities({
      db: databaseNotAllowed,
      slack: () => options.slack,
      email: () => (options.email ? { config: emailConfig, mailer } : undefined),
      displayName: () => 'Fast Co',
    });
    return { activities, sent };
  }

  it('skips a Slack alert whose channel has no webhook', async () => {
    const { activities } = notifications({ slack: { supportWebhookUrl: 'https://hooks.slack.example/support' } });
    const outcome = await activityEnv().run(() => activities.sendSlackAlert({ tenantId, callId: 'pbx:1', trigger: 'vip', customerLabel: 'Ada' }));
    assert.deepEqual(outcome, { state: 'skipped', reason: 'no_webhook_configured' });
  });

  it('skips a follow-up e-mail without e-mail settings or without an address, sending nothing', async () => {
    const env = activityEnv();
    const input = { tenantId, callId: 'pbx:2', template: 'thank_you' as const, to: 'ada@example.com' };
    assert.deepEqual(await env.run(() => notifications().activities.sendFollowUpEmail(input)), { state: 'skipped', reason: 'no_email_configured' });
    const configured = notifications({ email: true });
    const { to: _to, ...withoutAddress } = input;
    assert.deepEqual(await env.run(() => configured.activities.sendFollowUpEmail(withoutAddress)), { state: 'skipped', reason: 'no_email_address' });
    assert.deepEqual(configured.sent, []);
  });

  it('words the alert and the e-mail from the call', () => {
    assert.equal(slackText({ tenantId, callId: 'pbx:3', trigger: 'transfer_requested', customerLabel: 'Ada' }), '#support - Transfer requested by Ada (call pbx:3)');
    assert.equal(slackText({ tenantId, callId: 'pbx:3', trigger: 'low_satisfaction', customerLabel: 'Ada', summary: 'waited 20 min' }), '#alerts - Unhappy customer: waited 20 min (Ada, call pbx:3)');
    const apology = followUpEmail({ tenantId, callId: 'pbx:3', template: 'apology_escalation', customerName: 'Ada', summary: 'billing error' }, 'Fast Co', 'https://example.com/help');
    assert.equal(apology.subject, "We're sorry about your call with Fast Co");
    assert.match(apology.text, /^Hello Ada,\n/);
    assert.match(apology.text, /What we understood: billing error/);
    assert.match(followUpEmail({ tenantId, callId: 'pbx:3', template: 'additional_resources' }, 'Fast Co', 'https://example.com/help').text, /^Hello,\n[\s\S]*https:\/\/example\.com\/help/);
  });
});
