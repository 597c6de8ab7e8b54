/**
 * The end-to-end ceiling: the API's own verification, parsing and normalization, then
 * signalWithStart to Temporal inside the request (no inbox, no forwarder), so only the worker and
 * Temporal stand between a call's end and its journal row. SWITCHBOARD_CONFIG names the stack's config.
 */
import express from 'express';
import { providerRequest, rawBody } from '../api/routes/webhooks.js';
import { loadConfig } from '../config/load.js';
import { signalWithStart } from '../ingestion/handoff.js';
import { ingestCallWebhook } from '../ingestion/ingest.js';
import type { IngestDeps } from '../ingestion/ingest.js';
import { Rejection } from '../ingestion/rejections.js';
import { createLogger } from '../observability/logger.js';
import { createApiTemporalClient } from '../workers/temporal-client.js';

const config = loadConfig(process.env);
const { client, connection } = createApiTemporalClient(config.temporal);
const deps: IngestDeps = {
  config,
  // Call webhooks never read the database before the hand-off.
  db: undefined as unknown as IngestDeps['db'],
  logger: createLogger({ name: 'bench-direct', level: 'silent' }),
  handOff: async (delivery) => ({ via: 'temporal', runId: await signalWithStart(client, delivery) }),
};

const app = express();
app.disable('x-powered-by');
app.post('/webhooks/:tenant/:provider', rawBody, (req, res) => {
  const tenant = String(req.params.tenant);
  Promise.resolve()
    .then(() => ingestCallWebhook(deps, String(req.params.provider), providerRequest(config, req, tenant)))
    .then(
      () => res.status(202).json({ status: 'accepted', via: 'temporal' }),
      (error: unknown) => (error instanceof Rejection ? res.status(error.status).json({ error: error.reason }) : res.status(503).json({ error: 'temporarily_unavailable' })),
    );
});
const server = app.listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`listening ${typeof address === 'object' && address ? address.port : ''}\n`);
});
server.keepAliveTimeout = 65_000;
process.on('SIGTERM', () => server.close(() => void connection.close().finally(() => process.exit(0))));
