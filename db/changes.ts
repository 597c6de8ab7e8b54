/**
 * Change notifications over PostgreSQL LISTEN/NOTIFY: every journal write announces itself in the
 * same transaction (delivered at commit), so every API process's live feed sees every change.
 */
import type { Db } from './pool.js';

export const changesChannel = 'switchboard_changes';

export interface ChangeNotice {
  tenant: string;
  kind: 'call' | 'lead';
  id: string;
  status: string;
  version?: number;
}

export async function notifyChange(db: Pick<Db, 'query'>, notice: ChangeNotice): Promise<void> {
  await db.query('SELECT pg_notify($1, $2)', [changesChannel, JSON.stringify(notice)]);
}
