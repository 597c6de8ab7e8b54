import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runner } from 'node-pg-migrate';
import type { Db } from './pool.js';

export const migrationsDir = fileURLToPath(new URL('../migrations', import.meta.url));
export const migrationsTable = 'pgmigrations';

/** Migration names as node-pg-migrate records them: the file name without its extension. */
export function knownMigrations(): string[] {
  return readdirSync(migrationsDir)
    .filter((file) => file.endsWith('.sql'))
    .map((file) => path.basename(file, '.sql'))
    .sort();
}

/**
 * Applies pending migrations. Safe to call from many processes at once: node-pg-migrate
 * takes an advisory lock, and with `wait` the others block until it is released.
 */
export async function migrate(databaseUrl: string, log: (message: string) => void = () => undefined): Promise<string[]> {
  const applied = await runner({
    databaseUrl,
    dir: migrationsDir,
    migrationsTable,
    direction: 'up',
    singleTransaction: true,
    checkOrder: true,
    advisoryLockMode: 'wait',
    log,
  });
  return applied.map((migration) => migration.name);
}

export interface MigrationStatus {
  applied: number;
  pending: string[];
}

/** Which migration files have not been applied to this database yet. */
export async function migrationStatus(db: Db): Promise<MigrationStatus> {
  const known = knownMigrations();
  const exists = await db.query<{ present: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS present`, [
    `public.${migrationsTable}`,
  ]);
  if (!exists.rows[0]?.present) return { applied: 0, pending: known };
  const rows = await db.query<{ name: string }>(`SELECT name FROM ${migrationsTable}`);
  const done = new Set(rows.rows.map((row) => row.name));
  return { applied: done.size, pending: known.filter((name) => !done.has(name)) };
}
