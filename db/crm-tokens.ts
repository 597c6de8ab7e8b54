/**
 * What CRM adapters keep in PostgreSQL so that every worker shares it: OAuth tokens (encrypted at
 * rest) and the account's request budget (a token bucket).
 *
 * Tokens: AES-256-GCM, a fresh 12-byte IV per value, bound (as additional data) to tenant, CRM and
 * field, so a value copied into another row or column does not decrypt. A renewal runs under the
 * row's lock: the CRM rotates the refresh token on every renewal and refuses the old one, so two
 * workers renewing at once would lose the account. The new pair is committed before anyone uses it.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { checkOut } from './pool.js';
import type { Db } from './pool.js';

export interface TokenScope {
  tenantId: string;
  crm: 'kommo';
  /** The 32-byte encryption key. */
  key: Buffer;
}

export interface TokenPair {
  accessToken: string;
  /** Absent: nothing to renew with (the access token is used until it stops working). */
  refreshToken?: string;
  expiresAt: Date;
}

export interface StoredTokens extends TokenPair {
  accountUrl: string;
  /** Goes up by one on every save: a worker holding an older version knows the tokens moved on. */
  version: number;
}

/** The stored tokens cannot be read with the configured key (it changed, or the row was tampered with). */
export class TokenKeyError extends Error {
  override readonly name = 'TokenKeyError';
}

/** A short fingerprint of the key, stored with the tokens (never the key itself). */
export const tokenKeyId = (key: Buffer): string => createHash('sha256').update(key).digest('hex').slice(0, 16);

const aad = (scope: TokenScope, field: string): Buffer => Buffer.from(`${scope.tenantId}\u0000${scope.crm}\u0000${field}`);

function seal(scope: TokenScope, field: string, plaintext: string): Buffer {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', scope.key, iv);
  cipher.setAAD(aad(scope, field));
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]);
}

function unseal(scope: TokenScope, field: string, sealed: Buffer): string {
  try {
    const decipher = createDecipheriv('aes-256-gcm', scope.key, sealed.subarray(0, 12));
    decipher.setAAD(aad(scope, field));
    decipher.setAuthTag(sealed.subarray(12, 28));
    return Buffer.concat([decipher.update(sealed.subarray(28)), decipher.final()]).toString('utf8');
  } catch {
    throw new TokenKeyError(`the stored ${scope.crm} tokens of tenant ${scope.tenantId} do not decrypt with the configured token key`);
  }
}

interface TokenRow {
  account_url: string;
  key_id: string;
  access_token_enc: Buffer;
  refresh_token_enc: Buffer | null;
  expires_at: Date;
  version: number;
}

const columns = 'account_url, key_id, access_token_enc, refresh_token_enc, expires_at, version';

function decode(scope: TokenScope, row: TokenRow): StoredTokens {
  if (row.key_id !== tokenKeyId(scope.key)) {
    throw new TokenKeyError(`the stored ${scope.crm} tokens of tenant ${scope.tenantId} were saved with another token key`);
  }
  return {
    accountUrl: row.account_url,
    accessToken: unseal(scope, 'access', row.access_token_enc),
    ...(row.refresh_token_enc ? { refreshToken: unseal(scope, 'refresh', row.refresh_token_enc) } : {}),
    expiresAt: row.expires_at,
    version: Number(row.version),
  };
}

const sealedValues = (scope: TokenScope, tokens: TokenPair): [Buffer, Buffer | null] => [
  seal(scope, 'access', tokens.accessToken),
  tokens.refreshToken ? seal(scope, 'refresh', tokens.refreshToken) : null,
];

/** Stores a new pair (after an authorization-code exchange), replacing whatever was there. */
export async function saveTokens(db: Db, scope: TokenScope, accountUrl: string, tokens: TokenPair): Promise<StoredTokens> {
  const [access, refresh] = sealedValues(scope, tokens);
  const saved = await db.query<TokenRow>(
    `INSERT INTO crm_tokens (tenant_id, crm, account_url, key_id, access_token_enc, refresh_token_enc, expires_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7)
     ON CONFLICT (tenant_id, crm) DO UPDATE SET
       account_url = EXCLUDED.account_url, key_id = EXCLUDED.key_id, access_token_enc = EXCLUDED.access_token_enc,
       refresh_token_enc = EXCLUDED.refresh_token_enc, expires_at = EXCLUDED.expires_at,
       version = crm_tokens.version + 1, refreshed_at = NULL, last_error = NULL, updated_at = now()
     RETURNING ${columns}`,
    [scope.tenantId, scope.crm, accountUrl, tokenKeyId(scope.key), access, refresh, tokens.expiresAt],
  );
  return decode(scope, saved.rows[0] as TokenRow);
}

