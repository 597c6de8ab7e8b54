import { Client, Connection, defaultGrpcRetryOptions, makeGrpcRetryInterceptor } from '@temporalio/client';
import type { AppConfig } from '../config/load.js';

/**
 * The API's Temporal client. Lazy, so the API starts (and /readyz says why it is not ready)
 * while Temporal is down. Retries are short: a webhook that cannot reach Temporal quickly goes to
 * the PostgreSQL inbox instead of waiting, and no retry chain outlives a request.
 */
export function createApiTemporalClient(temporal: Pick<AppConfig['temporal'], 'connection' | 'namespace'>): { connection: Connection; client: Client } {
  const { address, tls, apiKey, metadata } = temporal.connection;
  const connection = Connection.lazy({
    address,
    tls,
    apiKey,
    metadata,
    connectTimeout: 2_000,
    interceptors: [makeGrpcRetryInterceptor(defaultGrpcRetryOptions({ maxAttempts: 3, initialIntervalMs: () => 50 }))],
  });
  return { connection, client: new Client({ connection, namespace: temporal.namespace }) };
}
