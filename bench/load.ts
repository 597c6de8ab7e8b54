/** A small closed-loop load generator over keep-alive HTTP, and latency statistics. */
import http from 'node:http';

export interface LatencySummary {
  count: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
}

export function summarize(samplesMs: number[]): LatencySummary {
  const sorted = [...samplesMs].sort((a, b) => a - b);
  const at = (quantile: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(quantile * sorted.length) - 1))] ?? 0;
  const round = (value: number): number => Math.round(value * 100) / 100;
  return {
    count: sorted.length,
    p50: round(at(0.5)),
    p95: round(at(0.95)),
    p99: round(at(0.99)),
    max: round(sorted[sorted.length - 1] ?? 0),
    mean: round(sorted.reduce((sum, value) => sum + value, 0) / Math.max(1, sorted.length)),
  };
}

export interface HttpRequest {
  path: string;
  headers: Record<string, string>;
  body: string;
}

export interface HttpResult {
  status: number;
  latencyMs: number;
  /** performance.now() when the answer arrived. */
  at: number;
}

export function createHttpClient(baseUrl: string, connections: number) {
  const url = new URL(baseUrl);
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const post = (request: HttpRequest): Promise<HttpResult> =>
    new Promise((resolve, reject) => {
      const started = performance.now();
      const outgoing = http.request(
        { host: url.hostname, port: url.port, path: request.path, method: 'POST', agent, headers: { ...request.headers, 'content-length': Buffer.byteLength(request.body) } },
        (response) => {
          response.resume();
          response.once('end', () => resolve({ status: response.statusCode ?? 0, latencyMs: performance.now() - started, at: performance.now() }));
        },
      );
      outgoing.once('error', reject);
      outgoing.end(request.body);
    });
  return { post, close: () => agent.destroy() };
}

/** Runs `work` over `items` with `concurrency` workers; returns the wall time in ms. */
export async function runConcurrently<T>(items: readonly T[], concurrency: number, work: (item: T, index: number) => Promise<void>): Promise<number> {
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      for (;;) {
        const index = next++;
        if (index >= items.length) return;
        await work(items[index] as T, index);
      }
    }),
  );
  return performance.now() - started;
}
