import type { AppConfig } from '../config/load.js';
import type { CallEvent, CallProvider } from '../shared/calls.js';
import { callIdOf, callWorkflowId } from '../shared/calls.js';
import type { CallEventBatch, CallWorkflowInput } from '../workflows/call.js';
// The definitions themselves, not their names spelled again: a rename cannot leave the hand-off behind.
import { callEventsSignal, callWorkflow } from '../workflows/call.js';
import type { WorkflowDelivery } from './handoff.js';

/** The signalWithStart that routes a call's events to its workflow, whoever sends them. */
export function callDelivery(config: AppConfig, tenantId: string, provider: CallProvider, providerCallId: string, events: CallEvent[], source: string = provider): WorkflowDelivery {
  const tenant = config.tenants[tenantId];
  if (!tenant) throw new Error(`unknown tenant ${tenantId}`);
  const callId = callIdOf(provider, providerCallId);
  const input: CallWorkflowInput = { tenantId, provider, providerCallId, policy: tenant.calls, integrationsTaskQueue: config.temporal.taskQueues.integrations };
  const direction = events.find((event) => event.direction)?.direction;
  return {
    tenantId,
    source,
    workflowType: callWorkflow.name,
    workflowId: callWorkflowId(tenantId, callId),
    taskQueue: config.temporal.taskQueues.calls,
    args: [input],
    signalName: callEventsSignal.name,
    events: events satisfies CallEventBatch['events'],
    searchAttributes: { tenant: tenantId, callProvider: provider, callStatus: 'ringing', ...(direction ? { callDirection: direction } : {}) },
    staticSummary: `${direction ? `${direction[0]?.toUpperCase()}${direction.slice(1)} call` : 'Call'} via ${provider} · ${tenant.displayName}`,
    staticDetails: [
      `**Call** \`${callId}\``,
      `- tenant: ${tenantId} (${tenant.displayName})`,
      `- journal: \`GET /api/${tenantId}/calls/${encodeURIComponent(callId)}\``,
      `- query \`callState\` for the live state`,
    ].join('\n'),
  };
}
