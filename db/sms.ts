/** SMS we sent through Twilio and the status callbacks about them (no numbers, no text: the lead has those). */
import type { Db } from './pool.js';

export async function recordAcceptedSms(db: Db, message: { tenantId: string; sid: string; effectKey: string; leadId: string; status: string }): Promise<void> {
  await db.query(
    `INSERT INTO sms_messages (tenant_id, sid, effect_key, lead_id, status) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, sid) DO NOTHING`,
    [message.tenantId, message.sid, message.effectKey, message.leadId, message.status],
  );
}

/** The SMS sent under this effect key, if Twilio took one (known from our send or from its status callback). */
export async function smsForEffect(db: Db, tenantId: string, effectKey: string): Promise<{ sid: string; status: string } | undefined> {
  const result = await db.query<{ sid: string; status: string }>(
    'SELECT sid, status FROM sms_messages WHERE tenant_id = $1 AND effect_key = $2 ORDER BY accepted_at LIMIT 1',
    [tenantId, effectKey],
  );
  return result.rows[0];
}

/** Twilio's outbound statuses in the order a message goes through them; undelivered and failed are final. */
export const smsStatusRank: Readonly<Record<string, number>> = { accepted: 0, scheduled: 0, queued: 1, sending: 2, sent: 3, delivered: 4, undelivered: 5, failed: 5, canceled: 5 };

export interface SmsStatusUpdate {
  tenantId: string;
  sid: string;
  status: string;
  /** From the callback URL we gave Twilio (it signs the URL, so it is as trusted as the rest). */
  effectKey?: string;
  leadId?: string;
  errorCode?: number;
}

/**
 * Records one status callback (at least once, any order). Returns `fresh: false` for a duplicate.
 * The message row only moves forward (queued → sent → delivered; undelivered or failed win).
 */
export async function recordSmsStatus(db: Db, update: SmsStatusUpdate): Promise<{ fresh: boolean; leadId?: string; effectKey?: string; status?: string }> {
  const inserted = await db.query(
    `INSERT INTO sms_status_events (tenant_id, sid, status, effect_key, error_code) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`,
    [update.tenantId, update.sid, update.status, update.effectKey ?? null, update.errorCode ?? null],
  );
  // A callback for a send whose answer we never got (the worker died): it tells us the SMS exists.
  if (update.effectKey) {
    await db.query(
      `INSERT INTO sms_messages (tenant_id, sid, effect_key, lead_id, status) VALUES ($1, $2, $3, $4, 'accepted') ON CONFLICT (tenant_id, sid) DO NOTHING`,
      [update.tenantId, update.sid, update.effectKey, update.leadId ?? null],
    );
  }
  const rank = smsStatusRank[update.status] ?? 0;
  const row = await db.query<{ lead_id: string | null; effect_key: string; status: string }>(
    `UPDATE sms_messages SET
       status = CASE WHEN $4 > (CASE status WHEN 'queued' THEN 1 WHEN 'sending' THEN 2 WHEN 'sent' THEN 3 WHEN 'delivered' THEN 4
                                 WHEN 'undelivered' THEN 5 WHEN 'failed' THEN 5 WHEN 'canceled' THEN 5 ELSE 0 END) THEN $3 ELSE status END,
       error_code = COALESCE($5, error_code), updated_at = now()
     WHERE tenant_id = $1 AND sid = $2
     RETURNING lead_id, effect_key, status`,
    [update.tenantId, update.sid, update.status, rank, update.errorCode ?? null],
  );
  const message = row.rows[0];
  return {
    fresh: (inserted.rowCount ?? 0) > 0,
    ...(message?.lead_id ? { leadId: message.lead_id } : {}),
    ...(message ? { effectKey: message.effect_key, status: message.status } : {}),
  };
}
