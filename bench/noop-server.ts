/** The no-op HTTP ceiling: the same Express and raw-body parsing as the API, then 202 at once. */
import express from 'express';

const app = express();
app.disable('x-powered-by');
app.post('/webhooks/:tenant/:provider', express.raw({ type: () => true, limit: '1mb' }), (_req, res) => {
  res.status(202).json({ status: 'accepted' });
});
const server = app.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`listening ${typeof address === 'object' && address ? address.port : ''}\n`);
});
server.keepAliveTimeout = 65_000;
process.on('SIGTERM', () => server.close(() => process.exit(0)));
