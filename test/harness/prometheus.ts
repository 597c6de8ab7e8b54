import { spawnSync } from 'node:child_process';
import { ensurePrometheusParser } from '../../stack/provision.js';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
export interface MetricFamily {
  name: string;
  type: string;
  samples: Sample[];
}

// Prometheus's own (Python) parser: it raises on anything that is not valid text format.
const script = `
import json, sys
from prometheus_client.parser import text_string_to_metric_families
families = [{"name": f.name, "type": f.type, "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in f.samples]} for f in text_string_to_metric_families(sys.stdin.read())]
json.dump(families, sys.stdout, allow_nan=False, default=str)
`;

export async function parsePrometheus(text: string): Promise<MetricFamily[]> {
  const path = await ensurePrometheusParser();
  if (!path) throw new Error('the Prometheus parser is not provisioned (npm run provision)');
  const result = spawnSync('python3', ['-c', script], { input: text, env: { ...process.env, PYTHONPATH: path }, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`not valid Prometheus text format: ${result.stderr.trim().split('\n').pop() ?? ''}`);
  return JSON.parse(result.stdout) as MetricFamily[];
}
