-- Up Migration

-- Every SMS we sent through Twilio (the lead flows' fallback when WhatsApp cannot deliver), by
-- Twilio's message sid, with its latest status. `effect_key` is the step's ledger key with `#sms`.
CREATE TABLE sms_messages (
  tenant_id      text        NOT NULL,
  sid            text        NOT NULL,            -- SM… (Twilio's Message sid)
  effect_key     text        NOT NULL,
  lead_id        text,
  status         text        NOT NULL,            -- accepted | queued | sending | sent | delivered | undelivered | failed
  error_code     integer,
  accepted_at    timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, sid)
);
CREATE INDEX sms_messages_effect_idx ON sms_messages (tenant_id, effect_key);

-- Status callbacks may be delivered more than once: each (message, status) is kept once.
CREATE TABLE sms_status_events (
  tenant_id    text        NOT NULL,
  sid          text        NOT NULL,
  status       text        NOT NULL,
  effect_key   text,
  error_code   integer,
  received_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, sid, status)
);

-- Down Migration
DROP TABLE sms_status_events;
DROP TABLE sms_messages;
