/**
 * The HubSpot adapter and the CRM activities against the HubSpot sandbox over HTTP: what a call
 * becomes in HubSpot, unknown callers, failures, and an attempt that dies after HubSpot stored the
 * call while its search index still lags behind.
 */
import assert from 'node:assert/strict';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createHubspotAdapter } from '../../adapters/crm/hubspot.js';
import type { CrmAdapter } from '../../adapters/crm/types.js';
import { createCrmActivities } from '../../activities/crm.js';
import type { CrmSyncInput } from '../../activities/crm.js';
import { hubspotConfigSchema, tenantSchema } from '../../config/schema.js';
import type { HubspotConfig, TenantConfig } from '../../config/schema.js';
import { EffectBusyError, performOnce } from '../../db/effects.js';
import type { Db } from '../../db/pool.js';
import { HUBSPOT_CALL_DISPOSITIONS, startHubspotSandbox } from '../../sandboxes/hubspot.js';
import type { HubspotSandbox } from '../../sandboxes/hubspot.js';
import { createIntegrations } from '../../workers/integrations.js';
import { testConfig } from '../harness/api.js';
import { createTestDatabase } from '../harness/postgres.js';
import { uniqueId } from '../harness/resources.js';

const TOKEN = 'pat-na1-switchboard';
const PROPERTY = 'switchboard_call_id';
const INDEX_DELAY_MS = 2_000;

