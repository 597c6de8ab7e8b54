/**
 * Validates values against a component schema of the served OpenAPI document with the JSON Schema
 * validator Schemathesis itself checks responses with (`jsonschema_rs`, draft 2020-12, formats
 * checked): the document is judged by a validator of its own, not by the zod schemas behind it.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { ensureSchemathesis } from '../../stack/provision.js';

const script = `
import json, sys
import jsonschema_rs
payload = json.load(sys.stdin)
registry = jsonschema_rs.Registry([("urn:openapi", payload["document"])], draft=jsonschema_rs.Draft202012)
results = []
for item in payload["items"]:
    validator = jsonschema_rs.Draft202012Validator({"$ref": "urn:openapi#/components/schemas/" + item["component"]}, registry=registry, validate_formats=True)
    results.append(["/".join(map(str, error.instance_path)) + ": " + error.message[:300] for error in validator.iter_errors(item["instance"])])
json.dump(results, sys.stdout)
`;

/** For each item, the ways it breaks its component schema (empty when it conforms). */
export async function validateAgainstDocument(document: unknown, items: Array<{ component: string; instance: unknown }>): Promise<string[][]> {
  const st = await ensureSchemathesis();
  if (!st) throw new Error('Schemathesis (and with it jsonschema_rs) is not provisioned: npm run provision');
  const python = path.join(path.dirname(st), 'python');
  const result = spawnSync(python, ['-c', script], { input: JSON.stringify({ document, items }), encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (result.status !== 0) throw new Error(`the validator failed: ${result.stderr.trim().split('\n').slice(-3).join(' ')}`);
  return JSON.parse(result.stdout) as string[][];
}
