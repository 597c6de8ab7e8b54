/**
 * The small part of tracing that runs on the hot paths (HTTP requests, inbox commits, forwards):
 * only `@opentelemetry/api`, which is a no-op until observability/tracing.ts registers an SDK.
 * With tracing off, nothing here records, injects or allocates beyond a flag check.
 */
import { SpanKind, SpanStatusCode, ROOT_CONTEXT, context, isSpanContextValid, propagation, trace } from '@opentelemetry/api';
import type { Attributes, Link } from '@opentelemetry/api';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';

/** W3C trace context (`traceparent`, `tracestate`) as it travels in an inbox row's payload. */
export type TraceCarrier = Record<string, string>;

let recording = false;

/** Set by startTracing and its shutdown: whether spans are being recorded in this process. */
export function setTracingActive(active: boolean): void {
  recording = active;
}

export function tracingActive(): boolean {
  return recording;
}

/** The active span's trace context, to continue the trace later in another process; none while tracing is off. */
export function currentTraceCarrier(): TraceCarrier | undefined {
  if (!recording) return undefined;
  const active = context.active();
  const span = trace.getSpan(active);
  if (!span || !isSpanContextValid(span.spanContext())) return undefined;
  const carrier: TraceCarrier = {};
  propagation.inject(active, carrier);
  return Object.keys(carrier).length > 0 ? carrier : undefined;
}

// HTTP methods as OpenTelemetry names them; anything else a client sends is `_OTHER` (no unbounded names).
const knownMethods = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT']);

// Probes and scrapes arrive every few seconds and say nothing about an event's path.
const untracedPaths = new Set(['/healthz', '/readyz', '/metrics']);

/** The route template express matched (`/webhooks/:tenant/:provider`), never the path itself. */
function routeOf(request: IncomingMessage): string | undefined {
  const { route, baseUrl } = request as IncomingMessage & { route?: { path?: unknown }; baseUrl?: unknown };
  if (typeof route?.path !== 'string') return undefined;
  return `${typeof baseUrl === 'string' ? baseUrl : ''}${route.path}`;
}

/**
 * Wraps the API's request handler in a server span per request. A webhook starts a trace of its own:
 * a `traceparent` the sender writes is not followed, since anyone on the internet can send one (and
 * force every trace to be kept). Attributes are the method, the route template and the status: no
 * path, query or header, which can carry phone numbers, ids or link signatures.
 */
export function traceHttpRequests(handler: RequestListener): RequestListener {
  const tracer = trace.getTracer('switchboard-api');
  return (request: IncomingMessage, response: ServerResponse) => {
    const path = (request.url ?? '/').split('?', 1)[0] ?? '/';
    if (!recording || untracedPaths.has(path)) {
      handler(request, response);
      return;
    }
    const method = knownMethods.has(request.method ?? '') ? (request.method as string) : '_OTHER';
    const span = tracer.startSpan(method, { kind: SpanKind.SERVER, root: true, attributes: { 'http.request.method': method } });
    const active = trace.setSpan(ROOT_CONTEXT, span);
    // Listeners on the request's and response's events run in the span too (awaited work already
    // does), whatever callback style a middleware uses.
    context.bind(active, request);
    context.bind(active, response);
    response.once('close', () => {
      const route = routeOf(request);
      if (route) {
        span.updateName(`${method} ${route}`);
        span.setAttribute('http.route', route);
      }
      span.setAttribute('http.response.status_code', response.statusCode);
      if (response.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      if (!response.writableFinished) span.setAttribute('switchboard.http.aborted', true);
      span.end();
    });
    context.with(active, () => handler(request, response));
  };
}

/** Links to the traces of more events than this are dropped (one signal may carry 100 events). */
const maxLinks = 32;

/**
 * Runs a forward of waiting inbox events to Temporal in a span that continues the first event's
 * trace (the webhook that brought it), linked to the traces of the others it carries along.
 */
export async function traceForward<T>(name: string, carriers: ReadonlyArray<TraceCarrier | undefined>, attributes: Attributes, forward: () => Promise<T>): Promise<T> {
  if (!recording) return forward();
  const [first, ...rest] = carriers;
  const parent = first ? propagation.extract(ROOT_CONTEXT, first) : ROOT_CONTEXT;
  const seen = new Set<string>();
  const links: Link[] = [];
  for (const carrier of rest) {
    if (!carrier || links.length >= maxLinks) continue;
    const linked = trace.getSpanContext(propagation.extract(ROOT_CONTEXT, carrier));
    if (!linked || !isSpanContextValid(linked) || seen.has(linked.spanId)) continue;
    seen.add(linked.spanId);
    links.push({ context: linked });
  }
  const tracer = trace.getTracer('switchboard-forwarder');
  return tracer.startActiveSpan(name, { kind: SpanKind.PRODUCER, attributes, links }, parent, async (span) => {
    try {
      return await forward();
    } catch (error) {
      // The kind of failure only: Temporal's own words can quote the payload.
      span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.name : 'error' });
      throw error;
    } finally {
      span.end();
    }
  });
}

/** The active span's ids, for log lines (empty while tracing is off or outside a span). */
export function activeTraceIds(): { trace_id?: string; span_id?: string } {
  if (!recording) return {};
  const span = trace.getSpan(context.active());
  const spanContext = span?.spanContext();
  return spanContext && isSpanContextValid(spanContext) ? { trace_id: spanContext.traceId, span_id: spanContext.spanId } : {};
}
