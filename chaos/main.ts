/**
 * `npm run chaos [-- --duration <s>] [--rate <per s>] [--short] [--seed <n>] [--tenants <n>] [--output <file>] [--keep]`
 *
 * Runs the chaos run (chaos/run.ts), prints its report and writes it to RELIABILITY.md (a short
 * run only with --output, so it never replaces a full run's report). Exit code 0 when nothing
 * was lost or duplicated and nothing is stuck, 1 otherwise, 2 when the run itself could not run.
 */
import { rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { repoRoot } from '../config/load.js';
import { runChaos } from './run.js';

const usage = 'usage: npm run chaos -- [--duration <seconds>] [--rate <deliveries per second>] [--short] [--seed <n>] [--tenants <n>] [--output <file>] [--keep]';

function positive(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (!Number.isFinite(number) || number <= 0) {
    process.stderr.write(`chaos: --${name} must be a positive number\n${usage}\n`);
    process.exit(2);
  }
  return number;
}

function commandLine() {
  try {
    return parseArgs({
      options: { duration: { type: 'string' }, rate: { type: 'string' }, short: { type: 'boolean' }, seed: { type: 'string' }, tenants: { type: 'string' }, output: { type: 'string' }, keep: { type: 'boolean' }, help: { type: 'boolean' } },
      strict: true,
    }).values;
  } catch (error) {
    process.stderr.write(`chaos: ${(error as Error).message}\n${usage}\n`);
    process.exit(2);
  }
}

const values = commandLine();
if (values.help) {
  console.log(usage);
  process.exit(0);
}

const durationSeconds = positive('duration', values.duration);
const ratePerSecond = positive('rate', values.rate);
const seed = positive('seed', values.seed);
const tenants = positive('tenants', values.tenants);
const short = values.short ?? false;
const output = values.output ?? (short ? undefined : path.join(repoRoot, 'RELIABILITY.md'));

// An interrupted run still resumes what it froze (bench/open-loop-scenarios.ts freeze, on exit), its
// processes stop with it (parent-death signal), and its folder goes unless --keep.
let runFolder: string | undefined;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    if (runFolder && !values.keep) rmSync(runFolder, { recursive: true, force: true });
    process.exit(130);
  });
}

try {
  const result = await runChaos({
    short,
    ...(durationSeconds === undefined ? {} : { durationSeconds }),
    ...(ratePerSecond === undefined ? {} : { ratePerSecond }),
    ...(seed === undefined ? {} : { seed: Math.round(seed) }),
    ...(tenants === undefined ? {} : { tenants: Math.round(tenants) }),
    keep: values.keep ?? false,
    onFolder: (dir) => (runFolder = dir),
  });
  console.log(`\n${result.report}`);
  if (output) {
    await writeFile(output, result.report);
    console.log(`chaos | report written to ${path.relative(process.cwd(), output) || output}`);
  }
  if (result.keptDir) console.log(`chaos | config and process logs kept in ${result.keptDir}`);
  console.log(`chaos | ${result.passed ? 'PASSED' : 'FAILED'}: ${result.lost} lost, ${result.duplicated} duplicated, ${result.late} late, ${result.unexpected} unexpected, ${result.stuck} kinds of stuck work, streams ${result.streamsRecovered ? 'recovered' : 'not recovered'}`);
  process.exit(result.passed ? 0 : 1);
} catch (error) {
  process.stderr.write(`chaos: the run could not complete: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(2);
}
