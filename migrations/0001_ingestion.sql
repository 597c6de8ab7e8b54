-- Up Migration

-- Every request the webhook API refused or could not process: kept for inspection and replay.
CREATE TABLE rejected_events (
  id            bigserial PRIMARY KEY,
  tenant_id     text        NOT NULL,
  source        text        NOT NULL,            -- pbx | twilio | voice-ai | crm | whatsapp | call-result ...
  reason        text        NOT NULL,            -- machine-readable code, e.g. invalid_signature
  detail        jsonb,                           -- field errors and the like, never secrets
  http_status   integer     NOT NULL,
  method        text        NOT NULL,
  path          text        NOT NULL,
  headers       jsonb       NOT NULL,            -- with credentials removed
  content_type  text,
  raw_body      bytea       NOT NULL,
  received_at   timestamptz NOT NULL DEFAULT now(),
  replayed_at   timestamptz,
  replay_result text
);
CREATE INDEX rejected_events_tenant_received_idx ON rejected_events (tenant_id, received_at DESC);
CREATE INDEX rejected_events_unreplayed_idx ON rejected_events (received_at) WHERE replayed_at IS NULL;

-- Accepted events that could not be handed to Temporal at once (unreachable or too slow).
-- The relay forwards them in id order once Temporal answers again.
CREATE TABLE event_inbox (
  id            bigserial PRIMARY KEY,
  tenant_id     text        NOT NULL,
  workflow_id   text        NOT NULL,
  workflow_type text        NOT NULL,
  signal_name   text        NOT NULL,
  task_queue    text        NOT NULL,
  payload       jsonb       NOT NULL,            -- { workflowArgs, signalArgs, options }
  received_at   timestamptz NOT NULL DEFAULT now(),
  attempts      integer     NOT NULL DEFAULT 0,
  last_error    text,
  forwarded_at  timestamptz
);
CREATE INDEX event_inbox_pending_idx ON event_inbox (id) WHERE forwarded_at IS NULL;

-- Down Migration
DROP TABLE event_inbox;
DROP TABLE rejected_events;