export async function loadTokens(db: Db, scope: TokenScope): Promise<StoredTokens | undefined> {
  const found = await db.query<TokenRow>(`SELECT ${columns} FROM crm_tokens WHERE tenant_id = $1 AND crm = $2`, [scope.tenantId, scope.crm]);
  const row = found.rows[0];
  return row ? decode(scope, row) : undefined;
}

/**
 * Renews the tokens under the row's lock, so one renewal runs at a time across all workers.
 * `renew` sees the tokens as they are now (a worker that lost the race sees the winner's pair and
 * returns undefined to keep it); a pair it returns is committed before this resolves. If the commit
 * fails after the CRM has already rotated the pair, saving is retried on fresh connections: the old
 * refresh token is spent, so the new one must not be lost.
 */
export async function renewTokens(db: Db, scope: TokenScope, renew: (current: StoredTokens) => Promise<TokenPair | undefined>): Promise<StoredTokens | undefined> {
  // The connection waits idle in its transaction while the CRM answers; checkOut keeps its dying
  // meanwhile from crashing the process.
  const { client, release } = await checkOut(db);
  let current: StoredTokens | undefined;
  let fresh: TokenPair | undefined;
  let broken = false;
  try {
    await client.query('BEGIN');
    const locked = await client.query<TokenRow>(`SELECT ${columns} FROM crm_tokens WHERE tenant_id = $1 AND crm = $2 FOR UPDATE`, [scope.tenantId, scope.crm]);
    const row = locked.rows[0];
    if (!row) {
      await client.query('ROLLBACK');
      return undefined;
    }
    current = decode(scope, row);
    fresh = await renew(current);
    if (!fresh) {
      await client.query('COMMIT');
      return current;
    }
    const [access, refresh] = sealedValues(scope, fresh);
    const saved = await client.query<TokenRow>(
      `UPDATE crm_tokens SET access_token_enc = $3, refresh_token_enc = $4, expires_at = $5, version = version + 1,
              refreshed_at = now(), last_error = NULL, updated_at = now()
        WHERE tenant_id = $1 AND crm = $2 RETURNING ${columns}`,
      [scope.tenantId, scope.crm, access, refresh, fresh.expiresAt],
    );
    await client.query('COMMIT');
    return decode(scope, saved.rows[0] as TokenRow);
  } catch (error) {
    broken = true;
    await client.query('ROLLBACK').catch(() => undefined);
    if (fresh && current) return persistRotated(db, scope, current.version, fresh, error);
    throw error;
  } finally {
    // A client whose transaction failed may have lost its connection: do not hand it out again.
    release(broken);
  }
}

/** The CRM rotated the pair but the commit failed: keep trying to store it (or find it stored). */
async function persistRotated(db: Db, scope: TokenScope, previousVersion: number, fresh: TokenPair, cause: unknown): Promise<StoredTokens> {
  const [access, refresh] = sealedValues(scope, fresh);
  let lastError = cause;
  for (let attempt = 0; attempt < 6; attempt++) {
    try {
      const saved = await db.query<TokenRow>(
        `UPDATE crm_tokens SET access_token_enc = $4, refresh_token_enc = $5, expires_at = $6, version = version + 1,
                refreshed_at = now(), last_error = NULL, updated_at = now()
          WHERE tenant_id = $1 AND crm = $2 AND version = $3 RETURNING ${columns}`,
        [scope.tenantId, scope.crm, previousVersion, access, refresh, fresh.expiresAt],
      );
      if (saved.rows[0]) return decode(scope, saved.rows[0]);
      // The version moved on: the failed commit went through after all (or the CLI stored a new pair).
      const stored = await loadTokens(db, scope);
      if (stored) return stored;
      throw new Error('the stored tokens disappeared during a renewal');
    } catch (error) {
      lastError = error;
      await delay(200 * 2 ** attempt);
    }
  }
  throw new Error(`could not store renewed ${scope.crm} tokens for tenant ${scope.tenantId}: ${(lastError as Error).message}`, { cause: lastError });
}

/** Notes why a renewal failed, for operators (`stuck`, the row itself); never a token value. */
export async function recordTokenError(db: Db, scope: Pick<TokenScope, 'tenantId' | 'crm'>, message: string): Promise<void> {
  await db.query('UPDATE crm_tokens SET last_error = $3, updated_at = now() WHERE tenant_id = $1 AND crm = $2', [scope.tenantId, scope.crm, message.slice(0, 500)]);
}
