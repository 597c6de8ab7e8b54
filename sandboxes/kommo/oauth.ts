// OAuth 2.0 (developers.kommo.com/reference/get-token) and the Bearer check on every API call.
import { randomBytes } from 'node:crypto';
import express from 'express';
import type { Express, RequestHandler } from 'express';
import { bearerToken, isControlPath, isRecord, jsonBody } from '../http.js';
import type { Clock } from '../http.js';
import { oauthProblem, problem } from './errors.js';
import type { KommoSandboxOAuth } from './handle.js';
import type { KommoOAuthState } from './types.js';

const newToken = (): string => randomBytes(24).toString('hex');

/** Codes, access and refresh tokens issued so far, and what the token endpoint granted or refused. */
export class KommoTokens {
  readonly codes = new Map<string, { expiresAt: number; used: boolean }>();
  readonly accessTokens = new Map<string, { expiresAt: number }>();
  readonly refreshTokens = new Map<string, { expiresAt: number; used: boolean }>();
  readonly state: KommoOAuthState = { granted: { authorization_code: 0, refresh_token: 0 }, refused: [] };

  constructor(
    readonly oauth: KommoSandboxOAuth | undefined,
    /** The long-lived token of a private integration, if any. */
    readonly longLived: string | undefined,
    readonly clock: Clock,
  ) {}

  authorize(): string {
    if (!this.oauth) throw new Error('the sandbox has no oauth integration configured');
    const code = newToken();
    this.codes.set(code, { expiresAt: this.clock() + (this.oauth.codeLifetimeSeconds ?? 1200) * 1000, used: false });
    return code;
  }

  accepts(token: string | undefined): boolean {
    if (token !== undefined && this.longLived !== undefined && token === this.longLived) return true;
    const access = token === undefined ? undefined : this.accessTokens.get(token);
    return access !== undefined && access.expiresAt > this.clock();
  }

  /** A fresh access and refresh token pair; answers the token endpoint's success body. */
  issue(oauth: KommoSandboxOAuth, now: number): Record<string, unknown> {
    const lifetime = oauth.accessTokenLifetimeSeconds ?? 86_400;
    const accessToken = newToken();
    const refreshToken = newToken();
    this.accessTokens.set(accessToken, { expiresAt: now + lifetime * 1000 });
    this.refreshTokens.set(refreshToken, { expiresAt: now + (oauth.refreshTokenLifetimeSeconds ?? 90 * 86_400) * 1000, used: false });
    return { token_type: 'Bearer', expires_in: lifetime, server_time: Math.floor(now / 1000), access_token: accessToken, refresh_token: refreshToken };
  }
}

const invalid = 'The request is missing a required parameter, includes an invalid parameter value, or is otherwise malformed';

/** The token endpoint (JSON as in Kommo's docs, or a form as OAuth client libraries send it). */
export function oauthRoutes(app: Express, tokens: KommoTokens): void {
  const form = express.urlencoded({ extended: false });
  const json = jsonBody((res) => oauthProblem(res, 400, 'Bad Request', 'Malformed request body'));
  app.post('/oauth2/access_token', form, json, (req, res) => {
    const raw: unknown = req.body;
    const field = (name: string): string | undefined => (isRecord(raw) && typeof raw[name] === 'string' && raw[name] !== '' ? raw[name] : undefined);
    const grant = field('grant_type') ?? '';
    const refuse = (status: number, title: string, detail: string, hint: string): void => {
      tokens.state.refused.push({ grant, hint });
      oauthProblem(res, status, title, detail, hint);
    };
    const oauth = tokens.oauth;
    if (!oauth) return refuse(401, 'Invalid client', 'Client authentication failed', 'No integration is registered');
    if (field('client_id') !== oauth.clientId || field('client_secret') !== oauth.clientSecret) {
      return refuse(401, 'Invalid client', 'Client authentication failed', 'Unknown client or wrong secret');
    }
    const now = tokens.clock();
    if (grant === 'authorization_code') {
      const code = field('code');
      if (!code) return refuse(400, 'Invalid request', invalid, 'Check the `code` parameter');
      if (field('redirect_uri') !== oauth.redirectUri) return refuse(401, 'Invalid client', 'Client authentication failed', 'The redirect URI does not match');
      const issued = tokens.codes.get(code);
      if (!issued || issued.used) return refuse(400, 'Invalid request', invalid, 'Authorization code has been revoked');
      if (issued.expiresAt <= now) return refuse(400, 'Invalid request', invalid, 'Authorization code has expired');
      issued.used = true;
    } else if (grant === 'refresh_token') {
      const token = field('refresh_token');
      if (!token) return refuse(400, 'Invalid request', invalid, 'Check the `refresh_token` parameter');
      const issued = tokens.refreshTokens.get(token);
      // A refresh token works once: the answer carries its replacement.
      if (!issued || issued.used) return refuse(401, 'Invalid request', invalid, 'Token has been revoked');
      if (issued.expiresAt <= now) return refuse(401, 'Invalid request', invalid, 'Token has expired');
      issued.used = true;
      // The access tokens issued before this one stop working too (the stricter reading: see CONTRACTS.md).
      tokens.accessTokens.clear();
    } else {
      return refuse(400, 'Invalid request', invalid, 'Check the `grant_type` parameter');
    }
    const answer = tokens.issue(oauth, now);
    tokens.state.granted[grant === 'authorization_code' ? 'authorization_code' : 'refresh_token']++;
    res.json(answer);
  });
}

/** Every API call needs the long-lived token or a live OAuth access token. */
export function bearerAuth(tokens: KommoTokens): RequestHandler {
  return (req, res, next) => {
    if (isControlPath(req) || tokens.accepts(bearerToken(req))) return next();
    problem(res, 401, 'Unauthorized');
  };
}
