-- Up Migration

-- Operator credentials (api/auth.ts, `npm run cli -- operators …`). A token is shown once when it is
-- made and stored only as its SHA-256 (a random 256-bit token needs no slow hash); each has a name and
-- a role and can be revoked. A dashboard session is a random id, stored the same way, bound to the
-- token that signed in: revoking the token ends its sessions, logging out ends one.
CREATE TABLE operator_tokens (
  id           bigserial   PRIMARY KEY,
  tenant_id    text        NOT NULL,
  name         text        NOT NULL,
  role         text        NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
  token_sha256 bytea       NOT NULL UNIQUE,
  created_at   timestamptz NOT NULL DEFAULT now(),
  revoked_at   timestamptz
);
-- One live token per name and tenant, so the name in a timeline identifies one credential.
CREATE UNIQUE INDEX operator_tokens_live_name_idx ON operator_tokens (tenant_id, name) WHERE revoked_at IS NULL;

CREATE TABLE operator_sessions (
  id_sha256     bytea       PRIMARY KEY,
  tenant_id     text        NOT NULL,
  token_id      bigint      REFERENCES operator_tokens (id) ON DELETE CASCADE, -- null: the configured bootstrap token
  operator_name text        NOT NULL,
  role          text        NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
  created_at    timestamptz NOT NULL DEFAULT now(),
  expires_at    timestamptz NOT NULL,
  revoked_at    timestamptz
);
CREATE INDEX operator_sessions_expires_idx ON operator_sessions (expires_at);

-- Failed sign-ins per tenant and client address, for the login rate limit (pruned as it is read).
CREATE TABLE operator_login_failures (
  tenant_id  text        NOT NULL,
  address    text        NOT NULL,
  failed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX operator_login_failures_idx ON operator_login_failures (tenant_id, address, failed_at);

-- Down Migration
DROP TABLE operator_login_failures;
DROP TABLE operator_sessions;
DROP TABLE operator_tokens;
