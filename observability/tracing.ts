/**
 * OpenTelemetry tracing of an event's whole path: the webhook's HTTP request, the inbox forward
 * and its signalWithStart, the workflow, each activity and the outside calls it makes. Off unless
 * an OTLP endpoint is configured (config/schema.ts tracingEnvSchema); then one SDK per process
 * exports spans over OTLP/HTTP (JSON) in batches.
 *
 * The SDK packages are loaded only by startTracing, so a process with tracing off never loads them,
 * and every hot-path helper (observability/trace-context.ts) stays a flag check.
 *
 * Nothing personal or secret leaves in a span: every exported attribute is on an allowlist (ids,
 * states, methods, route templates, status codes, hosts), strings are scrubbed of phone numbers and
 * URL credentials, and outside calls keep their origin only (a path or query can hold a phone
 * number, a search term or a webhook secret such as Slack's).
 */
import { randomUUID } from 'node:crypto';
import type { Attributes, AttributeValue } from '@opentelemetry/api';
import type { ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import type { OpenTelemetrySinks } from '@temporalio/interceptors-opentelemetry';
import type { ClientInterceptors } from '@temporalio/client';
import type { InjectedSinks, WorkerInterceptors } from '@temporalio/worker';
import type { TracingEnv } from '../config/schema.js';
import { scrubText } from './logger.js';
import type { Logger } from './logger.js';
import { setTracingActive } from './trace-context.js';

export interface TracingSettings {
  /** Where spans are POSTed (OTLP/HTTP JSON), e.g. http://collector:4318/v1/traces. */
  tracesUrl: string;
  serviceName: string;
  /** Share of new traces kept (0 to 1). */
  sampleRatio: number;
  /** How long finished spans wait to go out together (default 2 s; tests shorten it). */
  exportDelayMs?: number;
}

/** Tracing's settings from the validated environment, or undefined when tracing is off. */
export function tracingSettings(env: TracingEnv, defaultServiceName: string): TracingSettings | undefined {
  if (env.OTEL_SDK_DISABLED === 'true') return undefined;
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT;
  const tracesUrl = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? (base ? `${base.replace(/\/+$/, '')}/v1/traces` : undefined);
  if (!tracesUrl) return undefined;
  return { tracesUrl, serviceName: env.OTEL_SERVICE_NAME ?? defaultServiceName, sampleRatio: env.OTEL_TRACES_SAMPLER_ARG };
}

export interface Tracing {
  /** For every Temporal Client of the process: a span per start or signal, its context in the headers. */
  clientInterceptors: ClientInterceptors;
  /** For Worker.create: a span per activity, continuing the workflow's trace from the activity's headers. */
  workerInterceptors: Pick<WorkerInterceptors, 'activity'>;
  /** For Worker.create: the sink the workflow interceptors' spans leave the sandbox through. */
  workflowSinks: InjectedSinks<OpenTelemetrySinks>;
  /** Sends every finished span now. */
  flush(): Promise<void>;
  /** Sends what is left and unregisters the SDK. */
  shutdown(): Promise<void>;
}

// Attributes that may leave the process: ids, states, methods, route templates, codes, hosts.
const allowedAttributes = new Set([
  'http.request.method',
  'http.route',
  'http.response.status_code',
  'switchboard.http.aborted',
  'server.address',
  'server.port',
  'url.scheme',
  'url.full',
  'error.type',
  // The Temporal interceptors' (workflow and activity ids hold no phone numbers or names).
  'temporalWorkflowId',
  'run_id',
  'temporalActivityId',
  'temporalUpdateId',
  // What the workflow sink copies from the workflow's info (the rest of it: memo, search attributes, last result, is dropped).
  'workflowId',
  'runId',
  'workflowType',
  'taskQueue',
  'namespace',
  'exception.type',
  'exception.message',
  'exception.stacktrace',
]);
const allowedPrefixes = ['switchboard.'];

const isAllowed = (key: string): boolean => allowedAttributes.has(key) || allowedPrefixes.some((prefix) => key.startsWith(prefix));

function scrubValue(value: AttributeValue): AttributeValue {
  if (typeof value === 'string') return scrubText(value);
  if (Array.isArray(value)) return value.map((item) => (typeof item === 'string' ? scrubText(item) : item)) as AttributeValue;
  return value;
}

/** An outside call's URL reduced to its origin: paths and queries can carry numbers, search terms, secrets. */
function originOnly(value: AttributeValue | undefined): string | undefined {
  if (typeof value !== 'string') return undefined;
  try {
    return new URL(value).origin;
  } catch {
    return undefined;
  }
}

export function allowedAttributesOf(attributes: Attributes): Attributes {
  const kept: Attributes = {};
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || !isAllowed(key)) continue;
    if (key === 'url.full') {
      const origin = originOnly(value);
      if (origin) kept[key] = origin;
      continue;
    }
    kept[key] = scrubValue(value);
  }
  return kept;
}

/** The span as it may leave the process (see the module comment). */
export function exportableSpan(span: ReadableSpan): ReadableSpan {
  return {
    name: scrubText(span.name),
    kind: span.kind,
    spanContext: () => span.spanContext(),
    ...(span.parentSpanId === undefined ? {} : { parentSpanId: span.parentSpanId }),
    startTime: span.startTime,
    endTime: span.endTime,
    status: span.status.message === undefined ? span.status : { ...span.status, message: scrubText(span.status.message) },
    attributes: allowedAttributesOf(span.attributes),
    links: span.links.map((link) => ({ context: link.context })),
    events: span.events.map((event) => ({ name: event.name, time: event.time, ...(event.attributes ? { attributes: allowedAttributesOf(event.attributes) } : {}) })),
    duration: span.duration,
    ended: span.ended,
    resource: span.resource,
    instrumentationLibrary: span.instrumentationLibrary,
    droppedAttributesCount: span.droppedAttributesCount,
    droppedEventsCount: span.droppedEventsCount,
    droppedLinksCount: span.droppedLinksCount,
  };
}

