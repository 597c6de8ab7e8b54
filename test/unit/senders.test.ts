import assert from 'node:assert/strict';
import { describe, it } from 'mocha';
import { senderNumbers, senderRoutes } from '../../config/senders.js';
import { tenantSchema, whatsappConfigSchema } from '../../config/schema.js';
import { countryOfPhone } from '../../shared/phone.js';
import { chooseSender, isKnownSender, senderNames } from '../../shared/senders.js';
import type { SenderRoute } from '../../shared/senders.js';

const account = { phoneNumberId: 'PN1', wabaId: 'W1', token: 't' };

describe('sender numbers', () => {
  const routes: SenderRoute[] = [
    { name: 'iberia', countries: ['ES', 'MX'] },
    { name: 'enterprise', teams: ['Enterprise'] },
    { name: 'ana', owners: ['ana@acme.example'] },
    { name: 'latam', countries: ['MX', 'AR'] },
  ];

  it("chooses the owner's line, then the team's, then the country's, then the default", () => {
    assert.deepEqual(chooseSender({ owner: 'ANA@acme.example', team: 'enterprise', country: 'ES' }, routes), { sender: 'ana', rule: 'owner' });
    assert.deepEqual(chooseSender({ owner: 'bo@acme.example', team: 'enterprise', country: 'ES' }, routes), { sender: 'enterprise', rule: 'team' });
    assert.deepEqual(chooseSender({ team: 'smb', country: 'ES' }, routes), { sender: 'iberia', rule: 'country' });
    assert.deepEqual(chooseSender({ country: 'MX' }, routes), { sender: 'iberia', rule: 'country' }, 'the first configured of several matches');
    assert.deepEqual(chooseSender({ country: 'US' }, routes), { sender: 'default', rule: 'default' });
    assert.deepEqual(chooseSender({}, undefined), { sender: 'default', rule: 'default' });
  });

  it('passes over a number Meta rated RED for new leads', () => {
    const red: SenderRoute[] = [{ name: 'iberia', countries: ['MX'], quality: 'RED' }, { name: 'latam', countries: ['MX'], quality: 'YELLOW' }];
    assert.deepEqual(chooseSender({ country: 'MX' }, red), { sender: 'latam', rule: 'country' });
    assert.deepEqual(chooseSender({ country: 'MX' }, red.slice(0, 1)), { sender: 'default', rule: 'default' });
  });

  it('knows which names an operator may choose', () => {
    assert.ok(isKnownSender('default', undefined));
    assert.ok(isKnownSender('latam', routes));
    assert.ok(!isKnownSender('nowhere', routes));
    assert.deepEqual(senderNames(routes), ['default', 'iberia', 'enterprise', 'ana', 'latam']);
  });

  it('reads the numbers and their rules from the whatsapp block, default first', () => {
    const whatsapp = whatsappConfigSchema.parse({ ...account, messagesPerSecond: 40, senders: { iberia: { phoneNumberId: 'PN2', messagesPerSecond: 20, qualityRating: 'GREEN', messagingLimitTier: 'TIER_1K', countries: ['ES'] } } });
    assert.deepEqual(senderNumbers(whatsapp), [
      { name: 'default', phoneNumberId: 'PN1', messagesPerSecond: 40, qualityRating: 'UNKNOWN' },
      { name: 'iberia', phoneNumberId: 'PN2', messagesPerSecond: 20, qualityRating: 'GREEN', messagingLimitTier: 'TIER_1K' },
    ]);
    assert.deepEqual(senderRoutes(whatsapp), [{ name: 'iberia', countries: ['ES'], quality: 'GREEN' }]);
  });

  it('refuses a configuration that names a number twice, calls one "default" or lists a bad region', () => {
    const problems = (whatsapp: Record<string, unknown>): string[] => {
      const parsed = whatsappConfigSchema.safeParse(whatsapp);
      return parsed.success ? [] : parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
    };
    assert.deepEqual(problems({ ...account, senders: { iberia: { phoneNumberId: 'PN1' } } }), ['senders.iberia.phoneNumberId: is already configured as phoneNumberId (the default number)']);
    assert.deepEqual(problems({ ...account, senders: { a: { phoneNumberId: 'PN2' }, b: { phoneNumberId: 'PN2' } } }), ['senders.b.phoneNumberId: is already configured as senders.a']);
    assert.match(problems({ ...account, senders: { default: { phoneNumberId: 'PN2' } } }).join(), /"default" names the main number/);
    assert.match(problems({ ...account, senders: { iberia: { phoneNumberId: 'PN2', countries: ['Spain'] } } }).join(), /senders\.iberia\.countries\.0: must be a two-letter ISO 3166 region code/);
    assert.match(problems({ ...account, senders: { iberia: { phoneNumberId: 'PN2', messagesPerSecond: 1 } } }).join(), /senders\.iberia\.messagesPerSecond/);
    // A whole tenant parses with them.
    assert.ok(tenantSchema.safeParse({ displayName: 'A', defaultRegion: 'US', timeZone: 'UTC', secrets: { webhookSigningSecret: 's', operatorToken: 'o' }, whatsapp: { ...account, senders: { iberia: { phoneNumberId: 'PN2' } } } }).success);
  });

  it("works out a lead's country from its number", () => {
    assert.equal(countryOfPhone('+34612345678'), 'ES');
    assert.equal(countryOfPhone('+12125550123'), 'US');
    assert.equal(countryOfPhone('+525512345678'), 'MX');
  });
});
