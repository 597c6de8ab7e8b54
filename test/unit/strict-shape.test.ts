import assert from 'node:assert/strict';
import { leadUpdateInputProblem, leadUpdateShapes } from '../../shared/lead-actions.js';
import type { LeadUpdateName } from '../../shared/lead-actions.js';
import { formatProblems, object, oneOf, optional, required, shapeProblems, text } from '../../shared/strict-shape.js';

describe('strict shape checker', () => {
  const shape = {
    step: required(text({ min: 1, max: 5 })),
    flow: optional(oneOf(['welcome', 'rewarm'])),
    meeting: optional(object({ id: required(text({ min: 1, max: 10 })), at: optional(text({ max: 3 })) })),
  };
  const check = (value: unknown): string => formatProblems(shapeProblems(value, shape));

  it('accepts exactly the shape: required fields present, optional ones absent or of their type', () => {
    assert.equal(check({ step: 'a' }), '');
    assert.equal(check({ step: 'abcde', flow: 'rewarm', meeting: { id: 'm1', at: 'x' } }), '');
    assert.equal(check({ step: 'a', flow: undefined }), '', 'an undefined field is an absent one');
  });

  it('refuses unknown fields, at any depth, naming each and what is allowed', () => {
    assert.equal(check({ step: 'a', bogus: 1 }), 'bogus: unknown field; allowed: step, flow, meeting');
    assert.equal(check({ step: 'a', meeting: { id: 'm', room: 4 } }), 'meeting.room: unknown field; allowed: id, at');
    assert.equal(check(JSON.parse('{"step": "a", "__proto__": {"polluted": true}}')), '__proto__: unknown field; allowed: step, flow, meeting', 'a JSON "__proto__" key is a field like any other');
    assert.equal(check({ step: 'a', constructor: 'x' }), 'constructor: unknown field; allowed: step, flow, meeting', 'no member of Object.prototype counts as known');
  });

  it('refuses missing required fields, at any depth', () => {
    assert.equal(check({}), 'step: required');
    assert.equal(check({ step: 'a', meeting: {} }), 'meeting.id: required');
  });

  it('refuses ill-typed fields, saying what was expected and what came', () => {
    assert.equal(check({ step: 3 }), 'step: must be a string of 1 to 5 characters, got number 3');
    assert.equal(check({ step: '' }), 'step: must be a string of 1 to 5 characters, got ""');
    assert.equal(check({ step: 'toolong' }), 'step: must be a string of 1 to 5 characters, got "toolong"');
    assert.equal(check({ step: null }), 'step: must be a string of 1 to 5 characters, got null', 'null is not absent');
    assert.equal(check({ step: 'a', flow: 'nope' }), 'flow: must be one of welcome, rewarm; got "nope"');
    assert.equal(check({ step: 'a', meeting: 'm1' }), 'meeting: must be a JSON object, got "m1"');
    assert.equal(check({ step: ['a'] }), 'step: must be a string of 1 to 5 characters, got an array');
  });

  it('refuses input that is no object, and reports every problem at once', () => {
    for (const value of [null, 'pause', 5, true, ['step']]) assert.match(check(value), /^must be a JSON object, got /, JSON.stringify(value));
    assert.equal(check({ bogus: 1, step: 2 }), 'bogus: unknown field; allowed: step, flow, meeting; step: must be a string of 1 to 5 characters, got number 2');
  });
});

describe('lead update inputs (what each validator checks first)', () => {
  const problem = (update: LeadUpdateName, ...args: unknown[]): string | undefined => leadUpdateInputProblem(update, args);
  const meeting = { id: 'm1', startsAt: '2030-01-07T15:00:00Z' };
  const valid: Record<LeadUpdateName, unknown> = {
    pause: { reason: 'asked for a call first', operator: 'ops@acme' },
    resume: {},
    skipStep: { step: 'follow_up:2' },
    sendNow: { step: 'follow_up:3', reason: 'they asked' },
    changeTimeZone: { timeZone: 'Europe/Berlin' },
    cancelFlow: { flow: 'rewarm' },
    markBooked: { meeting: { ...meeting, endsAt: '2030-01-07T15:30:00+01:00' } },
    reassignSender: { sender: 'iberia', reason: 'the lead moved to Madrid' },
  };

  it('accepts the valid input of every update, and no input at all where nothing is required', () => {
    for (const [update, input] of Object.entries(valid)) assert.equal(problem(update as LeadUpdateName, input), undefined, update);
    assert.equal(problem('pause'), undefined);
    assert.equal(problem('resume'), undefined);
    assert.deepEqual(Object.keys(leadUpdateShapes).sort(), Object.keys(valid).sort(), 'every update is covered');
  });

  it('refuses an unknown field on every update, naming it', () => {
    for (const [update, input] of Object.entries(valid)) {
      assert.match(problem(update as LeadUpdateName, { ...(input as object), bogus: 1 }) ?? '', new RegExp(`^invalid ${update} input: bogus: unknown field; allowed: `), update);
    }
    assert.equal(problem('markBooked', { meeting: { ...meeting, room: 'A' } }), 'invalid markBooked input: meeting.room: unknown field; allowed: id, startsAt, endsAt');
  });

  it('refuses a missing or ill-typed required field, naming it', () => {
    assert.equal(problem('skipStep', {}), 'invalid skipStep input: step: required');
    assert.equal(problem('sendNow'), 'invalid sendNow input: step: required', 'no input is {}');
    assert.equal(problem('skipStep', { step: 7 }), 'invalid skipStep input: step: must be a string of 1 to 300 characters, got number 7');
    assert.equal(problem('changeTimeZone', {}), 'invalid changeTimeZone input: timeZone: required');
    assert.equal(problem('changeTimeZone', { timeZone: 'Mars/Olympus' }), 'invalid changeTimeZone input: timeZone: "Mars/Olympus" is not an IANA time zone');
    assert.equal(problem('cancelFlow', { flow: 'nurture' }), 'invalid cancelFlow input: flow: must be one of welcome, follow_up, booking_confirmation, reminder, no_show, reschedule, cancellation, post_meeting, rewarm, missed_call; got "nurture"');
    assert.equal(problem('markBooked', {}), 'invalid markBooked input: meeting: required');
    assert.equal(problem('markBooked', { meeting: { id: 'm1' } }), 'invalid markBooked input: meeting.startsAt: required');
    assert.equal(problem('markBooked', { meeting: { id: 'm1', startsAt: 'tomorrow' } }), 'invalid markBooked input: meeting.startsAt: must be an ISO 8601 date-time with an offset, got "tomorrow"');
    assert.equal(problem('reassignSender', {}), 'invalid reassignSender input: sender: required');
    assert.equal(problem('reassignSender', { sender: '' }), 'invalid reassignSender input: sender: must be a string of 1 to 100 characters, got ""');
    assert.equal(problem('pause', { reason: 5 }), 'invalid pause input: reason: must be a string of at most 500 characters, got number 5');
    assert.equal(problem('pause', { operator: '' }), 'invalid pause input: operator: must be a string of 1 to 200 characters, got ""');
  });

  it('takes one JSON object: not null, not a string, not two arguments', () => {
    assert.equal(problem('pause', null), 'invalid pause input: takes one JSON object such as {"reason": "…"}, got null');
    assert.equal(problem('skipStep', 'follow_up:2'), 'invalid skipStep input: must be a JSON object, got "follow_up:2"');
    assert.equal(problem('resume', {}, {}), 'invalid resume input: takes one JSON object such as {}, got 2 arguments');
  });
});
