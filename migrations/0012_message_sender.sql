-- Up Migration

-- The tenant's WhatsApp number a message went out from (`default` or a name under
-- `whatsapp.senders`); NULL for messages sent before sender numbers.
ALTER TABLE whatsapp_messages ADD COLUMN sender text;

-- The reporting view gains the channel (WhatsApp, or SMS for the fallback), the sender number and
-- the language of each send; an SMS send's delivery and failure come from the SMS ledger. New
-- columns go last (CREATE OR REPLACE VIEW keeps the existing ones in place for BI tools).
CREATE OR REPLACE VIEW reporting_lead_sends AS
WITH attempts AS (
  SELECT t.tenant_id, t.lead_id, t.at, t.flow, t.step,
         (t.kind = 'sent') AS sent,
         CASE WHEN t.kind = 'sent' THEN t.detail ->> 'messageId' END AS message_id,
         COALESCE(t.detail ->> 'channel', 'whatsapp') AS channel,
         t.detail ->> 'sender' AS sender,
         t.detail ->> 'language' AS language
    FROM lead_timeline t
   WHERE (t.kind = 'sent' AND t.entry_key LIKE 'sent:%')
      OR (t.kind = 'failed' AND t.entry_key LIKE 'failed:%:send')
),
windowed AS (
  SELECT a.*,
         lead(a.at) OVER (PARTITION BY a.tenant_id, a.lead_id, a.sent ORDER BY a.at) AS next_at
    FROM attempts a
)
SELECT
  w.tenant_id,
  w.flow,
  w.step,
  m.template_name AS template,
  COALESCE(m.kind, CASE WHEN w.sent AND w.channel = 'sms' THEN 'text' WHEN w.sent THEN 'unknown' END) AS message_kind,
  w.at AS sent_at,
  (w.at AT TIME ZONE COALESCE(l.time_zone, 'UTC'))::date AS local_date,
  extract(hour FROM w.at AT TIME ZONE COALESCE(l.time_zone, 'UTC'))::int AS local_hour,
  extract(isodow FROM w.at AT TIME ZONE COALESCE(l.time_zone, 'UTC'))::int AS local_weekday,
  w.sent,
  (w.sent AND CASE WHEN w.channel = 'sms'
     THEN sms.status = 'delivered' OR EXISTS (
       SELECT 1 FROM sms_status_events e WHERE e.tenant_id = w.tenant_id AND e.sid = w.message_id AND e.status = 'delivered')
     ELSE m.status IN ('delivered', 'read') OR EXISTS (
       SELECT 1 FROM whatsapp_status_events e
        WHERE e.tenant_id = w.tenant_id AND e.wamid = w.message_id AND e.status IN ('delivered', 'read')) END) AS delivered,
  (w.sent AND w.channel <> 'sms' AND (m.status = 'read' OR EXISTS (
     SELECT 1 FROM whatsapp_status_events e
      WHERE e.tenant_id = w.tenant_id AND e.wamid = w.message_id AND e.status = 'read'))) AS read,
  (r.replied_at IS NOT NULL) AS replied,
  extract(epoch FROM r.replied_at - w.at)::double precision AS seconds_to_reply,
  COALESCE(s.booked, false) AS booked,
  COALESCE(s.attended, false) AS attended,
  COALESCE(s.opted_out, false) AS opted_out,
  (NOT w.sent OR COALESCE(CASE WHEN w.channel = 'sms' THEN sms.status IN ('failed', 'undelivered') ELSE m.status = 'failed' END, false)) AS failed,
  w.channel,
  CASE WHEN w.channel = 'sms' THEN NULL ELSE COALESCE(m.sender, w.sender) END AS sender,
  COALESCE(m.language, w.language) AS language
FROM windowed w
LEFT JOIN leads l ON l.tenant_id = w.tenant_id AND l.lead_id = w.lead_id
LEFT JOIN whatsapp_messages m ON w.sent AND w.channel <> 'sms' AND m.tenant_id = w.tenant_id AND m.wamid = w.message_id
LEFT JOIN sms_messages sms ON w.sent AND w.channel = 'sms' AND sms.tenant_id = w.tenant_id AND sms.sid = w.message_id
LEFT JOIN LATERAL (
  SELECT min(t.at) AS replied_at
    FROM lead_timeline t
   WHERE w.sent AND t.tenant_id = w.tenant_id AND t.lead_id = w.lead_id AND t.kind = 'replied'
     AND t.at > w.at AND (w.next_at IS NULL OR t.at <= w.next_at)
) r ON true
LEFT JOIN LATERAL (
  SELECT bool_or(t.detail ->> 'to' = 'booked') AS booked,
         bool_or(t.detail ->> 'to' = 'attended') AS attended,
         bool_or(t.detail ->> 'to' = 'opted_out') AS opted_out
    FROM lead_timeline t
   WHERE w.sent AND t.tenant_id = w.tenant_id AND t.lead_id = w.lead_id AND t.kind = 'stage'
     AND t.at >= w.at AND (w.next_at IS NULL OR t.at < w.next_at)
) s ON true;

