/** Kommo settings: a long-lived token or OAuth (developers.kommo.com/docs/long-lived-token, reference/get-token), checked at start-up. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { loadConfig } from '../../config/load.js';
import { decodeTokenKey } from '../../config/schema.js';
import { configError, writeConfig } from '../harness/config-files.js';

/** temporal-dev.yaml with the demo tenant's CRM replaced. */
const withCrm = (crm: Record<string, unknown>): Promise<string> =>
  writeConfig((doc) => {
    (doc.tenants as Record<string, { crm?: unknown }>).demo = { ...doc.tenants.demo, crm };
  });

const oauth = { clientId: 'c', clientSecret: 's', redirectUri: 'https://switchboard.example/kommo/callback' };
const base = { kind: 'kommo', baseUrl: 'https://acme.kommo.com' };

describe('Kommo configuration', () => {
  it('accepts OAuth with a token key from SWITCHBOARD_TOKEN_KEY, or a long-lived token', async () => {
    const key = randomBytes(32).toString('base64');
    const config = loadConfig({ SWITCHBOARD_CONFIG: await withCrm({ ...base, oauth: { ...oauth, tokenKey: '${SWITCHBOARD_TOKEN_KEY}' } }), SWITCHBOARD_TOKEN_KEY: key });
    const crm = config.tenants.demo?.crm;
    assert.ok(crm?.kind === 'kommo' && crm.oauth);
    assert.deepEqual(decodeTokenKey(crm.oauth.tokenKey), Buffer.from(key, 'base64'));
    assert.equal(crm.oauth.refreshAheadSeconds, 300);
    assert.equal(decodeTokenKey(randomBytes(32).toString('hex'))?.length, 32);
    const longLived = loadConfig({ SWITCHBOARD_CONFIG: await withCrm({ ...base, token: 'long-lived' }) });
    assert.equal(longLived.tenants.demo?.crm?.kind === 'kommo' && longLived.tenants.demo.crm.token, 'long-lived');
  });

  it('stops at start-up naming SWITCHBOARD_TOKEN_KEY when OAuth is configured and the key is not set', async () => {
    const message = configError({ SWITCHBOARD_CONFIG: await withCrm({ ...base, oauth: { ...oauth, tokenKey: '${SWITCHBOARD_TOKEN_KEY}' } }) });
    assert.match(message, /tenants\.demo\.crm\.oauth\.tokenKey: environment variable SWITCHBOARD_TOKEN_KEY is not set/);
    const missing = configError({ SWITCHBOARD_CONFIG: await withCrm({ ...base, oauth }) });
    assert.match(missing, /tenants\.demo\.crm\.oauth\.tokenKey: must be set/);
  });

  it('refuses a key that is not 32 bytes without echoing it', async () => {
    const message = configError({ SWITCHBOARD_CONFIG: await withCrm({ ...base, oauth: { ...oauth, tokenKey: 'hunter2-is-not-a-key' } }) });
    assert.match(message, /tenants\.demo\.crm\.oauth\.tokenKey: must be 32 bytes/);
    assert.doesNotMatch(message, /hunter2/);
  });

  it('wants exactly one of token and oauth', async () => {
    const key = randomBytes(32).toString('base64');
    assert.match(configError({ SWITCHBOARD_CONFIG: await withCrm(base) }), /tenants\.demo\.crm\.token: set either token/);
    assert.match(configError({ SWITCHBOARD_CONFIG: await withCrm({ ...base, token: 't', oauth: { ...oauth, tokenKey: key } }) }), /tenants\.demo\.crm\.token: set either token/);
  });
});
