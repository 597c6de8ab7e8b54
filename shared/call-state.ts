/**
 * The call's state machine as pure functions, so the workflow stays small and the rules can be
 * tested without Temporal. Events may arrive in any order and more than once; applying them in
 * any order gives the same snapshot.
 */
import type { CallEvent, CallProvider, CallSnapshot, CallStatus, Disposition } from './calls.js';
import { callIdOf, callWorkflowId } from './vocabulary.js';

const statusRank: Record<CallStatus, number> = { ringing: 1, in_progress: 2, ended: 3, completed: 4 };

/** A status only moves forward: an "answered" arriving after "ended" cannot reopen the call. */
export function laterStatus(current: CallStatus, candidate: CallStatus): CallStatus {
  return statusRank[candidate] > statusRank[current] ? candidate : current;
}

export function initialSnapshot(tenantId: string, provider: CallProvider, providerCallId: string): CallSnapshot {
  const callId = callIdOf(provider, providerCallId);
  return {
    tenantId,
    callId,
    provider,
    providerCallId,
    workflowId: callWorkflowId(tenantId, callId),
    version: 0,
    status: 'ringing',
    enrichmentState: 'pending',
    crmSyncState: 'waiting',
    crm: {},
    actions: { slack: [] },
    eventIds: [],
  };
}

const earliest = (current: string | undefined, candidate: string): string =>
  current === undefined || Date.parse(candidate) < Date.parse(current) ? candidate : current;

const addSeconds = (iso: string, seconds: number): string => new Date(Date.parse(iso) + seconds * 1000).toISOString();

/** Events in the order they happened; ties keep arrival order. */
export function byOccurrence(events: CallEvent[]): CallEvent[] {
  return events
    .map((event, index) => ({ event, index }))
    .sort((a, b) => Date.parse(a.event.occurredAt) - Date.parse(b.event.occurredAt) || a.index - b.index)
    .map(({ event }) => event);
}

/**
 * Applies one event to the snapshot (in place). Returns false for a duplicate. Identity fields
 * are filled by the first event that knows them; times keep the earliest report; the status
 * only moves forward.
 */
export function applyCallEvent(snapshot: CallSnapshot, event: CallEvent): boolean {
  if (snapshot.eventIds.includes(event.eventId)) return false;
  snapshot.eventIds.push(event.eventId);
  snapshot.direction ??= event.direction;
  snapshot.customerPhone ??= event.customerPhone;
  snapshot.linePhone ??= event.linePhone;
  if (event.agentId && (snapshot.agentId === undefined || event.type === 'call.answered')) snapshot.agentId = event.agentId;

  switch (event.type) {
    case 'call.started':
    case 'call.ringing':
      snapshot.startedAt = earliest(snapshot.startedAt, event.occurredAt);
      break;
    case 'call.answered':
      snapshot.answeredAt = earliest(snapshot.answeredAt, event.occurredAt);
      snapshot.status = laterStatus(snapshot.status, 'in_progress');
      break;
    case 'call.ended':
      snapshot.endedAt = earliest(snapshot.endedAt, event.occurredAt);
      snapshot.endReason = 'provider';
      if (event.durationSeconds !== undefined) snapshot.durationSeconds = event.durationSeconds;
      if (event.disposition) snapshot.providerDisposition = event.disposition;
      if (event.transcript) snapshot.transcript = event.transcript;
      if (event.summary) snapshot.summary = event.summary;
      if (event.variables) snapshot.variables = { ...snapshot.variables, ...event.variables };
      if (event.recordingUrl && !snapshot.recording) snapshot.recording = { sourceUrl: event.recordingUrl, stored: false };
      snapshot.status = laterStatus(snapshot.status, 'ended');
      break;
    case 'call.recording':
      if (!snapshot.recording?.stored) snapshot.recording = { sourceUrl: event.recordingUrl, stored: false };
      break;
    case 'call.analytics':
      snapshot.analytics = { ...snapshot.analytics, ...event.analytics, metrics: { ...snapshot.analytics?.metrics, ...event.analytics.metrics } };
      break;
    case 'call.result':
      snapshot.result = event.result;
      break;
    case 'call.redrive_crm':
      // A failed or skipped sync goes back to waiting; a synced one stays (the ledger would return it anyway).
      if (snapshot.crmSyncState === 'failed' || snapshot.crmSyncState === 'skipped') {
        snapshot.crmSyncState = 'waiting';
        snapshot.crm = { ...(snapshot.crm.entity ? { entity: snapshot.crm.entity } : {}) };
      }
      break;
  }
  deriveTimings(snapshot);
  return true;
}

/** Fills what can be inferred: start from end minus duration, the disposition, the wait. */
function deriveTimings(snapshot: CallSnapshot): void {
  if (snapshot.endedAt && snapshot.durationSeconds !== undefined && snapshot.startedAt === undefined) {
    snapshot.startedAt = addSeconds(snapshot.endedAt, -snapshot.durationSeconds);
  }
  if (snapshot.status === 'ended' || snapshot.status === 'completed') snapshot.disposition = dispositionOf(snapshot);
  const waitEnd = snapshot.answeredAt ?? (snapshot.disposition && snapshot.disposition !== 'answered' ? snapshot.endedAt : undefined);
  if (snapshot.startedAt && waitEnd) {
    snapshot.waitSeconds = Math.max(0, Math.round((Date.parse(waitEnd) - Date.parse(snapshot.startedAt)) / 1000));
  }
}

function dispositionOf(snapshot: CallSnapshot): Disposition {
  if (snapshot.providerDisposition) return snapshot.providerDisposition;
  if (snapshot.answeredAt) return 'answered';
  return snapshot.direction === 'outbound' ? 'no_answer' : 'missed';
}

/** A call nobody reported the end of is closed after `maxCallHours` with what is known. */
export function closeByTimeout(snapshot: CallSnapshot, nowIso: string): void {
  snapshot.endedAt ??= nowIso;
  snapshot.endReason = 'timeout';
  snapshot.status = laterStatus(snapshot.status, 'ended');
  deriveTimings(snapshot);
}

export function isEnded(snapshot: CallSnapshot): boolean {
  return snapshot.status === 'ended' || snapshot.status === 'completed';
}

export function isMissedInbound(snapshot: CallSnapshot): boolean {
  return (
    snapshot.direction === 'inbound' &&
    snapshot.disposition !== undefined &&
    ['missed', 'abandoned', 'no_answer', 'busy', 'voicemail'].includes(snapshot.disposition)
  );
}

/** Masks a phone number for places operators read but where raw numbers must not go (Web UI details). */
export function maskPhone(phone: string | undefined): string {
  if (!phone) return 'withheld';
  return `${phone.slice(0, 3)}•••${phone.slice(-2)}`;
}
