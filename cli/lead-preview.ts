/**
 * `lead-preview`: the flow preview (dry run) in a terminal, of a lead from its journaled state or of
 * a hypothetical one. The same planning code as the workflow and the API (shared/lead-preview.ts).
 */
import { parseArgs } from 'node:util';
import type { CliContext } from './main.js';
import { senderRoutes } from '../config/senders.js';
import { isSuppressed, loadLead } from '../db/leads.js';
import { hypotheticalLeadOf, hypotheticalLeadState, previewLead, previewRequestSchema, previewWindow } from '../shared/lead-preview.js';
import type { LeadPreview } from '../shared/lead-preview.js';
import { leadTimeZoneSchema } from '../shared/leads.js';
import { table } from './operations.js';

export const leadPreviewUsage =
  'lead-preview --tenant <id> (--lead <lead id> | --time-zone <IANA zone> [--stage <stage>] [--meeting-at <ISO>] [--meeting-ends <ISO>] [--last-inbound-at <ISO>] [--name <name>] [--language <code>] [--country <ISO 3166>] [--team <team>] [--owner <owner>]) [--days <1-90>] [--from <ISO>] [--json]';

export class LeadPreviewUsageError extends Error {}

const hypotheticalRequest = previewRequestSchema(leadTimeZoneSchema);

export async function leadPreviewCommand(context: CliContext, args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      tenant: { type: 'string' }, lead: { type: 'string' }, 'time-zone': { type: 'string' }, stage: { type: 'string' }, 'meeting-at': { type: 'string' }, 'meeting-ends': { type: 'string' },
      'last-inbound-at': { type: 'string' }, name: { type: 'string' }, language: { type: 'string' }, country: { type: 'string' }, team: { type: 'string' }, owner: { type: 'string' }, days: { type: 'string' }, from: { type: 'string' }, json: { type: 'boolean' },
    },
  });
  const tenant = values.tenant ? context.config.tenants[values.tenant] : undefined;
  if (!values.tenant || !tenant) throw new LeadPreviewUsageError(values.tenant ? `no tenant "${values.tenant}" in ${context.config.configPath}` : '--tenant is required');
  if ((values.lead === undefined) === (values['time-zone'] === undefined)) throw new LeadPreviewUsageError('give either --lead (a lead that exists) or --time-zone (a hypothetical lead)');
  // The hypothetical lead, the days and the start go through the API's own rules.
  const request = hypotheticalRequest.safeParse({
    lead: {
      timeZone: values['time-zone'] ?? 'UTC',
      ...(values.stage ? { stage: values.stage } : {}),
      ...(values.name ? { name: values.name } : {}),
      ...(values.language ? { language: values.language } : {}),
      ...(values.country ? { country: values.country } : {}),
      ...(values.team ? { team: values.team } : {}),
      ...(values.owner ? { owner: values.owner } : {}),
      ...(values['meeting-at'] ? { meeting: { startsAt: values['meeting-at'], ...(values['meeting-ends'] ? { endsAt: values['meeting-ends'] } : {}) } } : {}),
      ...(values['last-inbound-at'] ? { lastInboundAt: values['last-inbound-at'] } : {}),
    },
    ...(values.days ? { days: Number(values.days) } : {}),
    ...(values.from ? { from: values.from } : {}),
  });
  if (!request.success) throw new LeadPreviewUsageError(request.error.issues.map((issue) => `--${optionOf(issue.path)}: ${issue.message}`).join('; '));
  const window = previewWindow(request.data.days, request.data.from);

  let preview: LeadPreview;
  const senders = tenant.whatsapp ? senderRoutes(tenant.whatsapp) : [];
  if (values.lead) {
    const state = await loadLead(context.db, values.tenant, values.lead);
    if (!state) {
      context.out(`no lead ${values.lead} in tenant ${values.tenant}`);
      return 1;
    }
    const suppressed = state.profile.phone ? await isSuppressed(context.db, values.tenant, state.profile.phone) : false;
    preview = previewLead(state, tenant.leads, tenant.displayName, window, { suppressed, noSender: !tenant.whatsapp, senders });
  } else {
    preview = previewLead(hypotheticalLeadState(values.tenant, hypotheticalLeadOf(request.data.lead), tenant.leads, window.from), tenant.leads, tenant.displayName, window, { noSender: !tenant.whatsapp, senders });
  }
  if (values.json) {
    context.out(JSON.stringify(preview, null, 2));
    return 0;
  }
  if (preview.paused) context.out('the lead is paused: nothing is sent until an operator resumes it');
  context.out(`${preview.sends.length} send(s) from ${preview.from} to ${preview.until}, on the lead's clock (${preview.timeZone})${preview.truncated ? '; more are planned after that' : ''}`);
  context.out(
    table([
      ['when (lead)', 'step', 'message', 'from', 'guards'],
      ...preview.sends.map((send) => {
        // A fallback names the lead's language it stands in for.
        const language = `${send.language.language}${send.language.requested ? `, no ${send.language.requested} version` : ''}`;
        const message = send.channel === 'sms' ? `SMS (${language})` : send.message.type === 'template' ? `template ${send.message.template.name} (${language})` : `free text (${language})`;
        const from = send.channel === 'sms' ? 'Twilio' : send.sender ? `${send.sender.name} (${send.sender.rule})` : '';
        return [send.local, send.key, message, from, send.guards.map((guard) => guard.guard).join(', ')];
      }),
    ]),
  );
  if (preview.skips.length > 0) context.out(`\nskipped:\n${table(preview.skips.map((skip) => [skip.local, skip.key, skip.reason, skip.cause]))}`);
  context.out(`\nassuming ${preview.assumptions.join('; ')}`);
  return 0;
}

const optionNames: Record<string, string> = { timeZone: 'time-zone', startsAt: 'meeting-at', endsAt: 'meeting-ends', lastInboundAt: 'last-inbound-at' };
const optionOf = (path: readonly PropertyKey[]): string => {
  const last = String(path[path.length - 1] ?? '');
  return optionNames[last] ?? last;
};
