import type { AppConfig } from '../config/load.js';
import type { LeadEvent } from '../shared/leads.js';
import { leadWorkflowId } from '../shared/leads.js';
import type { LeadEventBatch, LeadWorkflowInput } from '../workflows/lead.js';
// The definitions themselves, not their names spelled again: a rename cannot leave the hand-off behind.
import { leadEventsSignal, leadWorkflow } from '../workflows/lead.js';
import type { WorkflowDelivery } from './handoff.js';
import { senderRoutes } from '../config/senders.js';

/** The signalWithStart that routes a lead's events to its workflow, whoever sends them. */
export function leadDelivery(config: AppConfig, tenantId: string, leadId: string, events: LeadEvent[], source: string): WorkflowDelivery {
  const tenant = config.tenants[tenantId];
  if (!tenant) throw new Error(`unknown tenant ${tenantId}`);
  const input: LeadWorkflowInput = {
    tenantId,
    leadId,
    policy: tenant.leads,
    defaultTimeZone: tenant.timeZone,
    company: tenant.displayName,
    messagingTaskQueue: config.temporal.taskQueues.messaging,
    ...(tenant.whatsapp && Object.keys(tenant.whatsapp.senders).length > 0 ? { senders: senderRoutes(tenant.whatsapp) } : {}),
  };
  return {
    tenantId,
    source,
    workflowType: leadWorkflow.name,
    workflowId: leadWorkflowId(tenantId, leadId),
    taskQueue: config.temporal.taskQueues.leads,
    args: [input],
    signalName: leadEventsSignal.name,
    events: events satisfies LeadEventBatch['events'],
    searchAttributes: { tenant: tenantId, leadStage: 'new' },
    staticSummary: `Lead ${leadId} · ${tenant.displayName}`,
    staticDetails: [
      `**Lead** \`${leadId}\``,
      `- tenant: ${tenantId} (${tenant.displayName})`,
      `- timeline: \`GET /api/${tenantId}/leads/${encodeURIComponent(leadId)}/timeline\``,
      '- query `leadState`; updates `pause`, `resume`, `skipStep`, `sendNow`, `changeTimeZone`, `cancelFlow`, `markBooked`, `reassignSender`',
    ].join('\n'),
  };
}
