/**
 * The ops CLI: `npm run cli -- <command> [options]`. Uses the same configuration as the API and
 * workers (SWITCHBOARD_CONFIG, DATABASE_URL, TEMPORAL_*).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { leadDelivery } from '../ingestion/lead-delivery.js';
import { replayRejected } from '../ingestion/replay.js';
import { startIngestion } from '../ingestion/runtime.js';
import type { Ingestion } from '../ingestion/runtime.js';
import { createApiTemporalClient } from '../workers/temporal-client.js';
import { loadConfigOrExit } from '../config/load.js';
import type { AppConfig } from '../config/load.js';
import { createPool } from '../db/pool.js';
import type { Db } from '../db/pool.js';
import { inboxBacklog, listDeadLetters, requeueDeadLetters } from '../db/inbox.js';
import { listRejected } from '../db/rejections.js';
import { createLogger } from '../observability/logger.js';
import { KommoAuthorizeUsageError, kommoAuthorize, kommoAuthorizeUsage } from './kommo-authorize.js';
import { planImport, readLegacyExport } from './legacy-import.js';
import { redriveCrmSync, stuckWork, table, timelineOf } from './operations.js';
import { EraseUsageError, eraseCommand, eraseUsage } from './erasure.js';
import { OperatorsUsageError, operators, operatorsUsage } from './operators.js';
import { LeadPreviewUsageError, leadPreviewCommand, leadPreviewUsage } from './lead-preview.js';

export interface CliContext {
  config: AppConfig;
  db: Db;
  temporal: ReturnType<typeof createApiTemporalClient>;
  out: (line: string) => void;
}

type Command = (context: CliContext, args: string[]) => Promise<number>;

const logger = createLogger({ name: 'switchboard-cli', level: 'silent' });

/**
 * The CLI commits what it hands off to the inbox like the API does, then forwards it itself before
 * exiting; what Temporal does not take stays in the inbox for the API's forwarders.
 */
async function withIngestion<T>(context: CliContext, work: (ingestion: Ingestion) => Promise<T>): Promise<{ result: T; forwarded: number; waiting: number }> {
  const ingestion = startIngestion({
    config: context.config,
    db: context.db,
    temporal: context.temporal.client,
    connection: context.temporal.connection,
    logger,
    forward: true,
    runForwarderLoop: false,
    commitDeadlineMs: 10_000,
  });
  try {
    const result = await work(ingestion);
    const forwarded = (await ingestion.forwarder?.drainOnce()) ?? 0;
    const { pending } = await inboxBacklog(context.db);
    return { result, forwarded, waiting: pending };
  } finally {
    await ingestion.stop();
  }
}

const stillWaiting = (waiting: number): string => (waiting > 0 ? ` (${waiting} event(s) still wait in the inbox: is Temporal reachable? The API forwards them once it is)` : '');

function tenantOf(config: AppConfig, tenantId: string | undefined): string {
  if (!tenantId) throw new UsageError('--tenant is required');
  if (!config.tenants[tenantId]) throw new UsageError(`no tenant "${tenantId}" in ${config.configPath}`);
  return tenantId;
}

class UsageError extends Error {}

