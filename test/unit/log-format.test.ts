import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { createLogger, logFormatFor } from '../../observability/logger.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/** Runs a process that logs one line as an entry point does, and returns what it printed. */
async function runLoggingProcess(options: { inTerminal: boolean; env?: Record<string, string> }): Promise<string> {
  const program = `import { loadConfig } from './config/load.ts';
import { createLogger } from './observability/logger.ts';
const config = loadConfig();
createLogger({ name: 'switchboard-api', format: config.env.LOG_FORMAT }).info({ port: 3000, phone: '+14155550142' }, 'API listening for +1 415 555 0142');`;
  const node = `${process.execPath} --import tsx --input-type=module -e "${program.replace(/"/g, '\\"').replace(/\n/g, ' ')}"`;
  // `script` gives the process a pseudo-terminal as its stdout, as a terminal running npm start does.
  const [command, args] = options.inTerminal ? ['script', ['-qec', node, '/dev/null']] : ['sh', ['-c', node]];
  const { LOG_FORMAT: _inherited, ...env } = process.env;
  const child = spawn(command, args, { cwd: repoRoot, env: { ...env, NO_COLOR: '1', ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  assert.equal(code, 0, output);
  return output.replace(/\r/g, '').trim();
}

describe('log format', () => {
  it('is readable in a terminal and JSON elsewhere, unless LOG_FORMAT says', () => {
    assert.equal(logFormatFor(undefined, { isTTY: true }), 'pretty');
    assert.equal(logFormatFor(undefined, { isTTY: false }), 'json');
    assert.equal(logFormatFor(undefined, {}), 'json');
    assert.equal(logFormatFor('json', { isTTY: true }), 'json');
    assert.equal(logFormatFor('pretty', { isTTY: false }), 'pretty');
  });

  it('prints one readable line per entry, redacted like the JSON', () => {
    const destination = new PassThrough();
    let text = '';
    destination.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
    const logger = createLogger({ name: 'switchboard-worker', format: 'pretty', destination });
    logger.info({ token: 'secret-token', taskQueue: 'calls' }, 'call from +1 (415) 555-0142 journaled');
    logger.flush();
    const lines = text.trim().split('\n');
    assert.equal(lines.length, 1, text);
    assert.match(lines[0] ?? '', /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO \(switchboard-worker\): call from \[phone …42\] journaled \{"token":"\[REDACTED\]","taskQueue":"calls"\}$/);
    assert.throws(() => JSON.parse(lines[0] ?? ''));
  });

  it('an entry point prints readable lines in a terminal (as under npm start) and JSON when piped', async function () {
    this.timeout(60_000);
    const [terminal, piped, forcedJson] = await Promise.all([
      runLoggingProcess({ inTerminal: true }),
      runLoggingProcess({ inTerminal: false }),
      runLoggingProcess({ inTerminal: true, env: { LOG_FORMAT: 'json' } }),
    ]);
    assert.match(terminal, /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO \(switchboard-api\): API listening for \[phone …42\] \{"port":3000,"phone":"\[REDACTED\]"\}$/);
    const entry = JSON.parse(piped) as Record<string, unknown>;
    assert.equal(entry.level, 'info');
    assert.equal(entry.msg, 'API listening for [phone …42]');
    assert.equal(entry.phone, '[REDACTED]');
    assert.equal((JSON.parse(forcedJson) as Record<string, unknown>).msg, 'API listening for [phone …42]');
  });
});