/** Every span passes the allowlist on its way to the real exporter, the workflows' spans too. */
class AllowlistExporter implements SpanExporter {
  constructor(private readonly next: SpanExporter) {}

  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.next.export(spans.map(exportableSpan), done);
  }

  shutdown(): Promise<void> {
    return this.next.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.next.forceFlush?.() ?? Promise.resolve();
  }
}

/** The SDK's own complaints (an export the collector refused or never answered), at most one line a minute. */
function sdkComplaints(logger: Logger): (message: string, ...args: unknown[]) => void {
  let quietUntil = 0;
  let dropped = 0;
  return (message, ...args) => {
    const now = Date.now();
    if (now < quietUntil) {
      dropped++;
      return;
    }
    quietUntil = now + 60_000;
    const detail = args.flat().map((arg) => (arg instanceof Error ? arg.message : typeof arg === 'string' ? arg : '')).filter(Boolean).join('; ');
    logger.warn({ similarSinceLast: dropped }, scrubText(`tracing: ${message}${detail ? ` ${detail}` : ''}`).slice(0, 500));
    dropped = 0;
  };
}

/**
 * Registers the process's tracer provider, context manager (AsyncLocalStorage) and W3C propagator,
 * and returns what the Temporal clients and workers need. One per process at a time.
 */
export async function startTracing(settings: TracingSettings, options: { logger?: Logger } = {}): Promise<Tracing> {
  const [api, { AsyncLocalStorageContextManager }, { W3CTraceContextPropagator }, { OTLPTraceExporter }, { Resource }, sdk, { UndiciInstrumentation }, temporal] = await Promise.all([
    import('@opentelemetry/api'),
    import('@opentelemetry/context-async-hooks'),
    import('@opentelemetry/core'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/sdk-trace-base'),
    import('@opentelemetry/instrumentation-undici'),
    import('@temporalio/interceptors-opentelemetry'),
  ]);
  const resource = new Resource({ 'service.name': settings.serviceName, 'service.namespace': 'switchboard', 'service.instance.id': randomUUID() });
  const processor = new sdk.BatchSpanProcessor(new AllowlistExporter(new OTLPTraceExporter({ url: settings.tracesUrl })), {
    scheduledDelayMillis: settings.exportDelayMs ?? 2_000,
    // A collector that is down costs at most this many spans of memory, then spans are dropped.
    maxQueueSize: 8_192,
  });
  const root = settings.sampleRatio >= 1 ? new sdk.AlwaysOnSampler() : new sdk.TraceIdRatioBasedSampler(settings.sampleRatio);
  const provider = new sdk.BasicTracerProvider({ resource, sampler: new sdk.ParentBasedSampler({ root }), spanProcessors: [processor] });

  const contextManager = new AsyncLocalStorageContextManager().enable();
  const registered = [api.trace.setGlobalTracerProvider(provider), api.context.setGlobalContextManager(contextManager), api.propagation.setGlobalPropagator(new W3CTraceContextPropagator())];
  if (registered.includes(false)) {
    api.trace.disable();
    api.context.disable();
    api.propagation.disable();
    throw new Error('tracing was already started in this process');
  }
  const complain = options.logger ? sdkComplaints(options.logger) : () => undefined;
  if (options.logger) {
    const quiet = (): void => undefined;
    api.diag.setLogger({ error: complain, warn: complain, info: quiet, debug: quiet, verbose: quiet }, api.DiagLogLevel.WARN);
  }
  // A failed export is the collector's problem, reported and never thrown at the caller.
  const reported = (error: unknown): void => complain('export failed', error);
  // Outside calls (fetch) inside an activity become client spans; fetches outside any trace are not recorded.
  const outsideCalls = new UndiciInstrumentation({ requireParentforSpans: true });
  outsideCalls.setTracerProvider(provider);
  setTracingActive(true);

  const clientTracer = provider.getTracer('@temporalio/interceptor-client');
  const activityTracer = provider.getTracer('@temporalio/interceptor-activity');
  let stopped: Promise<void> | undefined;
  return {
    clientInterceptors: { workflow: [new temporal.OpenTelemetryWorkflowClientInterceptor({ tracer: clientTracer })] },
    workerInterceptors: {
      activity: [
        (ctx) => ({
          inbound: new temporal.OpenTelemetryActivityInboundInterceptor(ctx, { tracer: activityTracer }),
          outbound: new temporal.OpenTelemetryActivityOutboundInterceptor(ctx),
        }),
      ],
    },
    workflowSinks: { exporter: temporal.makeWorkflowExporter(processor, resource) },
    flush: () => provider.forceFlush().catch(reported),
    shutdown() {
      stopped ??= (async () => {
        setTracingActive(false);
        outsideCalls.disable();
        try {
          await provider.shutdown().catch(reported);
        } finally {
          api.trace.disable();
          api.context.disable();
          api.propagation.disable();
          api.diag.disable();
        }
      })();
      return stopped;
    },
  };
}

/** Starts tracing if the environment configures it (an OTLP endpoint, not disabled); the SDK's complaints go to `logger`. */
export async function startTracingFromEnv(env: TracingEnv, serviceName: string, logger: Logger): Promise<Tracing | undefined> {
  const settings = tracingSettings(env, serviceName);
  return settings ? startTracing(settings, { logger }) : undefined;
}
