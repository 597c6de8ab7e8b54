import { createHmac, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import type { AppConfig } from '../config/load.js';
import { Rejection } from '../ingestion/rejections.js';

const sameToken = (a: string, b: string): boolean => {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
};

/** Which tenant a bearer token belongs to, if any. */
export function tenantOfToken(config: AppConfig, token: string): string | undefined {
  return Object.entries(config.tenants).find(([, tenant]) => sameToken(tenant.secrets.operatorToken, token))?.[0];
}

export function bearerToken(header: string | undefined): string | undefined {
  const match = /^Bearer\s+(\S+)$/i.exec(header ?? '');
  return match?.[1];
}

/** The browser's session after signing in to the dashboard (EventSource cannot send headers). */
export const sessionCookieName = 'sb_operator';
const sessionSeconds = 12 * 3_600;

function sessionSignature(config: AppConfig, tenantId: string, expiresAt: number): string | undefined {
  const token = config.tenants[tenantId]?.secrets.operatorToken;
  // Keyed by the operator token: rotating the token signs every session out.
  return token ? createHmac('sha256', token).update(`${tenantId}.${expiresAt}`).digest('base64url') : undefined;
}

export function issueSession(config: AppConfig, tenantId: string, now = Date.now()): { value: string; maxAgeSeconds: number } {
  const expiresAt = Math.floor(now / 1000) + sessionSeconds;
  return { value: `${tenantId}.${expiresAt}.${sessionSignature(config, tenantId, expiresAt) ?? ''}`, maxAgeSeconds: sessionSeconds };
}

export function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const [key, ...rest] = part.trim().split('=');
    if (key === name) return decodeURIComponent(rest.join('='));
  }
  return undefined;
}

/** The tenant of a valid, unexpired session cookie. */
export function sessionTenant(config: AppConfig, cookieHeader: string | undefined, now = Date.now()): string | undefined {
  const session = cookieValue(cookieHeader, sessionCookieName);
  const [tenantId = '', expires = '', signature = ''] = (session ?? '').split('.');
  const expiresAt = Number(expires);
  if (!tenantId || !Number.isInteger(expiresAt) || expiresAt * 1000 < now) return undefined;
  const expected = sessionSignature(config, tenantId, expiresAt);
  return expected && sameToken(expected, signature) ? tenantId : undefined;
}

/**
 * Operator routes (`/api/:tenant/...`, the dashboard): a bearer token or a dashboard session of this
 * tenant. A credential of another tenant gets 403, never that tenant's data.
 */
export function checkOperator(config: AppConfig, tenantId: string, authorization: string | undefined, cookieHeader?: string): void {
  if (!config.tenants[tenantId]) throw new Rejection('unknown_tenant', `no tenant "${tenantId.slice(0, 64)}"`);
  const token = bearerToken(authorization);
  const owner = token ? tenantOfToken(config, token) : sessionTenant(config, cookieHeader);
  if (!token && !owner) {
    if (cookieValue(cookieHeader, sessionCookieName)) throw new Rejection('invalid_token', 'the dashboard session has expired or is not valid');
    throw new Rejection('missing_token', 'an operator bearer token is required');
  }
  if (!owner) throw new Rejection('invalid_token', 'the operator token is not valid');
  if (owner !== tenantId) throw new Rejection('forbidden_tenant', 'this token may not access this tenant');
}

export function requireOperator(config: AppConfig): RequestHandler<{ tenant: string }> {
  return (req, _res, next) => {
    checkOperator(config, req.params.tenant, req.headers.authorization, req.headers.cookie);
    next();
  };
}
