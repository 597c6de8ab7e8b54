import { Client, Connection, defaultGrpcRetryOptions, makeGrpcRetryInterceptor } from '@temporalio/client';
import type { ClientInterceptors } from '@temporalio/client';
import type { AppConfig } from '../config/load.js';
import { temporalDataConverter } from '../security/payload-codec.js';

/**
 * The Temporal client of the API, the forwarder and the CLI. Lazy, so they start (and /readyz says
 * why Temporal is missing) while Temporal is down. Retries are short: a forward that fails is
 * retried by the forwarder with its own backoff, and no retry chain outlives a request.
 */
export function createApiTemporalClient(
  temporal: Pick<AppConfig['temporal'], 'connection' | 'namespace' | 'payloadEncryption'>,
  /** The tracing interceptors, when tracing is on (observability/tracing.ts). */
  interceptors?: ClientInterceptors,
): { connection: Connection; client: Client } {
  const { address, tls, apiKey, metadata } = temporal.connection;
  const connection = Connection.lazy({
    address,
    tls,
    apiKey,
    metadata,
    connectTimeout: 2_000,
    interceptors: [makeGrpcRetryInterceptor(defaultGrpcRetryOptions({ maxAttempts: 3, initialIntervalMs: () => 50 }))],
  });
  return { connection, client: new Client({ connection, namespace: temporal.namespace, dataConverter: temporalDataConverter(temporal.payloadEncryption), ...(interceptors ? { interceptors } : {}) }) };
}
