/**
 * Who an operator is: a bearer token (made with `npm run cli -- operators add`, stored hashed, or the
 * tenant's configured bootstrap token) or a dashboard session that such a token signed in. Every
 * operator route learns the operator's name and role from here, never from the request body.
 */
import type { RequestHandler, Response } from 'express';
import type { AppConfig } from '../config/load.js';
import { findOperatorSession, findOperatorToken, insertOperatorSession, recentLoginFailures, recordLoginFailure, revokeOperatorSession } from '../db/operators.js';
import type { OperatorRole } from '../db/operators.js';
import type { Db } from '../db/pool.js';
import { Rejection } from '../ingestion/rejections.js';
import { newSessionId, operatorTokenHash, sessionIdPattern } from '../security/operator-tokens.js';
import { safeEqual } from '../security/signatures.js';
import { tenantOf } from './tenants.js';

export interface Operator {
  tenantId: string;
  name: string;
  role: OperatorRole;
  via: 'token' | 'session';
  /** The stored token it is or was signed in by; none for the configured bootstrap token. */
  tokenId?: number;
}

export interface AuthDeps {
  config: AppConfig;
  db: Db;
}

/** The name the configured bootstrap token (`secrets.operatorToken`) acts under. */
export const bootstrapOperatorName = 'admin (configuration)';

const roleRank: Record<OperatorRole, number> = { viewer: 0, operator: 1, admin: 2 };

export function bearerToken(header: string | undefined): string | undefined {
  const match = /^Bearer\s+(\S+)$/i.exec(header ?? '');
  return match?.[1];
}

/** The browser's session after signing in to the dashboard (EventSource cannot send headers). */
export const sessionCookieName = 'sb_operator';
export const sessionSeconds = 12 * 3_600;

export function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const [key, ...rest] = part.trim().split('=');
    if (key !== name) continue;
    // A malformed escape (`%E0`) is a value no session can have, not a server error.
    try {
      return decodeURIComponent(rest.join('='));
    } catch {
      return rest.join('=');
    }
  }
  return undefined;
}

/** The operator a bearer token stands for, of whichever tenant it belongs to. */
async function operatorOfToken(deps: AuthDeps, token: string): Promise<Operator | undefined> {
  for (const [tenantId, tenant] of Object.entries(deps.config.tenants)) {
    if (safeEqual(tenant.secrets.operatorToken, token)) return { tenantId, name: bootstrapOperatorName, role: 'admin', via: 'token' };
  }
  const row = await findOperatorToken(deps.db, operatorTokenHash(token));
  return row ? { tenantId: row.tenantId, name: row.name, role: row.role, via: 'token', tokenId: row.id } : undefined;
}

async function operatorOfSession(deps: AuthDeps, sessionId: string): Promise<Operator | undefined> {
  if (!sessionIdPattern.test(sessionId)) return undefined;
  const row = await findOperatorSession(deps.db, operatorTokenHash(sessionId));
  return row ? { tenantId: row.tenantId, name: row.operatorName, role: row.role, via: 'session' } : undefined;
}

type CredentialHeaders = { authorization?: string | undefined; cookie?: string | undefined };

/** Whose credential this is (a bearer token first, else the session cookie), of whichever tenant. */
async function identify(deps: AuthDeps, headers: CredentialHeaders): Promise<Operator> {
  const token = bearerToken(headers.authorization);
  const sessionId = token ? undefined : cookieValue(headers.cookie, sessionCookieName);
  if (!token && sessionId === undefined) throw new Rejection('missing_token', 'an operator bearer token or a dashboard session (sign in at /dashboard) is required');
  const operator = token ? await operatorOfToken(deps, token) : await operatorOfSession(deps, sessionId ?? '');
  if (!operator) throw new Rejection('invalid_token', token ? 'the operator token is not valid' : 'the dashboard session has ended or is not valid');
  return operator;
}

function requireRole(operator: Operator, minimumRole: OperatorRole): Operator {
  if (roleRank[operator.role] < roleRank[minimumRole]) throw new Rejection('insufficient_role', `this needs the ${minimumRole} role; ${operator.name} is a ${operator.role}`);
  return operator;
}

/**
 * The operator of this request, allowed on this tenant with at least `minimumRole`. A credential of
 * another tenant gets 403, never that tenant's data.
 */
