-- Up Migration

-- OAuth tokens of a tenant's CRM (Kommo), encrypted at rest (AES-256-GCM: iv | tag | ciphertext,
-- bound to tenant, CRM and field). One row per tenant and CRM. A renewal locks the row, asks the CRM
-- and commits the new pair before anyone uses it; `version` tells a worker that lost the race that
-- the row moved on, so it re-reads instead of spending the rotated-away refresh token.
CREATE TABLE crm_tokens (
  tenant_id         text        NOT NULL,
  crm               text        NOT NULL,            -- kommo
  account_url       text        NOT NULL,            -- the account the tokens belong to (base URL)
  key_id            text        NOT NULL,            -- fingerprint of the encryption key (never the key)
  access_token_enc  bytea       NOT NULL,
  refresh_token_enc bytea,                           -- null: nothing to renew with
  expires_at        timestamptz NOT NULL,
  version           bigint      NOT NULL DEFAULT 1,
  refreshed_at      timestamptz,
  last_error        text,                            -- why the last renewal failed (no token values)
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, crm)
);

-- One request budget per CRM account, shared by every worker (Kommo: 7 requests per second per
-- account). A take is one UPDATE: it refills by elapsed time and reserves the next slot; a negative
-- balance is the queue of reserved slots, which callers wait out before sending.
CREATE TABLE crm_rate_buckets (
  bucket      text             PRIMARY KEY,          -- e.g. kommo:https://acme.kommo.com
  tokens      double precision NOT NULL,
  refilled_at timestamptz      NOT NULL DEFAULT clock_timestamp()
);

-- Down Migration
DROP TABLE crm_rate_buckets;
DROP TABLE crm_tokens;
