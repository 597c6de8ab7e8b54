/**
 * Erasure on request and retention of personal text: the SQL behind `npm run cli -- erase` and the
 * retention workflow's activity. What each table keeps after an erasure (README, Operations):
 *   calls                   anonymised: kept for reporting counts, without phone, enrichment, recording,
 *                           transcript, summary, variables or comment
 *   call_events, call_recordings, leads, lead_timeline, whatsapp_status_events, suppressions,
 *   event_inbox, rejected_events   deleted
 *   external_effects        kept (keys are call and lead ids, results outside systems' ids) so a replay
 *                           never repeats an effect; error texts cleared
 *   whatsapp_messages       kept (message ids, template names and statuses only)
 */
import type { Db } from './pool.js';
import { withTransaction } from './pool.js';

export interface ErasureTargets {
  calls: Array<{ callId: string; workflowId: string; email?: string }>;
  leads: Array<{ leadId: string; workflowId: string; phone?: string; email?: string }>;
}

/** A person's calls (by customer phone) and leads (by phone or id), as the journal knows them. */
export async function findErasureTargets(db: Db, tenantId: string, who: { phones: readonly string[]; leadIds: readonly string[] }): Promise<ErasureTargets> {
  const [calls, leads] = await Promise.all([
    db.query<{ call_id: string; workflow_id: string; email: string | null }>(
      `SELECT call_id, workflow_id, snapshot -> 'variables' ->> 'email' AS email FROM calls WHERE tenant_id = $1 AND customer_phone = ANY($2::text[])`,
      [tenantId, who.phones],
    ),
    db.query<{ lead_id: string; workflow_id: string; phone: string | null; email: string | null }>(
      `SELECT lead_id, workflow_id, COALESCE(phone, state -> 'profile' ->> 'phone') AS phone, state -> 'profile' ->> 'email' AS email
         FROM leads WHERE tenant_id = $1 AND (phone = ANY($2::text[]) OR lead_id = ANY($3::text[]))`,
      [tenantId, who.phones, who.leadIds],
    ),
  ]);
  return {
    calls: calls.rows.map((row) => ({ callId: row.call_id, workflowId: row.workflow_id, ...(row.email ? { email: row.email } : {}) })),
    leads: leads.rows.map((row) => ({ leadId: row.lead_id, workflowId: row.workflow_id, ...(row.phone ? { phone: row.phone } : {}), ...(row.email ? { email: row.email } : {}) })),
  };
}

/**
 * A PostgreSQL regular expression (case-insensitive, `~*`) that finds a person's identifiers in
 * stored text however the sender wrote them: a phone's national digits with up to three separators
 * between them ("+14155550142", "%2B14155550142", "(415) 555-0142", "14155550142"), an e-mail address
 * (also with "@" URL-encoded), a lead id as a JSON `lead_id`/`leadId` value.
 */
export function identifierPattern(who: { phoneDigits: readonly string[]; emails: readonly string[]; leadIds: readonly string[] }): string | undefined {
  const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const alternatives = [
    ...who.phoneDigits.filter((digits) => /^\d{4,}$/.test(digits)).map((digits) => digits.split('').join('\\D{0,3}')),
    ...who.emails.map((email) => {
      const at = email.lastIndexOf('@');
      return at < 0 ? escape(email) : `${escape(email.slice(0, at))}(@|%40)${escape(email.slice(at + 1))}`;
    }),
    ...who.leadIds.map((leadId) => `"lead_?id"\\s*:\\s*"${escape(leadId)}"`),
  ];
  return alternatives.length > 0 ? alternatives.map((alternative) => `(${alternative})`).join('|') : undefined;
}

// An expression that never matches, for a person with no identifier to search for.
const nothing = '$^';

/**
 * Deletes the person's waiting, retried and dead-lettered events from the inbox first, so no
 * forwarder can hand them to Temporal again once the workflows are gone.
 */
export async function eraseInboxEvents(db: Db, tenantId: string, workflowIds: readonly string[], pattern: string | undefined): Promise<number> {
  const result = await db.query(`DELETE FROM event_inbox WHERE tenant_id = $1 AND (workflow_id = ANY($2::text[]) OR payload::text ~* $3)`, [tenantId, workflowIds, pattern ?? nothing]);
  return result.rowCount ?? 0;
}