const commands: Record<string, { usage: string; run: Command }> = {
  'import-leads': {
    usage: 'import-leads --tenant <id> --file <export.csv|export.json> [--format csv|json] [--dry-run]',
    async run(context, args) {
      const { values } = parseArgs({ args, options: { tenant: { type: 'string' }, file: { type: 'string' }, format: { type: 'string' }, 'dry-run': { type: 'boolean' } } });
      const tenantId = tenantOf(context.config, values.tenant);
      if (!values.file) throw new UsageError('--file is required');
      const format = values.format ?? (path.extname(values.file).toLowerCase() === '.json' ? 'json' : 'csv');
      if (format !== 'csv' && format !== 'json') throw new UsageError('--format must be csv or json');
      const tenant = context.config.tenants[tenantId];
      if (!tenant) throw new UsageError(`no tenant "${tenantId}"`);
      const records = readLegacyExport(await readFile(values.file, 'utf8'), format);
      const { leads, problems } = planImport(records, tenant, new Date());
      for (const problem of problems) context.out(`row ${problem.row}${problem.leadId ? ` (${problem.leadId})` : ''}: ${problem.reason}`);
      if (values['dry-run']) {
        context.out(`dry run: ${leads.length} lead(s) would be imported, ${problems.length} problem(s)`);
        return problems.some((problem) => !problem.reason.endsWith('ignored')) ? 1 : 0;
      }
      const { waiting } = await withIngestion(context, async ({ handOff }) => {
        for (const lead of leads) await handOff(leadDelivery(context.config, tenantId, lead.leadId, [lead.event], 'cli'));
      });
      const byStage = new Map<string, number>();
      for (const lead of leads) byStage.set(lead.stage, (byStage.get(lead.stage) ?? 0) + 1);
      context.out(`imported ${leads.length} lead(s): ${[...byStage].map(([stage, count]) => `${stage} ${count}`).join(', ') || 'none'}${stillWaiting(waiting)}`);
      return problems.some((problem) => !problem.reason.endsWith('ignored')) ? 1 : 0;
    },
  },
  rejected: {
    usage: 'rejected --tenant <id> [--reason <reason>] [--all] [--limit <n>]',
    async run(context, args) {
      const { values } = parseArgs({ args, options: { tenant: { type: 'string' }, reason: { type: 'string' }, all: { type: 'boolean' }, limit: { type: 'string' } } });
      const rows = await listRejected(context.db, { tenantId: tenantOf(context.config, values.tenant), ...(values.reason ? { reason: values.reason } : {}), includeReplayed: values.all === true, limit: Number(values.limit ?? 100) });
      context.out(table([['id', 'received', 'source', 'status', 'reason', 'replayed'], ...rows.map((row) => [String(row.id), row.received_at.toISOString(), row.source, String(row.http_status), row.reason, row.replay_result ?? ''])]));
      context.out(`${rows.length} rejected event(s)`);
      return 0;
    },
  },
  'replay-rejected': {
    usage: 'replay-rejected --tenant <id> (--id <n> | --reason <reason> | --all) [--since <ISO time>] [--skip-signature]',
    async run(context, args) {
      const { values } = parseArgs({ args, options: { tenant: { type: 'string' }, id: { type: 'string' }, reason: { type: 'string' }, all: { type: 'boolean' }, since: { type: 'string' }, 'skip-signature': { type: 'boolean' } } });
      const tenantId = tenantOf(context.config, values.tenant);
      if (!values.id && !values.reason && !values.all) throw new UsageError('choose what to replay: --id, --reason or --all');
      const rows = await listRejected(context.db, { tenantId, ...(values.id ? { id: Number(values.id) } : {}), ...(values.reason ? { reason: values.reason } : {}), ...(values.since ? { since: values.since } : {}) });
      const { result: accepted, waiting } = await withIngestion(context, async ({ handOff }) => {
        const deps = { config: context.config, db: context.db, logger, handOff };
        let count = 0;
        for (const row of rows) {
          const outcome = await replayRejected(deps, row, { skipAuthentication: values['skip-signature'] === true });
          if (outcome.startsWith('accepted')) count++;
          context.out(`#${row.id} ${row.source} ${row.reason}: ${outcome}`);
        }
        return count;
      });
      context.out(`replayed ${rows.length}: ${accepted} accepted, ${rows.length - accepted} rejected again${stillWaiting(waiting)}`);
      return rows.length - accepted === 0 ? 0 : 1;
    },
  },
  'replay-inbox': {
    usage: 'replay-inbox',
    async run(context) {
      const { forwarded, waiting } = await withIngestion(context, () => Promise.resolve());
      const left = await inboxBacklog(context.db);
      context.out(
        `forwarded ${forwarded} waiting event(s) to Temporal; ${waiting} still waiting${waiting > 0 ? ` (oldest ${Math.round(left.oldestAgeSeconds)} s; is Temporal reachable?)` : ''}${left.deadLetters > 0 ? `; ${left.deadLetters} in dead letter (npm run cli -- dead-letters)` : ''}`,
      );
      return waiting === 0 ? 0 : 1;
    },
  },
  'dead-letters': {
    usage: 'dead-letters --tenant <id> [--limit <n>]',
    async run(context, args) {
      const { values } = parseArgs({ args, options: { tenant: { type: 'string' }, limit: { type: 'string' } } });
      const rows = await listDeadLetters(context.db, tenantOf(context.config, values.tenant), Number(values.limit ?? 100));
      context.out(table([['id', 'received', 'dead since', 'source', 'workflow', 'event', 'tries', 'reason'], ...rows.map((row) => [String(row.id), row.receivedAt.toISOString(), row.deadAt.toISOString(), row.source, row.workflowId, row.eventId, String(row.attempts), row.reason.slice(0, 120)])]));
      context.out(`${rows.length} dead letter(s): events Temporal refused for good; fix the cause, then replay-dead-letters`);
      return 0;
    },
  },
  'replay-dead-letters': {
    usage: 'replay-dead-letters --tenant <id> (--id <n> | --all)',
    async run(context, args) {
      const { values } = parseArgs({ args, options: { tenant: { type: 'string' }, id: { type: 'string', multiple: true }, all: { type: 'boolean' } } });
      const tenantId = tenantOf(context.config, values.tenant);
      if (!values.id?.length && !values.all) throw new UsageError('choose what to replay: --id (repeatable) or --all');
      const ids = values.id?.map(Number) ?? [];
      if (ids.some((id) => !Number.isSafeInteger(id))) throw new UsageError('--id must be a number');
      const { result: requeued, forwarded } = await withIngestion(context, () => requeueDeadLetters(context.db, tenantId, values.all ? 'all' : ids));
      const left = await inboxBacklog(context.db, tenantId);
      context.out(`put ${requeued} dead letter(s) back in line; forwarded ${forwarded}; ${left.deadLetters} in dead letter, ${left.pending} waiting`);
      return left.deadLetters === 0 ? 0 : 1;
    },
  },
  stuck: {
    usage: 'stuck --tenant <id> [--older-than-minutes <n>]',
    async run(context, args) {
      const { values } = parseArgs({ args, options: { tenant: { type: 'string' }, 'older-than-minutes': { type: 'string' } } });
      const stuck = await stuckWork(context.db, tenantOf(context.config, values.tenant), Number(values['older-than-minutes'] ?? 60));
      context.out(`enrichment pending: ${stuck.enrichmentPending.length}`);
      for (const call of stuck.enrichmentPending) context.out(`  ${call.callId} since ${call.since}`);
      context.out(`CRM sync failed or stuck: ${stuck.crmSyncFailed.length}`);
      for (const call of stuck.crmSyncFailed) context.out(`  ${call.callId} ${call.state} since ${call.since}${call.error ? `: ${call.error}` : ''}`);
      context.out(`sends failed: ${stuck.sendsFailed.length}`);
      for (const send of stuck.sendsFailed) context.out(`  lead ${send.leadId ?? '?'} message ${send.messageId} error ${send.errorCode ?? '?'} at ${send.at}`);
      context.out(`inbox: ${stuck.inbox.pending} waiting${stuck.inbox.pending ? `, oldest ${stuck.inbox.oldestAgeSeconds} s` : ''}, ${stuck.inbox.deadLetters} in dead letter`);
      return 0;
    },
  },
  'redrive-crm': {
    usage: 'redrive-crm --tenant <id> --call <provider:call id> [--operator <name>]',
    async run(context, args) {
      const { values } = parseArgs({ args, options: { tenant: { type: 'string' }, call: { type: 'string' }, operator: { type: 'string' } } });
      const tenantId = tenantOf(context.config, values.tenant);
      if (!values.call) throw new UsageError('--call is required');
      const { waiting } = await withIngestion(context, ({ handOff }) => redriveCrmSync({ config: context.config, handOff }, tenantId, values.call ?? '', values.operator ?? 'cli'));
      context.out(`asked ${values.call} to sync with the CRM again${stillWaiting(waiting)}; follow it with: npm run cli -- stuck --tenant ${tenantId}`);
      return 0;
    },
  },
  'kommo-authorize': { usage: kommoAuthorizeUsage, run: (context, args) => kommoAuthorize(context, args) },
  erase: { usage: eraseUsage, run: (context, args) => eraseCommand(context, args) },
  operators: { usage: operatorsUsage, run: (context, args) => operators(context, args) },
  'lead-preview': { usage: leadPreviewUsage, run: (context, args) => leadPreviewCommand(context, args) },
  'lead-timeline': {
    usage: 'lead-timeline --tenant <id> --lead <lead id>',
    async run(context, args) {
      const { values } = parseArgs({ args, options: { tenant: { type: 'string' }, lead: { type: 'string' } } });
      const tenantId = tenantOf(context.config, values.tenant);
      if (!values.lead) throw new UsageError('--lead is required');
      const rows = await timelineOf(context.db, tenantId, values.lead);
      if (rows.length === 0) {
        context.out(`no timeline for lead ${values.lead}`);
        return 1;
      }
      context.out(table([['time (UTC)', 'kind', 'step', 'cause'], ...rows.map((row) => [row.at.replace('T', ' ').slice(0, 19), row.kind, row.flow ? `${row.flow}:${row.step ?? ''}` : '', row.cause])]));
      return 0;
    },
  },
};

