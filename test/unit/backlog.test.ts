import assert from 'node:assert/strict';
import { admissionFor } from '../../ingestion/backlog.js';

describe('backlog admission', () => {
  const limits = { maxEvents: 1_000, maxAgeSeconds: 60 };

  it('admits while both the count and the age of the oldest event are under their bounds', () => {
    assert.deepEqual(admissionFor({ pending: 999, oldestAgeSeconds: 59, drainPerSecond: 0 }, limits), { admitted: true });
  });

  it('refuses at the count bound, with a Retry-After that lets the forwarder free a tenth of it', () => {
    assert.deepEqual(admissionFor({ pending: 1_000, oldestAgeSeconds: 1, drainPerSecond: 20 }, limits), { admitted: false, reason: 'events', retryAfterSeconds: 5 });
    assert.deepEqual(admissionFor({ pending: 1_000, oldestAgeSeconds: 1, drainPerSecond: 1_000 }, limits), { admitted: false, reason: 'events', retryAfterSeconds: 1 });
    assert.deepEqual(admissionFor({ pending: 5_000, oldestAgeSeconds: 1, drainPerSecond: 10 }, limits), { admitted: false, reason: 'events', retryAfterSeconds: 60 });
  });

  it('refuses when the oldest waiting event is too old (forwarding stuck), and says 5 s when the drain rate is unknown', () => {
    assert.deepEqual(admissionFor({ pending: 10, oldestAgeSeconds: 61, drainPerSecond: 0 }, limits), { admitted: false, reason: 'age', retryAfterSeconds: 5 });
  });
});
