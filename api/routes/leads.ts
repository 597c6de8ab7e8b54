/**
 * Operator routes for leads: the current flow state, the full timeline, and interventions. The
 * interventions are Temporal updates with validators, the same ones the Web UI can send.
 */
import { randomUUID } from 'node:crypto';
import express, { Router } from 'express';
import type { Request, Response } from 'express';
import { WorkflowNotFoundError } from '@temporalio/common';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import type { Client, Connection, WorkflowHandle } from '@temporalio/client';
import { z } from 'zod';
import type { AppConfig } from '../../config/load.js';
import { senderRoutes } from '../../config/senders.js';
import { isSuppressed, leadTimeline, loadLead } from '../../db/leads.js';
import type { Db } from '../../db/pool.js';
import type { Logger } from '../../observability/logger.js';
import { leadView } from '../../shared/lead-plan.js';
import type { LeadView } from '../../shared/lead-plan.js';
import { flowNames, leadWorkflowId, meetingSchema } from '../../shared/leads.js';
import { defaultPreviewDays, hypotheticalLeadOf, hypotheticalLeadState, previewLead, previewQueryFields, previewRequestSchema, previewWindow } from '../../shared/lead-preview.js';
import { actionReasonMaxLength, senderNameMaxLength, stepKeyMaxLength } from '../../shared/lead-actions.js';
import { cancelFlowUpdate, changeTimeZoneUpdate, leadStateQuery, markBookedUpdate, pauseUpdate, reassignSenderUpdate, resumeUpdate, sendNowUpdate, skipStepUpdate } from '../../workflows/lead.js';
import { operatorOf, requireOperator } from '../auth.js';
import { sendRejection } from '../rejection-response.js';
import { Rejection, fieldErrors, invalidPayload, refuseUnstorable } from '../../ingestion/rejections.js';
import { leadIdParamSchema, missingIsRequired, timeZoneNameSchema } from '../validation.js';

export interface LeadsRouterDeps {
  config: AppConfig;
  db: Db;
  logger: Logger;
  temporal: Client;
  temporalConnection: Connection;
}

// Who acted is not the body's to say: the timeline names the operator of the credential (api/auth.ts),
// and a body that names one is refused like any other unknown field.
const operatorFields = { reason: z.string().max(actionReasonMaxLength).optional() };
const stepSchema = z.string().min(1).max(stepKeyMaxLength);

/** Strict like the workflow's validators (shared/lead-actions.ts): unknown fields are refused, not dropped. */
export const leadActionSchema = z.discriminatedUnion('action', [
  z.strictObject({ action: z.literal('pause'), ...operatorFields }),
  z.strictObject({ action: z.literal('resume'), ...operatorFields }),
  z.strictObject({ action: z.literal('skip_step'), step: stepSchema, ...operatorFields }),
  z.strictObject({ action: z.literal('send_now'), step: stepSchema, ...operatorFields }),
  z.strictObject({ action: z.literal('change_time_zone'), timeZone: timeZoneNameSchema, ...operatorFields }),
  z.strictObject({ action: z.literal('cancel_flow'), flow: z.enum(flowNames), ...operatorFields }),
  z.strictObject({ action: z.literal('mark_booked'), meeting: z.strictObject(meetingSchema.shape), ...operatorFields }),
  z.strictObject({ action: z.literal('reassign_sender'), sender: z.string().min(1).max(senderNameMaxLength).describe("One of the tenant's WhatsApp numbers: `default` or a name under `whatsapp.senders`"), ...operatorFields }),
]);
export type LeadAction = z.infer<typeof leadActionSchema>;

const previewQuery = previewQueryFields();
export const leadPreviewQuerySchema = z.strictObject({ days: z.coerce.number().pipe(previewQuery.days).default(defaultPreviewDays), from: previewQuery.from });
export const leadPreviewRequestSchema = previewRequestSchema(timeZoneNameSchema);

