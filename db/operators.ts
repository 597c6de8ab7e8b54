/** Operator tokens, dashboard sessions and failed sign-ins (migrations/0008_operator_credentials.sql). */
import type { Db } from './pool.js';

export const operatorRoles = ['viewer', 'operator', 'admin'] as const;
export type OperatorRole = (typeof operatorRoles)[number];

export interface OperatorTokenRow {
  id: number;
  tenantId: string;
  name: string;
  role: OperatorRole;
  createdAt: Date;
  revokedAt: Date | null;
}

interface TokenRecord {
  id: number;
  tenant_id: string;
  name: string;
  role: OperatorRole;
  created_at: Date;
  revoked_at: Date | null;
}

const tokenRow = (row: TokenRecord): OperatorTokenRow => ({ id: row.id, tenantId: row.tenant_id, name: row.name, role: row.role, createdAt: row.created_at, revokedAt: row.revoked_at });

/** Stores a new token's hash; undefined when the tenant already has a live token of that name. */
export async function insertOperatorToken(db: Db, input: { tenantId: string; name: string; role: OperatorRole; tokenSha256: Buffer }): Promise<OperatorTokenRow | undefined> {
  const result = await db.query<TokenRecord>(
    `INSERT INTO operator_tokens (tenant_id, name, role, token_sha256) VALUES ($1, $2, $3, $4)
     ON CONFLICT (tenant_id, name) WHERE revoked_at IS NULL DO NOTHING
     RETURNING id, tenant_id, name, role, created_at, revoked_at`,
    [input.tenantId, input.name, input.role, input.tokenSha256],
  );
  const row = result.rows[0];
  return row ? tokenRow(row) : undefined;
}

/** The live token with this hash, of any tenant. */
export async function findOperatorToken(db: Db, tokenSha256: Buffer): Promise<OperatorTokenRow | undefined> {
  const result = await db.query<TokenRecord>(
    `SELECT id, tenant_id, name, role, created_at, revoked_at FROM operator_tokens WHERE token_sha256 = $1 AND revoked_at IS NULL`,
    [tokenSha256],
  );
  const row = result.rows[0];
  return row ? tokenRow(row) : undefined;
}

export async function listOperatorTokens(db: Db, tenantId: string): Promise<OperatorTokenRow[]> {
  const result = await db.query<TokenRecord>(
    `SELECT id, tenant_id, name, role, created_at, revoked_at FROM operator_tokens WHERE tenant_id = $1 ORDER BY revoked_at IS NOT NULL, name, id`,
    [tenantId],
  );
  return result.rows.map(tokenRow);
}

/** Revokes the tenant's live token of that name and ends its sessions; how many tokens and sessions ended. */
export async function revokeOperatorToken(db: Db, tenantId: string, name: string): Promise<{ tokens: number; sessions: number }> {
  const result = await db.query<{ tokens: number; sessions: number }>(
    `WITH revoked AS (
       UPDATE operator_tokens SET revoked_at = now() WHERE tenant_id = $1 AND name = $2 AND revoked_at IS NULL RETURNING id
     ), ended AS (
       UPDATE operator_sessions SET revoked_at = now() WHERE token_id IN (SELECT id FROM revoked) AND revoked_at IS NULL RETURNING 1
     )
     SELECT (SELECT count(*) FROM revoked)::int AS tokens, (SELECT count(*) FROM ended)::int AS sessions`,
    [tenantId, name],
  );
  return result.rows[0] ?? { tokens: 0, sessions: 0 };
}

export interface OperatorSessionRow {
  tenantId: string;
  operatorName: string;
  role: OperatorRole;
}

export async function insertOperatorSession(
  db: Db,
  input: { idSha256: Buffer; tenantId: string; tokenId: number | null; operatorName: string; role: OperatorRole; expiresAt: Date },
): Promise<void> {
  await db.query(`INSERT INTO operator_sessions (id_sha256, tenant_id, token_id, operator_name, role, expires_at) VALUES ($1, $2, $3, $4, $5, $6)`, [
    input.idSha256,
    input.tenantId,
    input.tokenId,
    input.operatorName,
    input.role,
    input.expiresAt,
  ]);
}

/** A live session: not expired, not logged out, and its token (if any) not revoked. */
export async function findOperatorSession(db: Db, idSha256: Buffer): Promise<OperatorSessionRow | undefined> {
  const result = await db.query<{ tenant_id: string; operator_name: string; role: OperatorRole }>(
    `SELECT s.tenant_id, s.operator_name, s.role
       FROM operator_sessions s LEFT JOIN operator_tokens t ON t.id = s.token_id
      WHERE s.id_sha256 = $1 AND s.revoked_at IS NULL AND s.expires_at > now()
        AND (s.token_id IS NULL OR t.revoked_at IS NULL)`,
    [idSha256],
  );
  const row = result.rows[0];
  return row ? { tenantId: row.tenant_id, operatorName: row.operator_name, role: row.role } : undefined;
}

/** Logs a session out; expired sessions are deleted on the way (they are no use to anyone). */
export async function revokeOperatorSession(db: Db, idSha256: Buffer): Promise<boolean> {
  const result = await db.query(`UPDATE operator_sessions SET revoked_at = now() WHERE id_sha256 = $1 AND revoked_at IS NULL`, [idSha256]);
  await db.query(`DELETE FROM operator_sessions WHERE expires_at < now() - interval '1 day'`);
  return (result.rowCount ?? 0) > 0;
}

/** Failed sign-ins from this address for this tenant within the window (older ones are pruned). */
export async function recentLoginFailures(db: Db, tenantId: string, address: string, windowSeconds: number): Promise<{ count: number; oldest: Date | null }> {
  await db.query(`DELETE FROM operator_login_failures WHERE failed_at < now() - make_interval(secs => $1)`, [windowSeconds]);
  const result = await db.query<{ count: number; oldest: Date | null }>(
    `SELECT count(*)::int AS count, min(failed_at) AS oldest FROM operator_login_failures WHERE tenant_id = $1 AND address = $2`,
    [tenantId, address],
  );
  return result.rows[0] ?? { count: 0, oldest: null };
}

export async function recordLoginFailure(db: Db, tenantId: string, address: string): Promise<void> {
  await db.query(`INSERT INTO operator_login_failures (tenant_id, address) VALUES ($1, $2)`, [tenantId, address]);
}
