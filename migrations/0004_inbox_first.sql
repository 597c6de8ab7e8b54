-- Up Migration

-- The inbox becomes the hand-off itself: every accepted event is committed here (one row per event)
-- before the webhook is answered, and a forwarder moves it into Temporal. Forwarded rows are
-- deleted, so the table stays a small queue; the journal is the log.
DELETE FROM event_inbox WHERE forwarded_at IS NOT NULL;
DROP INDEX event_inbox_pending_idx;
ALTER TABLE event_inbox
  DROP COLUMN forwarded_at,
  ADD COLUMN source       text        NOT NULL DEFAULT 'legacy',  -- pbx | twilio | voice-ai | crm | whatsapp | call-result | cli
  ADD COLUMN event_id     text,
  ADD COLUMN available_at timestamptz NOT NULL DEFAULT now(),     -- retry backoff: not forwarded before
  ADD COLUMN lease_until  timestamptz,                            -- a forwarder holds this workflow's head row
  ADD COLUMN lease_owner  text,
  ADD COLUMN refusals     integer     NOT NULL DEFAULT 0,         -- times Temporal refused it for good (INVALID_ARGUMENT)
  ADD COLUMN dead_at      timestamptz;                            -- dead letter: kept for inspection and replay
ALTER TABLE event_inbox ALTER COLUMN source DROP DEFAULT;
-- Rows queued by the earlier hand-off carry their events in signalArgs; give each its own key.
UPDATE event_inbox SET event_id = 'legacy:' || id,
  payload = payload || jsonb_build_object('events', COALESCE(payload->'signalArgs'->0->'events', '[]'::jsonb));
ALTER TABLE event_inbox ALTER COLUMN event_id SET NOT NULL;

-- Deduplication: an event is in the inbox at most once while it waits (the workflow dedupes later copies).
CREATE UNIQUE INDEX event_inbox_event_idx ON event_inbox (tenant_id, workflow_id, event_id);
-- The forwarder's scan (oldest first) and its "is this the workflow's oldest waiting row" check.
CREATE INDEX event_inbox_pending_idx ON event_inbox (id) WHERE dead_at IS NULL;
CREATE INDEX event_inbox_workflow_idx ON event_inbox (workflow_id, id) WHERE dead_at IS NULL;
CREATE INDEX event_inbox_dead_idx ON event_inbox (tenant_id, dead_at) WHERE dead_at IS NOT NULL;

-- Down Migration
DROP INDEX event_inbox_dead_idx;
DROP INDEX event_inbox_workflow_idx;
DROP INDEX event_inbox_pending_idx;
DROP INDEX event_inbox_event_idx;
ALTER TABLE event_inbox
  DROP COLUMN dead_at, DROP COLUMN refusals, DROP COLUMN lease_owner, DROP COLUMN lease_until,
  DROP COLUMN available_at, DROP COLUMN event_id, DROP COLUMN source,
  ADD COLUMN forwarded_at timestamptz;
CREATE INDEX event_inbox_pending_idx ON event_inbox (id) WHERE forwarded_at IS NULL;
