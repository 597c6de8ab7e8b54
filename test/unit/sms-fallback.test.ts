/** The SMS fallback's plan (pure: shared/lead-plan.ts), its configuration (fail-fast) and Twilio's opt-out keywords. */
import assert from 'node:assert/strict';
import { tenantSchema } from '../../config/schema.js';
import { isSmsOptOut } from '../../ingestion/providers/twilio-sms.js';
import { Changes, applyLeadEvent, initialLeadState, smsFallbackCovers, smsText } from '../../shared/lead-plan.js';
import { leadPolicySchema } from '../../shared/leads.js';
import type { LeadEvent, LeadPolicy, LeadState } from '../../shared/leads.js';
import type { LeadPlanFeatures } from '../../shared/lead-plan.js';

const hour = 3_600_000;
// Monday 23 Nov 2026, 10:00 and 22:00 in New York.
const monday10 = Date.parse('2026-11-23T15:00:00Z');
const monday22 = monday10 + 12 * hour;
const iso = (ms: number): string => new Date(ms).toISOString();
const on = leadPolicySchema.parse({ smsFallback: { enabled: true } });

function lead(): LeadState {
  const state = initialLeadState('demo', 'L1', 'lead:demo:L1', 'America/New_York', monday10);
  state.profile = { name: 'Kim Park', phone: '+14155550100' };
  return state;
}

function failed(state: LeadState, policy: LeadPolicy, now: number, options: { code?: number; key?: string; messageId?: string; features?: LeadPlanFeatures } = {}): Changes {
  const changes = new Changes(now);
  const event: LeadEvent = {
    eventId: `wa-failed:${options.key ?? 'wa:L1:welcome:message'}:${options.messageId ?? 'm1'}`,
    type: 'whatsapp.failed',
    occurredAt: iso(now),
    messageId: options.messageId ?? 'm1',
    effectKey: options.key ?? 'wa:L1:welcome:message',
    errorCode: options.code ?? 131026,
  };
  applyLeadEvent(state, event, policy, now, changes, options.features ?? { smsFallback: () => true });
  return changes;
}

describe('SMS fallback plan', () => {
  it('plans the step once as SMS under <key>#sms when WhatsApp cannot deliver, whichever attempt failed and however often', () => {
    const state = lead();
    failed(state, on, monday10);
    failed(state, on, monday10 + 1000, { messageId: 'm2' });
    failed(state, on, monday10 + 2000, { key: 'wa:L1:welcome:message#template', messageId: 'm3' });
    const sms = state.planned.filter((step) => step.channel === 'sms');
    assert.deepEqual(sms.map((step) => [step.key, step.dueAt]), [['welcome:message#sms', monday10]]);
    state.planned = [];
    state.doneSteps.push('welcome:message#sms');
    failed(state, on, monday10 + 3000, { messageId: 'm4' });
    assert.equal(state.planned.length, 0, 'a step whose SMS went out is not planned again');
  });

  it('re-checks the send window when the fallback is decided in quiet hours', () => {
    const state = lead();
    failed(state, on, monday22);
    const [step] = state.planned;
    assert.equal(step?.key, 'welcome:message#sms');
    assert.equal(step?.dueAt, Date.parse('2026-11-24T14:00:00Z'), 'Tuesday 09:00 in New York');
  });

  it('is off by default, per flow and per code, and asks the patch only when it would act', () => {
    let asked = 0;
    const features = { smsFallback: () => ++asked > 0 };
    const off = leadPolicySchema.parse({});
    failed(lead(), off, monday10, { features });
    failed(lead(), on, monday10, { code: 131047, features });
    const welcomeOnly = leadPolicySchema.parse({ smsFallback: { enabled: true, flows: ['welcome'] } });
    const notWelcome = lead();
    failed(notWelcome, welcomeOnly, monday10, { key: 'wa:L1:follow_up:1', features });
    assert.equal(notWelcome.planned.length, 0);
    assert.equal(asked, 0, 'histories that never fall back never ask patched()');
    assert.equal(smsFallbackCovers(welcomeOnly, 'welcome', 131026), true);
    const unpatched = lead();
    failed(unpatched, on, monday10, { features: { smsFallback: () => false } });
    assert.equal(unpatched.planned.length, 0, 'a run without the patch only notes the failure');
    // A policy recorded before the fallback existed has no smsFallback at all.
    const { smsFallback: _dropped, ...older } = on;
    assert.equal(smsFallbackCovers(older as LeadPolicy, 'welcome', 131026), false);
  });

  it("sends the flow's free text", () => {
    assert.equal(smsText(lead(), on, 'Acme', { flow: 'welcome' }), 'Hi Kim, thanks for your interest in Acme! Reply here any time.');
  });

  it("knows Twilio's default opt-out keywords, in any case, and OptOutType", () => {
    for (const body of ['STOP', 'stopall', ' Unsubscribe ', 'CANCEL', 'end', 'Quit']) assert.equal(isSmsOptOut({ Body: body }), true, body);
    for (const body of ['stop it please', 'START', 'HELP', 'stopp']) assert.equal(isSmsOptOut({ Body: body }), false, body);
    assert.equal(isSmsOptOut({ Body: 'arrêt', OptOutType: 'STOP' }), true);
  });
});

describe('SMS configuration (fail-fast, naming the setting)', () => {
  const base = { displayName: 'Acme', defaultRegion: 'US', timeZone: 'UTC', secrets: { webhookSigningSecret: 's', operatorToken: 'o' } };
  const sms = { accountSid: `AC${'a'.repeat(32)}`, from: '+15005550006' };
  const problems = (tenant: Record<string, unknown>): string[] => {
    const parsed = tenantSchema.safeParse(tenant);
    return parsed.success ? [] : parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
  };

  it('accepts an account with a sender and the auth token', () => {
    assert.deepEqual(problems({ ...base, secrets: { ...base.secrets, twilioAuthToken: 't' }, sms, leads: { smsFallback: { enabled: true } } }), []);
  });

  it('names what is missing or malformed', () => {
    assert.deepEqual(problems({ ...base, sms }), ['secrets.twilioAuthToken: is required with sms: it signs the status callbacks and inbound messages']);
    assert.deepEqual(problems({ ...base, leads: { smsFallback: { enabled: true } } }), ['leads.smsFallback.enabled: needs sms (the Twilio account to send from)']);
    const withToken = { ...base, secrets: { ...base.secrets, twilioAuthToken: 't' } };
    assert.match(problems({ ...withToken, sms: { ...sms, accountSid: 'AC123' } }).join(), /^sms\.accountSid: must be a Twilio Account SID/);
    assert.match(problems({ ...withToken, sms: { accountSid: sms.accountSid } }).join(), /^sms\.from: set exactly one of from and messagingServiceSid/);
    assert.match(problems({ ...withToken, sms: { ...sms, messagingServiceSid: `MG${'b'.repeat(32)}` } }).join(), /^sms\.from: set exactly one/);
    assert.deepEqual(problems({ ...withToken, sms: { ...sms, apiKeySid: `SK${'c'.repeat(32)}` } }), ['secrets.twilioApiKeySecret: is required with sms.apiKeySid']);
  });
});
