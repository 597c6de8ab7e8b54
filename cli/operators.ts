/**
 * `operators add|list|revoke --tenant <id> …`: the tenant's operator tokens. A new token is printed
 * once and stored only as its hash; revoking one also ends the dashboard sessions it signed in.
 */
import { parseArgs } from 'node:util';
import type { AppConfig } from '../config/load.js';
import { insertOperatorToken, listOperatorTokens, operatorRoles, revokeOperatorToken } from '../db/operators.js';
import type { OperatorRole } from '../db/operators.js';
import type { Db } from '../db/pool.js';
import { newOperatorToken, operatorTokenHash } from '../security/operator-tokens.js';

export const operatorsUsage = 'operators (add --tenant <id> --name <name> --role viewer|operator|admin | list --tenant <id> | revoke --tenant <id> --name <name>)';

export class OperatorsUsageError extends Error {}

/** Names the configured bootstrap token acts under cannot be taken by a stored token. */
const reservedName = /\(configuration\)/i;

export async function operators(context: { config: AppConfig; db: Db; out: (line: string) => void }, args: string[]): Promise<number> {
  const [action, ...rest] = args;
  const { values } = parseArgs({ args: rest, options: { tenant: { type: 'string' }, name: { type: 'string' }, role: { type: 'string' } } });
  const tenantId = values.tenant;
  if (!tenantId) throw new OperatorsUsageError('--tenant is required');
  if (!Object.hasOwn(context.config.tenants, tenantId)) throw new OperatorsUsageError(`no tenant "${tenantId}" in ${context.config.configPath}`);
  switch (action) {
    case 'add': {
      const name = values.name?.trim();
      if (!name || name.length > 100 || reservedName.test(name)) throw new OperatorsUsageError('--name is required: the operator as timelines will show them (at most 100 characters)');
      const role = values.role as OperatorRole | undefined;
      if (!role || !operatorRoles.includes(role)) throw new OperatorsUsageError(`--role must be one of ${operatorRoles.join(', ')}`);
      const token = newOperatorToken();
      const row = await insertOperatorToken(context.db, { tenantId, name, role, tokenSha256: operatorTokenHash(token) });
      if (!row) {
        context.out(`tenant ${tenantId} already has a live token named "${name}"; revoke it first, or choose another name`);
        return 1;
      }
      context.out(`operator "${name}" (${role}) of tenant ${tenantId}; token, shown this once:`);
      context.out(token);
      return 0;
    }
    case 'list': {
      const rows = await listOperatorTokens(context.db, tenantId);
      for (const row of rows) context.out(`${row.name}\t${row.role}\tcreated ${row.createdAt.toISOString()}${row.revokedAt ? `\trevoked ${row.revokedAt.toISOString()}` : ''}`);
      context.out(`${rows.filter((row) => !row.revokedAt).length} live token(s), ${rows.filter((row) => row.revokedAt).length} revoked`);
      return 0;
    }
    case 'revoke': {
      if (!values.name) throw new OperatorsUsageError('--name is required');
      const ended = await revokeOperatorToken(context.db, tenantId, values.name);
      context.out(ended.tokens === 0 ? `no live token named "${values.name}" in tenant ${tenantId}` : `revoked "${values.name}" and ended ${ended.sessions} dashboard session(s)`);
      return ended.tokens === 0 ? 1 : 0;
    }
    default:
      throw new OperatorsUsageError(`usage: ${operatorsUsage}`);
  }
}
