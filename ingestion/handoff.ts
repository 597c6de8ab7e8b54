/**
 * Hands an accepted event to Temporal (signalWithStart) within a deadline. If Temporal is
 * unreachable or too slow the event goes to the PostgreSQL inbox instead, and the caller still
 * gets its acknowledgement; the inbox relay forwards it, in order, once Temporal answers again.
 */
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import type { Client, Connection } from '@temporalio/client';
import type { SearchAttributePair } from '@temporalio/common';
import type { Db } from '../db/pool.js';
import type { Logger } from '../observability/logger.js';
import { scrubText } from '../observability/logger.js';
import { searchAttributes } from '../shared/search-attributes.js';

type KnownAttribute = keyof typeof searchAttributes;

/** Everything needed to signalWithStart a workflow; plain JSON so it can wait in the inbox. */
export interface WorkflowDelivery {
  tenantId: string;
  workflowType: string;
  workflowId: string;
  taskQueue: string;
  args: unknown[];
  signalName: string;
  signalArgs: unknown[];
  searchAttributes: Partial<Record<KnownAttribute, string>>;
  staticSummary?: string;
  staticDetails?: string;
}

export type HandOffResult = { via: 'temporal'; runId: string } | { via: 'inbox'; inboxId: number };

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
    signalArgs: delivery.signalArgs,
    typedSearchAttributes: typedAttributes(delivery.searchAttributes),
    ...(delivery.staticSummary ? { staticSummary: delivery.staticSummary } : {}),
    ...(delivery.staticDetails ? { staticDetails: delivery.staticDetails } : {}),
  });
  return handle.signaledRunId;
}

export async function enqueueInInbox(db: Db, delivery: WorkflowDelivery, reason: string): Promise<number> {
  const inserted = await db.query<{ id: number }>(
    `INSERT INTO event_inbox (tenant_id, workflow_id, workflow_type, signal_name, task_queue, payload, last_error)
     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
    [delivery.tenantId, delivery.workflowId, delivery.workflowType, delivery.signalName, delivery.taskQueue, JSON.stringify(delivery), reason],
  );
  const id = inserted.rows[0]?.id;
  if (id === undefined) throw new Error('inbox insert returned no id');
  return id;
}

export interface HandOffDeps {
  temporal: Client;
  connection: Connection;
  db: Db;
  logger: Logger;
  /** How long a webhook may wait for Temporal before its event goes to the inbox. */
  timeoutMs: number;
}

export type HandOff = (delivery: WorkflowDelivery) => Promise<HandOffResult>;

export function createHandOff(deps: HandOffDeps): HandOff {
  return async (delivery) => {
    try {
      const runId = await deps.connection.withDeadline(Date.now() + deps.timeoutMs, () => signalWithStart(deps.temporal, delivery));
      return { via: 'temporal', runId };
    } catch (error) {
      const reason = scrubText((error as Error).message ?? String(error)).slice(0, 500);
      deps.logger.warn({ workflowId: delivery.workflowId, reason }, 'Temporal did not take the event in time; queued in the inbox');
      const inboxId = await enqueueInInbox(deps.db, delivery, reason);
      return { via: 'inbox', inboxId };
    }
  };
}
