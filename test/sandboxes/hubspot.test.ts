import assert from 'node:assert/strict';
import { startHubspotSandbox } from '../../sandboxes/hubspot.js';
import type { HubspotSandbox, HubspotSandboxOptions } from '../../sandboxes/hubspot.js';

const TOKEN = 'pat-na1-test';
const CALL_ID_PROPERTY = 'switchboard_call_id';

interface Reply {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

async function request(base: string, path: string, init: { method?: string; body?: unknown; token?: string | null } = {}): Promise<Reply> {
  const headers: Record<string, string> = {};
  const token = init.token === undefined ? TOKEN : init.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${base}${path}`, { method: init.method ?? (init.body === undefined ? 'GET' : 'POST'), headers, ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }) });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: (text === '' ? {} : JSON.parse(text)) as Record<string, unknown> };
}

/** A clock the test moves: rate-limit windows and the search index follow it. */
function manualClock(start = Date.parse('2026-03-01T12:00:00Z')) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

const call = (overrides: Record<string, unknown> = {}, contactId?: string) => ({
  properties: { hs_timestamp: '2026-03-01T11:58:00.000Z', hs_call_direction: 'INBOUND', hs_call_duration: '95000', hs_call_status: 'COMPLETED', [CALL_ID_PROPERTY]: 'pbx:abc', ...overrides },
  ...(contactId ? { associations: [{ to: { id: contactId }, types: [{ associationCategory: 'HUBSPOT_DEFINED', associationTypeId: 194 }] }] } : {}),
});
const byPhone = (propertyName: string, value: string) => ({ filterGroups: [{ filters: [{ propertyName, operator: 'EQ', value }] }] });
const results = (reply: Reply) => reply.body.results as Array<{ id: string; properties: Record<string, string | null> }>;

describe('HubSpot sandbox (CRM v3 over real HTTP)', () => {
  let clock: ReturnType<typeof manualClock>;
  let hubspot: HubspotSandbox;
  const start = async (options: Partial<HubspotSandboxOptions> = {}): Promise<HubspotSandbox> => {
    clock = manualClock();
    hubspot = await startHubspotSandbox({ token: TOKEN, clock: clock.now, customProperties: { calls: [CALL_ID_PROPERTY] }, ...options });
    return hubspot;
  };
  afterEach(async () => {
    await hubspot.stop();
  });

  // developers.hubspot.com/docs/guides/apps/api-usage/usage-details (private app tokens as Bearer; 401 is not a cue to refresh)
  it('answers 401 INVALID_AUTHENTICATION without or with a wrong private app token', async () => {
    const { url } = await start();
    for (const token of [null, 'pat-na1-wrong']) {
      const reply = await request(url, '/crm/v3/objects/contacts/search', { body: {}, token });
      assert.equal(reply.status, 401);
      assert.equal(reply.body.status, 'error');
      assert.equal(reply.body.category, 'INVALID_AUTHENTICATION');
      assert.equal(typeof reply.body.correlationId, 'string');
    }
  });

  // developers.hubspot.com/docs/api-reference/legacy/crm/activities/calls/guide ("Create a call engagement", "Associations")
  it('creates a call with its association to a contact in the same request; both sides list the association', async () => {
    const { url } = await start();
    const contact = hubspot.seedContact({ firstname: 'Ada', phone: '+14155550142' });
    const created = await request(url, '/crm/v3/objects/calls', { body: call({ hs_call_title: 'Support call' }, contact.id) });
    assert.equal(created.status, 201);
    assert.match(String(created.body.id), /^\d+$/);
    assert.equal((created.body.properties as Record<string, string>).hs_call_duration, '95000');
    const read = await request(url, `/crm/v3/objects/calls/${String(created.body.id)}?associations=contacts&properties=hs_call_title,hs_call_body`);
    assert.equal(read.status, 200);
    assert.deepEqual((read.body.associations as Record<string, unknown>).contacts, { results: [{ id: contact.id, type: 'call_to_contact' }] });
    // A property that is defined but unset reads as null.
    assert.equal((read.body.properties as Record<string, unknown>).hs_call_body, null);
    const fromContact = await request(url, `/crm/v3/objects/contacts/${contact.id}?associations=calls`);
    assert.deepEqual((fromContact.body.associations as Record<string, unknown>).calls, { results: [{ id: String(created.body.id), type: 'contact_to_call' }] });
    assert.equal((await request(url, '/crm/v3/objects/calls/999999')).body.category, 'OBJECT_NOT_FOUND');
  });

  // Same guide: hs_timestamp required; hs_call_direction INBOUND/OUTBOUND; hs_call_status values; "Only HTTPS, secure URLs will be accepted" for recordings.
  // The update section says unknown and read-only properties are ignored; for creates the sandbox takes the stricter reading and refuses them.
  it('refuses invalid call properties with 400 VALIDATION_ERROR listing each problem, and stores nothing', async () => {
    const { url } = await start({ customProperties: {} });
    const reply = await request(url, '/crm/v3/objects/calls', {
      body: { properties: { hs_call_direction: 'inbound', hs_call_status: 'DONE', hs_call_recording_url: 'http://rec.example/1.wav', hs_call_duration: 'long', hs_object_id: '5', [CALL_ID_PROPERTY]: 'pbx:abc' } },
    });
    assert.equal(reply.status, 400);
    assert.equal(reply.body.category, 'VALIDATION_ERROR');
    const message = String(reply.body.message);
    assert.match(message, /^Property values were not valid: /);
    const problems = JSON.parse(message.replace(/^Property values were not valid: /, '')) as Array<{ name: string; error: string }>;
    assert.deepEqual(
      problems.map((problem) => `${problem.name}:${problem.error}`).sort(),
      ['hs_call_direction:INVALID_OPTION', 'hs_call_duration:INVALID_INTEGER', 'hs_call_recording_url:INVALID_URL', 'hs_call_status:INVALID_OPTION', 'hs_object_id:READ_ONLY_VALUE', 'hs_timestamp:REQUIRED', `${CALL_ID_PROPERTY}:PROPERTY_DOESNT_EXIST`].sort(),
    );
    assert.equal(hubspot.state().calls.length, 0);
  });

  // Same guide (associations: `to.id` and `types` with associationCategory and associationTypeId; default type ids in the associations API).
  it('refuses associations to records that do not exist or with a type id that does not fit the objects', async () => {
    const { url } = await start();
    const contact = hubspot.seedContact({ firstname: 'Ada', phone: '+14155550142' });
    const missing = await request(url, '/crm/v3/objects/calls', { body: call({}, '424242') });
    assert.equal(missing.status, 400);
    const taskType = await request(url, '/crm/v3/objects/calls', { body: { ...call(), associations: [{ to: { id: contact.id }, types: [{ associationCategory: 'HUBSPOT_DEFINED', associationTypeId: 204 }] }] } });
    assert.equal(taskType.status, 400);
    assert.equal(hubspot.state().calls.length, 0);
  });

  // HubSpot does not deduplicate calls (shared/field-notes.md, HubSpot): the same body twice is two calls.
  it('does not deduplicate calls: the same call id twice makes two calls', async () => {
    const { url } = await start();
    const contact = hubspot.seedContact({ firstname: 'Ada', phone: '+14155550142' });
    assert.equal((await request(url, '/crm/v3/objects/calls', { body: call({}, contact.id) })).status, 201);
    assert.equal((await request(url, '/crm/v3/objects/calls', { body: call({}, contact.id) })).status, 201);
    assert.equal(hubspot.state().calls.filter((item) => item.properties[CALL_ID_PROPERTY] === 'pbx:abc').length, 2);
  });

  // developers.hubspot.com/docs/api/crm/search: filterGroups are ORed, filters in a group ANDed; EQ matches the stored value.
  it('finds contacts by phone: EQ on phone matches the stored text, the calculated searchable number ignores formatting', async () => {
    const { url } = await start();
    const formatted = hubspot.seedContact({ firstname: 'Formatted', phone: '+1 (415) 555-0142' });
    const mobile = hubspot.seedContact({ firstname: 'Mobile', mobilephone: '+14155550143' });
    assert.equal(results(await request(url, '/crm/v3/objects/contacts/search', { body: byPhone('phone', '+14155550142') })).length, 0, 'phone holds the text as entered');
    const national = await request(url, '/crm/v3/objects/contacts/search', { body: { ...byPhone('hs_searchable_calculated_phone_number', '4155550142'), properties: ['phone'] } });
    assert.equal(national.status, 200);
    assert.equal(national.body.total, 1);
    assert.equal(results(national)[0]?.id, formatted.id);
    assert.equal(results(national)[0]?.properties.phone, '+1 (415) 555-0142');
    // Default properties come back too.
    assert.equal(results(national)[0]?.properties.firstname, 'Formatted');
    const either = await request(url, '/crm/v3/objects/contacts/search', {
      body: { filterGroups: [byPhone('phone', '+14155550143').filterGroups[0], byPhone('mobilephone', '+14155550143').filterGroups[0]] },
    });
    assert.deepEqual(results(either).map((item) => item.id), [mobile.id]);
  });

  // developers.hubspot.com/docs/api/crm/search, "Limitations": at most 5 filterGroups, 10 filters per group, 25 in all; pages of at most 200; 10,000 results per query; unknown properties are refused.
  it('refuses searches past the documented limits and on properties the account does not have', async () => {
    const { url } = await start({ searchPerSecond: 100 });
    const group = byPhone('phone', '+1').filterGroups[0];
    assert.equal((await request(url, '/crm/v3/objects/contacts/search', { body: { filterGroups: Array.from({ length: 6 }, () => group) } })).status, 400);
    assert.equal((await request(url, '/crm/v3/objects/contacts/search', { body: { filterGroups: [{ filters: Array.from({ length: 11 }, () => group?.filters[0]) }] } })).status, 400);
    assert.equal((await request(url, '/crm/v3/objects/contacts/search', { body: { limit: 201 } })).status, 400);
    assert.equal((await request(url, '/crm/v3/objects/contacts/search', { body: { limit: 100, after: '9950' } })).status, 400);
    const unknown = await request(url, '/crm/v3/objects/calls/search', { body: byPhone('no_such_property', 'x') });
    assert.equal(unknown.status, 400);
    assert.equal(unknown.body.category, 'VALIDATION_ERROR');
  });

  // developers.hubspot.com/docs/api/crm/search, "Limitations": "It may take a few moments for newly created or updated CRM objects to appear in search results."
  it('shows a created object to search only after the index delay; reads by id see it at once', async () => {
    const { url } = await start({ searchIndexDelayMs: 2_000 });
    const contact = hubspot.seedContact({ firstname: 'Ada', phone: '+14155550142' });
    const created = await request(url, '/crm/v3/objects/calls', { body: call({}, contact.id) });
    const search = { ...byPhone(CALL_ID_PROPERTY, 'pbx:abc'), properties: [CALL_ID_PROPERTY] };
    assert.equal((await request(url, '/crm/v3/objects/calls/search', { body: search })).body.total, 0);
    assert.equal((await request(url, `/crm/v3/objects/calls/${String(created.body.id)}`)).status, 200);
    clock.advance(2_000);
    const found = await request(url, '/crm/v3/objects/calls/search', { body: search });
    assert.deepEqual(results(found).map((item) => [item.id, item.properties[CALL_ID_PROPERTY]]), [[String(created.body.id), 'pbx:abc']]);
  });

  // developers.hubspot.com/docs/guides/apps/api-usage/usage-details: per app and account, a rolling burst window (private apps, Free/Starter: 100 per 10 s)
  // and a daily cap; a 429 names its policy (TEN_SECONDLY_ROLLING, DAILY) in policyName; X-HubSpot-RateLimit-* headers. The official client
  // (HubSpot/hubspot-api-nodejs src/services/decorators/RetryDecorator.ts) retries TEN_SECONDLY_ROLLING after 10 s and the search limit's
  // "You have reached your secondly limit." after 1 s.
  it('answers 429 with the policy name past the rolling 10-second burst limit; refused requests do not use it up', async () => {
    const { url } = await start({ burstLimit: 3 });
    for (let index = 0; index < 3; index++) {
      const ok = await request(url, '/crm/v3/owners/1');
      assert.equal(ok.status, 404);
      assert.equal(ok.headers.get('x-hubspot-ratelimit-max'), '3');
      assert.equal(ok.headers.get('x-hubspot-ratelimit-remaining'), String(2 - index));
      assert.equal(ok.headers.get('x-hubspot-ratelimit-interval-milliseconds'), '10000');
    }
    const limited = await request(url, '/crm/v3/owners/1');
    assert.equal(limited.status, 429);
    assert.equal(limited.body.policyName, 'TEN_SECONDLY_ROLLING');
    assert.equal(limited.body.errorType, 'RATE_LIMIT');
    assert.equal(limited.headers.get('x-hubspot-ratelimit-remaining'), '0');
    clock.advance(9_999);
    assert.equal((await request(url, '/crm/v3/owners/1')).status, 429, 'still inside the window');
    clock.advance(1);
    assert.equal((await request(url, '/crm/v3/owners/1')).status, 404, 'the window rolled');
    assert.equal(hubspot.state().requests.rateLimitedByPolicy.TEN_SECONDLY_ROLLING, 2);
  });

  it('limits the search endpoints per second on their own, and stops everything at the daily cap', async () => {
    const { url } = await start({ searchPerSecond: 2, dailyLimit: 5 });
    assert.equal((await request(url, '/crm/v3/objects/contacts/search', { body: {} })).status, 200);
    assert.equal((await request(url, '/crm/v3/objects/contacts/search', { body: {} })).status, 200);
    const secondly = await request(url, '/crm/v3/objects/contacts/search', { body: {} });
    assert.equal(secondly.status, 429);
    assert.equal(secondly.body.message, 'You have reached your secondly limit.');
    assert.equal(secondly.headers.get('x-hubspot-ratelimit-max'), null, 'search answers carry no rate-limit headers');
    // Other endpoints are not held back by the search limit.
    assert.equal((await request(url, '/crm/v3/owners/1')).status, 404);
    clock.advance(1_000);
    assert.equal((await request(url, '/crm/v3/objects/contacts/search', { body: {} })).status, 200);
    assert.equal((await request(url, '/crm/v3/owners/1')).status, 404);
    const daily = await request(url, '/crm/v3/owners/1');
    assert.equal(daily.status, 429);
    assert.equal(daily.body.policyName, 'DAILY');
    assert.equal(daily.body.message, 'You have reached your daily limit.');
    assert.equal(daily.headers.get('x-hubspot-ratelimit-daily-remaining'), '0');
  });

  // developers.hubspot.com/docs/api/crm/tasks: hs_timestamp (due date) required; hs_task_status COMPLETED or NOT_STARTED; hs_task_type EMAIL, CALL or TODO; task→contact type 204.
  it('creates tasks associated with a contact and finds them by subject; refuses statuses outside the documented two', async () => {
    const { url } = await start();
    const contact = hubspot.seedContact({ firstname: 'Ada', phone: '+14155550142' });
    const task = (status: string) => ({
      properties: { hs_timestamp: '2026-03-01T13:00:00Z', hs_task_subject: 'Call back: missed inbound call [pbx:abc]', hs_task_status: status, hs_task_type: 'CALL' },
      associations: [{ to: { id: contact.id }, types: [{ associationCategory: 'HUBSPOT_DEFINED', associationTypeId: 204 }] }],
    });
    assert.equal((await request(url, '/crm/v3/objects/tasks', { body: task('WAITING') })).status, 400);
    const created = await request(url, '/crm/v3/objects/tasks', { body: task('NOT_STARTED') });
    assert.equal(created.status, 201);
    clock.advance(5_000);
    const found = await request(url, '/crm/v3/objects/tasks/search', { body: { ...byPhone('hs_task_subject', 'call back: missed inbound call [pbx:abc]'), properties: ['hs_task_subject'] } });
    assert.deepEqual(results(found).map((item) => item.id), [String(created.body.id)], 'EQ on text ignores case');
    assert.deepEqual(hubspot.state().tasks[0]?.associations, [{ toObjectType: 'contacts', toObjectId: contact.id, associationTypeId: 204 }]);
  });

  // developers.hubspot.com/docs/api/crm/owners (GET /crm/v3/owners/{ownerId}); hubspot_owner_id takes an owner's id.
  it('serves owners and accepts only known owners in hubspot_owner_id', async () => {
    const { url } = await start();
    const owner = hubspot.seedOwner({ email: 'dana@example.com', firstName: 'Dana', lastName: 'Rep' });
    const read = await request(url, `/crm/v3/owners/${owner.id}`);
    assert.equal(read.status, 200);
    assert.equal(read.body.email, 'dana@example.com');
    const contact = hubspot.seedContact({ firstname: 'Ada', phone: '+14155550142' });
    assert.equal((await request(url, '/crm/v3/objects/calls', { body: call({ hubspot_owner_id: '1' }, contact.id) })).status, 400);
    assert.equal((await request(url, '/crm/v3/objects/calls', { body: call({ hubspot_owner_id: owner.id }, contact.id) })).status, 201);
  });

  // developers.hubspot.com/docs/api/crm/contacts: email is unique per account (409 CONFLICT names the existing contact); batch read answers 207 for missing ids.
  it('refuses a second contact with the same email with 409, and batch-reads with 207 for missing ids', async () => {
    const { url } = await start();
    const first = await request(url, '/crm/v3/objects/contacts', { body: { properties: { email: 'ada@example.com', phone: '+14155550142', lifecyclestage: 'lead' } } });
    assert.equal(first.status, 201);
    const second = await request(url, '/crm/v3/objects/contacts', { body: { properties: { email: 'ADA@example.com' } } });
    assert.equal(second.status, 409);
    assert.equal(second.body.category, 'CONFLICT');
    const batch = await request(url, '/crm/v3/objects/contacts/batch/read', { body: { inputs: [{ id: String(first.body.id) }, { id: '1' }], properties: ['phone'] } });
    assert.equal(batch.status, 207);
    assert.equal((batch.body.results as unknown[]).length, 1);
    assert.equal(batch.body.numErrors, 1);
  });

  it('answers 503 during an outage while /_sandbox/ keeps working, and counts requests by route', async () => {
    const { url } = await start();
    hubspot.setOutage(true);
    assert.equal((await request(url, '/crm/v3/objects/contacts/search', { body: {} })).status, 503);
    const state = await fetch(`${url}/_sandbox/state`);
    assert.equal(state.status, 200);
    await fetch(`${url}/_sandbox/outage`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ down: false }) });
    assert.equal((await request(url, '/crm/v3/objects/contacts/search', { body: {} })).status, 200);
    const seeded = await fetch(`${url}/_sandbox/contacts`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ firstname: 'Seed', phone: '+14155550100' }) });
    assert.equal(seeded.status, 201);
    assert.equal(hubspot.state().requests.byRoute['POST /crm/v3/objects/contacts/search'], 2);
    assert.equal(hubspot.state().contacts.length, 1);
  });
});
