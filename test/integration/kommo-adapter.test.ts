/**
 * The Kommo adapter against the Kommo sandbox over real HTTP, with real PostgreSQL for tokens and
 * the shared request budget. Each test encodes a contract gap found against the real API:
 * OAuth 2.0 (developers.kommo.com/reference/get-token, docs/long-lived-token; amocrm-api-php
 * AmoCRMApiRequest refreshes on expiry and once on a 401), incoming leads
 * (kommo.com/developers/content/api_v4/incoming-leads; examples/unsorted_actions.php), call
 * placement (developers.kommo.com/reference/calls), 403 (amocrm.com/developers/content/api/errors,
 * code 113) and the 7 requests per second limit (developers.kommo.com/docs/limitations).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { callOutside } from '../../activities/failures.js';
import { createCrmActivities } from '../../activities/crm.js';
import type { CrmSyncInput } from '../../activities/crm.js';
import { createKommoAdapter, requestKommoTokens } from '../../adapters/crm/kommo.js';
import type { CrmAdapter, CrmCall } from '../../adapters/crm/types.js';
import { OutsideSystemError } from '../../adapters/http.js';
import { decodeTokenKey, kommoConfigSchema, tenantSchema } from '../../config/schema.js';
import type { KommoConfig } from '../../config/schema.js';
import { loadTokens, renewTokens, saveTokens, TokenKeyError } from '../../db/crm-tokens.js';
import { createPool } from '../../db/pool.js';
import type { Db } from '../../db/pool.js';
import { startKommoSandbox } from '../../sandboxes/kommo.js';
import type { KommoSandbox, KommoSandboxOptions } from '../../sandboxes/kommo.js';
import { createTestDatabase } from '../harness/postgres.js';
import { uniqueId } from '../harness/resources.js';

const oauthApp = { clientId: 'switchboard-client', clientSecret: 'switchboard-secret', redirectUri: 'https://switchboard.example/kommo/callback' };

describe('Kommo adapter (sandbox over HTTP, PostgreSQL for tokens and the request budget)', function () {
  this.timeout(120_000);
  let url: string;
  let db: Db;
  const extraPools: Db[] = [];
  const sandboxes: KommoSandbox[] = [];
  before(async () => {
    ({ url, db } = await createTestDatabase('kommo'));
  });
  after(async () => {
    await Promise.all(sandboxes.map((sandbox) => sandbox.stop()));
    await Promise.all(extraPools.map((pool) => pool.end()));
  });

  const sandbox = async (options: Partial<KommoSandboxOptions> = {}): Promise<KommoSandbox> => {
    const started = await startKommoSandbox({ oauth: oauthApp, ...options });
    sandboxes.push(started);
    return started;
  };
  /** Another worker process: its own pool on the same database. */
  const otherWorkerDb = (): Db => {
    const pool = createPool(url, { max: 5 });
    extraPools.push(pool);
    return pool;
  };
  const oauthConfig = (kommo: KommoSandbox, extra: Record<string, unknown> = {}): KommoConfig =>
    kommoConfigSchema.parse({ kind: 'kommo', baseUrl: kommo.url, oauth: { ...oauthApp, tokenKey: randomKey, refreshAheadSeconds: 0, ...extra } });
  const randomKey = randomBytes(32).toString('base64');
  const keyOf = (config: KommoConfig): Buffer => decodeTokenKey(config.oauth?.tokenKey ?? '') as Buffer;
  /** What `npm run cli -- kommo-authorize` does: the code for the first pair, stored encrypted. */
  const authorize = async (kommo: KommoSandbox, config: KommoConfig, tenantId: string) => {
    const tokens = await requestKommoTokens({ baseUrl: config.baseUrl, oauth: config.oauth ?? assert.fail('no oauth') }, { code: kommo.authorize() });
    await saveTokens(db, { tenantId, crm: 'kommo', key: keyOf(config) }, kommo.url, tokens);
    return tokens;
  };
  const callOf = (phone: string, extra: Partial<CrmCall> = {}): CrmCall => ({
    callId: `pbx:${uniqueId('call')}`,
    direction: 'inbound',
    customerPhone: phone,
    linePhone: '+12025550100',
    startedAt: new Date().toISOString(),
    durationSeconds: 30,
    answered: true,
    status: 4,
    ...extra,
  });

  describe('OAuth 2.0', () => {
    it('renews an access token that stops working mid-burst once, across two workers, and retries every request', async () => {
      const kommo = await sandbox({ rateLimitPerSecond: 1_000 });
      const config = oauthConfig(kommo);
      const tenantId = uniqueId('t');
      const phones = Array.from({ length: 12 }, (_, index) => `+1415555${String(7000 + index)}`);
      phones.forEach((phone, index) => kommo.seedContact({ name: `Burst ${index}`, phone }));
      await authorize(kommo, config, tenantId);
      const workers = [createKommoAdapter(config, { db, tenantId }), createKommoAdapter(config, { db: otherWorkerDb(), tenantId })];
      assert.ok(await workers[0]?.findContactByPhone(phones[0] ?? ''));
      assert.ok(await workers[1]?.findContactByPhone(phones[1] ?? ''));

      kommo.expireAccessTokens();
      const found = await Promise.all(phones.map((phone, index) => (workers[index % 2] as CrmAdapter).findContactByPhone(phone)));
      assert.deepEqual(found.map((contact) => contact?.name), phones.map((_, index) => `Burst ${index}`));
      const { oauth } = kommo.state();
      assert.equal(oauth.granted.refresh_token, 1, 'one renewal for both workers');
      assert.deepEqual(oauth.refused, [], 'no rotated-away refresh token was ever sent');
      const stored = await loadTokens(db, { tenantId, crm: 'kommo', key: keyOf(config) });
      assert.equal(stored?.version, 2);

      // A worker started afterwards reads the committed pair and needs no renewal of its own.
      const late = createKommoAdapter(config, { db: otherWorkerDb(), tenantId });
      assert.ok(await late.findContactByPhone(phones[2] ?? ''));
      assert.equal(kommo.state().oauth.granted.refresh_token, 1);
    });

    it('renews ahead of expiry, before the request, so no request meets a 401', async () => {
      const kommo = await sandbox({ rateLimitPerSecond: 1_000, oauth: { ...oauthApp, accessTokenLifetimeSeconds: 200 } });
      const config = oauthConfig(kommo, { refreshAheadSeconds: 300 });
      const tenantId = uniqueId('t');
      kommo.seedContact({ name: 'Ahead', phone: '+14155557100' });
      await authorize(kommo, config, tenantId);
      const adapter = createKommoAdapter(config, { db, tenantId });
      assert.equal((await adapter.findContactByPhone('+14155557100'))?.name, 'Ahead');
      assert.equal(kommo.state().oauth.granted.refresh_token, 1);
      assert.equal(kommo.state().requests.byRoute['GET /api/v4/contacts'], 1, 'sent once, with the renewed token');
    });

    it('keeps a rotated pair whose commit failed: the save is retried on a fresh connection', async () => {
      const kommo = await sandbox();
      const config = oauthConfig(kommo);
      const tenantId = uniqueId('t');
      const scope = { tenantId, crm: 'kommo' as const, key: keyOf(config) };
      await authorize(kommo, config, tenantId);
      const saved = await renewTokens(db, scope, async (current) => {
        const rotated = await requestKommoTokens({ baseUrl: config.baseUrl, oauth: config.oauth ?? assert.fail() }, { refreshToken: current.refreshToken ?? '' });
        // The connection holding the lock dies after Kommo rotated the pair, before the commit.
        await db.query(
          `SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity
            WHERE datname = current_database() AND state = 'idle in transaction' AND query LIKE '%FROM crm_tokens%FOR UPDATE%'`,
        );
        return rotated;
      });
      const stored = await loadTokens(db, scope);
      assert.equal(stored?.version, 2);
      assert.equal(stored?.refreshToken, saved?.refreshToken);
      // The stored refresh token is the live one: it renews, and the spent one was never used again.
      const next = await requestKommoTokens({ baseUrl: config.baseUrl, oauth: config.oauth ?? assert.fail() }, { refreshToken: stored?.refreshToken ?? '' });
      assert.ok(next.accessToken);
      assert.deepEqual(kommo.state().oauth.refused, []);
    });

    it('keeps the tokens encrypted at rest, bound to the key they were stored with', async () => {
      const kommo = await sandbox();
      const config = oauthConfig(kommo);
      const tenantId = uniqueId('t');
      const tokens = await authorize(kommo, config, tenantId);
      const row = await db.query<{ access_token_enc: Buffer; refresh_token_enc: Buffer; key_id: string }>('SELECT access_token_enc, refresh_token_enc, key_id FROM crm_tokens WHERE tenant_id = $1', [tenantId]);
      const stored = row.rows[0];
      assert.ok(stored);
      for (const [sealed, plain] of [
        [stored.access_token_enc, tokens.accessToken],
        [stored.refresh_token_enc, tokens.refreshToken ?? ''],
      ] as const) {
        assert.equal(sealed.includes(Buffer.from(plain)), false);
        assert.equal(sealed.toString('base64').includes(plain), false);
      }
      assert.equal(stored.key_id.length, 16);
      const otherKey = randomBytes(32);
      await assert.rejects(loadTokens(db, { tenantId, crm: 'kommo', key: otherKey }), TokenKeyError);
      const wrongKey = createKommoAdapter(kommoConfigSchema.parse({ ...config, oauth: { ...config.oauth, tokenKey: otherKey.toString('hex') } }), { db, tenantId });
      await assert.rejects(wrongKey.findContactByPhone('+14155557101'), (error: unknown) => error instanceof OutsideSystemError && error.kind === 'unauthorized' && /another token key/.test(error.message));
    });

    it('a refused refresh token is a permanent failure that names the CLI command, and is recorded', async () => {
      const kommo = await sandbox({ rateLimitPerSecond: 1_000 });
      const config = oauthConfig(kommo);
      const tenantId = uniqueId('t');
      const tokens = await authorize(kommo, config, tenantId);
      // Someone else spent the refresh token (another deployment with a copy of it).
      await requestKommoTokens({ baseUrl: config.baseUrl, oauth: config.oauth ?? assert.fail() }, { refreshToken: tokens.refreshToken ?? '' });
      const adapter = createKommoAdapter(config, { db, tenantId });
      await assert.rejects(adapter.findContactByPhone('+14155557102'), (error: unknown) => {
        assert.ok(error instanceof OutsideSystemError);
        assert.equal(error.retryable, false);
        assert.match(error.message, /refused the refresh token \(Token has been revoked\).*kommo-authorize --tenant/);
        assert.equal(error.message.includes(tokens.refreshToken ?? '?'), false);
        return true;
      });
      const row = await db.query<{ last_error: string }>('SELECT last_error FROM crm_tokens WHERE tenant_id = $1', [tenantId]);
      assert.match(row.rows[0]?.last_error ?? '', /Token has been revoked/);
    });

    it('without stored tokens, says how to authorize', async () => {
      const kommo = await sandbox();
      const adapter = createKommoAdapter(oauthConfig(kommo), { db, tenantId: 'never-authorized' });
      await assert.rejects(adapter.findContactByPhone('+14155557103'), /no tokens are stored; authorize again: npm run cli -- kommo-authorize --tenant never-authorized/);
    });

    it('a long-lived token is used as is: a 401 is permanent and nothing is renewed', async () => {
      const kommo = await sandbox({ token: 'long-lived-token' });
      const adapter = createKommoAdapter(kommoConfigSchema.parse({ kind: 'kommo', baseUrl: kommo.url, token: 'long-lived-token' }), { db });
      assert.equal(await adapter.findContactByPhone('+14155557104'), undefined);
      const wrong = createKommoAdapter(kommoConfigSchema.parse({ kind: 'kommo', baseUrl: kommo.url, token: 'revoked-token' }), { db });
      await assert.rejects(callOutside(() => wrong.findContactByPhone('+14155557104')), (error: unknown) => error instanceof ApplicationFailure && error.nonRetryable && error.type === 'Unauthorized');
      assert.equal(kommo.state().oauth.granted.refresh_token, 0);
    });
  });

  describe('403', () => {
    it('is permanent (an address off the whitelist, error 113) and no reason to renew the token', async () => {
      const kommo = await sandbox({ allowedIps: ['10.1.2.3'] });
      const config = oauthConfig(kommo);
      const tenantId = uniqueId('t');
      kommo.setAllowedIps(undefined);
      await authorize(kommo, config, tenantId);
      kommo.setAllowedIps(['10.1.2.3']);
      const adapter = createKommoAdapter(config, { db, tenantId });
      await assert.rejects(callOutside(() => adapter.findContactByPhone('+14155557105')), (error: unknown) => error instanceof ApplicationFailure && error.nonRetryable);
      assert.equal(kommo.state().oauth.granted.refresh_token, 0);
      assert.equal(kommo.state().requests.byRoute['GET /api/v4/contacts'], 1, 'not retried');
    });
  });

  describe('incoming leads', () => {
    let kommo: KommoSandbox;
    let adapter: CrmAdapter;
    before(async () => {
      kommo = await sandbox({ token: 'kommo-token', rateLimitPerSecond: 1_000 });
      adapter = createKommoAdapter(kommoConfigSchema.parse({ kind: 'kommo', baseUrl: kommo.url, token: 'kommo-token' }), { db });
    });

    it('sends the caller as _embedded.contacts, so the lead\'s contact has the number', async () => {
      const call = callOf('+14155557200');
      const lead = await adapter.createIncomingLead(call);
      assert.equal(lead.callEventIncluded, true);
      const state = kommo.state();
      const contact = state.contacts.find((item) => item.id === lead.contactId);
      assert.deepEqual(contact?.custom_fields_values, [{ field_code: 'PHONE', values: [{ value: '+14155557200' }] }]);
      const entry = state.unsorted.find((item) => item.metadata.uniq === call.callId);
      assert.equal(entry?.metadata.from, '+14155557200');
      assert.equal(entry?.metadata.phone, '+12025550100', 'phone is the number that was called');
      assert.equal(entry?.metadata.is_call_event_needed, true);
    });

    it('a repeat caller whose incoming lead still waits gets no second one: the call goes on the waiting lead', async () => {
      const first = callOf('+14155557201');
      const repeat = callOf('+1 (415) 555-7201');
      const lead = await adapter.createIncomingLead(first);
      assert.equal(await adapter.findContactByPhone(repeat.customerPhone), undefined, 'the waiting lead\'s contact is not searchable');
      const again = await adapter.createIncomingLead(repeat);
      assert.deepEqual([again.leadId, again.callEventIncluded], [lead.leadId, false]);
      const logged = await adapter.logCall(repeat, { type: 'leads', id: lead.leadId });
      assert.deepEqual(logged?.entity, { type: 'leads', id: lead.leadId });
      assert.equal(kommo.state().unsorted.filter((item) => item.metadata.from.endsWith('4155557201')).length, 1);
      assert.deepEqual(await adapter.findLoggedCall(repeat), logged);
    });

    it('finds incoming leads on every page of the list, not only the first', async () => {
      const oldest = callOf('+14155557202');
      await adapter.createIncomingLead(oldest);
      const filler = Array.from({ length: 260 }, (_, index) => ({
        source_uid: `filler-${index}`,
        source_name: 'Other PBX',
        metadata: { uniq: `filler-${index}`, from: `+1646555${String(1000 + index)}`, phone: '+12025550100', called_at: 1_700_000_000, duration: 5, link: '', service_code: 'other', is_call_event_needed: true },
      }));
      const seeded = await fetch(`${kommo.url}/api/v4/leads/unsorted/sip`, { method: 'POST', headers: { authorization: 'Bearer kommo-token', 'content-type': 'application/json' }, body: JSON.stringify(filler) });
      assert.equal(seeded.status, 200);
      const newest = callOf('+14155557203');
      await adapter.createIncomingLead(newest);
      assert.ok(await adapter.findIncomingLead(oldest), 'the oldest waiting lead (last page, newest first)');
      assert.ok(await adapter.findIncomingLead(newest), 'the newest waiting lead (last page, oldest first)');
      const repeat = await adapter.createIncomingLead(callOf('+14155557202'));
      assert.equal(repeat.callEventIncluded, false, 'the repeat caller of the oldest lead is found too');
    });
  });

  describe('call placement and recovery', () => {
    let kommo: KommoSandbox;
    let adapter: CrmAdapter;
    before(async () => {
      kommo = await sandbox({ token: 'kommo-token', rateLimitPerSecond: 1_000 });
      adapter = createKommoAdapter(kommoConfigSchema.parse({ kind: 'kommo', baseUrl: kommo.url, token: 'kommo-token' }), { db });
    });

    it('names entities in the plural whichever form Kommo answers with', async () => {
      const contact = kommo.seedContact({ name: 'Plain', phone: '+14155557300' });
      const logged = await adapter.logCall(callOf('+14155557300'));
      assert.deepEqual(logged?.entity, { type: 'contacts', id: contact.id });
    });

    it('recovers a call Kommo placed on the contact\'s one active lead', async () => {
      const contact = kommo.seedContact({ name: 'Has a deal', phone: '+14155557301' });
      const lead = kommo.seedLead({ name: 'Deal', contactId: contact.id });
      const call = callOf('+14155557301');
      const logged = await adapter.logCall(call);
      assert.deepEqual(logged?.entity, { type: 'leads', id: lead.id });
      assert.deepEqual(await adapter.findLoggedCall(call), logged);
      assert.deepEqual(await adapter.findLoggedCall(call, { type: 'contacts', id: contact.id }), logged, 'also when the manager chose the contact');
    });

    it('recovers a call placed on the active lead of the company whose number it is', async () => {
      const company = kommo.seedCompany({ name: 'Calls Co', phone: '+14155557302' });
      const lead = kommo.seedLead({ name: 'Company deal', companyId: company.id });
      const call = callOf('+14155557302', { direction: 'outbound' });
      const logged = await adapter.logCall(call);
      assert.deepEqual(logged?.entity, { type: 'leads', id: lead.id });
      assert.deepEqual(await adapter.findLoggedCall(call), logged);
    });

    it('reads every page of notes when recovering', async () => {
      const contact = kommo.seedContact({ name: 'Chatty', phone: '+14155557303' });
      const call = callOf('+14155557303');
      const logged = await adapter.logCall(call);
      const notes = Array.from({ length: 260 }, (_, index) => ({ entity_id: contact.id, note_type: 'call_in', params: { uniq: `older-${index}`, duration: 1, source: 'x', phone: '+14155557303' } }));
      const added = await fetch(`${kommo.url}/api/v4/contacts/notes`, { method: 'POST', headers: { authorization: 'Bearer kommo-token', 'content-type': 'application/json' }, body: JSON.stringify(notes) });
      assert.equal(added.status, 200);
      assert.deepEqual(await adapter.findLoggedCall(call), logged);
    });
  });

  describe('the call shows once on an incoming lead (is_call_event_needed)', () => {
    it('logs an unknown caller as an incoming lead carrying the call, with no note of ours; a repeat call is noted on it once', async () => {
      const kommo = await sandbox({ token: 'kommo-token', rateLimitPerSecond: 1_000 });
      const crm = createKommoAdapter(kommoConfigSchema.parse({ kind: 'kommo', baseUrl: kommo.url, token: 'kommo-token' }), { db });
      const tenantId = uniqueId('t');
      const tenant = tenantSchema.parse({ displayName: 'Kommo Co', defaultRegion: 'US', timeZone: 'America/New_York', secrets: { webhookSigningSecret: 'w', operatorToken: 'o' } });
      const activities = createCrmActivities({ db, crm: () => crm, tenant: () => tenant, publicUrl: 'http://127.0.0.1:1', isVipPhone: () => false });
      const input = (callId: string): CrmSyncInput => ({ tenantId, callId, direction: 'inbound', customerPhone: '+14155557400', startedAt: new Date().toISOString(), durationSeconds: 20, disposition: 'answered', hasRecording: false });

      // Activities read their start-to-close timeout from the activity context (the SDK's test environment gives one).
      const run = <O>(work: () => Promise<O>): Promise<O> => new MockActivityEnvironment({ startToCloseTimeoutMs: 60_000 }).run(work);
      const first = await run(() => activities.logCallToCrm(input('pbx:first')));
      assert.equal(first.state, 'synced');
      assert.equal(first.entity?.type, 'leads');
      const second = await run(() => activities.logCallToCrm(input('pbx:second')));
      assert.deepEqual([second.state, second.entity, second.incomingLeadId], ['synced', first.entity, first.incomingLeadId]);
      const notes = kommo.state().notes;
      assert.equal(notes.filter((note) => note.params.uniq === 'pbx:first').length, 1, 'the first call shows once');
      assert.equal(notes.filter((note) => note.params.uniq === 'pbx:second').length, 1, 'the repeat call shows once');
      assert.equal(kommo.state().unsorted.length, 1, 'one incoming lead');
    });
  });

  describe('one request budget for the whole account', () => {
    it('two workers together stay under 7 requests in any rolling second', async () => {
      const kommo = await sandbox({ token: 'kommo-token' });
      const config = kommoConfigSchema.parse({ kind: 'kommo', baseUrl: kommo.url, token: 'kommo-token' });
      const workers = [createKommoAdapter(config, { db }), createKommoAdapter(config, { db: otherWorkerDb() })];
      const lookups = Array.from({ length: 24 }, (_, index) => (workers[index % 2] as CrmAdapter).findContactByPhone(`+1415555${String(7500 + index)}`));
      const results = await Promise.allSettled(lookups);
      assert.deepEqual(results.filter((result) => result.status === 'rejected'), []);
      const { requests } = kommo.state();
      assert.equal(requests.total, 24);
      // The sandbox answers 429 past 7 requests in any rolling second (Kommo's limit): none means the
      // two workers kept to one shared budget (each alone at its pace of 6 would have sent 12 a second).
      assert.equal(requests.rateLimited, 0, 'never answered 429');
    });

    it('a live call\'s lookups go ahead of post-call work waiting for the budget, and may reuse a fresh answer', async () => {
      const kommo = await sandbox({ token: 'kommo-token' });
      const adapter = createKommoAdapter(kommoConfigSchema.parse({ kind: 'kommo', baseUrl: kommo.url, token: 'kommo-token' }), { db });
      kommo.seedContact({ name: 'Live caller', phone: '+14155557600' });
      const order: string[] = [];
      const background = Array.from({ length: 18 }, (_, index) => adapter.findContactByPhone(`+1415555${String(7700 + index)}`).then(() => order.push(`background-${index}`)));
      const live = adapter.findContactByPhone('+14155557600', { live: true }).then((contact) => {
        order.push('live');
        return contact;
      });
      assert.equal((await live)?.name, 'Live caller');
      await Promise.all(background);
      assert.ok(order.indexOf('live') < 9, `live finished at ${order.indexOf('live')} of ${order.length}`);
      const before = kommo.state().requests.byRoute['GET /api/v4/contacts'] ?? 0;
      assert.equal((await adapter.findContactByPhone('+14155557600', { live: true }))?.name, 'Live caller');
      assert.equal(kommo.state().requests.byRoute['GET /api/v4/contacts'], before, 'answered from the short cache');
      await adapter.findContactByPhone('+14155557600');
      assert.equal(kommo.state().requests.byRoute['GET /api/v4/contacts'], before + 1, 'post-call lookups always ask Kommo');
    });
  });
});