/** Workflow ids of inbox rows naming the person (events not journaled yet), before they are deleted. */
export async function inboxWorkflowIds(db: Db, tenantId: string, pattern: string | undefined): Promise<string[]> {
  if (!pattern) return [];
  const result = await db.query<{ workflow_id: string }>(`SELECT DISTINCT workflow_id FROM event_inbox WHERE tenant_id = $1 AND payload::text ~* $2`, [tenantId, pattern]);
  return result.rows.map((row) => row.workflow_id);
}

export interface ErasedRows {
  callsAnonymised: number;
  callEventsDeleted: number;
  recordingsDeleted: number;
  ledgerEntriesScrubbed: number;
  leadsDeleted: number;
  timelineEntriesDeleted: number;
  whatsappStatusEventsDeleted: number;
  suppressionsDeleted: number;
  rejectedEventsDeleted: number;
}

const likeEscape = (text: string): string => text.replace(/[\\%_]/g, '\\$&');

/** Everything else, in one transaction: anonymises the calls and deletes or scrubs the rest. */
export async function eraseStoredRows(
  db: Db,
  tenantId: string,
  who: { callIds: readonly string[]; leadIds: readonly string[]; phones: readonly string[]; pattern: string | undefined },
): Promise<ErasedRows> {
  const pattern = who.pattern ?? nothing;
  return withTransaction(db, async (client) => {
    const count = async (sql: string, values: unknown[]): Promise<number> => (await client.query(sql, values)).rowCount ?? 0;
    const callsAnonymised = await count(
      `UPDATE calls SET customer_phone = NULL, enrichment = NULL, recording = NULL, transcript = NULL, summary = NULL, variables = NULL,
              result = result - 'comment' - 'submittedBy', analytics = analytics - 'summary', crm = crm - 'error',
              snapshot = (snapshot - 'customerPhone' - 'enrichment' - 'recording' - 'transcript' - 'summary' - 'variables')
                || CASE WHEN snapshot ? 'result' THEN jsonb_build_object('result', (snapshot -> 'result') - 'comment' - 'submittedBy') ELSE '{}'::jsonb END
                || CASE WHEN snapshot ? 'analytics' THEN jsonb_build_object('analytics', (snapshot -> 'analytics') - 'summary') ELSE '{}'::jsonb END
                || CASE WHEN snapshot ? 'crm' THEN jsonb_build_object('crm', (snapshot -> 'crm') - 'error') ELSE '{}'::jsonb END,
              updated_at = now()
        WHERE tenant_id = $1 AND call_id = ANY($2::text[])`,
      [tenantId, who.callIds],
    );
    const callEventsDeleted = await count('DELETE FROM call_events WHERE tenant_id = $1 AND call_id = ANY($2::text[])', [tenantId, who.callIds]);
    const recordingsDeleted = await count('DELETE FROM call_recordings WHERE tenant_id = $1 AND call_id = ANY($2::text[])', [tenantId, who.callIds]);
    // Effect keys end in the call id (`crm:call:<id>`, `ticket:<id>`) or carry it before a trigger
    // (`slack:<id>:vip`); a lead's start with `wa:<lead id>:`.
    const keyPatterns = [
      ...who.callIds.flatMap((callId) => [`%:${likeEscape(callId)}`, `%:${likeEscape(callId)}:%`]),
      ...who.leadIds.map((leadId) => `wa:${likeEscape(leadId)}:%`),
    ];
    const ledgerEntriesScrubbed = await count(
      `UPDATE external_effects SET last_error = NULL, result = CASE WHEN result::text ~* $3 THEN '{}'::jsonb ELSE result END, updated_at = now()
        WHERE tenant_id = $1 AND effect_key LIKE ANY($2::text[]) AND (last_error IS NOT NULL OR result::text ~* $3)`,
      [tenantId, keyPatterns, pattern],
    );
    const whatsappStatusEventsDeleted = await count(
      `DELETE FROM whatsapp_status_events
        WHERE tenant_id = $1 AND (wamid IN (SELECT wamid FROM whatsapp_messages WHERE tenant_id = $1 AND lead_id = ANY($2::text[])) OR payload::text ~* $3)`,
      [tenantId, who.leadIds, pattern],
    );
    const timelineEntriesDeleted = await count('DELETE FROM lead_timeline WHERE tenant_id = $1 AND lead_id = ANY($2::text[])', [tenantId, who.leadIds]);
    const leadsDeleted = await count('DELETE FROM leads WHERE tenant_id = $1 AND lead_id = ANY($2::text[])', [tenantId, who.leadIds]);
    const suppressionsDeleted = await count('DELETE FROM suppressions WHERE tenant_id = $1 AND phone = ANY($2::text[])', [tenantId, who.phones]);
    // Raw bodies are bytes: read as text with non-ASCII bytes escaped, which keeps digits and addresses.
    const rejectedEventsDeleted = await count(
      `DELETE FROM rejected_events
        WHERE tenant_id = $1 AND (encode(raw_body, 'escape') ~* $2 OR headers::text ~* $2 OR COALESCE(detail::text, '') ~* $2 OR path ~* $2)`,
      [tenantId, pattern],
    );
    return {
      callsAnonymised,
      callEventsDeleted,
      recordingsDeleted,
      ledgerEntriesScrubbed,
      leadsDeleted,
      timelineEntriesDeleted,
      whatsappStatusEventsDeleted,
      suppressionsDeleted,
      rejectedEventsDeleted,
    };
  });
}

