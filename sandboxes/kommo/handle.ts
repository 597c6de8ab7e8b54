// Options, seeding inputs and the handle of the Kommo sandbox.
import type { SandboxHandle } from '../core.js';
import type { Clock } from '../http.js';
import type { KommoCompany, KommoContact, KommoLead, KommoState, KommoUser } from './types.js';

/** An OAuth 2.0 integration registered with the account (developers.kommo.com/reference/get-token). */
export interface KommoSandboxOAuth {
  clientId: string;
  clientSecret: string;
  redirectUri: string;
  /** Kommo: 86400 (a day). */
  accessTokenLifetimeSeconds?: number;
  /** Kommo: three months; every refresh token works once. */
  refreshTokenLifetimeSeconds?: number;
  /** Kommo: 20 minutes; every code works once. */
  codeLifetimeSeconds?: number;
}

export interface KommoSandboxOptions {
  port?: number;
  /** A long-lived token (private integrations): valid until the sandbox stops, never refreshed. */
  token?: string;
  oauth?: KommoSandboxOAuth;
  /** The account's IP whitelist; requests from other addresses are refused with 403 (code 113). */
  allowedIps?: string[];
  /** Requests allowed per rolling window (Kommo: 7 per second). */
  rateLimitPerSecond?: number;
  /** Length of the rate-limit window; 1000 ms in the real API. */
  rateLimitWindowMs?: number;
  /** A client is restricted once it has received more than this many 429s within `blockWindowMs` (30). */
  blockAfter429s?: number;
  blockWindowMs?: number;
  blockDurationMs?: number;
  /** Time source for the windows, the block and timestamps. */
  clock?: Clock;
}

export interface SeedContactInput {
  name: string;
  phone: string;
  email?: string;
  company?: string;
  responsibleUserId?: number;
}

export interface SeedCompanyInput {
  name: string;
  phone?: string;
}

export interface SeedLeadInput {
  name: string;
  contactId?: number;
  companyId?: number;
  /** A won or lost lead: not active, so calls are not placed on it. */
  closed?: boolean;
}

export interface SeedUserInput {
  id?: number;
  name: string;
  email: string;
}

/** The shared sandbox handle (url, state, setOutage, setResponseDelay, stop) plus Kommo's own controls. */
export interface KommoSandbox extends SandboxHandle<KommoState> {
  seedContact(input: SeedContactInput): KommoContact;
  /** Not in the brief's handle list: lets tests exercise the "else a company" match. */
  seedCompany(input: SeedCompanyInput): KommoCompany;
  seedUser(input: SeedUserInput): KommoUser;
  /** A lead linked to a contact or company (an active one is where Kommo places that caller's calls). */
  seedLead(input: SeedLeadInput): KommoLead;
  /** Stands in for the user granting access in Kommo: a fresh authorization code for `oauth`. */
  authorize(): string;
  /** Every access token issued so far stops working, as if its lifetime had passed. */
  expireAccessTokens(): void;
  /** Replaces the IP whitelist (undefined: none). */
  setAllowedIps(ips: string[] | undefined): void;
}
