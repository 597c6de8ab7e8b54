import assert from 'node:assert/strict';
import { Changes, afterSent, applyLeadEvent, dueStep, initialLeadState } from '../../shared/lead-plan.js';
import { inCausalOrder } from '../../shared/lead-timeline.js';
import { leadPolicySchema } from '../../shared/leads.js';
import type { TimelineEntry } from '../../shared/leads.js';

const policy = leadPolicySchema.parse({});
// Monday 23 Nov 2026, 10:00 in New York, with the milliseconds a workflow's clock has.
const sentAt = Date.parse('2026-11-23T15:00:00.437Z');
const iso = (ms: number): string => new Date(ms).toISOString();
/** WhatsApp's times are whole seconds. */
const whatsappTime = (ms: number): string => iso(Math.floor(ms / 1000) * 1000);

/** A status entry as ingestion writes it on the webhook's arrival. */
function status(kind: 'delivered' | 'read' | 'failed', messageId: string, at: string, key?: string): TimelineEntry {
  return { entryKey: `status:${messageId}:${kind}`, at, kind, cause: `WhatsApp status ${kind}`, detail: { messageId, ...(key ? { key } : {}) } };
}

/** What the workflow journals for a welcome sent at `sentAt` as `messageId` (scheduled, sent, what follows), from the planner itself. */
function welcomeSent(messageId: string): TimelineEntry[] {
  const state = initialLeadState('demo', 'L1', 'lead:demo:L1', 'America/New_York', sentAt - 2_000);
  const armed = new Changes(sentAt - 2_000);
  applyLeadEvent(state, { eventId: 'c1', type: 'lead.created', occurredAt: iso(sentAt - 2_000), profile: { phone: '+14155550100' } }, policy, sentAt - 2_000, armed);
  const step = dueStep(state, sentAt) ?? assert.fail('the welcome is due');
  const sent = new Changes(sentAt);
  sent.note({ entryKey: `sent:${step.key}`, kind: 'sent', flow: step.flow, step: step.step, cause: step.cause, detail: { messageId, as: 'template' } });
  afterSent(state, step, policy, sentAt, sent, messageId);
  return [...armed.timeline, ...sent.timeline];
}

/** Stored order: time, then insertion (the id), as db/leads.ts reads it before ordering. */
const stored = (entries: TimelineEntry[]): TimelineEntry[] =>
  entries.map((entry, id) => ({ entry, id })).sort((a, b) => Date.parse(a.entry.at) - Date.parse(b.entry.at) || a.id - b.id).map(({ entry }) => entry);

const stagesOf = (entries: TimelineEntry[], messageId: string, key: string): string[] =>
  entries.filter((entry) => entry.entryKey === `scheduled:${key}` || entry.entryKey === `sent:${key}` || entry.detail?.messageId === messageId || entry.kind === 'replied').map((entry) => entry.kind);

describe('lead timeline in causal order', () => {
  it('lists a message scheduled, sent, delivered, read, then the reply, though WhatsApp timed the statuses and the reply in the second of the send', () => {
    const entries = [
      ...welcomeSent('wamid.1'),
      // The webhook can even come before the workflow journals the send: insertion order does not help.
      status('read', 'wamid.1', whatsappTime(sentAt), 'welcome:message'),
      status('delivered', 'wamid.1', whatsappTime(sentAt), 'welcome:message'),
      { entryKey: 'event:wa:in1', at: whatsappTime(sentAt), kind: 'replied', cause: 'whatsapp.reply', detail: { eventId: 'wa:in1' } } satisfies TimelineEntry,
    ];
    assert.deepEqual(stagesOf(stored(entries), 'wamid.1', 'welcome:message'), ['scheduled', 'read', 'delivered', 'replied', 'sent'], 'by stored time alone the statuses and the reply come before the send');

    const ordered = inCausalOrder(stored(entries));
    assert.deepEqual(stagesOf(ordered, 'wamid.1', 'welcome:message'), ['scheduled', 'sent', 'delivered', 'read', 'replied']);
    const at = ordered.map((entry) => Date.parse(entry.at));
    assert.deepEqual(at, [...at].sort((a, b) => a - b), 'times never go backwards');
    const read = ordered.find((entry) => entry.kind === 'read');
    assert.equal(read?.at, iso(sentAt), 'shown at the time of the stage before it');
    assert.equal(read?.reportedAt, whatsappTime(sentAt), "WhatsApp's own time is kept");
    assert.equal(ordered.find((entry) => entry.kind === 'sent')?.reportedAt, undefined, 'entries in order keep their time');
    // What the send armed at that instant stays with it, in the order the workflow noted it.
    const sentIndex = ordered.findIndex((entry) => entry.kind === 'sent');
    assert.deepEqual(ordered.slice(sentIndex, sentIndex + 5).map((entry) => entry.kind), ['sent', 'stage', 'scheduled', 'scheduled', 'scheduled']);
  });

  it('finds the message of a status that names no step by the id the send went out as, and orders each message on its own', () => {
    const first = welcomeSent('wamid.1');
    const second: TimelineEntry[] = [{ entryKey: 'sent:follow_up:1', at: iso(sentAt + 5_000), kind: 'sent', flow: 'follow_up', step: '1', cause: 'follow-up 1', detail: { messageId: 'wamid.2' } }];
    const entries = [...first, ...second, status('delivered', 'wamid.2', whatsappTime(sentAt + 5_000)), status('delivered', 'wamid.1', iso(sentAt + 1_000))];
    const ordered = inCausalOrder(stored(entries));
    const kinds = ordered.filter((entry) => entry.kind === 'sent' || entry.kind === 'delivered').map((entry) => `${entry.kind}:${String(entry.detail?.messageId)}`);
    assert.deepEqual(kinds, ['sent:wamid.1', 'delivered:wamid.1', 'sent:wamid.2', 'delivered:wamid.2']);
    assert.equal(ordered.find((entry) => entry.entryKey === 'status:wamid.1:delivered')?.reportedAt, undefined, 'a status after its send keeps its time');
  });

  it('a status at the same instant as unrelated entries comes before them; a status with no send journaled yet keeps its own time', () => {
    const reply: TimelineEntry = { entryKey: 'event:wa:in1', at: iso(sentAt + 3_000), kind: 'replied', cause: 'whatsapp.reply' };
    const stage: TimelineEntry = { entryKey: 'stage:engaged:1:1', at: iso(sentAt + 3_000), kind: 'stage', cause: 'whatsapp.reply' };
    const orphan = status('read', 'wamid.9', iso(sentAt - 60_000), 'follow_up:9');
    const ordered = inCausalOrder(stored([...welcomeSent('wamid.1'), reply, stage, status('read', 'wamid.1', iso(sentAt + 3_000), 'welcome:message'), orphan]));
    assert.deepEqual(ordered.slice(-3).map((entry) => entry.kind), ['read', 'replied', 'stage']);
    assert.equal(ordered[0], orphan);
  });

  it('a failure WhatsApp reports in the second of the send comes after it', () => {
    const ordered = inCausalOrder(stored([...welcomeSent('wamid.1'), status('failed', 'wamid.1', whatsappTime(sentAt), 'welcome:message')]));
    const kinds = ordered.map((entry) => entry.kind);
    assert.ok(kinds.indexOf('failed') > kinds.indexOf('sent'), kinds.join());
  });
});