export async function authenticateOperator(deps: AuthDeps, tenantId: string, headers: CredentialHeaders, minimumRole: OperatorRole = 'viewer'): Promise<Operator> {
  if (!tenantOf(deps.config, tenantId)) throw new Rejection('unknown_tenant', `no tenant "${tenantId.slice(0, 64)}"`);
  const operator = await identify(deps, headers);
  if (operator.tenantId !== tenantId) throw new Rejection('forbidden_tenant', 'this token may not access this tenant');
  return requireRole(operator, minimumRole);
}

/**
 * The operator of this request, of whichever tenant (the codec server: the Temporal namespace and its
 * keys are shared by every tenant), with at least `minimumRole`.
 */
export async function authenticateAnyOperator(deps: AuthDeps, headers: CredentialHeaders, minimumRole: OperatorRole = 'viewer'): Promise<Operator> {
  return requireRole(await identify(deps, headers), minimumRole);
}

const unsafeMethods = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * A cookie goes with every request the browser makes, whichever page asks: a state-changing request
 * authenticated by the session must come from our own pages (SameSite=Strict is the first guard,
 * this the second, for browsers and proxies that do not honour it).
 */
export function checkSameOrigin(config: AppConfig, headers: { origin?: string | undefined; host?: string | undefined; referer?: string | undefined }): void {
  const claimed = headers.origin ?? (headers.referer ? safeOrigin(headers.referer) : undefined);
  const allowed = new Set([safeOrigin(config.api.publicUrl), headers.host ? `http://${headers.host}` : undefined, headers.host ? `https://${headers.host}` : undefined]);
  if (!claimed || !allowed.has(claimed)) throw new Rejection('forbidden_origin', 'a request signed in by the dashboard session must come from the dashboard');
}

function safeOrigin(url: string): string | undefined {
  try {
    return new URL(url).origin;
  } catch {
    return undefined;
  }
}

/** The operator `requireOperator` let through. */
export function operatorOf(res: Response): Operator {
  const operator = res.locals.operator as Operator | undefined;
  if (!operator) throw new Error('operatorOf: route is not behind requireOperator');
  return operator;
}

/** Operator routes (`/api/:tenant/...`, the dashboard): at least `minimumRole` on that tenant. */
export function requireOperator(deps: AuthDeps, minimumRole: OperatorRole = 'viewer'): RequestHandler<{ tenant: string }> {
  return async (req, res, next) => {
    const operator = await authenticateOperator(deps, req.params.tenant, req.headers, minimumRole);
    if (operator.via === 'session' && unsafeMethods.has(req.method)) checkSameOrigin(deps.config, req.headers);
    res.locals.operator = operator;
    next();
  };
}

/** Sign-in attempts allowed per tenant and client address in `loginWindowSeconds`. */
export const loginAttemptsAllowed = 5;
export const loginWindowSeconds = 15 * 60;

export type SignIn = { ok: true; sessionId: string; operator: Operator } | { ok: false; reason: 'invalid' | 'rate_limited'; retryAfterSeconds?: number };

/** Exchanges a token for a dashboard session; failed attempts are counted per tenant and address. */
export async function signIn(deps: AuthDeps, tenantId: string, token: string, address: string, now = Date.now()): Promise<SignIn> {
  if (!tenantOf(deps.config, tenantId)) return { ok: false, reason: 'invalid' };
  const failures = await recentLoginFailures(deps.db, tenantId, address, loginWindowSeconds);
  if (failures.count >= loginAttemptsAllowed) {
    const retryAfterSeconds = failures.oldest ? Math.max(1, Math.ceil((failures.oldest.getTime() + loginWindowSeconds * 1000 - now) / 1000)) : loginWindowSeconds;
    return { ok: false, reason: 'rate_limited', retryAfterSeconds };
  }
  const operator = token ? await operatorOfToken(deps, token) : undefined;
  if (!operator || operator.tenantId !== tenantId) {
    await recordLoginFailure(deps.db, tenantId, address);
    return { ok: false, reason: 'invalid' };
  }
  const sessionId = newSessionId();
  await insertOperatorSession(deps.db, {
    idSha256: operatorTokenHash(sessionId),
    tenantId,
    tokenId: operator.tokenId ?? null,
    operatorName: operator.name,
    role: operator.role,
    expiresAt: new Date(now + sessionSeconds * 1000),
  });
  return { ok: true, sessionId, operator: { ...operator, via: 'session' } };
}

/** Ends the session the cookie names, if any. */
export async function signOut(deps: AuthDeps, cookieHeader: string | undefined): Promise<boolean> {
  const sessionId = cookieValue(cookieHeader, sessionCookieName);
  return sessionId && sessionIdPattern.test(sessionId) ? revokeOperatorSession(deps.db, operatorTokenHash(sessionId)) : false;
}
