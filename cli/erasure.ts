/**
 * `npm run cli -- erase`: erases one person's data on request, found by phone number or lead id.
 * Order matters: the inbox first (so no forwarder can hand the person's events to Temporal again),
 * then the Temporal executions (deleting a running one terminates it, so no activity is scheduled
 * after that), then everything stored in PostgreSQL (db/erasure.ts says what each table keeps).
 */
import { WorkflowNotFoundError, isGrpcServiceError } from '@temporalio/client';
import type { Client } from '@temporalio/client';
import { parseArgs } from 'node:util';
import { parsePhoneNumberFromString } from 'libphonenumber-js/max';
import type { AppConfig } from '../config/load.js';
import { eraseInboxEvents, eraseStoredRows, findErasureTargets, identifierPattern, inboxWorkflowIds } from '../db/erasure.js';
import type { ErasedRows } from '../db/erasure.js';
import type { Db } from '../db/pool.js';
import { maskPhone } from '../shared/call-state.js';
import { leadWorkflowId } from '../shared/leads.js';
import { normalizePhone } from '../shared/phone.js';
import { table } from './operations.js';

export interface ErasureReport extends ErasedRows {
  inboxEventsDeleted: number;
  workflowRunsDeleted: number;
}

/** The lines `erase` prints, in order: what was done, by kind. */
export const erasureReportLabels: Array<[keyof ErasureReport, string]> = [
  ['inboxEventsDeleted', 'inbox events deleted (waiting, retried, dead letters)'],
  ['workflowRunsDeleted', 'Temporal workflow runs deleted'],
  ['callsAnonymised', 'calls anonymised (kept for reporting)'],
  ['callEventsDeleted', 'call events deleted'],
  ['recordingsDeleted', 'recordings deleted'],
  ['ledgerEntriesScrubbed', 'ledger entries scrubbed'],
  ['leadsDeleted', 'leads deleted'],
  ['timelineEntriesDeleted', 'lead timeline entries deleted'],
  ['whatsappStatusEventsDeleted', 'WhatsApp status events deleted'],
  ['suppressionsDeleted', 'opt-outs deleted'],
  ['rejectedEventsDeleted', 'rejected webhooks deleted'],
];

const grpcNotFound = 5;
const isNotFound = (error: unknown): boolean => error instanceof WorkflowNotFoundError || (isGrpcServiceError(error) && (error.code as number) === grpcNotFound);

/** The national digits of an E.164 number (what any spelling of it contains, in order). */
function nationalDigits(e164: string): string | undefined {
  return parsePhoneNumberFromString(e164)?.nationalNumber;
}

/**
 * Deletes every run of these workflows (closed runs, continued-as-new and late runs alike). A run
 * whose deletion is already under way (it no longer describes) is not counted again.
 */
