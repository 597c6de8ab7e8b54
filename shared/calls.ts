/**
 * The one canonical call event every provider adapter maps onto, and the call's journal shape.
 * Used by the API (validation, normalization) and by the call workflow, so it must stay free of
 * Node built-ins and I/O.
 */
import { z } from 'zod';
import { callProviders } from './vocabulary.js';

export { callIdOf, callProviders, callWorkflowId, parseCallId } from './vocabulary.js';
export const callProviderSchema = z.enum(callProviders);
export type CallProvider = z.infer<typeof callProviderSchema>;

export const callDirectionSchema = z.enum(['inbound', 'outbound']);
export type CallDirection = z.infer<typeof callDirectionSchema>;

/** How a call ended, as far as the phone system knows. */
export const dispositionSchema = z.enum(['answered', 'missed', 'abandoned', 'busy', 'no_answer', 'voicemail', 'failed', 'canceled']);
export type Disposition = z.infer<typeof dispositionSchema>;

const e164Schema = z.string().regex(/^\+[1-9]\d{6,14}$/, 'must be an E.164 phone number');
const isoTimestamp = z.iso.datetime({ offset: true });

export const transcriptTurnSchema = z.object({
  speaker: z.enum(['agent', 'customer', 'system']),
  text: z.string().max(10_000),
  at: z.number().nonnegative().optional(),
});
export type TranscriptTurn = z.infer<typeof transcriptTurnSchema>;

export const variablesSchema = z.record(z.string().max(100), z.union([z.string().max(2_000), z.number(), z.boolean(), z.null()]));

export const callAnalyticsSchema = z.object({
  /** 1 (very unhappy) … 5 (very happy). */
  satisfaction: z.number().int().min(1).max(5).optional(),
  resolved: z.boolean().optional(),
  sentiment: z.enum(['positive', 'neutral', 'negative']).optional(),
  issueType: z.string().max(200).optional(),
  summary: z.string().max(5_000).optional(),
  transferRequested: z.boolean().optional(),
  metrics: z.record(z.string().max(100), z.number()).optional(),
});
export type CallAnalytics = z.infer<typeof callAnalyticsSchema>;

export const crmEntitySchema = z.object({
  type: z.enum(['contacts', 'leads', 'companies']),
  id: z.coerce.number().int().positive(),
});
export type CrmEntity = z.infer<typeof crmEntitySchema>;

/** What the manager enters in the CRM widget's call-result window. */
export const callResultSchema = z.object({
  outcome: z.enum(['resolved', 'unresolved', 'callback_requested', 'wrong_number', 'no_answer', 'voicemail', 'other']),
  comment: z.string().max(5_000).optional(),
  entity: crmEntitySchema.optional(),
  submittedBy: z.string().max(200).optional(),
});
export type CallResult = z.infer<typeof callResultSchema>;

const eventBase = {
  /** Stable id of this occurrence: duplicates of the same delivery carry the same id. */
  eventId: z.string().min(1).max(300),
  occurredAt: isoTimestamp,
  direction: callDirectionSchema.optional(),
  /** The customer's number, E.164; absent when withheld. */
  customerPhone: e164Schema.optional(),
  /** Our side's number (the line or DID), E.164. */
  linePhone: e164Schema.optional(),
  agentId: z.string().max(200).optional(),
};

export const callEventSchema = z.discriminatedUnion('type', [
  z.object({ ...eventBase, type: z.literal('call.started') }),
  z.object({ ...eventBase, type: z.literal('call.ringing') }),
  z.object({ ...eventBase, type: z.literal('call.answered') }),
  z.object({
    ...eventBase,
    type: z.literal('call.ended'),
    durationSeconds: z.number().int().nonnegative().optional(),
    disposition: dispositionSchema.optional(),
    transcript: z.array(transcriptTurnSchema).max(5_000).optional(),
    summary: z.string().max(5_000).optional(),
    variables: variablesSchema.optional(),
    recordingUrl: z.url().optional(),
  }),
  z.object({
    ...eventBase,
    type: z.literal('call.recording'),
    recordingUrl: z.url(),
    recordingDurationSeconds: z.number().int().nonnegative().optional(),
  }),
  z.object({ ...eventBase, type: z.literal('call.analytics'), analytics: callAnalyticsSchema }),
  z.object({ ...eventBase, type: z.literal('call.result'), result: callResultSchema }),
  /** An operator asks for the CRM sync to run again (after fixing the CRM token, say); the ledger keeps it exactly once. */
  z.object({ ...eventBase, type: z.literal('call.redrive_crm'), operator: z.string().max(200).optional() }),
]);
export type CallEvent = z.infer<typeof callEventSchema>;
export type CallEventType = CallEvent['type'];

