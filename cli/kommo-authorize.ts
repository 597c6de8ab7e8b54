/**
 * `kommo-authorize --tenant <id> --code <authorization code>`: exchanges the code Kommo hands the
 * integration's redirect URI (valid 20 minutes, once) for the first access and refresh tokens, and
 * stores them encrypted. Workers renew them from then on. Never prints a token.
 */
import { parseArgs } from 'node:util';
import { requestKommoTokens } from '../adapters/crm/kommo.js';
import { OutsideSystemError } from '../adapters/http.js';
import type { AppConfig } from '../config/load.js';
import { decodeTokenKey } from '../config/schema.js';
import { saveTokens } from '../db/crm-tokens.js';
import type { Db } from '../db/pool.js';

export const kommoAuthorizeUsage = 'kommo-authorize --tenant <id> --code <authorization code>';

export class KommoAuthorizeUsageError extends Error {}

export async function kommoAuthorize(context: { config: AppConfig; db: Db; out: (line: string) => void }, args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { tenant: { type: 'string' }, code: { type: 'string' } } });
  if (!values.tenant) throw new KommoAuthorizeUsageError('--tenant is required');
  if (!values.code) throw new KommoAuthorizeUsageError('--code is required (the code Kommo sent to the redirect URI)');
  const crm = context.config.tenants[values.tenant]?.crm;
  if (!crm) throw new KommoAuthorizeUsageError(`no tenant "${values.tenant}" with a CRM in ${context.config.configPath}`);
  if (crm.kind !== 'kommo' || !crm.oauth) throw new KommoAuthorizeUsageError(`tenant "${values.tenant}" has no Kommo OAuth settings (crm.oauth)`);
  const key = decodeTokenKey(crm.oauth.tokenKey);
  if (!key) throw new KommoAuthorizeUsageError('crm.oauth.tokenKey is not a 32-byte key');
  let tokens;
  try {
    tokens = await requestKommoTokens({ baseUrl: crm.baseUrl, oauth: crm.oauth }, { code: values.code });
  } catch (error) {
    if (!(error instanceof OutsideSystemError)) throw error;
    const hint = (error.body as { hint?: unknown } | undefined)?.hint;
    context.out(`Kommo refused the code: ${error.message}${typeof hint === 'string' ? ` (${hint})` : ''}. Codes work once, for 20 minutes: authorize again in Kommo and use the new code.`);
    return 1;
  }
  const stored = await saveTokens(context.db, { tenantId: values.tenant, crm: 'kommo', key }, crm.baseUrl.replace(/\/$/, ''), tokens);
  context.out(
    `stored Kommo tokens for tenant ${values.tenant} (encrypted; access token valid until ${stored.expiresAt.toISOString()}${stored.refreshToken ? ', renewed automatically' : ', no refresh token'})`,
  );
  return 0;
}
