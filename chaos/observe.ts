/**
 * What the chaos run watches while it runs: the inbox and the CRM backlog (sampled in PostgreSQL
 * every second), each API's readiness, and one dashboard stream per API process, which reconnects
 * as a browser's EventSource does when its process goes away.
 */
import type { Db } from '../db/pool.js';

export interface Sample {
  /** Epoch ms. */
  at: number;
  value: number;
}

export interface StreamEvent {
  api: number;
  /** Epoch ms when it arrived here. */
  receivedAt: number;
  event: string;
  /** A change's `at`: when that API process heard of the change. */
  changeAt?: number;
  kind?: string;
  id?: string;
}

export interface Readiness {
  api: number;
  at: number;
  status: number;
  /** `status` of the body (ok, degraded, not_ready). */
  state?: string;
  /** The body, as the API wrote it. */
  body?: unknown;
}

export interface Observations {
  inbox: Sample[];
  crmBacklog: Sample[];
  streams: StreamEvent[];
  /** Epoch ms of each stream (re)connection, by API. */
  streamConnects: Array<{ api: number; at: number; ok: boolean }>;
  readiness: Readiness[];
  stop(): Promise<void>;
}

async function pollEvery(ms: number, signal: AbortSignal, work: () => Promise<void>): Promise<void> {
  while (!signal.aborted) {
    const started = Date.now();
    await work().catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, Math.max(50, ms - (Date.now() - started))));
  }
}

/** One SSE stream, reconnecting after 2 s (the stream's own `retry:`) whenever it ends or fails. */
async function watchStream(url: string, token: string, api: number, signal: AbortSignal, events: StreamEvent[], connects: Observations['streamConnects']): Promise<void> {
  let lastEventId: string | undefined;
  while (!signal.aborted) {
    try {
      const response = await fetch(url, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream', ...(lastEventId ? { 'last-event-id': lastEventId } : {}) }, signal });
      connects.push({ api, at: Date.now(), ok: response.ok });
      const reader = response.body?.getReader();
      if (!response.ok || !reader) throw new Error(`stream answered ${response.status}`);
      const decoder = new TextDecoder();
      let buffer = '';
      for (;;) {
        const chunk = await reader.read();
        if (chunk.done) break;
        buffer += decoder.decode(chunk.value as Uint8Array, { stream: true });
        let separator = buffer.indexOf('\n\n');
        while (separator >= 0) {
          const block = buffer.slice(0, separator);
          buffer = buffer.slice(separator + 2);
          separator = buffer.indexOf('\n\n');
          const event = /^event: (.*)$/m.exec(block)?.[1];
          if (!event) continue;
          const id = /^id: (.*)$/m.exec(block)?.[1];
          if (id) lastEventId = id;
          const entry: StreamEvent = { api, receivedAt: Date.now(), event };
          if (event === 'change') {
            try {
              const data = JSON.parse(/^data: (.*)$/m.exec(block)?.[1] ?? '{}') as { at?: string; kind?: string; id?: string };
              if (data.at) entry.changeAt = Date.parse(data.at);
              if (data.kind) entry.kind = data.kind;
              if (data.id) entry.id = data.id;
            } catch {
              // a malformed change still counts as one
            }
          }
          events.push(entry);
        }
      }
    } catch {
      if (signal.aborted) return;
    }
    await new Promise((resolve) => setTimeout(resolve, 2_000));
  }
}

export function startObserving(options: { db: Db; apis: Array<{ url: string }>; tenantId: string; operatorToken: string }): Observations {
  const controller = new AbortController();
  const { signal } = controller;
  const inbox: Sample[] = [];
  const crmBacklog: Sample[] = [];
  const streams: StreamEvent[] = [];
  const streamConnects: Observations['streamConnects'] = [];
  const readiness: Readiness[] = [];
  const loops = [
    pollEvery(1_000, signal, async () => {
      const at = Date.now();
      const result = await options.db.query<{ waiting: number }>('SELECT count(*)::int AS waiting FROM event_inbox WHERE dead_at IS NULL');
      inbox.push({ at, value: result.rows[0]?.waiting ?? 0 });
    }),
    pollEvery(2_000, signal, async () => {
      const at = Date.now();
      const result = await options.db.query<{ open: number }>(`SELECT count(*)::int AS open FROM calls WHERE crm_sync_state IN ('waiting', 'pending')`);
      crmBacklog.push({ at, value: result.rows[0]?.open ?? 0 });
    }),
    ...options.apis.map((api, index) =>
      pollEvery(2_000, signal, async () => {
        const at = Date.now();
        try {
          const response = await fetch(`${api.url}/readyz`, { signal: AbortSignal.timeout(3_000) });
          const body = (await response.json().catch(() => undefined)) as { status?: string } | undefined;
          readiness.push({ api: index, at, status: response.status, ...(body?.status ? { state: body.status } : {}), ...(body ? { body } : {}) });
        } catch {
          readiness.push({ api: index, at, status: 0 });
        }
      }),
    ),
    ...options.apis.map((api, index) => watchStream(`${api.url}/api/${options.tenantId}/dashboard/stream`, options.operatorToken, index, signal, streams, streamConnects)),
  ];
  return {
    inbox,
    crmBacklog,
    streams,
    streamConnects,
    readiness,
    async stop() {
      controller.abort();
      await Promise.allSettled(loops);
    },
  };
}