describe('HubSpot CRM: adapter and CRM activities against the HubSpot sandbox', function () {
  this.timeout(60_000);
  let db: Db;
  let hubspot: HubspotSandbox;
  let now = Date.parse('2026-03-01T12:00:00Z');
  const tenantId = uniqueId('hs').toLowerCase();

  const config = (overrides: Partial<HubspotConfig> = {}): HubspotConfig =>
    hubspotConfigSchema.parse({ kind: 'hubspot', baseUrl: hubspot.url, token: TOKEN, searchIndexLagSeconds: 600, ...overrides });
  const tenantWith = (crm: HubspotConfig): TenantConfig =>
    tenantSchema.parse({ displayName: 'HS Co', defaultRegion: 'US', timeZone: 'UTC', secrets: { webhookSigningSecret: 's', operatorToken: 'o', recordingLinkSecret: 'l' }, crm });
  const activitiesFor = (adapter: CrmAdapter, tenant: TenantConfig) =>
    createCrmActivities({ db, crm: () => adapter, tenant: () => tenant, publicUrl: 'https://switchboard.example', isVipPhone: () => false });
  // Activities read their lease from the activity context.
  const run = <O>(work: () => Promise<O>): Promise<O> => new MockActivityEnvironment({ startToCloseTimeoutMs: 60_000 }).run(work);
  const syncInput = (overrides: Partial<CrmSyncInput> = {}): CrmSyncInput => ({
    tenantId,
    callId: `pbx:${uniqueId('hs-call')}`,
    direction: 'inbound',
    customerPhone: '+14155550142',
    linePhone: '+12025550100',
    startedAt: '2026-03-01T11:50:00.000Z',
    durationSeconds: 95,
    disposition: 'answered',
    hasRecording: true,
    ...overrides,
  });
  async function failure(work: Promise<unknown>): Promise<ApplicationFailure> {
    const error = await work.then(
      () => assert.fail('expected a failure'),
      (caught: unknown) => caught,
    );
    assert.ok(error instanceof ApplicationFailure, String(error));
    return error;
  }

  before(async () => {
    ({ db } = await createTestDatabase('hubspot'));
    hubspot = await startHubspotSandbox({ token: TOKEN, clock: () => now, searchIndexDelayMs: INDEX_DELAY_MS, customProperties: { calls: [PROPERTY] } });
  });
  beforeEach(() => {
    // Each test starts past the previous one's rate-limit windows and index delays.
    now += 60_000;
  });
  after(async () => {
    await hubspot.stop();
  });

  it('logs an answered inbound call on the caller\'s contact with HubSpot\'s properties, enriched with company, owner and earlier calls', async () => {
    const owner = hubspot.seedOwner({ email: 'dana@hs.example', firstName: 'Dana', lastName: 'Rep' });
    const phone = '+14155550142';
    const contact = hubspot.seedContact({ firstname: 'Ada', lastname: 'Lovelace', phone: '+1 (415) 555-0142', company: 'Analytical Engines', ownerId: owner.id });
    const tenant = tenantWith(config());
    const adapter = createHubspotAdapter(tenant.crm as HubspotConfig);
    const activities = activitiesFor(adapter, tenant);
    const earlier = syncInput({ customerPhone: phone, result: { outcome: 'callback_requested', comment: 'Call on Monday' }, hasRecording: false, startedAt: '2026-02-20T09:00:00.000Z' });
    assert.equal((await run(() => activities.logCallToCrm(earlier))).state, 'synced');

    const enriched = await run(() => activities.enrichCall({ tenantId, callId: 'pbx:next', customerPhone: phone }));
    assert.equal(enriched.state, 'done');
    assert.deepEqual(enriched.enrichment.contact, { id: Number(contact.id), name: 'Ada Lovelace' });
    assert.equal(enriched.enrichment.account?.name, 'Analytical Engines');
    assert.deepEqual(enriched.enrichment.assignedRepresentative, { id: Number(owner.id), name: 'Dana Rep', email: 'dana@hs.example' });
    assert.deepEqual(enriched.enrichment.previousInteractions, [{ at: '2026-02-20T09:00:00.000Z', type: 'call_in', summary: 'callback_requested: Call on Monday' }]);

    const input = syncInput({ customerPhone: phone, responsibleUserId: Number(owner.id) });
    const outcome = await run(() => activities.logCallToCrm(input));
    assert.deepEqual({ state: outcome.state, entity: outcome.entity }, { state: 'synced', entity: { type: 'contacts', id: Number(contact.id) } });
    const stored = hubspot.state().calls.filter((item) => item.properties[PROPERTY] === input.callId);
    assert.equal(stored.length, 1);
    assert.equal(String(outcome.noteId), stored[0]?.id);
    const properties = stored[0]?.properties ?? {};
    assert.equal(properties.hs_timestamp, '2026-03-01T11:50:00.000Z');
    assert.equal(properties.hs_call_direction, 'INBOUND');
    assert.equal(properties.hs_call_duration, '95000', 'milliseconds');
    assert.equal(properties.hs_call_status, 'COMPLETED');
    assert.equal(properties.hs_call_disposition, HUBSPOT_CALL_DISPOSITIONS.connected);
    assert.equal(properties.hs_call_from_number, phone);
    assert.equal(properties.hs_call_to_number, '+12025550100');
    assert.equal(properties.hubspot_owner_id, owner.id);
    assert.match(properties.hs_call_recording_url ?? '', /^https:\/\/switchboard\.example\/api\//);
    assert.deepEqual(stored[0]?.associations, [{ toObjectType: 'contacts', toObjectId: contact.id, associationTypeId: 194 }]);
  });

  it('an unknown inbound caller becomes a contact in the lead stage that the call and its call-back task hang on; outbound to nobody is skipped', async () => {
    const tenant = tenantWith(config({ searchIndexLagSeconds: 0 }));
    const activities = activitiesFor(createHubspotAdapter(tenant.crm as HubspotConfig), tenant);
    const phone = '+14155550777';
    const input = syncInput({ customerPhone: phone, disposition: 'missed', durationSeconds: 0 });
    const outcome = await run(() => activities.logCallToCrm(input));
    assert.equal(outcome.state, 'synced', JSON.stringify(outcome));
    const created = hubspot.state().contacts.filter((contact) => contact.properties.phone === phone);
    assert.equal(created.length, 1);
    assert.equal(created[0]?.properties.lifecyclestage, 'lead');
    assert.deepEqual(outcome.entity, { type: 'contacts', id: Number(created[0]?.id) });
    assert.equal(outcome.incomingLeadId, Number(created[0]?.id));
    const call = hubspot.state().calls.find((item) => item.properties[PROPERTY] === input.callId);
    assert.equal(call?.properties.hs_call_status, 'NO_ANSWER');
    assert.equal(call?.associations[0]?.toObjectId, created[0]?.id);

    const task = await run(() => activities.createCallbackTask({ ...input, entity: outcome.entity ?? assert.fail('no entity') }));
    assert.ok('taskId' in task, JSON.stringify(task));
    const stored = hubspot.state().tasks.find((item) => String(task.taskId) === item.id);
    assert.equal(stored?.properties.hs_task_type, 'CALL');
    assert.equal(stored?.properties.hs_task_status, 'NOT_STARTED');
    assert.equal(stored?.properties.hs_timestamp, new Date(Date.parse(input.startedAt) + 60 * 60_000).toISOString(), 'due callbackDueMinutes after the call');
    assert.deepEqual(stored?.associations, [{ toObjectType: 'contacts', toObjectId: created[0]?.id, associationTypeId: 204 }]);

    const outbound = await run(() => activities.logCallToCrm(syncInput({ direction: 'outbound', customerPhone: '+14155550778' })));
    assert.deepEqual(outbound, { state: 'skipped', skippedReason: 'no_matching_entity' });
  });

  it('with createContactForUnknownCallers off, an unknown caller\'s call is skipped with its reason and nothing is created', async () => {
    const tenant = tenantWith(config({ createContactForUnknownCallers: false }));
    const activities = activitiesFor(createHubspotAdapter(tenant.crm as HubspotConfig), tenant);
    const before = hubspot.state();
    const outcome = await run(() => activities.logCallToCrm(syncInput({ customerPhone: '+14155550779' })));
    assert.deepEqual(outcome, { state: 'skipped', skippedReason: 'no_matching_entity' });
    const after = hubspot.state();
    assert.equal(after.contacts.length, before.contacts.length);
    assert.equal(after.calls.length, before.calls.length);
  });

  it('an attempt that dies after HubSpot stored the call: the retry waits out the search index, then adopts the call instead of logging it again', async () => {
    const phone = '+14155556000';
    hubspot.seedContact({ firstname: 'Crash', phone });
    // The ledger's wait is real time; the sandbox's index follows its own clock. A long wait shows the retry holds back.
    const adapter = createHubspotAdapter(config({ searchIndexLagSeconds: 600 }));
    const callId = `pbx:${uniqueId('crash')}`;
    const call = { callId, direction: 'inbound' as const, customerPhone: phone, startedAt: '2026-03-01T11:55:00.000Z', durationSeconds: 30, answered: true, status: 4 };
    const options = {
      tenantId,
      key: `crm:call:${callId}`,
      kind: 'crm_call',
      ...adapter.ledger,
      lookup: () => adapter.findLoggedCall(call),
      perform: async () => (await adapter.logCall(call)) ?? assert.fail('not attached'),
    };
    await assert.rejects(
      performOnce(db, {
        ...options,
        perform: async () => {
          await adapter.logCall(call);
          throw new Error('worker died');
        },
      }),
      /worker died/,
    );
    const stored = () => hubspot.state().calls.filter((item) => item.properties[PROPERTY] === callId).length;
    assert.equal(stored(), 1);
    // HubSpot's search does not show the call yet: the retry must not conclude it was never made.
    await assert.rejects(performOnce(db, options), (error: unknown) => error instanceof EffectBusyError);
    assert.equal(stored(), 1);
    now += INDEX_DELAY_MS;
    const retried = await performOnce(db, options);
    assert.equal(retried.via, 'recovered');
    assert.equal(String(retried.result.noteId), hubspot.state().calls.find((item) => item.properties[PROPERTY] === callId)?.id);
    assert.equal((await performOnce(db, options)).via, 'already_done');
    assert.equal(stored(), 1);
  });

  it('a wrong token fails for good; a rate limit is retried after its policy\'s wait; a missing call-id property is named', async () => {
    const wrong = tenantWith(config({ token: 'pat-na1-revoked' }));
    const unauthorized = await failure(run(() => activitiesFor(createHubspotAdapter(wrong.crm as HubspotConfig), wrong).enrichCall({ tenantId, callId: 'pbx:x', customerPhone: '+14155550142' })));
    assert.equal(unauthorized.type, 'Unauthorized');
    assert.equal(unauthorized.nonRetryable, true);

    const limited = await startHubspotSandbox({ token: TOKEN, burstLimit: 1, clock: () => now });
    try {
      const tenant = tenantWith(config({ baseUrl: limited.url }));
      const activities = activitiesFor(createHubspotAdapter(tenant.crm as HubspotConfig), tenant);
      limited.seedContact({ firstname: 'Busy', phone: '+14155550142' });
      // The contact search uses the one request of the window; reading the contact is refused.
      const rateLimited = await failure(run(() => activities.enrichCall({ tenantId, callId: 'pbx:y', customerPhone: '+14155550142' })));
      assert.equal(rateLimited.type, 'RateLimited');
      assert.equal(rateLimited.nonRetryable, false);
      assert.equal(rateLimited.nextRetryDelay, 10_000, 'TEN_SECONDLY_ROLLING: the burst window');
      assert.match(rateLimited.message, /TEN_SECONDLY_ROLLING/);
    } finally {
      await limited.stop();
    }

    const noProperty = await startHubspotSandbox({ token: TOKEN, clock: () => now });
    try {
      noProperty.seedContact({ firstname: 'Ada', phone: '+14155550142' });
      const tenant = tenantWith(config({ baseUrl: noProperty.url }));
      const rejected = await failure(run(() => activitiesFor(createHubspotAdapter(tenant.crm as HubspotConfig), tenant).logCallToCrm(syncInput())));
      assert.equal(rejected.type, 'Rejected');
      assert.equal(rejected.nonRetryable, true);
      assert.match(rejected.message, /no custom property "switchboard_call_id"/);
      assert.equal(noProperty.state().calls.length, 0);
    } finally {
      await noProperty.stop();
    }
  });

  it('a tenant whose CRM kind has no adapter stops start-up with a message naming it', () => {
    const parsed = tenantSchema.safeParse({ displayName: 'X', defaultRegion: 'US', timeZone: 'UTC', secrets: { webhookSigningSecret: 's', operatorToken: 'o' }, crm: { kind: 'salesforce', token: 't' } });
    assert.equal(parsed.success, false);
    assert.deepEqual(parsed.error?.issues[0]?.path, ['crm', 'kind']);
    assert.match(parsed.error?.issues[0]?.message ?? '', /Expected 'kommo' \| 'hubspot'/);
    // Configuration that bypassed the schema still never means "no CRM".
    const base = testConfig();
    const tenant = { ...tenantWith(config()), crm: { kind: 'salesforce', token: 't' } } as unknown as TenantConfig;
    assert.throws(() => createIntegrations({ ...base, tenants: { acme: tenant } }), /tenant acme: CRM kind "salesforce" is not supported/);
  });
});