/** Per-tenant timings and rules the call workflow follows (no secrets: they stay in the worker). */
export const callPolicySchema = z.object({
  /** Wait this long after the end for the manager's result form before logging to the CRM. */
  crmSyncDelaySeconds: z.number().int().nonnegative().default(60),
  /** Wait this long after the end for analytics or a result before deciding tickets, alerts and e-mail. */
  outcomeWaitSeconds: z.number().int().nonnegative().default(300),
  /** Keep the workflow open this long after the last event, for late analytics, recordings or results. */
  wrapUpMinutes: z.number().positive().default(60),
  /** A call with no end after this long is closed as ended with an unknown outcome. */
  maxCallHours: z.number().positive().default(6),
  /** Backoff for CRM enrichment and logging while the CRM is down. */
  crmRetry: z
    .object({
      initialIntervalSeconds: z.number().positive().default(10),
      maximumIntervalSeconds: z.number().positive().default(1_800),
      giveUpAfterHours: z.number().positive().default(48),
    })
    .prefault({}),
  tickets: z.object({ enabled: z.boolean().default(true) }).prefault({}),
  slack: z
    .object({
      transferRequested: z.boolean().default(true),
      lowSatisfactionAtOrBelow: z.number().int().min(1).max(5).default(2),
      vip: z.boolean().default(true),
    })
    .prefault({}),
  email: z.object({ enabled: z.boolean().default(true) }).prefault({}),
  /** Create a call-back task in the CRM for missed inbound calls. */
  callbackTaskForMissedCalls: z.boolean().default(true),
});
export type CallPolicy = z.infer<typeof callPolicySchema>;

export const callStatuses = ['ringing', 'in_progress', 'ended', 'completed'] as const;
export type CallStatus = (typeof callStatuses)[number];
export type EnrichmentState = 'pending' | 'done' | 'not_found' | 'failed' | 'skipped';
export type CrmSyncState = 'waiting' | 'pending' | 'synced' | 'skipped' | 'failed';
export type ActionState = 'pending' | 'done' | 'skipped' | 'failed';

export interface CallEnrichment {
  contact?: { id: number; name?: string };
  account?: { id: number; name?: string };
  previousInteractions: Array<{ at: string; type: string; summary?: string }>;
  assignedRepresentative?: { id: number; name?: string; email?: string };
  vip: boolean;
}

export interface CrmLinks {
  entity?: CrmEntity;
  incomingLeadId?: number;
  incomingLeadUid?: string;
  noteId?: number;
  callbackTaskId?: number;
  /** The lead workflow the call was reported to. */
  leadId?: string;
  skippedReason?: string;
  error?: string;
}

export interface CallActions {
  ticket?: { state: ActionState; id?: number; reason?: string; error?: string };
  slack: Array<{ trigger: 'transfer_requested' | 'low_satisfaction' | 'vip'; state: ActionState; error?: string }>;
  email?: { state: ActionState; template: 'thank_you' | 'apology_escalation' | 'additional_resources'; error?: string; reason?: string };
}

/** The call as the workflow knows it: what the journal row holds and the query returns. */
export interface CallSnapshot {
  tenantId: string;
  callId: string;
  provider: CallProvider;
  providerCallId: string;
  workflowId: string;
  /** Increases at every transition; the journal never lets an older version overwrite a newer one. */
  version: number;
  status: CallStatus;
  direction?: CallDirection;
  customerPhone?: string;
  linePhone?: string;
  agentId?: string;
  startedAt?: string;
  answeredAt?: string;
  endedAt?: string;
  durationSeconds?: number;
  disposition?: Disposition;
  /** The disposition the phone system reported, if any (otherwise it is derived). */
  providerDisposition?: Disposition;
  waitSeconds?: number;
  endReason?: 'provider' | 'timeout';
  recording?: { sourceUrl: string; stored: boolean; sizeBytes?: number; contentType?: string; error?: string };
  transcript?: TranscriptTurn[];
  summary?: string;
  variables?: Record<string, string | number | boolean | null>;
  analytics?: CallAnalytics;
  result?: CallResult;
  enrichmentState: EnrichmentState;
  enrichment?: CallEnrichment;
  crmSyncState: CrmSyncState;
  crm: CrmLinks;
  actions: CallActions;
  /** Ids of every event applied, in arrival order: the workflow's dedupe set. */
  eventIds: string[];
  completedAt?: string;
}
