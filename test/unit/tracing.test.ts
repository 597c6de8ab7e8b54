import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { SpanKind, SpanStatusCode, TraceFlags, trace } from '@opentelemetry/api';
import { Resource } from '@opentelemetry/resources';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { loadConfig } from '../../config/load.js';
import { tracingEnvSchema } from '../../config/schema.js';
import { createLogger } from '../../observability/logger.js';
import { tracingActive } from '../../observability/trace-context.js';
import { exportableSpan, startTracing, tracingSettings } from '../../observability/tracing.js';
import { configError } from '../harness/config-files.js';
import { freePort } from '../harness/resources.js';

const settingsOf = (env: Record<string, string>) => tracingSettings(tracingEnvSchema.parse(env), 'switchboard-api');

describe('tracing settings', () => {
  it('is off unless an OTLP endpoint is set, and off again with OTEL_SDK_DISABLED', () => {
    assert.equal(settingsOf({}), undefined);
    assert.equal(settingsOf({ OTEL_EXPORTER_OTLP_ENDPOINT: '' }), undefined, 'an empty value (a compose file’s NAME=) is unset');
    assert.equal(settingsOf({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_SDK_DISABLED: 'true' }), undefined);
    assert.equal(loadConfig({}).env.OTEL_EXPORTER_OTLP_ENDPOINT, undefined);
  });

  it('sends to <endpoint>/v1/traces, or to the traces endpoint as given, with the process’s service name', () => {
    assert.deepEqual(settingsOf({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' }), { tracesUrl: 'http://collector:4318/v1/traces', serviceName: 'switchboard-api', sampleRatio: 1 });
    const explicit = settingsOf({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://traces.example.com/otlp', OTEL_SERVICE_NAME: 'edge-api', OTEL_TRACES_SAMPLER_ARG: '0.25' });
    assert.deepEqual(explicit, { tracesUrl: 'https://traces.example.com/otlp', serviceName: 'edge-api', sampleRatio: 0.25 });
  });

  it('stops start-up naming a bad tracing setting', () => {
    assert.match(configError({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' }), /^invalid configuration: OTEL_EXPORTER_OTLP_ENDPOINT: must be an http:\/\/ or https:\/\/ URL$/);
    assert.match(configError({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'ftp://x/v1/traces' }), /^invalid configuration: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT:/);
    assert.match(configError({ OTEL_TRACES_SAMPLER_ARG: '2' }), /^invalid configuration: OTEL_TRACES_SAMPLER_ARG:/);
    assert.match(configError({ OTEL_SDK_DISABLED: 'yes' }), /^invalid configuration: OTEL_SDK_DISABLED:/);
  });
});

describe('what a span may export', () => {
  const span = (overrides: Partial<ReadableSpan>): ReadableSpan => ({
    name: 'RunActivity:enrichCall',
    kind: SpanKind.INTERNAL,
    spanContext: () => ({ traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: TraceFlags.SAMPLED }),
    startTime: [1, 0],
    endTime: [2, 0],
    status: { code: SpanStatusCode.UNSET },
    attributes: {},
    links: [],
    events: [],
    duration: [1, 0],
    ended: true,
    resource: new Resource({ 'service.name': 'switchboard-worker' }),
    instrumentationLibrary: { name: 'test' },
    droppedAttributesCount: 0,
    droppedEventsCount: 0,
    droppedLinksCount: 0,
    ...overrides,
  });

  it('keeps allowlisted ids and codes, drops everything else (what the workflow sink copies from the workflow info too)', () => {
    const exported = exportableSpan(
      span({
        attributes: {
          temporalWorkflowId: 'call:acme:pbx:abc',
          'http.response.status_code': 200,
          'switchboard.events': 3,
          memo: 'Ada Lovelace',
          searchAttributes: 'x',
          'customer.phone': '+14155550142',
          'url.query': '?query=4155550142',
          'url.path': '/services/T1/B1/secret-token',
          'user_agent.original': 'undici',
        },
      }),
    );
    assert.deepEqual(exported.attributes, { temporalWorkflowId: 'call:acme:pbx:abc', 'http.response.status_code': 200, 'switchboard.events': 3 });
  });

  it('cuts an outside call’s URL to its origin and scrubs phone numbers out of messages', () => {
    const exported = exportableSpan(
      span({
        attributes: { 'url.full': 'https://hooks.slack.com/services/T1/B1/secret-token?x=1' },
        status: { code: SpanStatusCode.ERROR, message: 'no contact for +1 (415) 555-0142' },
        events: [{ name: 'exception', time: [1, 5], attributes: { 'exception.message': 'lookup 4155550142 failed', 'exception.type': 'OutsideSystemError', 'request.body': '{"phone":"+14155550142"}' } }],
        links: [{ context: { traceId: '1af7651916cd43dd8448eb211c80319c', spanId: 'c7ad6b7169203331', traceFlags: TraceFlags.SAMPLED }, attributes: { note: 'Ada' } }],
      }),
    );
    assert.deepEqual(exported.attributes, { 'url.full': 'https://hooks.slack.com' });
    assert.equal(exported.status.message, 'no contact for [phone …42]');
    assert.deepEqual(exported.events[0]?.attributes, { 'exception.message': 'lookup [phone …42] failed', 'exception.type': 'OutsideSystemError' });
    assert.deepEqual(exported.links, [{ context: { traceId: '1af7651916cd43dd8448eb211c80319c', spanId: 'c7ad6b7169203331', traceFlags: TraceFlags.SAMPLED } }]);
    assert.equal(exported.spanContext().spanId, 'b7ad6b7169203331');
  });
});

describe('a collector that does not answer', () => {
  it('is reported once in the process log, and stopping tracing leaves the process as it was', async () => {
    const destination = new PassThrough();
    let text = '';
    destination.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
    const logger = createLogger({ name: 'tracing-test', level: 'warn', destination });
    // Nothing listens on this port: every export fails.
    const tracing = await startTracing({ tracesUrl: `http://127.0.0.1:${await freePort()}/v1/traces`, serviceName: 'switchboard-test', sampleRatio: 1 }, { logger });
    try {
      for (let batch = 0; batch < 3; batch++) {
        trace.getTracer('test').startSpan(`span ${batch}`).end();
        await tracing.flush();
      }
    } finally {
      await tracing.shutdown();
    }
    const lines = text.trim().split('\n').map((line) => JSON.parse(line) as { level: string; msg: string });
    assert.equal(lines.length, 1, text);
    assert.equal(lines[0]?.level, 'warn');
    assert.match(lines[0]?.msg ?? '', /^tracing: /);
    assert.equal(tracingActive(), false);
    assert.equal(trace.getTracer('test').startSpan('after').isRecording(), false, 'no tracer provider is left registered');
  });
});
