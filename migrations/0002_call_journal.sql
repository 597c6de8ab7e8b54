-- Up Migration

-- One row per call: the journal. Upserted by the call workflow at every transition; `version`
-- only ever grows, so an out-of-order write can never replace newer state.
CREATE TABLE calls (
  tenant_id         text        NOT NULL,
  call_id           text        NOT NULL,           -- <provider>:<provider call id>
  provider          text        NOT NULL,
  provider_call_id  text        NOT NULL,
  workflow_id       text        NOT NULL,
  version           integer     NOT NULL,
  status            text        NOT NULL CHECK (status IN ('ringing', 'in_progress', 'ended', 'completed')),
  direction         text        CHECK (direction IN ('inbound', 'outbound')),
  customer_phone    text,                           -- E.164
  line_phone        text,
  agent_id          text,
  started_at        timestamptz,
  answered_at       timestamptz,
  ended_at          timestamptz,
  wait_seconds      integer,                        -- ringing until answered (or until given up)
  duration_seconds  integer,
  disposition       text,
  end_reason        text,
  enrichment_state  text        NOT NULL,
  enrichment        jsonb,
  crm_sync_state    text        NOT NULL,
  crm               jsonb       NOT NULL DEFAULT '{}',
  recording         jsonb,
  transcript        jsonb,
  summary           text,
  variables         jsonb,
  analytics         jsonb,
  result            jsonb,
  actions           jsonb       NOT NULL DEFAULT '{}',
  satisfaction      smallint,
  resolved          boolean,
  completed_at      timestamptz,
  snapshot          jsonb       NOT NULL,           -- the workflow's whole state, to resume a late run
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, call_id)
);
CREATE INDEX calls_tenant_started_idx ON calls (tenant_id, started_at DESC NULLS LAST);
CREATE INDEX calls_tenant_phone_idx ON calls (tenant_id, customer_phone, started_at DESC);
CREATE INDEX calls_tenant_agent_idx ON calls (tenant_id, agent_id, started_at DESC);
CREATE INDEX calls_tenant_status_idx ON calls (tenant_id, status, started_at DESC);
CREATE INDEX calls_tenant_disposition_idx ON calls (tenant_id, disposition, started_at DESC);
CREATE INDEX calls_stuck_enrichment_idx ON calls (tenant_id, updated_at) WHERE enrichment_state = 'pending';
CREATE INDEX calls_crm_failed_idx ON calls (tenant_id, updated_at) WHERE crm_sync_state IN ('failed', 'pending');

-- Every distinct event a call received, once (duplicates collapse on the event id).
CREATE TABLE call_events (
  tenant_id    text        NOT NULL,
  call_id      text        NOT NULL,
  event_id     text        NOT NULL,
  type         text        NOT NULL,
  occurred_at  timestamptz NOT NULL,
  recorded_at  timestamptz NOT NULL DEFAULT now(),
  payload      jsonb       NOT NULL,
  PRIMARY KEY (tenant_id, call_id, event_id)
);
CREATE INDEX call_events_call_idx ON call_events (tenant_id, call_id, occurred_at);

-- Recordings fetched from the provider, served with HTTP range support.
CREATE TABLE call_recordings (
  tenant_id     text        NOT NULL,
  call_id       text        NOT NULL,
  content_type  text        NOT NULL,
  size_bytes    integer     NOT NULL,
  bytes         bytea       NOT NULL,
  source_url    text        NOT NULL,
  fetched_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, call_id)
);

-- The exactly-once ledger for effects on outside systems (CRM notes, tickets, alerts, e-mail,
-- WhatsApp sends). A key is claimed before the outside call and marked done after it; a key an
-- earlier attempt claimed but never finished is resolved by looking the effect up first.
CREATE TABLE external_effects (
  tenant_id   text        NOT NULL,
  effect_key  text        NOT NULL,
  kind        text        NOT NULL,
  state       text        NOT NULL CHECK (state IN ('pending', 'done', 'skipped', 'failed')),
  attempts    integer     NOT NULL DEFAULT 0,
  -- An attempt holds the key until then; a crashed attempt's claim simply runs out.
  claimed_until timestamptz,
  result      jsonb,
  last_error  text,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, effect_key)
);
CREATE INDEX external_effects_open_idx ON external_effects (kind, updated_at) WHERE state IN ('pending', 'failed');

-- Flat call facts for BI tools: metadata, outcome, metrics, transcript text and variables.
CREATE VIEW reporting_call_facts AS
SELECT
  c.tenant_id,
  c.call_id,
  c.provider,
  c.direction,
  c.agent_id,
  c.started_at,
  c.answered_at,
  c.ended_at,
  date_trunc('day', c.started_at) AS call_date,
  c.wait_seconds,
  c.duration_seconds,
  c.disposition,
  c.status,
  c.satisfaction,
  c.resolved,
  c.analytics ->> 'sentiment' AS sentiment,
  c.analytics ->> 'issueType' AS issue_type,
  c.analytics -> 'metrics' AS metrics,
  c.result ->> 'outcome' AS manager_outcome,
  c.summary,
  (SELECT string_agg((turn ->> 'speaker') || ': ' || (turn ->> 'text'), E'\n' ORDER BY ordinality)
     FROM jsonb_array_elements(COALESCE(c.transcript, '[]'::jsonb)) WITH ORDINALITY AS t(turn, ordinality)) AS transcript_text,
  c.variables,
  c.enrichment_state,
  c.crm_sync_state,
  (c.actions -> 'ticket' ->> 'id')::bigint AS ticket_id
FROM calls c;

-- Down Migration
DROP VIEW reporting_call_facts;
DROP TABLE external_effects;
DROP TABLE call_recordings;
DROP TABLE call_events;
DROP TABLE calls;
