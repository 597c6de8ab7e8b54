import { spawn } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import type { AppConfig } from '../../config/load.js';
import { repoRoot } from '../../config/load.js';

/** Runs `npm run cli -- <args>` as its own process against a test world's database and Temporal. */
export async function runCli(config: AppConfig, args: string[]): Promise<{ code: number | null; output: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'switchboard-cli-'));
  const configPath = path.join(dir, 'switchboard.yaml');
  await writeFile(configPath, stringify({ tenants: config.tenants, api: { publicUrl: config.api.publicUrl }, temporal: { namespace: config.temporal.namespace, taskQueues: config.temporal.taskQueues, payloadEncryption: config.temporal.payloadEncryption } }));
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'cli/main.ts', ...args], {
      cwd: repoRoot,
      env: { ...process.env, SWITCHBOARD_CONFIG: configPath, DATABASE_URL: config.database.url, TEMPORAL_ADDRESS: config.temporal.address, TEMPORAL_NAMESPACE: config.temporal.namespace },
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('exit', (code) => resolve({ code, output }));
  });
}
