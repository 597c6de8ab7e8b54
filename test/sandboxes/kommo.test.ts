import assert from 'node:assert/strict';
import { startKommoSandbox } from '../../sandboxes/kommo.js';
import type { KommoContact, KommoNote, KommoSandbox, KommoTask, KommoUnsorted } from '../../sandboxes/kommo.js';

// Encodes: developers.kommo.com (adding calls, incoming leads, get-token, limitations), the amoCRM
// error list (amocrm.com/developers/content/api/errors) and amocrm/amocrm-api-php (AmoCRMApiRequest,
// AmoCRMOAuth, examples/unsorted_actions.php, EntityFactory); choices where they are silent are in
// sandboxes/CONTRACTS.md.

const TOKEN = 'kommo-token';

interface Reply {
  status: number;
  headers: Headers;
  text: string;
  body: unknown;
}

async function request(base: string, path: string, init: { method?: string; body?: unknown; token?: string | null; raw?: string; form?: Record<string, string> } = {}): Promise<Reply> {
  const headers: Record<string, string> = {};
  const token = init.token === undefined ? TOKEN : init.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  let body: string | undefined;
  if (init.raw !== undefined || init.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = init.raw ?? JSON.stringify(init.body);
  }
  if (init.form !== undefined) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(init.form).toString();
  }
  const response = await fetch(`${base}${path}`, { method: init.method ?? (body === undefined ? 'GET' : 'POST'), headers, ...(body === undefined ? {} : { body }) });
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: response.status, headers: response.headers, text, body: parsed };
}

const as = <T>(reply: Reply): T => reply.body as T;

type CallsReply = {
  _embedded: { calls: { id: number; entity_id: number; entity_type: string; request_id: string }[] };
  errors?: { request_id: string; status: string }[];
};
type ValidationReply = {
  title: string;
  status: number;
  'validation-errors': { request_id: string; errors: { code: string; path: string; detail: string }[] }[];
};
type UnsortedReply = { _embedded: { unsorted: { uid: string; _embedded: { leads: { id: number }[]; contacts: { id: number }[] } }[] } };

function call(phone: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { direction: 'inbound', duration: 42, source: 'switchboard', phone, ...extra };
}

/** An incoming SIP lead; `contactPhone` adds the caller as `_embedded.contacts` (as the PHP example does). */
function sip(uniq: string, phone: string, contactPhone?: string): Record<string, unknown> {
  return {
    ...(contactPhone ? { _embedded: { contacts: [{ name: 'Caller', custom_fields_values: [{ field_code: 'PHONE', values: [{ value: contactPhone, enum_code: 'WORK' }] }] }] } } : {}),
    source_uid: `src-${uniq}`,
    source_name: 'Switchboard PBX',
    metadata: {
      uniq,
      from: `Caller ${phone}`,
      phone,
      called_at: 1_700_000_000,
      duration: 30,
      link: `https://recordings.example/${uniq}.wav`,
      service_code: 'switchboard',
      is_call_event_needed: true,
    },
  };
}

function codes(reply: Reply): string[] {
  return as<ValidationReply>(reply)['validation-errors'].flatMap((entry) => entry.errors.map((e) => `${entry.request_id}:${e.path}:${e.code}`));
}

