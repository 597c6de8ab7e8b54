/**
 * The ops CLI: `npm run cli -- <command> [options]`. Uses the same configuration as the API and
 * workers (SWITCHBOARD_CONFIG, DATABASE_URL, TEMPORAL_*).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createHandOff } from '../api/handoff.js';
import { leadDelivery } from '../api/lead-delivery.js';
import { createApiTemporalClient } from '../api/temporal-client.js';
import { loadConfigOrExit } from '../config/load.js';
import type { AppConfig } from '../config/load.js';
import { createPool } from '../db/pool.js';
import type { Db } from '../db/pool.js';
import { createLogger } from '../observability/logger.js';
import { planImport, readLegacyExport } from './legacy-import.js';

export interface CliContext {
  config: AppConfig;
  db: Db;
  temporal: ReturnType<typeof createApiTemporalClient>;
  out: (line: string) => void;
}

type Command = (context: CliContext, args: string[]) => Promise<number>;

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
      const handOff = createHandOff({
        temporal: context.temporal.client,
        connection: context.temporal.connection,
        db: context.db,
        logger: createLogger({ name: 'switchboard-cli', level: 'silent' }),
        timeoutMs: 5_000,
      });
      let queued = 0;
      for (const lead of leads) {
        const result = await handOff(leadDelivery(context.config, tenantId, lead.leadId, [lead.event]));
        if (result.via === 'inbox') queued++;
      }
      const byStage = new Map<string, number>();
      for (const lead of leads) byStage.set(lead.stage, (byStage.get(lead.stage) ?? 0) + 1);
      context.out(`imported ${leads.length} lead(s): ${[...byStage].map(([stage, count]) => `${stage} ${count}`).join(', ') || 'none'}${queued ? ` (${queued} queued in the inbox: Temporal was unreachable)` : ''}`);
      return problems.some((problem) => !problem.reason.endsWith('ignored')) ? 1 : 0;
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
    if (error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
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
