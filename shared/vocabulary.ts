/**
 * Deterministic ids, names and the few checks the workflows need at run time. Free of zod on
 * purpose: every workflow the worker creates or replays evaluates the bundle's modules anew, and
 * building zod schemas there cost ~10 ms and memory per workflow (see BENCHMARKS.md). The zod
 * schemas in calls.ts and leads.ts build on these.
 */

export const callProviders = ['pbx', 'twilio', 'voice-ai'] as const;
export type CallProvider = (typeof callProviders)[number];

export const leadStages = ['new', 'contacted', 'engaged', 'booked', 'attended', 'no_show', 'won', 'lost', 'opted_out', 'dormant'] as const;
export const flowNames = ['welcome', 'follow_up', 'booking_confirmation', 'reminder', 'no_show', 'reschedule', 'cancellation', 'post_meeting', 'rewarm', 'missed_call'] as const;

/** Public id of a call: provider plus the provider's own call id. */
export function callIdOf(provider: CallProvider, providerCallId: string): string {
  return `${provider}:${providerCallId}`;
}

export function parseCallId(callId: string): { provider: CallProvider; providerCallId: string } | undefined {
  const separator = callId.indexOf(':');
  if (separator <= 0) return undefined;
  const provider = callProviders.find((name) => name === callId.slice(0, separator));
  const providerCallId = callId.slice(separator + 1);
  if (provider === undefined || providerCallId === '') return undefined;
  return { provider, providerCallId };
}

/** Deterministic workflow id: every event of one call, from any source, reaches the same workflow. */
export function callWorkflowId(tenantId: string, callId: string): string {
  return `call:${tenantId}:${callId}`;
}

export function leadWorkflowId(tenantId: string, leadId: string): string {
  return `lead:${tenantId}:${leadId}`;
}

export function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}