export async function runCli(argv: string[], context: CliContext): Promise<number> {
  const [name, ...args] = argv;
  const command = name ? commands[name] : undefined;
  if (!command) {
    context.out(`usage: npm run cli -- <command>\n${Object.values(commands).map((entry) => `  ${entry.usage}`).join('\n')}`);
    return name ? 2 : 0;
  }
  try {
    return await command.run(context, args);
  } catch (error) {
    if (error instanceof UsageError || error instanceof KommoAuthorizeUsageError || error instanceof EraseUsageError || error instanceof OperatorsUsageError || error instanceof LeadPreviewUsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      context.out(`${(error as Error).message}\nusage: npm run cli -- ${command.usage}`);
      return 2;
    }
    throw error;
  }
}

// Run as a program (not when imported by tests).
if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  const config = loadConfigOrExit();
  const db = createPool(config.database.url, { max: 4, applicationName: 'switchboard-cli' });
  const temporal = createApiTemporalClient(config.temporal);
  let code = 1;
  try {
    code = await runCli(process.argv.slice(2), { config, db, temporal, out: (line) => console.log(line) });
  } catch (error) {
    console.error(`switchboard cli: ${(error as Error).message.split('\n')[0]}`);
  } finally {
    await Promise.allSettled([db.end(), temporal.connection.close()]);
  }
  process.exit(code);
}