async function deleteWorkflowRuns(client: Client, workflowIds: ReadonlySet<string>): Promise<number> {
  let deleted = 0;
  for (const workflowId of workflowIds) {
    const runIds = new Set<string>();
    // Visibility lists every run; ids are ours (tenant, provider and call ids), quoted unless they carry a quote.
    if (!/["'\\]/.test(workflowId)) {
      for await (const execution of client.workflow.list({ query: `WorkflowId = "${workflowId}"` })) runIds.add(execution.runId);
    }
    try {
      runIds.add((await client.workflow.getHandle(workflowId).describe()).runId);
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
    for (const runId of runIds) {
      try {
        await client.workflow.getHandle(workflowId, runId).describe();
        // A running execution is terminated first by the server itself.
        await client.workflowService.deleteWorkflowExecution({ namespace: client.options.namespace, workflowExecution: { workflowId, runId } });
        deleted++;
      } catch (error) {
        if (!isNotFound(error)) throw error;
      }
    }
  }
  return deleted;
}

/**
 * Erases a person: `phone` (E.164, already normalized) and/or `leadId`. A lead found brings its phone
 * and e-mail along (the person's calls from that phone are erased too); calls bring the e-mail the
 * voice agent collected, so refused webhooks naming it are found as well.
 */
export async function erasePerson(deps: { db: Db; client: Client }, tenantId: string, who: { phone?: string; leadId?: string }): Promise<ErasureReport> {
  const phones = new Set(who.phone ? [who.phone] : []);
  const leadIds = new Set(who.leadId ? [who.leadId] : []);
  const emails = new Set<string>();
  let targets = await findErasureTargets(deps.db, tenantId, { phones: [...phones], leadIds: [...leadIds] });
  // A lead's phone finds its calls (and other leads with that phone): look again until nothing new.
  for (let round = 0; round < 3; round++) {
    const before = phones.size + leadIds.size;
    for (const lead of targets.leads) {
      leadIds.add(lead.leadId);
      if (lead.phone) phones.add(lead.phone);
    }
    if (phones.size + leadIds.size === before) break;
    targets = await findErasureTargets(deps.db, tenantId, { phones: [...phones], leadIds: [...leadIds] });
  }
  for (const item of [...targets.calls, ...targets.leads]) if (item.email) emails.add(item.email.toLowerCase());
  const pattern = identifierPattern({
    phoneDigits: [...phones].flatMap((phone) => nationalDigits(phone) ?? []),
    emails: [...emails],
    leadIds: [...leadIds],
  });
  const workflowIds = new Set([
    ...targets.calls.map((call) => call.workflowId),
    ...targets.leads.map((lead) => lead.workflowId),
    ...[...leadIds].map((leadId) => leadWorkflowId(tenantId, leadId)),
    ...(await inboxWorkflowIds(deps.db, tenantId, pattern)),
  ]);
  const inboxEventsDeleted = await eraseInboxEvents(deps.db, tenantId, [...workflowIds], pattern);
  const workflowRunsDeleted = await deleteWorkflowRuns(deps.client, workflowIds);
  const rows = await eraseStoredRows(deps.db, tenantId, {
    callIds: targets.calls.map((call) => call.callId),
    leadIds: [...leadIds],
    phones: [...phones],
    pattern,
  });
  return { inboxEventsDeleted, workflowRunsDeleted, ...rows };
}

export class EraseUsageError extends Error {}

export const eraseUsage = 'erase --tenant <id> (--phone <number> | --lead <lead id>)';

/** The `erase` command: prints what it erased by kind, the phone masked; a repeat prints zeros. */
export async function eraseCommand(context: { config: AppConfig; db: Db; temporal: { client: Client }; out: (line: string) => void }, args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { tenant: { type: 'string' }, phone: { type: 'string' }, lead: { type: 'string' } } });
  if (!values.tenant) throw new EraseUsageError('--tenant is required');
  const tenant = context.config.tenants[values.tenant];
  if (!tenant) throw new EraseUsageError(`no tenant "${values.tenant}" in ${context.config.configPath}`);
  const tenantId = values.tenant;
  if (!values.phone && !values.lead) throw new EraseUsageError('choose whom to erase: --phone or --lead');
  let phone: string | undefined;
  if (values.phone !== undefined) {
    // The webhooks' normalization, so "+1 (415) 555-0142" and "4155550142" are the same person.
    const parsed = normalizePhone(values.phone, tenant.defaultRegion);
    if (!parsed.ok || !parsed.e164) throw new EraseUsageError('--phone is not a phone number');
    phone = parsed.e164;
  }
  const report = await erasePerson({ db: context.db, client: context.temporal.client }, tenantId, { ...(phone ? { phone } : {}), ...(values.lead ? { leadId: values.lead } : {}) });
  const whom = [phone ? `phone ${maskPhone(phone)}` : undefined, values.lead ? `lead ${values.lead}` : undefined].filter(Boolean).join(', ');
  context.out(`erased ${whom} in tenant ${tenantId}:`);
  context.out(table(erasureReportLabels.map(([key, label]) => [`  ${label}`, String(report[key])])));
  const total = erasureReportLabels.reduce((sum, [key]) => sum + report[key], 0);
  context.out(total === 0 ? 'nothing (left) to erase' : `${total} item(s) erased`);
  return 0;
}