export interface RetentionCleared {
  transcripts: number;
  transcriptEvents: number;
  inboxMessageBodies: number;
  rejectedMessages: number;
}

/**
 * Clears one tenant's call transcripts of calls that ended (or, never ended, started) before
 * `transcriptsBefore`, and the WhatsApp message text received before `messagesBefore`: replies still
 * in the inbox (dead letters) lose their text, refused WhatsApp webhooks (raw bodies) are deleted.
 */
export async function clearExpiredText(db: Db, tenantId: string, cutoffs: { transcriptsBefore: Date; messagesBefore: Date }): Promise<RetentionCleared> {
  return withTransaction(db, async (client) => {
    const count = async (sql: string, values: unknown[]): Promise<number> => (await client.query(sql, values)).rowCount ?? 0;
    const transcripts = await count(
      `UPDATE calls SET transcript = NULL, snapshot = snapshot - 'transcript', updated_at = now()
        WHERE tenant_id = $1 AND COALESCE(ended_at, started_at) < $2 AND (transcript IS NOT NULL OR snapshot ? 'transcript')`,
      [tenantId, cutoffs.transcriptsBefore],
    );
    const transcriptEvents = await count(
      `UPDATE call_events SET payload = payload - 'transcript'
        WHERE tenant_id = $1 AND payload ? 'transcript'
          AND call_id IN (SELECT call_id FROM calls WHERE tenant_id = $1 AND COALESCE(ended_at, started_at) < $2)`,
      [tenantId, cutoffs.transcriptsBefore],
    );
    const inboxMessageBodies = await count(
      `UPDATE event_inbox SET payload = jsonb_set(payload, '{events}', (
           SELECT COALESCE(jsonb_agg(CASE WHEN event ->> 'type' = 'whatsapp.reply' THEN event || '{"text": ""}'::jsonb ELSE event END ORDER BY n), '[]'::jsonb)
             FROM jsonb_array_elements(payload -> 'events') WITH ORDINALITY AS given(event, n)))
        WHERE tenant_id = $1 AND received_at < $2 AND jsonb_typeof(payload -> 'events') = 'array'
          AND EXISTS (SELECT 1 FROM jsonb_array_elements(payload -> 'events') AS given(event)
                       WHERE event ->> 'type' = 'whatsapp.reply' AND COALESCE(event ->> 'text', '') <> '')`,
      [tenantId, cutoffs.messagesBefore],
    );
    const rejectedMessages = await count(`DELETE FROM rejected_events WHERE tenant_id = $1 AND source IN ('whatsapp', 'sms') AND received_at < $2`, [tenantId, cutoffs.messagesBefore]);
    return { transcripts, transcriptEvents, inboxMessageBodies, rejectedMessages };
  });
}
