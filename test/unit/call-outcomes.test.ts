import assert from 'node:assert/strict';
import { decideOutcome, draftTicket } from '../../shared/call-outcomes.js';
import { initialSnapshot } from '../../shared/call-state.js';
import { callPolicySchema } from '../../shared/calls.js';
import type { CallSnapshot } from '../../shared/calls.js';

const policy = callPolicySchema.parse({});

function answered(overrides: Partial<CallSnapshot>): CallSnapshot {
  return { ...initialSnapshot('demo', 'voice-ai', 'c1'), status: 'ended', disposition: 'answered', ...overrides };
}

describe('outcome actions', () => {
  const table: Array<{ name: string; call: Partial<CallSnapshot>; ticket: boolean; slack: string[]; email?: string }> = [
    { name: 'satisfied and resolved → thank-you', call: { analytics: { satisfaction: 5, resolved: true } }, ticket: false, slack: [], email: 'thank_you' },
    { name: 'unsatisfied → apology + escalation, low-satisfaction alert', call: { analytics: { satisfaction: 2, resolved: true } }, ticket: false, slack: ['low_satisfaction'], email: 'apology_escalation' },
    { name: 'unresolved → ticket + resources', call: { analytics: { satisfaction: 3, resolved: false } }, ticket: true, slack: [], email: 'additional_resources' },
    { name: 'unresolved and unhappy → ticket, apology, alert', call: { analytics: { satisfaction: 1, resolved: false } }, ticket: true, slack: ['low_satisfaction'], email: 'apology_escalation' },
    { name: 'transfer requested → support alert', call: { analytics: { transferRequested: true, resolved: true, satisfaction: 4 } }, ticket: false, slack: ['transfer_requested'], email: 'thank_you' },
    { name: 'VIP caller → vip alert', call: { enrichment: { vip: true, previousInteractions: [] } }, ticket: false, slack: ['vip'] },
    { name: "manager's form says unresolved → ticket", call: { result: { outcome: 'unresolved' } }, ticket: true, slack: [], email: 'additional_resources' },
    { name: 'nothing known → nothing', call: {}, ticket: false, slack: [] },
    { name: 'missed call → no ticket, no e-mail', call: { disposition: 'missed', analytics: { resolved: false } }, ticket: false, slack: [] },
  ];
  for (const row of table) {
    it(row.name, () => {
      const decision = decideOutcome(answered(row.call), policy);
      assert.equal(decision.ticket !== undefined, row.ticket);
      assert.deepEqual(decision.slack, row.slack);
      assert.equal(decision.email, row.email);
    });
  }

  it('drafts the ticket: title from the issue type, description from the summary, priority from sentiment', () => {
    const ticket = draftTicket(answered({ analytics: { issueType: 'Billing', summary: 'Double charge', sentiment: 'negative', resolved: false } }));
    assert.deepEqual(ticket, { title: 'Billing (unresolved call)', description: 'Double charge', priority: 'high', issueType: 'Billing' });
    assert.equal(draftTicket(answered({ analytics: { sentiment: 'positive' } })).priority, 'low');
    assert.equal(draftTicket(answered({ analytics: { satisfaction: 1, sentiment: 'neutral' } })).priority, 'urgent');
  });

  it('follows the tenant rules: disabled tickets, e-mail and alert thresholds', () => {
    const strict = callPolicySchema.parse({ tickets: { enabled: false }, email: { enabled: false }, slack: { lowSatisfactionAtOrBelow: 3 } });
    const decision = decideOutcome(answered({ analytics: { satisfaction: 3, resolved: false } }), strict);
    assert.equal(decision.ticket, undefined);
    assert.equal(decision.email, undefined);
    assert.deepEqual(decision.slack, ['low_satisfaction']);
  });
});