-- Down Migration
-- A view's columns cannot be dropped in place: both views go back to 0009's definition.
DROP VIEW reporting_step_outcomes;
DROP VIEW reporting_lead_sends;
CREATE VIEW reporting_lead_sends AS
WITH attempts AS (
  SELECT t.tenant_id, t.lead_id, t.at, t.flow, t.step,
         (t.kind = 'sent') AS sent,
         CASE WHEN t.kind = 'sent' THEN t.detail ->> 'messageId' END AS wamid
    FROM lead_timeline t
   WHERE (t.kind = 'sent' AND t.entry_key LIKE 'sent:%')
      OR (t.kind = 'failed' AND t.entry_key LIKE 'failed:%:send')
),
windowed AS (
  SELECT a.*,
         lead(a.at) OVER (PARTITION BY a.tenant_id, a.lead_id, a.sent ORDER BY a.at) AS next_at
    FROM attempts a
)
SELECT
  w.tenant_id,
  w.flow,
  w.step,
  m.template_name AS template,
  COALESCE(m.kind, CASE WHEN w.sent THEN 'unknown' END) AS message_kind,
  w.at AS sent_at,
  (w.at AT TIME ZONE COALESCE(l.time_zone, 'UTC'))::date AS local_date,
  extract(hour FROM w.at AT TIME ZONE COALESCE(l.time_zone, 'UTC'))::int AS local_hour,
  extract(isodow FROM w.at AT TIME ZONE COALESCE(l.time_zone, 'UTC'))::int AS local_weekday,
  w.sent,
  (w.sent AND (m.status IN ('delivered', 'read') OR EXISTS (
     SELECT 1 FROM whatsapp_status_events e
      WHERE e.tenant_id = w.tenant_id AND e.wamid = w.wamid AND e.status IN ('delivered', 'read')))) AS delivered,
  (w.sent AND (m.status = 'read' OR EXISTS (
     SELECT 1 FROM whatsapp_status_events e
      WHERE e.tenant_id = w.tenant_id AND e.wamid = w.wamid AND e.status = 'read'))) AS read,
  (r.replied_at IS NOT NULL) AS replied,
  extract(epoch FROM r.replied_at - w.at)::double precision AS seconds_to_reply,
  COALESCE(s.booked, false) AS booked,
  COALESCE(s.attended, false) AS attended,
  COALESCE(s.opted_out, false) AS opted_out,
  (NOT w.sent OR m.status = 'failed') AS failed
FROM windowed w
LEFT JOIN leads l ON l.tenant_id = w.tenant_id AND l.lead_id = w.lead_id
LEFT JOIN whatsapp_messages m ON w.sent AND m.tenant_id = w.tenant_id AND m.wamid = w.wamid
LEFT JOIN LATERAL (
  SELECT min(t.at) AS replied_at
    FROM lead_timeline t
   WHERE w.sent AND t.tenant_id = w.tenant_id AND t.lead_id = w.lead_id AND t.kind = 'replied'
     AND t.at > w.at AND (w.next_at IS NULL OR t.at <= w.next_at)
) r ON true
LEFT JOIN LATERAL (
  SELECT bool_or(t.detail ->> 'to' = 'booked') AS booked,
         bool_or(t.detail ->> 'to' = 'attended') AS attended,
         bool_or(t.detail ->> 'to' = 'opted_out') AS opted_out
    FROM lead_timeline t
   WHERE w.sent AND t.tenant_id = w.tenant_id AND t.lead_id = w.lead_id AND t.kind = 'stage'
     AND t.at >= w.at AND (w.next_at IS NULL OR t.at < w.next_at)
) s ON true;

-- Per flow and step: the funnel, conversion to reply and to booking, and the median time to reply.
CREATE VIEW reporting_step_outcomes AS
SELECT
  tenant_id,
  flow,
  step,
  count(*) FILTER (WHERE sent)::int AS sent,
  count(*) FILTER (WHERE delivered)::int AS delivered,
  count(*) FILTER (WHERE read)::int AS read,
  count(*) FILTER (WHERE replied)::int AS replied,
  count(*) FILTER (WHERE booked)::int AS booked,
  count(*) FILTER (WHERE attended)::int AS attended,
  count(*) FILTER (WHERE opted_out)::int AS opted_out,
  count(*) FILTER (WHERE failed)::int AS failed,
  round(count(*) FILTER (WHERE replied)::numeric / NULLIF(count(*) FILTER (WHERE sent), 0), 4) AS reply_rate,
  round(count(*) FILTER (WHERE booked)::numeric / NULLIF(count(*) FILTER (WHERE sent), 0), 4) AS booking_rate,
  percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds_to_reply) AS median_seconds_to_reply
FROM reporting_lead_sends
GROUP BY tenant_id, flow, step;
ALTER TABLE whatsapp_messages DROP COLUMN sender;
