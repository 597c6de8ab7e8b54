import assert from 'node:assert/strict';
import { applyCallEvent, byOccurrence, closeByTimeout, initialSnapshot, laterStatus } from '../../shared/call-state.js';
import type { CallEvent, CallSnapshot } from '../../shared/calls.js';

const t0 = Date.parse('2026-11-21T10:00:00Z');
const at = (seconds: number): string => new Date(t0 + seconds * 1000).toISOString();

const answeredCall: CallEvent[] = [
  { eventId: 'ring', type: 'call.ringing', occurredAt: at(0), direction: 'inbound', customerPhone: '+14155550100', linePhone: '+12025550100' },
  { eventId: 'answer', type: 'call.answered', occurredAt: at(5), agentId: 'agent-1' },
  { eventId: 'end', type: 'call.ended', occurredAt: at(65), durationSeconds: 60, disposition: 'answered' },
  { eventId: 'rec', type: 'call.recording', occurredAt: at(67), recordingUrl: 'https://pbx.example/rec/1.wav' },
  { eventId: 'analytics', type: 'call.analytics', occurredAt: at(80), analytics: { satisfaction: 4, resolved: true } },
  { eventId: 'result', type: 'call.result', occurredAt: at(90), result: { outcome: 'resolved', comment: 'ok' } },
];

function permutations<T>(items: T[]): T[][] {
  if (items.length <= 1) return [items];
  return items.flatMap((item, index) => permutations([...items.slice(0, index), ...items.slice(index + 1)]).map((rest) => [item, ...rest]));
}

/** Everything but the arrival-ordered dedupe list. */
function comparable(snapshot: CallSnapshot): Omit<CallSnapshot, 'eventIds'> & { eventIds: string[] } {
  return { ...snapshot, eventIds: [...snapshot.eventIds].sort() };
}

function replay(events: CallEvent[]): CallSnapshot {
  const snapshot = initialSnapshot('demo', 'pbx', 'c1');
  for (const event of events) applyCallEvent(snapshot, event);
  return snapshot;
}

describe('call state machine', () => {
  it('reaches the same state for every arrival order of a call (720 orders)', () => {
    const expected = comparable(replay(answeredCall));
    assert.equal(expected.status, 'ended');
    assert.equal(expected.disposition, 'answered');
    assert.equal(expected.waitSeconds, 5);
    assert.equal(expected.agentId, 'agent-1');
    for (const order of permutations(answeredCall)) assert.deepEqual(comparable(replay(order)), expected);
  });

  it('ignores duplicates', () => {
    const snapshot = initialSnapshot('demo', 'pbx', 'c1');
    assert.equal(applyCallEvent(snapshot, answeredCall[0] as CallEvent), true);
    assert.equal(applyCallEvent(snapshot, answeredCall[0] as CallEvent), false);
    assert.deepEqual(snapshot.eventIds, ['ring']);
  });

  it('never moves the status backwards: "answered" after "ended" keeps the call ended', () => {
    const snapshot = replay([answeredCall[2] as CallEvent, answeredCall[1] as CallEvent]);
    assert.equal(snapshot.status, 'ended');
    assert.equal(snapshot.answeredAt, at(5));
    assert.equal(laterStatus('completed', 'in_progress'), 'completed');
  });

  it('derives a missed inbound call, its start and its wait from an end without an answer', () => {
    const snapshot = replay([{ eventId: 'end', type: 'call.ended', occurredAt: at(30), direction: 'inbound', durationSeconds: 0 }]);
    assert.equal(snapshot.disposition, 'missed');
    assert.equal(snapshot.startedAt, at(30));
    const outbound = replay([{ eventId: 'end', type: 'call.ended', occurredAt: at(30), direction: 'outbound', durationSeconds: 0 }]);
    assert.equal(outbound.disposition, 'no_answer');
  });

  it('re-derives the disposition when the answer arrives after an end that did not say', () => {
    const snapshot = replay([
      { eventId: 'ring', type: 'call.ringing', occurredAt: at(0), direction: 'inbound' },
      { eventId: 'end', type: 'call.ended', occurredAt: at(70), durationSeconds: 60 },
    ]);
    assert.equal(snapshot.disposition, 'missed');
    applyCallEvent(snapshot, { eventId: 'answer', type: 'call.answered', occurredAt: at(10) });
    assert.equal(snapshot.disposition, 'answered');
    assert.equal(snapshot.waitSeconds, 10);
  });

  it('keeps the earliest report of a time and merges analytics', () => {
    const snapshot = replay([
      { eventId: 'ring-late', type: 'call.ringing', occurredAt: at(3) },
      { eventId: 'ring-early', type: 'call.started', occurredAt: at(1) },
      { eventId: 'a1', type: 'call.analytics', occurredAt: at(100), analytics: { satisfaction: 2, metrics: { talk: 1 } } },
      { eventId: 'a2', type: 'call.analytics', occurredAt: at(101), analytics: { resolved: false, metrics: { hold: 2 } } },
    ]);
    assert.equal(snapshot.startedAt, at(1));
    assert.deepEqual(snapshot.analytics, { satisfaction: 2, resolved: false, metrics: { talk: 1, hold: 2 } });
  });

  it('closes a call nobody ended, by timeout, with what is known', () => {
    const snapshot = replay([answeredCall[0] as CallEvent, answeredCall[1] as CallEvent]);
    closeByTimeout(snapshot, at(3600));
    assert.equal(snapshot.status, 'ended');
    assert.equal(snapshot.endReason, 'timeout');
    assert.equal(snapshot.disposition, 'answered');
  });

  it('orders a batch by occurrence, keeping arrival order on ties', () => {
    const same = at(5);
    const batch: CallEvent[] = [
      { eventId: 'b', type: 'call.answered', occurredAt: same },
      { eventId: 'x', type: 'call.ringing', occurredAt: at(0) },
      { eventId: 'a', type: 'call.answered', occurredAt: same },
    ];
    assert.deepEqual(byOccurrence(batch).map((event) => event.eventId), ['x', 'b', 'a']);
  });
});
