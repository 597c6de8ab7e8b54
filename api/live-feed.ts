/**
 * One LISTEN connection per API process, fanned out to every dashboard stream of a tenant. Each
 * change gets an id `<process>-<seq>`; a client reconnecting with Last-Event-ID gets the changes it
 * missed from a short ring buffer (or, from another process or after a gap, a fresh snapshot).
 * The connection is db/listen.ts's: it reconnects for as long as the process runs.
 */
import { randomUUID } from 'node:crypto';
import { changesChannel } from '../db/changes.js';
import type { ChangeNotice } from '../db/changes.js';
import { listenForever } from '../db/listen.js';
import type { ListenState } from '../db/listen.js';
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
  /** The LISTEN connection's state, for readiness: while it is down, streams miss changes. */
  state(): ListenState;
  stop(): Promise<void>;
}

const bufferSize = 2_000;

/**
 * Resolves once the first connection attempt has settled: listening, or (the database is away)
 * retrying in the background, so the API still starts and /readyz names the outage.
 */
export async function startLiveFeed(options: { databaseUrl: string; logger: Logger }): Promise<LiveFeed> {
  const processId = randomUUID().slice(0, 8);
  let seq = 0;
  const buffer: Array<LiveChange & { seq: number }> = [];
  const listeners = new Map<string, Set<LiveListener>>();

  const broadcast = (tenant: string, change: Parameters<LiveListener>[0]): void => {
    for (const listener of listeners.get(tenant) ?? []) listener(change);
  };

  const listening = listenForever({
    databaseUrl: options.databaseUrl,
    channel: changesChannel,
    applicationName: 'switchboard-live-feed',
    logger: options.logger,
    onNotify: (payload) => {
      if (payload === undefined) {
        // Listening (again): changes during a gap are lost to this feed, so every stream refreshes its snapshot.
        for (const tenant of listeners.keys()) broadcast(tenant, { kind: 'resync' });
        return;
      }
      let notice: ChangeNotice;
      try {
        notice = JSON.parse(payload) as ChangeNotice;
      } catch {
        return;
      }
      seq++;
      const change = { ...notice, seq, eventId: `${processId}-${seq}`, at: new Date().toISOString() };
      buffer.push(change);
      if (buffer.length > bufferSize) buffer.shift();
      broadcast(notice.tenant, change);
    },
  });
  await listening.firstAttempt;

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
    state: () => listening.state(),
    async stop() {
      for (const tenant of [...listeners.keys()]) broadcast(tenant, { kind: 'closing' });
      listeners.clear();
      await listening.stop();
    },
  };
}
