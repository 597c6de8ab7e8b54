import { timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import type { AppConfig } from '../config/load.js';
import { Rejection } from './rejections.js';

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

/**
 * Operator routes (`/api/:tenant/...`): the bearer token must be this tenant's. A token of
 * another tenant gets 403, never that tenant's data.
 */
export function checkOperator(config: AppConfig, tenantId: string, authorization: string | undefined): void {
  if (!config.tenants[tenantId]) throw new Rejection('unknown_tenant', `no tenant "${tenantId.slice(0, 64)}"`);
  const token = bearerToken(authorization);
  if (!token) throw new Rejection('missing_token', 'an operator bearer token is required');
  const owner = tenantOfToken(config, token);
  if (!owner) throw new Rejection('invalid_token', 'the operator token is not valid');
  if (owner !== tenantId) throw new Rejection('forbidden_tenant', 'this token may not access this tenant');
}

export function requireOperator(config: AppConfig): RequestHandler<{ tenant: string }> {
  return (req, _res, next) => {
    checkOperator(config, req.params.tenant, req.headers.authorization);
    next();
  };
}
