/** Configuration files for start-up tests: temporal-dev.yaml with a change, and the error loading it gives. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { ConfigError, defaultConfigPath, loadConfig } from '../../config/load.js';
import type { ConfigFile } from '../../config/schema.js';

/** A copy of temporal-dev.yaml with `mutate` applied (values may be invalid on purpose). */
export async function writeConfig(mutate: (doc: ConfigFile) => void): Promise<string> {
  const doc = parse(readFileSync(defaultConfigPath, 'utf8')) as ConfigFile;
  mutate(doc);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'switchboard-config-'));
  const file = path.join(dir, 'switchboard.yaml');
  await writeFile(file, stringify(doc));
  return file;
}

/** The message of the ConfigError that loading with `env` gives (fails if it loads). */
export function configError(env: NodeJS.ProcessEnv): string {
  try {
    loadConfig(env);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error.message;
  }
  assert.fail('configuration was accepted');
}
