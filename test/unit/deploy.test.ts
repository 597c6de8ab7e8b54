/**
 * The ready-made deployment (deploy/) stays in step with the code: the compose file names only
 * public images and settings the processes know, its config file loads, the namespace script
 * registers the search attributes the workflows use, and the systemd units start real entry points.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { loadConfig, repoRoot } from '../../config/load.js';
import { envSchema } from '../../config/schema.js';

const deployDir = path.join(repoRoot, 'deploy');

interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile: string };
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
}

/** What compose makes of `${NAME}`, `${NAME:-default}` and `${NAME:?error}` with these values. */
function interpolate(text: string, values: Record<string, string>): string {
  return text.replace(/\$\{([A-Z_][A-Z0-9_]*)(?::([-?])([^}]*))?\}/g, (_match, name: string, kind: string | undefined, rest: string) => {
    const value = values[name];
    if (value !== undefined && value !== '') return value;
    if (kind === '-') return rest;
    if (kind === '?') throw new Error(`compose would stop: ${name} (${rest})`);
    return '';
  });
}

const secrets = {
  SWITCHBOARD_DB_PASSWORD: 'db-password',
  TEMPORAL_DB_PASSWORD: 'temporal-password',
  SWITCHBOARD_PAYLOAD_KEY: Buffer.alloc(32, 7).toString('base64'),
  ACME_WEBHOOK_SECRET: 'acme-webhook-secret',
  ACME_OPERATOR_TOKEN: 'acme-operator-token',
};

/** Each string interpolated after parsing, as compose does (an empty value stays an empty string). */
function interpolateAll(value: unknown, values: Record<string, string>): unknown {
  if (typeof value === 'string') return interpolate(value, values);
  if (Array.isArray(value)) return value.map((item) => interpolateAll(item, values));
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, interpolateAll(item, values)]));
  return value;
}

// Merge keys (`<<: *anchor`) applied as compose applies them.
const compose = (values: Record<string, string> = secrets): { services: Record<string, ComposeService> } =>
  interpolateAll(parse(readFileSync(path.join(deployDir, 'compose.yaml'), 'utf8'), { merge: true }), values) as { services: Record<string, ComposeService> };

// Names compose hands our processes that are not Switchboard's own settings: Temporal's (read by
// @temporalio/envconfig), Node's, and the ones deploy/switchboard.yaml reads as ${NAME}.
const configFileReferences = [...readFileSync(path.join(deployDir, 'switchboard.yaml'), 'utf8').matchAll(/\$\{([A-Z_][A-Z0-9_]*)/g)].map((match) => match[1]);
const knownElsewhere = new Set(['TEMPORAL_ADDRESS', 'TEMPORAL_NAMESPACE', 'NODE_ENV', ...configFileReferences]);

describe('the deployment files (deploy/)', () => {
  it('stops compose naming a missing secret', () => {
    const { SWITCHBOARD_PAYLOAD_KEY: _missing, ...rest } = secrets;
    assert.throws(() => compose(rest), /SWITCHBOARD_PAYLOAD_KEY/);
  });

  it('uses public images only, and builds our processes from the repository on node:20', () => {
    const { services } = compose();
    for (const [name, service] of Object.entries(services)) {
      if (service.build) {
        assert.equal(service.build.context, '..', name);
        assert.match(readFileSync(path.join(deployDir, '..', service.build.dockerfile), 'utf8'), /^FROM node:20(-[a-z]+)*(-slim)?$/m, name);
      } else {
        assert.match(service.image ?? '', /^(postgres:18|temporalio\/(server|admin-tools|ui):[\d.]+)$/, name);
      }
    }
    assert.deepEqual(
      Object.entries(services).filter(([, service]) => service.build).map(([name, service]) => [name, service.command?.at(-1)]),
      [['api', 'api/main.ts'], ['forwarder', 'workers/forwarder.ts'], ['worker', 'workers/main.ts']],
    );
    for (const [name, service] of Object.entries(services)) {
      for (const volume of service.volumes ?? []) {
        const source = volume.split(':')[0] ?? '';
        if (source.startsWith('.')) assert.ok(existsSync(path.join(deployDir, source)), `${name} mounts ${source}, which exists`);
      }
    }
  });

  it('gives our processes only settings they know, and a configuration that loads', () => {
    const { services } = compose({ ...secrets, OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel-collector:4318' });
    for (const name of ['api', 'forwarder', 'worker']) {
      const environment = services[name]?.environment ?? {};
      const unknown = Object.keys(environment).filter((key) => !(key in envSchema.shape) && !knownElsewhere.has(key));
      assert.deepEqual(unknown, [], `${name}: settings no process reads`);
      const config = loadConfig({ ...environment, SWITCHBOARD_CONFIG: path.join(deployDir, 'switchboard.yaml') });
      assert.equal(config.temporal.address, 'temporal:7233');
      assert.equal(config.database.embedded, false);
      assert.deepEqual(Object.keys(config.tenants), ['acme']);
      assert.equal(config.demo.enabled, false);
      assert.equal(config.env.OTEL_EXPORTER_OTLP_ENDPOINT, 'http://otel-collector:4318');
    }
    assert.equal(services.api?.environment?.INGEST_FORWARDER, '0', 'the API leaves forwarding to the forwarder service');
    // Empty in deploy/.env means tracing off, not a bad setting.
    const tracingOff = compose({ ...secrets, OTEL_EXPORTER_OTLP_ENDPOINT: '' }).services.worker?.environment ?? {};
    assert.equal(loadConfig({ ...tracingOff, SWITCHBOARD_CONFIG: path.join(deployDir, 'switchboard.yaml') }).env.OTEL_EXPORTER_OTLP_ENDPOINT, undefined);
  });

  it('registers the search attributes temporal-dev.yaml declares, with their types', () => {
    const declared = Object.entries(loadConfig({}).devStack.temporal.searchAttributes).map(([name, type]) => `${name}:${type}`);
    const script = readFileSync(path.join(deployDir, 'temporal', 'create-namespace.sh'), 'utf8');
    const registered = (/for pair in ([^;]+);/.exec(script)?.[1] ?? '').trim().split(/\s+/);
    assert.deepEqual(registered.sort(), declared.sort());
  });

  it('has a systemd unit per process, each starting an entry point that exists', () => {
    const units = readdirSync(path.join(deployDir, 'systemd')).filter((file) => file.endsWith('.service')).sort();
    assert.deepEqual(units, ['switchboard-api.service', 'switchboard-forwarder.service', 'switchboard-worker.service']);
    for (const unit of units) {
      const entry = /^ExecStart=\/usr\/bin\/node --import tsx (\S+)$/m.exec(readFileSync(path.join(deployDir, 'systemd', unit), 'utf8'))?.[1];
      assert.ok(entry && existsSync(path.join(repoRoot, entry)), `${unit} starts ${entry}`);
    }
  });
});
