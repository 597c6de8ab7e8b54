import assert from 'node:assert/strict';
import path from 'node:path';
import { loadConfig } from '../../config/load.js';
import { switchboardSigningSecrets } from '../../security/secrets.js';
import { configError, writeConfig } from '../harness/config-files.js';

describe('configuration', () => {
  it('loads temporal-dev.yaml with the embedded database and the dev server by default', () => {
    const config = loadConfig({});
    assert.equal(config.database.embedded, true);
    assert.match(config.database.url, /^postgres:\/\/switchboard:.+@127\.0\.0\.1:54329\/switchboard$/);
    assert.equal(config.temporal.address, '127.0.0.1:7233');
    assert.equal(config.temporal.namespace, 'switchboard');
    assert.equal(config.temporal.external, false);
    assert.ok(config.tenants.demo, 'the demo tenant exists in development');
    assert.ok(path.isAbsolute(config.devStack.postgres.dataDir));
  });

  it('takes DATABASE_URL, TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE from the environment', () => {
    const config = loadConfig({
      DATABASE_URL: 'postgres://u:p@db.internal:5432/sb',
      TEMPORAL_ADDRESS: 'temporal.internal:7233',
      TEMPORAL_NAMESPACE: 'prod',
    });
    assert.equal(config.database.url, 'postgres://u:p@db.internal:5432/sb');
    assert.equal(config.database.embedded, false);
    assert.equal(config.temporal.address, 'temporal.internal:7233');
    assert.equal(config.temporal.namespace, 'prod');
    assert.equal(config.temporal.external, true);
  });

  it('names a malformed DATABASE_URL in one line without echoing its value', () => {
    const message = configError({ DATABASE_URL: 'mysql://root:hunter2@x/y' });
    assert.match(message, /^invalid configuration: DATABASE_URL: must be a URL/);
    assert.doesNotMatch(message, /hunter2/);
    assert.doesNotMatch(message, /\n/);
  });

  it('rejects a bad port, a bad Temporal address and a missing config file', () => {
    assert.match(configError({ API_PORT: 'eighty' }), /^invalid configuration: API_PORT:/);
    assert.match(configError({ TEMPORAL_ADDRESS: 'no port here' }), /^invalid configuration: TEMPORAL_ADDRESS:/);
    assert.match(configError({ SWITCHBOARD_CONFIG: '/nonexistent/switchboard.yaml' }), /SWITCHBOARD_CONFIG: cannot read/);
  });

  it('names the bad setting inside the config file', async () => {
    const file = await writeConfig((doc) => {
      doc.tenants.demo!.timeZone = 'Mars/Olympus_Mons';
    });
    assert.match(configError({ SWITCHBOARD_CONFIG: file }), /switchboard\.yaml: tenants\.demo\.timeZone: must be an IANA time zone/);
  });

  it('fills ${VAR} and ${VAR:-default} from the environment, and names a missing variable', async () => {
    const file = await writeConfig((doc) => {
      doc.tenants.demo!.secrets.webhookSigningSecret = '${DEMO_SECRET}';
      doc.tenants.demo!.displayName = '${DEMO_NAME:-Fallback Inc}';
    });
    const config = loadConfig({ SWITCHBOARD_CONFIG: file, DEMO_SECRET: 's3cret' });
    assert.equal(config.tenants.demo?.secrets.webhookSigningSecret, 's3cret');
    assert.equal(config.tenants.demo?.displayName, 'Fallback Inc');
    assert.match(configError({ SWITCHBOARD_CONFIG: file }), /tenants\.demo\.secrets\.webhookSigningSecret: environment variable DEMO_SECRET is not set/);
  });

  it('takes a signing secret per provider, two while one rotates, and names a provider left without one', async () => {
    const rotated = await writeConfig((doc) => {
      const secrets = doc.tenants.demo!.secrets;
      delete secrets.webhookSigningSecret;
      secrets.signingSecrets = { pbx: ['pbx-new', 'pbx-old'], 'voice-ai': 'voice-ai-key', crm: 'crm-key' };
    });
    const secrets = loadConfig({ SWITCHBOARD_CONFIG: rotated }).tenants.demo!.secrets;
    assert.deepEqual(switchboardSigningSecrets(secrets, 'pbx'), ['pbx-new', 'pbx-old']);
    assert.deepEqual(switchboardSigningSecrets(secrets, 'voice-ai'), ['voice-ai-key']);

    const missing = await writeConfig((doc) => {
      const demo = doc.tenants.demo!.secrets;
      delete demo.webhookSigningSecret;
      demo.signingSecrets = { pbx: 'pbx-key', 'voice-ai': 'voice-ai-key' };
    });
    assert.match(configError({ SWITCHBOARD_CONFIG: missing }), /tenants\.demo\.secrets\.signingSecrets\.crm: needs a key/);
    const three = await writeConfig((doc) => {
      doc.tenants.demo!.secrets.twilioAuthToken = ['a', 'b', 'c'] as unknown as [string, string];
    });
    assert.match(configError({ SWITCHBOARD_CONFIG: three }), /tenants\.demo\.secrets\.twilioAuthToken: must be a secret, or \[new, old\] while it rotates/);
  });
});
