/** WhatsApp messages we sent and the status webhooks about them. */
import type { Db } from './pool.js';

export async function recordAcceptedMessage(
  db: Db,
  message: { tenantId: string; wamid: string; effectKey: string; leadId: string; kind: 'text' | 'template'; templateName?: string; language?: string; sender?: string },
): Promise<void> {
  await db.query(
    `INSERT INTO whatsapp_messages (tenant_id, wamid, effect_key, lead_id, kind, template_name, language, sender, status)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'accepted') ON CONFLICT (tenant_id, wamid) DO NOTHING`,
    [message.tenantId, message.wamid, message.effectKey, message.leadId, message.kind, message.templateName ?? null, message.language ?? null, message.sender ?? null],
  );
}

/**
 * A message sent under this effect key, if WhatsApp accepted one (known from our send or from its
 * status webhook); one that went through before one that failed (a refusal reported both ways
 * leaves a failed message under the key the retry then sent).
 */
export async function messageForEffect(db: Db, tenantId: string, effectKey: string): Promise<{ wamid: string; kind: 'text' | 'template'; sender?: string } | undefined> {
  const result = await db.query<{ wamid: string; kind: 'text' | 'template'; sender: string | null }>(
    `SELECT wamid, kind, sender FROM whatsapp_messages WHERE tenant_id = $1 AND effect_key = $2 ORDER BY status = 'failed', accepted_at LIMIT 1`,
    [tenantId, effectKey],
  );
  const row = result.rows[0];
  return row ? { wamid: row.wamid, kind: row.kind, ...(row.sender !== null ? { sender: row.sender } : {}) } : undefined;
}

const statusRank: Record<string, number> = { accepted: 0, sent: 1, delivered: 2, read: 3, failed: 4 };

export interface StatusUpdate {
  tenantId: string;
  wamid: string;
  status: 'sent' | 'delivered' | 'read' | 'failed';
  occurredAt: string;
  effectKey?: string;
  recipient?: string;
  /** The number the webhook came for (its `metadata.phone_number_id`), by name. */
  sender?: string;
  errorCode?: number;
  errorTitle?: string;
  payload: unknown;
}

/**
 * Records one status (at least once, any order). Returns false for a duplicate. The message row
 * only moves forward (sent → delivered → read; failed wins), whatever order statuses arrive in.
 */
export async function recordStatus(db: Db, update: StatusUpdate): Promise<{ fresh: boolean; leadId?: string; effectKey?: string }> {
  const inserted = await db.query(
    `INSERT INTO whatsapp_status_events (tenant_id, wamid, status, occurred_at, effect_key, error_code, payload)
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
    [update.tenantId, update.wamid, update.status, update.occurredAt, update.effectKey ?? null, update.errorCode ?? null, JSON.stringify(update.payload)],
  );
  // A status for a send whose answer we never got (the worker died): the webhook tells us it went out.
  if (update.effectKey) {
    const leadId = /^wa:([^:]+):/.exec(update.effectKey)?.[1] ?? null;
    await db.query(
      `INSERT INTO whatsapp_messages (tenant_id, wamid, effect_key, lead_id, kind, sender, status) VALUES ($1, $2, $3, $4, 'unknown', $5, 'accepted')
       ON CONFLICT (tenant_id, wamid) DO NOTHING`,
      [update.tenantId, update.wamid, update.effectKey, leadId, update.sender ?? null],
    );
  }
  const row = await db.query<{ lead_id: string | null; effect_key: string; status: string }>(
    `UPDATE whatsapp_messages SET
       status = CASE WHEN $3 = 'failed' OR $4 > (CASE status WHEN 'accepted' THEN 0 WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2 WHEN 'read' THEN 3 ELSE 4 END)
                THEN $3 ELSE status END,
       error_code = COALESCE($5, error_code), error_title = COALESCE($6, error_title), updated_at = now()
     WHERE tenant_id = $1 AND wamid = $2
     RETURNING lead_id, effect_key, status`,
    [update.tenantId, update.wamid, update.status, statusRank[update.status], update.errorCode ?? null, update.errorTitle ?? null],
  );
  const message = row.rows[0];
  return { fresh: (inserted.rowCount ?? 0) > 0, ...(message?.lead_id ? { leadId: message.lead_id } : {}), ...(message ? { effectKey: message.effect_key } : {}) };
}

/**
 * Whether another message under this effect key went through (accepted, sent, delivered or read).
 * A refusal WhatsApp reports both ways comes back as a `failed` status under a message id the
 * sender never saw; when the send's own retry already got a message out, that failure is stale.
 */
export async function effectHasLiveMessage(db: Db, tenantId: string, effectKey: string, exceptWamid: string): Promise<boolean> {
  const result = await db.query(
    `SELECT 1 FROM whatsapp_messages
      WHERE tenant_id = $1 AND effect_key = $2 AND wamid <> $3 AND status IN ('accepted', 'sent', 'delivered', 'read')
      LIMIT 1`,
    [tenantId, effectKey, exceptWamid],
  );
  return (result.rowCount ?? 0) > 0;
}
