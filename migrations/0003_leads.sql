-- Up Migration

-- The lead as its workflow last journaled it: what the API reads and what a new run resumes from.
CREATE TABLE leads (
  tenant_id       text        NOT NULL,
  lead_id         text        NOT NULL,
  workflow_id     text        NOT NULL,
  version         integer     NOT NULL,
  stage           text        NOT NULL,
  phone           text,                             -- E.164
  time_zone       text        NOT NULL,
  paused          boolean     NOT NULL DEFAULT false,
  opted_out       boolean     NOT NULL DEFAULT false,
  next_action_at  timestamptz,
  next_action     text,
  last_inbound_at timestamptz,
  last_sent_at    timestamptz,
  meeting         jsonb,
  state           jsonb       NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, lead_id)
);
CREATE INDEX leads_phone_idx ON leads (tenant_id, phone);
CREATE INDEX leads_stage_idx ON leads (tenant_id, stage);
CREATE INDEX leads_next_action_idx ON leads (tenant_id, next_action_at) WHERE next_action_at IS NOT NULL;

-- Everything that happened to a lead, when and why. `entry_key` makes each entry idempotent.
CREATE TABLE lead_timeline (
  id          bigserial   PRIMARY KEY,
  tenant_id   text        NOT NULL,
  lead_id     text        NOT NULL,
  entry_key   text        NOT NULL,
  at          timestamptz NOT NULL,
  kind        text        NOT NULL,   -- event | scheduled | sent | skipped | failed | delivered | read | replied | operator | stage
  flow        text,
  step        text,
  cause       text,                   -- why: the event, rule or operator behind it
  detail      jsonb       NOT NULL DEFAULT '{}',
  recorded_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant_id, lead_id, entry_key)
);
CREATE INDEX lead_timeline_lead_idx ON lead_timeline (tenant_id, lead_id, at, id);

-- Every WhatsApp message we sent, by the provider's id, with its latest status.
CREATE TABLE whatsapp_messages (
  tenant_id      text        NOT NULL,
  wamid          text        NOT NULL,
  effect_key     text        NOT NULL,
  lead_id        text,
  kind           text        NOT NULL,             -- text | template
  template_name  text,
  status         text        NOT NULL,             -- accepted | sent | delivered | read | failed
  error_code     integer,
  error_title    text,
  accepted_at    timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, wamid)
);
CREATE INDEX whatsapp_messages_effect_idx ON whatsapp_messages (tenant_id, effect_key);
CREATE INDEX whatsapp_messages_failed_idx ON whatsapp_messages (tenant_id, updated_at) WHERE status = 'failed';

-- Status webhooks arrive unordered and at least once: each (message, status) is kept once.
CREATE TABLE whatsapp_status_events (
  tenant_id    text        NOT NULL,
  wamid        text        NOT NULL,
  status       text        NOT NULL,
  occurred_at  timestamptz NOT NULL,
  effect_key   text,
  error_code   integer,
  payload      jsonb       NOT NULL,
  received_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, wamid, status)
);

-- Opted-out numbers: checked by the send activity itself, so no stale state can message them.
CREATE TABLE suppressions (
  tenant_id   text        NOT NULL,
  phone       text        NOT NULL,
  reason      text        NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, phone)
);

-- When the last attempt at an effect started: a send whose outcome is unknown waits for the
-- provider's status webhook this long after it before it is tried again.
ALTER TABLE external_effects ADD COLUMN attempted_at timestamptz;

-- Down Migration
ALTER TABLE external_effects DROP COLUMN attempted_at;
DROP TABLE suppressions;
DROP TABLE whatsapp_status_events;
DROP TABLE whatsapp_messages;
DROP TABLE lead_timeline;
DROP TABLE leads;
