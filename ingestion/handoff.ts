/**
 * What a workflow delivery is, and how one reaches Temporal: signalWithStart of the workflow with
 * a batch of events. The inbox stores deliveries of one event each; the forwarder merges a
 * workflow's waiting events into one signal.
 */
import { ServiceError, WorkflowExecutionAlreadyStartedError, isGrpcServiceError } from '@temporalio/client';
import type { Client } from '@temporalio/client';
import { ValueError } from '@temporalio/common';
import type { SearchAttributePair } from '@temporalio/common';
import { currentTraceCarrier } from '../observability/trace-context.js';
import type { TraceCarrier } from '../observability/trace-context.js';
import { searchAttributes } from '../shared/search-attributes.js';

type KnownAttribute = keyof typeof searchAttributes;

/** Everything needed to signalWithStart a workflow; plain JSON so it can wait in the inbox. */
export interface WorkflowDelivery {
  tenantId: string;
  /** Who sent it (pbx, twilio, voice-ai, crm, whatsapp, call-result, cli): part of the dedupe key's story, and of the metrics. */
  source: string;
  workflowType: string;
  workflowId: string;
  taskQueue: string;
  args: unknown[];
  signalName: string;
  /** The signal's argument is `{ events }`; every event has its own id, which the workflow dedupes by. */
  events: Array<{ eventId: string }>;
  searchAttributes: Partial<Record<KnownAttribute, string>>;
  staticSummary?: string;
  staticDetails?: string;
  /** The trace of the request that accepted it (W3C traceparent), so the forwarder's signal continues it; only while tracing is on. */
  traceContext?: TraceCarrier;
}

function typedAttributes(values: WorkflowDelivery['searchAttributes']): SearchAttributePair[] {
  return Object.entries(values).flatMap(([name, value]) => {
    const key = searchAttributes[name as KnownAttribute];
    return key && value !== undefined ? [{ key, value } as SearchAttributePair] : [];
  });
}

export async function signalWithStart(temporal: Client, delivery: WorkflowDelivery): Promise<string> {
  try {
    return await signalWithStartOnce(temporal, delivery);
  } catch (error) {
    // Two first events for one workflow at the same instant can race to start it (Temporal's test
    // server reports it); the loser only has to signal the run the winner started.
    if (error instanceof WorkflowExecutionAlreadyStartedError) return signalWithStartOnce(temporal, delivery);
    throw error;
  }
}

async function signalWithStartOnce(temporal: Client, delivery: WorkflowDelivery): Promise<string> {
  const handle = await temporal.workflow.signalWithStart(delivery.workflowType, {
    workflowId: delivery.workflowId,
    taskQueue: delivery.taskQueue,
    args: delivery.args,
    signal: delivery.signalName,
    signalArgs: [{ events: delivery.events }],
    typedSearchAttributes: typedAttributes(delivery.searchAttributes),
    ...(delivery.staticSummary ? { staticSummary: delivery.staticSummary } : {}),
    ...(delivery.staticDetails ? { staticDetails: delivery.staticDetails } : {}),
  });
  return handle.signaledRunId;
}

/** One delivery per event, as the inbox keeps them, each with the trace it was accepted in. */
export function perEvent(delivery: WorkflowDelivery): WorkflowDelivery[] {
  const traceContext = currentTraceCarrier();
  return delivery.events.map((event) => ({ ...delivery, events: [event], ...(traceContext ? { traceContext } : {}) }));
}

/** gRPC status INVALID_ARGUMENT: what Temporal answers for a malformed or oversized request. */
const invalidArgument = 3;

/**
 * Whether Temporal refused the delivery for good (retrying it unchanged cannot succeed), rather
 * than being unreachable, slow or overloaded: a request it calls invalid (ids too long, payload
 * over the blob limit), or a payload that cannot even be serialized.
 */
export function isRefusal(error: unknown): boolean {
  if (error instanceof ValueError) return true;
  const cause = error instanceof ServiceError ? error.cause : error;
  return isGrpcServiceError(cause) && (cause.code as number) === invalidArgument;
}

/** What went wrong, in Temporal's own words where it gave any (the client wraps them). */
export function describeForwardError(error: unknown): string {
  const cause = error instanceof ServiceError ? error.cause : error;
  if (isGrpcServiceError(cause)) return `${error instanceof ServiceError ? `${error.message}: ` : ''}${cause.details}`;
  return error instanceof Error ? error.message : String(error);
}