/**
 * Runs the API action as the workflow's update, with its typed argument and the credential's operator.
 * The update answers the lead's view, or fails when its validator refuses the action.
 */
function executeAction(handle: WorkflowHandle, action: LeadAction, operator: string, updateId: string): Promise<LeadView> {
  const by = { operator, ...(action.reason !== undefined ? { reason: action.reason } : {}) };
  switch (action.action) {
    case 'pause':
      return handle.executeUpdate(pauseUpdate, { args: [by], updateId });
    case 'resume':
      return handle.executeUpdate(resumeUpdate, { args: [by], updateId });
    case 'skip_step':
      return handle.executeUpdate(skipStepUpdate, { args: [{ ...by, step: action.step }], updateId });
    case 'send_now':
      return handle.executeUpdate(sendNowUpdate, { args: [{ ...by, step: action.step }], updateId });
    case 'change_time_zone':
      return handle.executeUpdate(changeTimeZoneUpdate, { args: [{ ...by, timeZone: action.timeZone }], updateId });
    case 'cancel_flow':
      return handle.executeUpdate(cancelFlowUpdate, { args: [{ ...by, flow: action.flow }], updateId });
    case 'mark_booked':
      return handle.executeUpdate(markBookedUpdate, { args: [{ ...by, meeting: action.meeting }], updateId });
    case 'reassign_sender':
      return handle.executeUpdate(reassignSenderUpdate, { args: [{ ...by, sender: action.sender }], updateId });
  }
}

