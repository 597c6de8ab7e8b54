// @ts-check
import { builtinModules } from 'node:module';
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const nodeBuiltins = [...builtinModules, ...builtinModules.map((name) => `node:${name}`)];
const testImports = { group: ['**/test/*', '**/test/**'], message: 'Only tests import the test harness; shared helpers belong in the layer that owns them.' };

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', '.data/', 'coverage/', 'test-results/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
      'no-console': 'off',
    },
  },
  {
    // Nothing outside test/ leans on the test harness: bench/, chaos/ and the product stand alone.
    files: ['**/*.ts'],
    ignores: ['test/**', 'workflows/**'],
    rules: { '@typescript-eslint/no-restricted-imports': ['error', { patterns: [testImports] }] },
  },
  {
    // Workflow code runs in Temporal's deterministic sandbox: no I/O, no Node built-ins,
    // and activity implementations may only be imported as types.
    files: ['workflows/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: nodeBuiltins.map((name) => ({ name, message: 'Node built-ins are not allowed in workflows.' })),
          patterns: [
            {
              group: ['../activities/*', '../adapters/*', '../db/*', '../api/*', '../ingestion/*', '../workers/*', '../observability/*', 'pg', 'express'],
              allowTypeImports: true,
              message: 'Workflows may import only types from activities and infrastructure.',
            },
            testImports,
          ],
        },
      ],
      'no-restricted-globals': [
        'error',
        { name: 'process', message: 'process is not available in workflows.' },
        { name: 'setTimeout', message: 'Use sleep() from @temporalio/workflow.' },
        { name: 'setInterval', message: 'Use sleep() from @temporalio/workflow.' },
      ],
      'no-restricted-syntax': [
        'error',
        {
          selector: "CallExpression[callee.property.name=/^(getHours|getMinutes|getDay|getDate|getMonth|getFullYear|toLocaleString|toLocaleDateString|toLocaleTimeString|getTimezoneOffset)$/]",
          message: 'Host time zone methods are forbidden in workflows; use Intl.DateTimeFormat with an explicit timeZone.',
        },
      ],
    },
  },
  {
    files: ['**/*.js', '**/*.mjs', '**/*.cjs'],
    ...tseslint.configs.disableTypeChecked,
  },
);