describe('Kommo sandbox (API v4 over real HTTP)', () => {
  describe('contracts', () => {
    let kommo: KommoSandbox;
    before(async () => {
      // The rate limit has its own tests; here it must not get in the way.
      kommo = await startKommoSandbox({ port: 0, token: TOKEN, rateLimitPerSecond: 100_000 });
    });
    after(async () => {
      await kommo.stop();
    });

    it('answers 401 without or with a wrong bearer token', async () => {
      for (const token of [null, 'wrong']) {
        const reply = await request(kommo.url, '/api/v4/contacts?query=1', { token });
        assert.equal(reply.status, 401);
        assert.deepEqual(reply.body, { title: 'Unauthorized', status: 401 });
      }
    });

    it('matches contacts on the last 10 digits of any phone, and answers 204 with an empty body when none match', async () => {
      const contact = kommo.seedContact({ name: 'Ada', phone: '+1 (415) 555-0100', company: 'Acme', responsibleUserId: 7 });
      for (const query of ['4155550100', '+14155550100', '004155550100', '+1 415 555 0100']) {
        const reply = await request(kommo.url, `/api/v4/contacts?query=${encodeURIComponent(query)}`);
        assert.equal(reply.status, 200, query);
        const found = as<{ _embedded: { contacts: KommoContact[] } }>(reply)._embedded.contacts;
        assert.deepEqual(found.map((c) => c.id), [contact.id], query);
      }
      const miss = await request(kommo.url, '/api/v4/contacts?query=4155550199');
      assert.equal(miss.status, 204);
      assert.equal(miss.text, '');

      const byId = await request(kommo.url, `/api/v4/contacts/${contact.id}`);
      assert.equal(byId.status, 200);
      assert.deepEqual(byId.body, {
        id: contact.id,
        name: 'Ada',
        responsible_user_id: 7,
        custom_fields_values: [{ field_code: 'PHONE', values: [{ value: '+1 (415) 555-0100' }] }],
        _embedded: { companies: [{ id: contact._embedded.companies[0]?.id, name: 'Acme' }], leads: [] },
      });
      assert.equal((await request(kommo.url, '/api/v4/contacts/999999')).status, 404);
    });

    it('serves seeded users and 404s unknown ones', async () => {
      const user = kommo.seedUser({ id: 501, name: 'Grace', email: 'grace@example.com' });
      const reply = await request(kommo.url, `/api/v4/users/${user.id}`);
      assert.equal(reply.status, 200);
      assert.deepEqual(reply.body, { id: 501, name: 'Grace', email: 'grace@example.com' });
      assert.equal(kommo.seedUser({ name: 'Next', email: 'next@example.com' }).id, 502);
      assert.equal((await request(kommo.url, '/api/v4/users/404404')).status, 404);
    });

    it('stores a matched call as a call_in/call_out note and lists notes newest first', async () => {
      const contact = kommo.seedContact({ name: 'Notes', phone: '+44 20 7946 0011' });
      const empty = await request(kommo.url, `/api/v4/contacts/${contact.id}/notes?filter[note_type]=call_in,call_out`);
      assert.equal(empty.status, 204);
      assert.equal(empty.text, '');

      const first = await request(kommo.url, '/api/v4/calls', {
        body: [call('2079460011', { uniq: 'n-1', link: 'https://rec/1.wav', call_result: 'Talked', call_status: 4, responsible_user_id: 501 })],
      });
      assert.equal(first.status, 200);
      const added = as<CallsReply>(first);
      assert.equal(added.errors, undefined);
      assert.equal(added._embedded.calls.length, 1);
      // The calls answer names the entity in the singular (the PHP EntityFactory accepts both forms).
      assert.deepEqual({ ...added._embedded.calls[0], id: 0 }, { id: 0, entity_id: contact.id, entity_type: 'contact', request_id: '0' });

      const second = await request(kommo.url, '/api/v4/calls', { body: [call('+442079460011', { direction: 'outbound', duration: 0 })] });
      assert.equal(second.status, 200);

      const listed = await request(kommo.url, `/api/v4/contacts/${contact.id}/notes?filter[note_type]=call_in,call_out`);
      assert.equal(listed.status, 200);
      const notes = as<{ _embedded: { notes: KommoNote[] } }>(listed)._embedded.notes;
      assert.deepEqual(notes.map((n) => n.note_type), ['call_out', 'call_in']);
      assert.deepEqual(notes[1]?.params, {
        uniq: 'n-1',
        duration: 42,
        source: 'switchboard',
        link: 'https://rec/1.wav',
        phone: '2079460011',
        call_result: 'Talked',
        call_status: 4,
      });
      assert.equal(notes[1]?.entity_id, contact.id);
      assert.equal(typeof notes[1]?.created_at, 'number');

      const onlyIn = await request(kommo.url, `/api/v4/contacts/${contact.id}/notes?filter[note_type][]=call_in`);
      assert.deepEqual(as<{ _embedded: { notes: KommoNote[] } }>(onlyIn)._embedded.notes.map((n) => n.note_type), ['call_in']);
    });

    it('does not store calls that match no entity and reports them under errors', async () => {
      const contact = kommo.seedContact({ name: 'Mixed', phone: '+1 212 555 0142' });
      const before = kommo.state().notes.length;
      const reply = await request(kommo.url, '/api/v4/calls', { body: [call('+1 999 000 0000'), call('12125550142')] });
      assert.equal(reply.status, 200);
      const body = as<CallsReply>(reply);
      assert.deepEqual(body.errors, [{ request_id: '0', status: 'entity_not_found' }]);
      assert.deepEqual(
        body._embedded.calls.map((c) => [c.request_id, c.entity_id, c.entity_type]),
        [['1', contact.id, 'contact']],
      );
      assert.equal(kommo.state().notes.length, before + 1);

      const none = await request(kommo.url, '/api/v4/calls', { body: [call('+1 888 000 0000')] });
      assert.equal(none.status, 200);
      assert.deepEqual(none.body, { _embedded: { calls: [] }, errors: [{ request_id: '0', status: 'entity_not_found' }] });
      assert.equal(kommo.state().notes.length, before + 1);
    });

    it('falls back to a company whose phone matches when no contact does', async () => {
      const company = kommo.seedCompany({ name: 'Switchboard Inc', phone: '+1 (303) 555-0177' });
      const reply = await request(kommo.url, '/api/v4/calls', { body: [call('3035550177')] });
      const added = as<CallsReply>(reply)._embedded.calls[0];
      assert.equal(added?.entity_type, 'company');
      assert.equal(added?.entity_id, company.id);
    });

    it('does not deduplicate: the same uniq twice makes two notes', async () => {
      const contact = kommo.seedContact({ name: 'Twice', phone: '+1 617 555 0123' });
      for (let i = 0; i < 2; i++) {
        const reply = await request(kommo.url, '/api/v4/calls', { body: [call('6175550123', { uniq: 'same-uniq' })] });
        assert.equal(as<CallsReply>(reply)._embedded.calls.length, 1);
      }
      const notes = kommo.state().notes.filter((n) => n.entity_id === contact.id && n.entity_type === 'contacts');
      assert.equal(notes.length, 2);
      assert.deepEqual(notes.map((n) => n.params.uniq), ['same-uniq', 'same-uniq']);
      assert.notEqual(notes[0]?.id, notes[1]?.id);
    });

    it('rejects invalid calls with 400 validation-errors and stores nothing from the batch', async () => {
      kommo.seedContact({ name: 'Valid', phone: '+1 646 555 0101' });
      const before = kommo.state().notes.length;
      const reply = await request(kommo.url, '/api/v4/calls', {
        body: [
          call('6465550101'),
          call('6465550101', { direction: 'sideways' }),
          { direction: 'inbound', source: 's', phone: '6465550101' },
          call('6465550101', { duration: -1, call_status: 9 }),
          call('6465550101', { duration: 1.5, phone: 6465550101 }),
        ],
      });
      assert.equal(reply.status, 400);
      const body = as<ValidationReply>(reply);
      assert.equal(body.title, 'Bad Request');
      assert.equal(body.status, 400);
      assert.equal(body['validation-errors'][0]?.errors[0]?.code, 'NotSupportedChoice');
      assert.equal(body['validation-errors'][0]?.errors[0]?.path, 'direction');
      assert.equal(typeof body['validation-errors'][0]?.errors[0]?.detail, 'string');
      assert.deepEqual(codes(reply), [
        '1:direction:NotSupportedChoice',
        '2:duration:FieldMissing',
        '3:duration:NotSupportedChoice',
        '3:call_status:NotSupportedChoice',
        '4:duration:InvalidType',
        '4:phone:InvalidType',
      ]);
      assert.equal(kommo.state().notes.length, before);

      for (const body of [{}, []]) {
        const notArray = await request(kommo.url, '/api/v4/calls', { body });
        assert.equal(notArray.status, 400);
        assert.ok(as<ValidationReply>(notArray)['validation-errors'].length > 0);
      }
      const malformed = await request(kommo.url, '/api/v4/calls', { raw: '[{"direction":' });
      assert.equal(malformed.status, 400);
      assert.equal(as<{ title: string }>(malformed).title, 'Bad Request');
    });

    it('takes the incoming lead\'s contact from _embedded.contacts, keeps it out of the Lists until accepted, then places calls on the accepted lead', async () => {
      const phone = '+1 (510) 555-0188';
      assert.equal((await request(kommo.url, '/api/v4/calls', { body: [call(phone)] })).status, 200);
      assert.equal(kommo.state().notes.filter((n) => n.params.phone === phone).length, 0);

      const created = await request(kommo.url, '/api/v4/leads/unsorted/sip', { body: [{ ...sip('sip-1', phone, phone), pipeline_id: 3 }] });
      assert.equal(created.status, 200);
      const entry = as<UnsortedReply>(created)._embedded.unsorted[0];
      assert.ok(entry);
      assert.equal(typeof entry.uid, 'string');
      const leadId = entry._embedded.leads[0]?.id;
      const contactId = entry._embedded.contacts[0]?.id;
      assert.ok(leadId !== undefined && contactId !== undefined);

      const contact = kommo.state().contacts.find((c) => c.id === contactId);
      assert.deepEqual(contact?.custom_fields_values, [{ field_code: 'PHONE', values: [{ value: phone }] }]);
      assert.deepEqual(contact?._embedded.leads, [{ id: leadId }]);
      assert.equal(kommo.state().leads.find((l) => l.id === leadId)?.pipeline_id, 3);

      // Until accepted: not found by search or id, and calls for the number match nothing.
      assert.equal((await request(kommo.url, '/api/v4/contacts?query=5105550188')).status, 204);
      assert.equal((await request(kommo.url, `/api/v4/contacts/${contactId}`)).status, 404);
      const dropped = as<CallsReply>(await request(kommo.url, '/api/v4/calls', { body: [call('5105550188', { uniq: 'sip-1b' })] }));
      assert.deepEqual(dropped.errors, [{ request_id: '0', status: 'entity_not_found' }]);

      const byUid = await request(kommo.url, `/api/v4/leads/unsorted?filter[uid]=${entry.uid}`);
      assert.equal(byUid.status, 200);
      const listed = as<{ _embedded: { unsorted: KommoUnsorted[] } }>(byUid)._embedded.unsorted;
      assert.deepEqual(listed.map((u) => [u.uid, u.metadata.uniq, u.source_name]), [[entry.uid, 'sip-1', 'Switchboard PBX']]);
      const unknownUid = await request(kommo.url, '/api/v4/leads/unsorted?filter[uid]=nope');
      assert.equal(unknownUid.status, 204);
      assert.equal(unknownUid.text, '');

      // is_call_event_needed: the call's own event is on the lead already.
      const leadNotes = as<{ _embedded: { notes: KommoNote[] } }>(await request(kommo.url, `/api/v4/leads/${leadId}/notes?filter[note_type]=call_in,call_out`));
      assert.deepEqual(leadNotes._embedded.notes.map((n) => [n.note_type, n.params.uniq]), [['call_in', 'sip-1']]);
      assert.equal((await request(kommo.url, '/api/v4/leads/987654/notes')).status, 404);

      const accepted = await request(kommo.url, `/api/v4/leads/unsorted/${entry.uid}/accept`, { body: {} });
      assert.equal(accepted.status, 200);
      assert.equal((await request(kommo.url, `/api/v4/leads/unsorted?filter[uid]=${entry.uid}`)).status, 204);
      const found = as<{ _embedded: { contacts: KommoContact[] } }>(await request(kommo.url, '/api/v4/contacts?query=5105550188&with=leads'));
      assert.deepEqual(found._embedded.contacts.map((c) => [c.id, c._embedded.leads]), [[contactId, [{ id: leadId }]]]);
      const attached = as<CallsReply>(await request(kommo.url, '/api/v4/calls', { body: [call('5105550188', { uniq: 'sip-2' })] }));
      assert.equal(attached.errors, undefined);
      assert.deepEqual(attached._embedded.calls.map((c) => [c.entity_type, c.entity_id]), [['lead', leadId]]);
    });

    it('creates no contact when the incoming lead embeds none, and adds no call event when is_call_event_needed is false', async () => {
      const before = kommo.state().contacts.length;
      const body = sip('bare-1', '+1 702 555 0170');
      (body.metadata as Record<string, unknown>).is_call_event_needed = false;
      const created = as<UnsortedReply>(await request(kommo.url, '/api/v4/leads/unsorted/sip', { body: [body] }));
      const entry = created._embedded.unsorted[0];
      assert.deepEqual(entry?._embedded.contacts, []);
      assert.equal(kommo.state().contacts.length, before);
      assert.equal((await request(kommo.url, `/api/v4/leads/${entry?._embedded.leads[0]?.id}/notes`)).status, 204);
    });

    it('refuses a second waiting incoming lead from the same caller (number or contact phone) as Duplicate', async () => {
      assert.equal((await request(kommo.url, '/api/v4/leads/unsorted/sip', { body: [sip('caller-a1', '+1 702 555 0180', '+1 702 555 0180')] })).status, 200);
      const byNumber = await request(kommo.url, '/api/v4/leads/unsorted/sip', { body: [sip('caller-a2', '+17025550180')] });
      assert.equal(byNumber.status, 400);
      assert.deepEqual(codes(byNumber), ['0:metadata.from:Duplicate']);
      const byContact = await request(kommo.url, '/api/v4/leads/unsorted/sip', { body: [sip('caller-a3', 'withheld', '(702) 555-0180')] });
      assert.deepEqual(codes(byContact), ['0:_embedded.contacts.0:Duplicate']);
    });

    it('rejects a second incoming lead with the same metadata.uniq as Duplicate and creates nothing', async () => {
      assert.equal((await request(kommo.url, '/api/v4/leads/unsorted/sip', { body: [sip('dup-1', '+1 702 555 0100')] })).status, 200);
      const before = kommo.state();

      const again = await request(kommo.url, '/api/v4/leads/unsorted/sip', { body: [sip('fresh-1', '+1 702 555 0101'), sip('dup-1', '+1 702 555 0102')] });
      assert.equal(again.status, 400);
      assert.deepEqual(codes(again), ['1:metadata.uniq:Duplicate']);

      const inBatch = await request(kommo.url, '/api/v4/leads/unsorted/sip', { body: [sip('twin', '+1 702 555 0103'), sip('twin', '+1 702 555 0104')] });
      assert.equal(inBatch.status, 400);
      assert.deepEqual(codes(inBatch), ['1:metadata.uniq:Duplicate']);

      const after = kommo.state();
      assert.equal(after.unsorted.length, before.unsorted.length);
      assert.equal(after.leads.length, before.leads.length);
      assert.equal(after.contacts.length, before.contacts.length);
      const all = as<{ _embedded: { unsorted: KommoUnsorted[] } }>(await request(kommo.url, '/api/v4/leads/unsorted'));
      assert.ok(!all._embedded.unsorted.some((entry) => entry.metadata.uniq === 'fresh-1'), 'a rejected batch stores nothing');
    });

    it('adds a call note straight to a chosen lead, and refuses an unknown entity', async () => {
      const created = as<UnsortedReply>(await request(kommo.url, '/api/v4/leads/unsorted/sip', { body: [sip('note-1', '+1 702 555 0150')] }));
      const leadId = created._embedded.unsorted[0]?._embedded.leads[0]?.id;
      assert.ok(leadId);
      const added = await request(kommo.url, '/api/v4/leads/notes', {
        body: [{ entity_id: leadId, note_type: 'call_in', params: { uniq: 'pbx:n1', duration: 12, source: 'switchboard', phone: '+17025550199' } }],
      });
      assert.equal(added.status, 200);
      const listed = as<{ _embedded: { notes: KommoNote[] } }>(await request(kommo.url, `/api/v4/leads/${leadId}/notes?filter[note_type]=call_in`));
      // Newest first: ours, then the incoming call's own event (is_call_event_needed).
      assert.deepEqual(listed._embedded.notes.map((note) => note.params.uniq), ['pbx:n1', 'note-1']);

      const unknown = await request(kommo.url, '/api/v4/leads/notes', { body: [{ entity_id: 999_999, note_type: 'call_in', params: {} }] });
      assert.equal(unknown.status, 400);
      assert.deepEqual(codes(unknown), ['0:entity_id:InvalidType']);
    });

    it('validates unsorted leads field by field', async () => {
      const incomplete = sip('bad-1', '+1 702 555 0199');
      const metadata = incomplete.metadata as Record<string, unknown>;
      delete metadata.called_at;
      metadata.is_call_event_needed = 'yes';
      const reply = await request(kommo.url, '/api/v4/leads/unsorted/sip', { body: [incomplete, { source_name: 'x' }] });
      assert.equal(reply.status, 400);
      assert.deepEqual(codes(reply), [
        '0:metadata.called_at:FieldMissing',
        '0:metadata.is_call_event_needed:InvalidType',
        '1:source_uid:FieldMissing',
        '1:metadata:FieldMissing',
      ]);
    });

    it('creates tasks without deduplication and filters them by entity', async () => {
      const contact = kommo.seedContact({ name: 'Task target', phone: '+1 305 555 0100' });
      const task = { text: 'Call back', complete_till: 1_900_000_000, entity_id: contact.id, entity_type: 'contacts', task_type_id: 1, request_id: 'cb-1' };
      const created = await request(kommo.url, '/api/v4/tasks', { body: [task, { ...task, request_id: undefined }] });
      assert.equal(created.status, 200);
      const ids = as<{ _embedded: { tasks: { id: number; request_id: string }[] } }>(created)._embedded.tasks;
      assert.deepEqual(ids.map((t) => t.request_id), ['cb-1', '1']);

      const listed = await request(kommo.url, `/api/v4/tasks?filter[entity_id]=${contact.id}&filter[entity_type]=contacts`);
      assert.equal(listed.status, 200);
      const tasks = as<{ _embedded: { tasks: KommoTask[] } }>(listed)._embedded.tasks;
      assert.equal(tasks.length, 2);
      assert.deepEqual(tasks.map((t) => [t.text, t.entity_id, t.entity_type, t.task_type_id, t.is_completed]), [
        ['Call back', contact.id, 'contacts', 1, false],
        ['Call back', contact.id, 'contacts', 1, false],
      ]);
      assert.equal((await request(kommo.url, `/api/v4/tasks?filter[entity_id]=${contact.id}&filter[entity_type]=leads`)).status, 204);

      const invalid = await request(kommo.url, '/api/v4/tasks', { body: [{ complete_till: 'soon', entity_type: 'deals', entity_id: 1 }] });
      assert.equal(invalid.status, 400);
      assert.deepEqual(codes(invalid), ['0:text:FieldMissing', '0:complete_till:InvalidType', '0:entity_type:NotSupportedChoice']);
    });

    it('answers 503 during an outage (handle or control endpoint) while /_sandbox/ keeps working', async () => {
      kommo.setOutage(true);
      const down = await request(kommo.url, '/api/v4/contacts?query=4155550100');
      assert.equal(down.status, 503);
      assert.deepEqual(down.body, { title: 'Service Unavailable', status: 503 });
      assert.equal((await request(kommo.url, '/api/v4/calls', { body: [call('1')], token: null })).status, 503);
      kommo.setOutage(false);
      assert.equal((await request(kommo.url, '/api/v4/contacts?query=4155550100')).status, 200);

      const toggled = await request(kommo.url, '/_sandbox/outage', { body: { down: true }, token: null });
      assert.equal(toggled.status, 200);
      assert.equal((await request(kommo.url, '/api/v4/users/501')).status, 503);
      const state = await request(kommo.url, '/_sandbox/state', { token: null });
      assert.equal(state.status, 200);
      await request(kommo.url, '/_sandbox/outage', { body: { down: false }, token: null });
      assert.equal((await request(kommo.url, '/api/v4/users/501')).status, 200);
      assert.equal((await request(kommo.url, '/_sandbox/outage', { body: { down: 'no' }, token: null })).status, 400);
    });

    it('as a slow account, acts on a request at once and answers it only after the delay (handle or control endpoint)', async () => {
      kommo.seedContact({ name: 'Slow', phone: '+1 303 555 0166' });
      kommo.setResponseDelay(600_000);
      let answered = false;
      const giveUp = new AbortController();
      const pending = fetch(`${kommo.url}/api/v4/calls`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify([call('3035550166', { uniq: 'slow-1' })]),
        signal: giveUp.signal,
      }).then(
        () => (answered = true),
        () => undefined,
      );
      // The note is there while the answer is still held back, as a client that timed out would find it.
      while (!kommo.state().notes.some((note) => note.params.uniq === 'slow-1')) await new Promise((resolve) => setImmediate(resolve));
      assert.equal(answered, false);
      giveUp.abort();
      await pending;
      kommo.setResponseDelay(0);
      assert.equal((await request(kommo.url, '/api/v4/contacts?query=3035550166')).status, 200);

      const slowed = await request(kommo.url, '/_sandbox/slow', { body: { delayMs: 0 }, token: null });
      assert.deepEqual([slowed.status, slowed.body], [200, { delayMs: 0 }]);
      for (const bad of [{}, { delayMs: -1 }, { delayMs: 'soon' }]) assert.equal((await request(kommo.url, '/_sandbox/slow', { body: bad, token: null })).status, 400, JSON.stringify(bad));
    });

    it('seeds through /_sandbox/ and counts API requests by route', async () => {
      const seeded = await request(kommo.url, '/_sandbox/contacts', { body: { name: 'Http seed', phone: '+1 (720) 555-0150', company: 'Seeded Co', responsible_user_id: 9 }, token: null });
      assert.equal(seeded.status, 201);
      const contact = as<KommoContact>(seeded);
      assert.equal(contact.responsible_user_id, 9);
      assert.equal(contact._embedded.companies[0]?.name, 'Seeded Co');
      const user = await request(kommo.url, '/_sandbox/users', { body: { name: 'Http user', email: 'u@example.com' }, token: null });
      assert.equal(user.status, 201);
      assert.equal((await request(kommo.url, '/_sandbox/contacts', { body: { name: 'no phone' }, token: null })).status, 400);

      const before = kommo.state().requests;
      await request(kommo.url, `/api/v4/contacts/${contact.id}`);
      await request(kommo.url, `/api/v4/contacts/${contact.id}/notes`);
      const state = as<{ requests: { total: number; rateLimited: number; byRoute: Record<string, number> }; contacts: unknown[] }>(
        await request(kommo.url, '/_sandbox/state', { token: null }),
      );
      assert.equal(state.requests.total, before.total + 2);
      assert.equal(state.requests.byRoute['GET /api/v4/contacts/:id'], (before.byRoute['GET /api/v4/contacts/:id'] ?? 0) + 1);
      assert.equal(state.requests.byRoute['GET /api/v4/contacts/:id/notes'], (before.byRoute['GET /api/v4/contacts/:id/notes'] ?? 0) + 1);
      assert.equal(state.requests.rateLimited, 0);
      assert.deepEqual(Object.keys(kommo.state()).sort(), ['companies', 'contacts', 'leads', 'notes', 'oauth', 'requests', 'tasks', 'unsorted', 'users']);
    });
  });

  describe('rate limit (7 requests in any rolling second)', () => {
    const started: KommoSandbox[] = [];
    after(async () => {
      await Promise.all(started.map((sandbox) => sandbox.stop()));
    });

    const burst = async (url: string, count: number): Promise<Reply[]> =>
      Promise.all(Array.from({ length: count }, () => request(url, '/api/v4/contacts?query=4155550100')));
    const tally = (replies: Reply[]): Record<number, number> =>
      replies.reduce<Record<number, number>>((acc, reply) => ({ ...acc, [reply.status]: (acc[reply.status] ?? 0) + 1 }), {});

    it('answers 429 with Retry-After: 1 past 7 concurrent requests (real clock, default limits)', async () => {
      const kommo = await startKommoSandbox({ port: 0, token: TOKEN });
      started.push(kommo);
      const replies = await burst(kommo.url, 10);
      assert.deepEqual(tally(replies), { 204: 7, 429: 3 });
      const limited = replies.find((reply) => reply.status === 429);
      assert.equal(limited?.headers.get('retry-after'), '1');
      assert.deepEqual(limited?.body, { title: 'Too Many Requests', status: 429, detail: 'Rate limit exceeded' });
      assert.equal(kommo.state().requests.rateLimited, 3);
      assert.equal(kommo.state().requests.total, 10);
    });

    it('uses a rolling window, not fixed seconds', async () => {
      let now = 1_000_000;
      const kommo = await startKommoSandbox({ port: 0, token: TOKEN, clock: () => now });
      started.push(kommo);
      assert.deepEqual(tally(await burst(kommo.url, 4)), { 204: 4 });
      now += 600;
      assert.deepEqual(tally(await burst(kommo.url, 4)), { 204: 3, 429: 1 });
      now += 399; // the first four are still inside the window
      assert.deepEqual(tally(await burst(kommo.url, 1)), { 429: 1 });
      now += 1; // they have now left it; the three from +600 ms remain
      assert.deepEqual(tally(await burst(kommo.url, 5)), { 204: 4, 429: 1 });
    });

    it('restricts a client that keeps hammering (more than 30 answers of 429 within 10 s) for 30 s with 429 and Retry-After, never 403', async () => {
      let now = 5_000_000;
      const kommo = await startKommoSandbox({ port: 0, token: TOKEN, rateLimitPerSecond: 1, clock: () => now });
      started.push(kommo);
      const replies = await burst(kommo.url, 40);
      assert.deepEqual(tally(replies), { 204: 1, 429: 39 });
      const restricted = replies.filter((reply) => reply.status === 429 && (reply.body as { detail?: string }).detail === 'Requests from this address are restricted');
      assert.equal(restricted.length, 8);
      assert.equal(restricted[0]?.headers.get('retry-after'), '30');

      now += 29_001;
      const late = await burst(kommo.url, 1);
      assert.deepEqual(tally(late), { 429: 1 });
      assert.equal(late[0]?.headers.get('retry-after'), '1');
      now += 999;
      assert.deepEqual(tally(await burst(kommo.url, 1)), { 204: 1 });
    });

    it('refuses an address not on the account\'s IP whitelist with 403 (error 113) for good, whatever the pace', async () => {
      let now = 6_000_000;
      const kommo = await startKommoSandbox({ port: 0, token: TOKEN, allowedIps: ['10.9.9.9'], clock: () => now });
      started.push(kommo);
      const first = await request(kommo.url, '/api/v4/contacts?query=1');
      assert.equal(first.status, 403);
      assert.deepEqual(first.body, { title: 'Forbidden', status: 403, detail: 'Access to the account is denied from this IP address', error_code: 113 });
      assert.equal(first.headers.get('retry-after'), null);
      now += 3_600_000;
      assert.equal((await request(kommo.url, '/api/v4/contacts?query=1')).status, 403);
      kommo.setAllowedIps(['127.0.0.1']);
      assert.equal((await request(kommo.url, '/api/v4/contacts?query=1')).status, 204);
    });

    it('takes the block threshold, window and duration from the options', async () => {
      let now = 0;
      const kommo = await startKommoSandbox({
        port: 0,
        token: TOKEN,
        rateLimitPerSecond: 1,
        blockAfter429s: 3,
        blockWindowMs: 50,
        blockDurationMs: 2000,
        clock: () => now,
      });
      started.push(kommo);
      assert.deepEqual(tally(await burst(kommo.url, 4)), { 204: 1, 429: 3 });
      now += 60; // the three 429s fall out of the 50 ms block window
      assert.deepEqual(tally(await burst(kommo.url, 3)), { 429: 3 });
      const restricted = await burst(kommo.url, 2);
      assert.deepEqual(tally(restricted), { 429: 2 });
      // The 4th 429 in the window starts the restriction; the request after it waits it out.
      assert.deepEqual(restricted.map((reply) => reply.headers.get('retry-after')).sort(), ['1', '2']);
      now += 1999;
      assert.equal((await burst(kommo.url, 1))[0]?.headers.get('retry-after'), '1');
      now += 1; // restricted until 60 + 2000; the one accepted request at 0 has left the rate window too
      assert.deepEqual(tally(await burst(kommo.url, 1)), { 204: 1 });
    });
  });

  describe('OAuth 2.0 (developers.kommo.com/reference/get-token; refresh tokens work once: amocrm-api-php issues #123, #269)', () => {
    const oauth = { clientId: 'client-1', clientSecret: 'secret-1', redirectUri: 'https://switchboard.example/kommo/callback' };
    let now = 10_000_000;
    let kommo: KommoSandbox;
    before(async () => {
      kommo = await startKommoSandbox({ port: 0, oauth: { ...oauth, accessTokenLifetimeSeconds: 3600 }, rateLimitPerSecond: 100_000, clock: () => now });
    });
    after(async () => {
      await kommo.stop();
    });
    type TokenReply = { token_type: string; expires_in: number; server_time: number; access_token: string; refresh_token: string };
    const grant = (body: Record<string, string>) =>
      request(kommo.url, '/oauth2/access_token', { body: { client_id: oauth.clientId, client_secret: oauth.clientSecret, redirect_uri: oauth.redirectUri, ...body }, token: null });

    it('exchanges an authorization code once for an access and a refresh token', async () => {
      const code = kommo.authorize();
      const reply = await grant({ grant_type: 'authorization_code', code });
      assert.equal(reply.status, 200);
      const tokens = as<TokenReply>(reply);
      assert.equal(tokens.token_type, 'Bearer');
      assert.equal(tokens.expires_in, 3600);
      assert.equal(tokens.server_time, Math.floor(now / 1000));
      assert.equal((await request(kommo.url, '/api/v4/contacts?query=1', { token: tokens.access_token })).status, 204);

      const again = await grant({ grant_type: 'authorization_code', code });
      assert.equal(again.status, 400);
      assert.equal((again.body as { hint: string }).hint, 'Authorization code has been revoked');
      assert.equal(kommo.state().oauth.granted.authorization_code, 1);
    });

    it('takes a form-encoded request too, and refuses a wrong secret, a wrong redirect URI and an expired code', async () => {
      const form = await request(kommo.url, '/oauth2/access_token', {
        form: { client_id: oauth.clientId, client_secret: oauth.clientSecret, redirect_uri: oauth.redirectUri, grant_type: 'authorization_code', code: kommo.authorize() },
        token: null,
      });
      assert.equal(form.status, 200);
      const wrongSecret = await request(kommo.url, '/oauth2/access_token', { body: { client_id: oauth.clientId, client_secret: 'nope', grant_type: 'authorization_code', code: kommo.authorize(), redirect_uri: oauth.redirectUri }, token: null });
      assert.equal(wrongSecret.status, 401);
      assert.equal((await grant({ grant_type: 'authorization_code', code: kommo.authorize(), redirect_uri: 'https://elsewhere.example/' })).status, 401);
      const code = kommo.authorize();
      now += 20 * 60_000;
      const expired = await grant({ grant_type: 'authorization_code', code });
      assert.equal(expired.status, 400);
      assert.equal((expired.body as { hint: string }).hint, 'Authorization code has expired');
      assert.equal((await grant({ grant_type: 'password' })).status, 400);
    });

    it('expires access tokens, rotates the refresh token on renewal and refuses a used one', async () => {
      const first = as<TokenReply>(await grant({ grant_type: 'authorization_code', code: kommo.authorize() }));
      now += 3_600_000;
      const expired = await request(kommo.url, '/api/v4/contacts?query=1', { token: first.access_token });
      assert.equal(expired.status, 401);
      assert.deepEqual(expired.body, { title: 'Unauthorized', status: 401 });

      const renewed = await grant({ grant_type: 'refresh_token', refresh_token: first.refresh_token });
      assert.equal(renewed.status, 200);
      const second = as<TokenReply>(renewed);
      assert.notEqual(second.refresh_token, first.refresh_token);
      assert.equal((await request(kommo.url, '/api/v4/contacts?query=1', { token: second.access_token })).status, 204);

      const reused = await grant({ grant_type: 'refresh_token', refresh_token: first.refresh_token });
      assert.equal(reused.status, 401);
      assert.equal((reused.body as { hint: string }).hint, 'Token has been revoked');
      assert.deepEqual(kommo.state().oauth.refused.at(-1), { grant: 'refresh_token', hint: 'Token has been revoked' });

      // A renewal also ends the access tokens issued before it.
      const third = as<TokenReply>(await grant({ grant_type: 'refresh_token', refresh_token: second.refresh_token }));
      assert.equal((await request(kommo.url, '/api/v4/contacts?query=1', { token: second.access_token })).status, 401);
      assert.equal((await request(kommo.url, '/api/v4/contacts?query=1', { token: third.access_token })).status, 204);
      kommo.expireAccessTokens();
      assert.equal((await request(kommo.url, '/api/v4/contacts?query=1', { token: third.access_token })).status, 401);
    });

    it('keeps a long-lived token working beside OAuth', async () => {
      const both = await startKommoSandbox({ port: 0, token: 'long-lived', oauth, clock: () => now });
      try {
        now += 10 * 365 * 86_400_000;
        assert.equal((await request(both.url, '/api/v4/contacts?query=1', { token: 'long-lived' })).status, 204);
      } finally {
        await both.stop();
      }
    });
  });

  describe('placement, paging and lists', () => {
    let kommo: KommoSandbox;
    before(async () => {
      kommo = await startKommoSandbox({ port: 0, token: TOKEN, rateLimitPerSecond: 100_000 });
    });
    after(async () => {
      await kommo.stop();
    });
    const place = async (phone: string): Promise<[string | undefined, number | undefined]> => {
      const added = as<CallsReply>(await request(kommo.url, '/api/v4/calls', { body: [call(phone)] }))._embedded.calls[0];
      return [added?.entity_type, added?.entity_id];
    };

    it('puts a call on the contact\'s one active lead, and on the contact with none or several (developers.kommo.com/reference/calls)', async () => {
      const one = kommo.seedContact({ name: 'One lead', phone: '+1 212 555 0301' });
      const lead = kommo.seedLead({ name: 'Deal', contactId: one.id });
      kommo.seedLead({ name: 'Won deal', contactId: one.id, closed: true });
      assert.deepEqual(await place('2125550301'), ['lead', lead.id]);

      const two = kommo.seedContact({ name: 'Two leads', phone: '+1 212 555 0302' });
      kommo.seedLead({ name: 'A', contactId: two.id });
      kommo.seedLead({ name: 'B', contactId: two.id });
      assert.deepEqual(await place('2125550302'), ['contact', two.id]);

      const company = kommo.seedCompany({ name: 'Placed Co', phone: '+1 212 555 0303' });
      const companyLead = kommo.seedLead({ name: 'Company deal', companyId: company.id });
      assert.deepEqual(await place('2125550303'), ['lead', companyLead.id]);
      const fetched = as<{ id: number; _embedded: { leads: { id: number }[] } }>(await request(kommo.url, `/api/v4/companies/${company.id}?with=leads`));
      assert.deepEqual(fetched._embedded.leads, [{ id: companyLead.id }]);
      const withoutLeads = as<{ _embedded: { leads: unknown[] } }>(await request(kommo.url, `/api/v4/companies/${company.id}`));
      assert.deepEqual(withoutLeads._embedded.leads, []);
    });

    it('lists in pages of at most 250 with _links.next, and 204 past the end', async () => {
      const contact = kommo.seedContact({ name: 'Many notes', phone: '+1 212 555 0304' });
      for (let i = 0; i < 7; i++) await request(kommo.url, '/api/v4/calls', { body: [call('2125550304', { uniq: `many-${i}` })] });
      const page1 = as<{ _page: number; _links: { next?: { href: string } }; _embedded: { notes: KommoNote[] } }>(await request(kommo.url, `/api/v4/contacts/${contact.id}/notes?limit=3`));
      assert.equal(page1._page, 1);
      assert.deepEqual(page1._embedded.notes.map((n) => n.params.uniq), ['many-6', 'many-5', 'many-4']);
      assert.ok(page1._links.next);
      const page3 = as<{ _links: { next?: unknown }; _embedded: { notes: KommoNote[] } }>(await request(kommo.url, `/api/v4/contacts/${contact.id}/notes?limit=3&page=3`));
      assert.deepEqual(page3._embedded.notes.map((n) => n.params.uniq), ['many-0']);
      assert.equal(page3._links.next, undefined);
      assert.equal((await request(kommo.url, `/api/v4/contacts/${contact.id}/notes?limit=3&page=4`)).status, 204);
      const tooMany = await request(kommo.url, `/api/v4/contacts/${contact.id}/notes?limit=251`);
      assert.equal(tooMany.status, 400);
      assert.deepEqual(codes(tooMany), ['0:limit:NotSupportedChoice']);

      for (let i = 0; i < 3; i++) await request(kommo.url, '/api/v4/leads/unsorted/sip', { body: [sip(`paged-${i}`, `+1 212 555 04${String(i).padStart(2, '0')}`)] });
      const newest = as<{ _embedded: { unsorted: KommoUnsorted[] } }>(await request(kommo.url, '/api/v4/leads/unsorted?filter[category][]=sip&order[created_at]=desc&limit=1'));
      assert.deepEqual(newest._embedded.unsorted.map((u) => u.metadata.uniq), ['paged-2']);
      assert.equal((await request(kommo.url, '/api/v4/leads/unsorted?filter[category][]=forms')).status, 204);
    });
  });
});
