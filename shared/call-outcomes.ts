/**
 * Which outcome actions a finished call calls for: ticket, Slack alerts, follow-up e-mail.
 * Pure and deterministic; the workflow runs each chosen action once.
 */
import type { CallActions, CallPolicy, CallSnapshot } from './calls.js';

export type SlackTrigger = CallActions['slack'][number]['trigger'];
export type EmailTemplate = NonNullable<CallActions['email']>['template'];
export type TicketPriority = 'low' | 'normal' | 'high' | 'urgent';

export interface TicketDraft {
  title: string;
  description: string;
  priority: TicketPriority;
  issueType?: string;
}

export interface OutcomeDecision {
  ticket?: TicketDraft;
  slack: SlackTrigger[];
  email?: EmailTemplate;
}

/** Resolved if analytics say so, else the manager's result form, else unknown. */
export function resolutionOf(snapshot: CallSnapshot): boolean | undefined {
  if (snapshot.analytics?.resolved !== undefined) return snapshot.analytics.resolved;
  if (snapshot.result?.outcome === 'resolved') return true;
  if (snapshot.result?.outcome === 'unresolved' || snapshot.result?.outcome === 'callback_requested') return false;
  return undefined;
}

function priorityOf(snapshot: CallSnapshot): TicketPriority {
  const satisfaction = snapshot.analytics?.satisfaction;
  if (satisfaction !== undefined && satisfaction <= 1) return 'urgent';
  switch (snapshot.analytics?.sentiment) {
    case 'negative':
      return 'high';
    case 'positive':
      return 'low';
    default:
      return 'normal';
  }
}

export function draftTicket(snapshot: CallSnapshot): TicketDraft {
  const issueType = snapshot.analytics?.issueType;
  const summary = snapshot.analytics?.summary ?? snapshot.summary ?? snapshot.result?.comment;
  return {
    title: issueType ? `${issueType} (unresolved call)` : 'Unresolved call',
    description: summary ?? 'The call ended without a resolution. No transcript summary was provided.',
    priority: priorityOf(snapshot),
    ...(issueType ? { issueType } : {}),
  };
}

export function decideOutcome(snapshot: CallSnapshot, policy: CallPolicy): OutcomeDecision {
  const resolved = resolutionOf(snapshot);
  const satisfaction = snapshot.analytics?.satisfaction;
  const answered = snapshot.disposition === 'answered';
  const decision: OutcomeDecision = { slack: [] };

  if (policy.tickets.enabled && answered && resolved === false) decision.ticket = draftTicket(snapshot);

  const transferRequested = snapshot.analytics?.transferRequested === true || snapshot.variables?.transfer_requested === true;
  if (policy.slack.transferRequested && transferRequested) decision.slack.push('transfer_requested');
  if (satisfaction !== undefined && satisfaction <= policy.slack.lowSatisfactionAtOrBelow) decision.slack.push('low_satisfaction');
  if (policy.slack.vip && snapshot.enrichment?.vip === true) decision.slack.push('vip');

  if (policy.email.enabled && answered) {
    if (satisfaction !== undefined && satisfaction <= 2) decision.email = 'apology_escalation';
    else if (resolved === false) decision.email = 'additional_resources';
    else if (resolved === true && satisfaction !== undefined && satisfaction >= 4) decision.email = 'thank_you';
  }
  return decision;
}
