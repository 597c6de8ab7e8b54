/**
 * A workflow bundle in which `patched(id)` is true for the given ids even while replaying a
 * history that has no marker for them: replaying a history recorded before a patch on it shows
 * whether the history depends on the guard (it must fail where the patched code behaves differently).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DefaultLogger, bundleWorkflowCode } from '@temporalio/worker';
import type { WorkerOptions } from '@temporalio/worker';
import { workflowFailureConverterPath } from '../../security/payload-codec.js';
import { workflowsPath } from '../../workers/create-workers.js';

const require = createRequire(import.meta.url);

export async function bundleWithForcedPatches(patchIds: string[]): Promise<NonNullable<WorkerOptions['workflowBundle']>> {
  // The workflows import '@temporalio/workflow'; in this bundle that name resolves to a module that
  // re-exports the SDK (by its file, which the alias does not catch) with patched() overridden.
  const sdk = JSON.stringify(require.resolve('@temporalio/workflow'));
  const dir = await mkdtemp(path.join(tmpdir(), 'switchboard-forced-patches-'));
  const shim = path.join(dir, 'workflow-with-forced-patches.js');
  await writeFile(
    shim,
    [
      `export * from ${sdk};`,
      `import { patched as recordedPatched } from ${sdk};`,
      `const forced = new Set(${JSON.stringify(patchIds)});`,
      // The SDK's patched() is always asked first, so a history recorded with the patch keeps its marker matched.
      'export function patched(patchId) { const recorded = recordedPatched(patchId); return forced.has(patchId) || recorded; }',
      '',
    ].join('\n'),
  );
  try {
    return await bundleWorkflowCode({
      workflowsPath,
      failureConverterPath: workflowFailureConverterPath,
      logger: new DefaultLogger('WARN'),
      webpackConfigHook: (config) => ({ ...config, resolve: { ...config.resolve, alias: { ...config.resolve?.alias, '@temporalio/workflow$': shim } } }),
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
