/**
 * The HTTP ceilings: the same Express and raw-body parsing as the API, then 202 at once; or, with
 * BENCH_INSERT_DATABASE_URL and BENCH_INSERT_TABLE, after one INSERT of the body into that table
 * (the floor of an API that commits each event before answering).
 */
import express from 'express';
import type { RequestHandler } from 'express';
import pg from 'pg';

const databaseUrl = process.env.BENCH_INSERT_DATABASE_URL;
const table = process.env.BENCH_INSERT_TABLE ?? '';
if (databaseUrl && !/^[a-z_][a-z0-9_]*$/.test(table)) throw new Error('BENCH_INSERT_TABLE must be a plain table name');
// The API's own pool size, so the INSERT handler queues for connections the way the API would.
const pool = databaseUrl ? new pg.Pool({ connectionString: databaseUrl, max: 20 }) : undefined;
pool?.on('error', () => undefined);
if (pool) await pool.query(`CREATE TABLE IF NOT EXISTS ${table} (id bigserial PRIMARY KEY, payload jsonb NOT NULL, at timestamptz NOT NULL DEFAULT now())`);

const accept: RequestHandler = (_req, res) => {
  res.status(202).json({ status: 'accepted' });
};
const insertThenAccept: RequestHandler = (req, res) => {
  pool?.query(`INSERT INTO ${table} (payload) VALUES ($1)`, [(req.body as Buffer).toString('utf8')]).then(
    () => res.status(202).json({ status: 'accepted' }),
    () => res.status(503).json({ error: 'temporarily_unavailable' }),
  );
};

const app = express();
app.disable('x-powered-by');
app.post('/webhooks/:tenant/:provider', express.raw({ type: () => true, limit: '1mb' }), pool ? insertThenAccept : accept);
const server = app.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`listening ${typeof address === 'object' && address ? address.port : ''}\n`);
});
server.keepAliveTimeout = 65_000;
process.on('SIGTERM', () => server.close(() => void (pool?.end() ?? Promise.resolve()).finally(() => process.exit(0))));
