/**
 * One LISTEN connection per API process, fanned out to every dashboard stream of a tenant. Each
 * change gets an id `<process>-<seq>`; a client reconnecting with Last-Event-ID gets the changes it
 * missed from a short ring buffer (or, from another process or after a gap, a fresh snapshot).
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { changesChannel } from '../db/changes.js';
import type { ChangeNotice } from '../db/changes.js';
import type { Logger } from '../observability/logger.js';

export interface LiveChange extends ChangeNotice {
  eventId: string;
  at: string;
}

/** `closing`: the process is shutting down; streams should end so the server can close. */
export type LiveListener = (change: LiveChange | { kind: 'resync' } | { kind: 'closing' }) => void;

export interface LiveFeed {
  subscribe(tenant: string, listener: LiveListener): () => void;
  /** Changes of a tenant after `eventId`, or undefined when they are not all known here (then resync). */
  since(tenant: string, eventId: string): LiveChange[] | undefined;
  lastEventId(): string;
  /** Open subscriptions (dashboard streams) across tenants. */
  subscribers(): number;
  stop(): Promise<void>;
}

const bufferSize = 2_000;

export async function startLiveFeed(options: { databaseUrl: string; logger: Logger }): Promise<LiveFeed> {
  const processId = randomUUID().slice(0, 8);
  let seq = 0;
  const buffer: Array<LiveChange & { seq: number }> = [];
  const listeners = new Map<string, Set<LiveListener>>();
  let client: pg.Client | undefined;
  let stopped = false;
  let retry: NodeJS.Timeout | undefined;

  const broadcast = (tenant: string, change: Parameters<LiveListener>[0]): void => {
    for (const listener of listeners.get(tenant) ?? []) listener(change);
  };

  const connect = async (): Promise<void> => {
    const next = new pg.Client({ connectionString: options.databaseUrl, application_name: 'switchboard-live-feed' });
    next.on('notification', (message) => {
      if (message.channel !== changesChannel || !message.payload) return;
      let notice: ChangeNotice;
      try {
        notice = JSON.parse(message.payload) as ChangeNotice;
      } catch {
        return;
      }
      seq++;
      const change = { ...notice, seq, eventId: `${processId}-${seq}`, at: new Date().toISOString() };
      buffer.push(change);
      if (buffer.length > bufferSize) buffer.shift();
      broadcast(notice.tenant, change);
    });
    const reconnect = (): void => {
      if (stopped || client !== next) return;
      client = undefined;
      next.removeAllListeners('notification');
      next.end().catch(() => undefined);
      // Changes during the gap are lost to this feed: every stream refreshes its snapshot.
      for (const tenant of listeners.keys()) broadcast(tenant, { kind: 'resync' });
      retry = setTimeout(() => void connect().catch(() => reconnect()), 1_000);
    };
    next.on('error', (error) => {
      options.logger.warn({ err: error }, 'live feed lost its database connection; reconnecting');
      reconnect();
    });
    next.on('end', reconnect);
    await next.connect();
    await next.query(`LISTEN ${changesChannel}`);
    client = next;
  };
  await connect();

  return {
    subscribe(tenant, listener) {
      const set = listeners.get(tenant) ?? new Set<LiveListener>();
      set.add(listener);
      listeners.set(tenant, set);
      return () => {
        set.delete(listener);
        if (set.size === 0) listeners.delete(tenant);
      };
    },
    since(tenant, eventId) {
      const [owner, rawSeq] = eventId.split('-');
      const after = Number(rawSeq);
      const oldest = buffer[0]?.seq ?? seq + 1;
      if (owner !== processId || !Number.isInteger(after) || after < oldest - 1 || after > seq) return undefined;
      return buffer.filter((change) => change.seq > after && change.tenant === tenant).map(({ seq: _seq, ...change }) => change);
    },
    lastEventId: () => `${processId}-${seq}`,
    subscribers: () => [...listeners.values()].reduce((sum, set) => sum + set.size, 0),
    async stop() {
      stopped = true;
      if (retry) clearTimeout(retry);
      for (const tenant of [...listeners.keys()]) broadcast(tenant, { kind: 'closing' });
      listeners.clear();
      await client?.end().catch(() => undefined);
    },
  };
}
