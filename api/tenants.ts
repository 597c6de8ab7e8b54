import type { AppConfig } from '../config/load.js';
import type { TenantConfig } from '../config/schema.js';

/**
 * The tenant a request names, if it is configured. Own properties only: a path segment such as
 * `constructor` or `__proto__` must not find Object.prototype's members and pass for a tenant.
 */
export function tenantOf(config: AppConfig, tenantId: string): TenantConfig | undefined {
  return Object.hasOwn(config.tenants, tenantId) ? config.tenants[tenantId] : undefined;
}