export function createLeadsRouter(deps: LeadsRouterDeps): Router {
  const { db, temporal } = deps;
  const router = Router();
  const operator = requireOperator(deps);
  const actingOperator = requireOperator(deps, 'operator');
  /** `400 invalid_lead_id` for a lead id no CRM event can carry (control characters, too long). */
  const leadIdCheck = (req: Request<{ tenant: string; leadId: string }>, res: Response, next: () => void): void => {
    if (leadIdParamSchema.safeParse(req.params.leadId).success) return next();
    res.status(400).json({ error: 'invalid_lead_id', message: 'leadId must be 1 to 200 characters without control characters' });
  };

  /** The running workflow's view, else the journaled one (the flow has ended), else nothing. */
  const currentView = async (tenantId: string, leadId: string): Promise<LeadView | undefined> => {
    try {
      return await deps.temporalConnection.withDeadline(Date.now() + 3_000, () =>
        temporal.workflow.getHandle(leadWorkflowId(tenantId, leadId)).query(leadStateQuery),
      );
    } catch {
      const journaled = await loadLead(db, tenantId, leadId);
      return journaled ? leadView(journaled) : undefined;
    }
  };

  router.get('/api/:tenant/leads/:leadId', operator, leadIdCheck, async (req: Request<{ tenant: string; leadId: string }>, res) => {
    const view = await currentView(req.params.tenant, req.params.leadId);
    if (!view) return void res.status(404).json({ error: 'lead_not_found', message: 'No such lead' });
    res.json({ lead: view, workflowId: leadWorkflowId(req.params.tenant, req.params.leadId) });
  });

  router.get('/api/:tenant/leads/:leadId/timeline', operator, leadIdCheck, async (req: Request<{ tenant: string; leadId: string }>, res) => {
    const entries = await leadTimeline(db, req.params.tenant, req.params.leadId);
    if (entries.length === 0 && !(await loadLead(db, req.params.tenant, req.params.leadId))) {
      return void res.status(404).json({ error: 'lead_not_found', message: 'No such lead' });
    }
    res.json({ leadId: req.params.leadId, timeline: entries });
  });

  /** Previews are answered from the lead's journaled state: the workflow writes it after every change. */
  const tenantPolicy = (tenantId: string) => {
    const tenant = deps.config.tenants[tenantId];
    return tenant ? { policy: tenant.leads, company: tenant.displayName, noSender: !tenant.whatsapp, senders: tenant.whatsapp ? senderRoutes(tenant.whatsapp) : [] } : undefined;
  };

  router.get('/api/:tenant/leads/:leadId/preview', operator, leadIdCheck, async (req: Request<{ tenant: string; leadId: string }>, res) => {
    const query = leadPreviewQuerySchema.safeParse(req.query, { error: missingIsRequired });
    if (!query.success) {
      const fields = fieldErrors(query.error.issues);
      return sendRejection(res, invalidPayload('a preview query', fields));
    }
    const tenant = tenantPolicy(req.params.tenant);
    const state = tenant ? await loadLead(db, req.params.tenant, req.params.leadId) : undefined;
    if (!tenant || !state) return void res.status(404).json({ error: 'lead_not_found', message: 'No such lead' });
    const suppressed = state.profile.phone ? await isSuppressed(db, req.params.tenant, state.profile.phone) : false;
    res.json({ preview: previewLead(state, tenant.policy, tenant.company, previewWindow(query.data.days, query.data.from), { suppressed, noSender: tenant.noSender, senders: tenant.senders }), basedOn: { journalVersion: state.version } });
  });

  router.post('/api/:tenant/lead-preview', operator, express.json({ limit: '32kb' }), (req: Request<{ tenant: string }>, res) => {
    refuseUnstorable(req.body);
    const parsed = leadPreviewRequestSchema.safeParse(req.body, { error: missingIsRequired });
    if (!parsed.success) {
      const fields = fieldErrors(parsed.error.issues);
      return sendRejection(res, invalidPayload('a lead to preview', fields));
    }
    const tenant = tenantPolicy(req.params.tenant);
    if (!tenant) return sendRejection(res, new Rejection('unknown_tenant', 'No such tenant'));
    const { lead, days, from } = parsed.data;
    const window = previewWindow(days, from);
    const state = hypotheticalLeadState(req.params.tenant, hypotheticalLeadOf(lead), tenant.policy, window.from);
    res.json({ preview: previewLead(state, tenant.policy, tenant.company, window, { noSender: tenant.noSender, senders: tenant.senders }) });
  });

  router.post('/api/:tenant/leads/:leadId/actions', actingOperator, leadIdCheck, express.json({ limit: '32kb' }), async (req: Request<{ tenant: string; leadId: string }>, res) => {
    refuseUnstorable(req.body);
    const parsed = leadActionSchema.safeParse(req.body, { error: missingIsRequired });
    if (!parsed.success) {
      const fields = fieldErrors(parsed.error.issues);
      if (fields.operator) fields.operator = "unknown field: the operator is the credential's, not the body's to name";
      return sendRejection(res, invalidPayload('a lead action', fields));
    }
    // A retried request with the same Idempotency-Key gets the first attempt's outcome.
    const updateId = typeof req.headers['idempotency-key'] === 'string' ? req.headers['idempotency-key'].slice(0, 200) : randomUUID();
    try {
      const handle = temporal.workflow.getHandle(leadWorkflowId(req.params.tenant, req.params.leadId));
      const view = await deps.temporalConnection.withDeadline(Date.now() + 10_000, () => executeAction(handle, parsed.data, operatorOf(res).name, updateId));
      res.json({ lead: view, updateId });
    } catch (error) {
      if (error instanceof WorkflowNotFoundError) return void res.status(404).json({ error: 'lead_not_found', message: 'No running flow for this lead' });
      if (error instanceof WorkflowUpdateFailedError) {
        return void res.status(422).json({ error: 'action_rejected', message: error.cause?.message ?? error.message });
      }
      deps.logger.warn({ err: error, action: parsed.data.action }, 'lead action could not be delivered');
      res.status(503).set('Retry-After', '5').json({ error: 'temporarily_unavailable', message: 'Temporal did not answer; retry with the same Idempotency-Key.' });
    }
  });

  return router;
}
