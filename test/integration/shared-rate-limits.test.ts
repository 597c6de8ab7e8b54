/**
 * Limits that are the account's (HubSpot: all requests, and CRM searches; per private app and
 * account) or the number's (WhatsApp throughput, 130429) hold however many workers send: two
 * adapters with pools of their own, as two worker processes have, take their slots from the same
 * bucket in PostgreSQL. The sandboxes answer 429 past their limits in any rolling second, so no
 * 429 means the two together never went past them (each alone at its own pace would have sent
 * twice as much).
 */
import assert from 'node:assert/strict';
import { createHubspotAdapter } from '../../adapters/crm/hubspot.js';
import type { CrmAdapter } from '../../adapters/crm/types.js';
import { createWhatsAppAdapter } from '../../adapters/whatsapp.js';
import type { WhatsAppAdapter } from '../../adapters/whatsapp.js';
import { hubspotConfigSchema, whatsappConfigSchema } from '../../config/schema.js';
import { createPool } from '../../db/pool.js';
import type { Db } from '../../db/pool.js';
import { startHubspotSandbox } from '../../sandboxes/hubspot.js';
import type { HubspotSandbox } from '../../sandboxes/hubspot.js';
import { startWhatsAppSandbox } from '../../sandboxes/whatsapp.js';
import type { WhatsAppSandbox } from '../../sandboxes/whatsapp.js';
import { createTestDatabase } from '../harness/postgres.js';

describe('account-wide rate limits shared by every worker (PostgreSQL buckets)', function () {
  this.timeout(60_000);
  let url: string;
  let db: Db;
  const pools: Db[] = [];
  const stops: Array<() => Promise<void>> = [];
  before(async () => {
    ({ url, db } = await createTestDatabase('shared_limits'));
  });
  after(async () => {
    await Promise.all(stops.map((stop) => stop()));
    await Promise.all(pools.map((pool) => pool.end()));
  });
  /** Another worker process: its own pool on the same database. */
  const otherWorkerDb = (): Db => {
    const pool = createPool(url, { max: 5 });
    pools.push(pool);
    return pool;
  };

  it('HubSpot: two workers together stay within the account\'s requests and searches per rolling second', async () => {
    // The account's limits, per rolling second here so that a few seconds of traffic show them.
    const hubspot: HubspotSandbox = await startHubspotSandbox({ token: 'pat-shared', burstLimit: 5, burstWindowMs: 1_000, searchPerSecond: 3 });
    stops.push(() => hubspot.stop());
    const contact = hubspot.seedContact({ firstname: 'Known', phone: '+14155557000' });
    const config = hubspotConfigSchema.parse({ kind: 'hubspot', baseUrl: hubspot.url, token: 'pat-shared', rateLimitPerSecond: 4, searchRateLimitPerSecond: 2 });
    const workers: CrmAdapter[] = [createHubspotAdapter(config, { db }), createHubspotAdapter(config, { db: otherWorkerDb() })];
    const worker = (index: number): CrmAdapter => workers[index % 2] ?? assert.fail('no worker');
    // Searches (contact by phone) and plain reads (enrichment) at once, half from each worker.
    const searches = Array.from({ length: 8 }, (_, index) => worker(index).findContactByPhone(`+1415555${String(7100 + index)}`));
    const reads = Array.from({ length: 12 }, (_, index) => worker(index).enrich({ id: Number(contact.id) }));
    const results = await Promise.allSettled([...searches, ...reads]);
    assert.deepEqual(results.filter((result) => result.status === 'rejected'), []);
    const { requests } = hubspot.state();
    assert.equal(requests.searches, 8);
    assert.equal(requests.total, 20);
    assert.deepEqual(requests.rateLimitedByPolicy, {}, 'never answered 429');
  });

  it('WhatsApp: two workers together stay within the number\'s throughput in any rolling second', async () => {
    const wa: WhatsAppSandbox = await startWhatsAppSandbox({
      token: 'wa-shared',
      appSecret: 'wa-secret',
      phoneNumberId: 'PN-SHARED',
      wabaId: 'WABA1',
      templates: [{ name: 'hello', language: 'en_US', category: 'UTILITY', body: 'Hello' }],
      messagesPerSecond: 5,
      pairSpacingMs: 0,
    });
    stops.push(() => wa.stop());
    const config = whatsappConfigSchema.parse({ baseUrl: wa.url, phoneNumberId: 'PN-SHARED', wabaId: 'WABA1', token: 'wa-shared', messagesPerSecond: 5 });
    const workers: WhatsAppAdapter[] = [createWhatsAppAdapter(config, { db }), createWhatsAppAdapter(config, { db: otherWorkerDb() })];
    const sends = Array.from({ length: 16 }, (_, index) =>
      (workers[index % 2] ?? assert.fail('no worker')).send(`+1628555${String(1000 + index)}`, { type: 'template', template: { name: 'hello', language: 'en_US', params: [] } }, `wa:shared:${index}`),
    );
    const results = await Promise.allSettled(sends);
    assert.deepEqual(results.filter((result) => result.status === 'rejected'), []);
    const { requests, messages } = wa.state();
    assert.equal(messages.length, 16);
    assert.equal(requests.rateLimited, 0, 'never answered 130429');
  });
});
