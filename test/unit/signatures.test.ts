import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import {
  metaSignature,
  recordingLink,
  recordingLinkSignature,
  switchboardSignature,
  twilioSignature,
  verifyMetaSignature,
  verifyRecordingLink,
  verifySwitchboardSignature,
  verifyTwilioSignature,
} from '../../security/signatures.js';

describe('webhook signatures', () => {
  describe('Twilio X-Twilio-Signature', () => {
    // The worked example in Twilio's webhook security documentation (auth token 12345).
    const url = 'https://mycompany.com/myapp.php?foo=1&bar=2';
    const params = { CallSid: 'CA1234567890ABCDE', Caller: '+14158675310', Digits: '1234', From: '+14158675310', To: '+18005551212' };
    /** HMAC-SHA1 of an explicitly written signed string, independent of the code under test. */
    const sign = (token: string, data: string): string => createHmac('sha1', token).update(Buffer.from(data, 'utf8')).digest('base64');
    const verify = (signature: string, urls: string[], form: URLSearchParams | Record<string, string> = {}) =>
      verifyTwilioSignature({ authTokens: ['12345'], signature, urls, params: form instanceof URLSearchParams ? form : new URLSearchParams(form) });

    it("matches Twilio's documented example", () => {
      assert.equal(twilioSignature('12345', url, params), 'GvWf1cFY/Q7PnoempGyD5oXAezc=');
    });

    it('accepts the right signature on any candidate URL and refuses tampering', () => {
      const form = new URLSearchParams(params);
      const signature = 'GvWf1cFY/Q7PnoempGyD5oXAezc=';
      assert.deepEqual(verifyTwilioSignature({ authTokens: ['12345'], signature, urls: ['https://proxy.internal/x', url], params: form }), { ok: true });
      const tampered = new URLSearchParams({ ...params, Digits: '9999' });
      assert.deepEqual(verifyTwilioSignature({ authTokens: ['12345'], signature, urls: [url], params: tampered }), { ok: false, reason: 'invalid_signature' });
      assert.deepEqual(verifyTwilioSignature({ authTokens: ['other'], signature, urls: [url], params: form }), { ok: false, reason: 'invalid_signature' });
      // Primary and secondary auth token while the secondary is promoted: either one verifies.
      assert.deepEqual(verifyTwilioSignature({ authTokens: ['other', '12345'], signature, urls: [url], params: form }), { ok: true });
      assert.deepEqual(verifyTwilioSignature({ authTokens: ['12345'], signature: undefined, urls: [url], params: form }), { ok: false, reason: 'missing_signature' });
    });

    // twilio-node validateRequest (src/webhooks/webhooks.ts): "Check signature of the url with and
    // without the port number ... since signature generation on the back end is inconsistent".
    it('accepts a signature over the URL with the default port when ours has none, and the reverse (https :443, http :80)', () => {
      const body = { CallSid: 'CA1', CallStatus: 'ringing' };
      const signed = (signedUrl: string): string => sign('12345', `${signedUrl}CallSidCA1CallStatusringing`);
      assert.deepEqual(verify(signed('https://hooks.example.com:443/webhooks/t1/twilio'), ['https://hooks.example.com/webhooks/t1/twilio'], body), { ok: true });
      assert.deepEqual(verify(signed('https://hooks.example.com/webhooks/t1/twilio'), ['https://hooks.example.com:443/webhooks/t1/twilio'], body), { ok: true });
      assert.deepEqual(verify(signed('http://hooks.example.com:80/webhooks/t1/twilio?x=1'), ['http://hooks.example.com/webhooks/t1/twilio?x=1'], body), { ok: true });
      assert.deepEqual(verify(signed('http://hooks.example.com/webhooks/t1/twilio?x=1'), ['http://hooks.example.com:80/webhooks/t1/twilio?x=1'], body), { ok: true });
    });

    it('tries no port, scheme, host or path twilio-node would not try', () => {
      const ours = ['https://hooks.example.com/webhooks/t1/twilio'];
      const signed = (signedUrl: string): string => sign('12345', signedUrl);
      for (const other of [
        'https://hooks.example.com:8443/webhooks/t1/twilio',
        'https://hooks.example.com:80/webhooks/t1/twilio',
        'http://hooks.example.com/webhooks/t1/twilio',
        'http://hooks.example.com:443/webhooks/t1/twilio',
        'https://other.example.com/webhooks/t1/twilio',
        'https://hooks.example.com/webhooks/t2/twilio',
        'https://hooks.example.com/webhooks/t1/twilio/',
        'https://hooks.example.com/webhooks/t1/twilio?x=1',
      ]) {
        assert.deepEqual(verify(signed(other), ours), { ok: false, reason: 'invalid_signature' }, other);
      }
      // A URL configured with a non-default port: twilio-node tries it as given and with the port removed.
      const custom = ['https://hooks.example.com:8443/webhooks/t1/twilio'];
      assert.deepEqual(verify(signed('https://hooks.example.com:8443/webhooks/t1/twilio'), custom), { ok: true });
      assert.deepEqual(verify(signed('https://hooks.example.com/webhooks/t1/twilio'), custom), { ok: true });
      assert.deepEqual(verify(signed('https://hooks.example.com:443/webhooks/t1/twilio'), custom), { ok: false, reason: 'invalid_signature' });
      assert.deepEqual(verify(signed('https://hooks.example.com:8443/webhooks/t1/twilio'), ['not a url']), { ok: false, reason: 'invalid_signature' });
    });

    it("accepts the query string in new URL()'s encoding and in the legacy querystring encoding, as twilio-node does", () => {
      // new URL() escapes a single quote in the query (%27); the querystring module does not.
      for (const ours of ["https://hooks.example.com/t?name=O'Brien", 'https://hooks.example.com/t?name=O%27Brien']) {
        assert.deepEqual(verify(sign('12345', "https://hooks.example.com/t?name=O'Brien"), [ours]), { ok: true }, ours);
        assert.deepEqual(verify(sign('12345', 'https://hooks.example.com/t?name=O%27Brien'), [ours]), { ok: true }, ours);
        assert.deepEqual(verify(sign('12345', 'https://hooks.example.com:443/t?name=O%27Brien'), [ours]), { ok: true }, ours);
      }
    });

    it("signs a repeated parameter's values sorted and once each (twilio-node toFormUrlEncodedParam), whatever their order in the body", () => {
      const ours = ['https://hooks.example.com/webhooks/t1/twilio'];
      const form = new URLSearchParams([
        ['To', '+18005551212'],
        ['Tag', 'b'],
        ['CallSid', 'CA1'],
        ['Tag', 'a'],
        ['Tag', 'b'],
      ]);
      const sorted = sign('12345', `${ours[0]}CallSidCA1TagaTagbTo+18005551212`);
      assert.equal(twilioSignature('12345', ours[0] ?? '', form), sorted);
      assert.deepEqual(verify(sorted, ours, form), { ok: true });
      // The same values in body order, or with the repeat kept, are not what Twilio signed.
      assert.deepEqual(verify(sign('12345', `${ours[0]}CallSidCA1TagbTagaTo+18005551212`), ours, form), { ok: false, reason: 'invalid_signature' });
      assert.deepEqual(verify(sign('12345', `${ours[0]}CallSidCA1TagaTagbTagbTo+18005551212`), ours, form), { ok: false, reason: 'invalid_signature' });
      // Names sort by code unit, so upper case comes before lower case.
      const cased = new URLSearchParams([['b', '1'], ['B', '2'], ['a', '3']]);
      assert.equal(twilioSignature('12345', ours[0] ?? '', cased), sign('12345', `${ours[0]}B2a3b1`));
      assert.equal(twilioSignature('12345', ours[0] ?? '', { Tag: ['b', 'a'], CallSid: 'CA1' }), sign('12345', `${ours[0]}CallSidCA1TagaTagb`));
    });
  });

  describe('X-Switchboard-Signature', () => {
    const secret = 'demo-secret';
    const body = Buffer.from('{"event":"call.ended"}');
    const now = 1_800_000_000;

    it('is sha256=<hex HMAC(secret, timestamp + "." + body)>', () => {
      assert.match(switchboardSignature(secret, now, body), /^sha256=[0-9a-f]{64}$/);
      assert.deepEqual(verifySwitchboardSignature({ secrets: [secret], timestamp: String(now), signature: switchboardSignature(secret, now, body), rawBody: body, nowSeconds: now }), { ok: true });
    });

    it('refuses a changed body, a wrong secret, a missing header and a garbled timestamp', () => {
      const signature = switchboardSignature(secret, now, body);
      const check = (overrides: Partial<Parameters<typeof verifySwitchboardSignature>[0]>) =>
        verifySwitchboardSignature({ secrets: [secret], timestamp: String(now), signature, rawBody: body, nowSeconds: now, ...overrides });
      assert.deepEqual(check({ rawBody: Buffer.from('{"event":"call.ended "}') }), { ok: false, reason: 'invalid_signature' });
      assert.deepEqual(check({ secrets: ['nope'] }), { ok: false, reason: 'invalid_signature' });
      assert.deepEqual(check({ secrets: [] }), { ok: false, reason: 'invalid_signature' });
      assert.deepEqual(check({ signature: undefined }), { ok: false, reason: 'missing_signature' });
      assert.deepEqual(check({ timestamp: '12ab' }), { ok: false, reason: 'invalid_timestamp' });
    });

    it('accepts either key of a rotation, and only those', () => {
      const rotating = ['new-secret', secret];
      for (const signer of rotating) {
        const signature = switchboardSignature(signer, now, body);
        assert.deepEqual(verifySwitchboardSignature({ secrets: rotating, timestamp: String(now), signature, rawBody: body, nowSeconds: now }), { ok: true });
      }
      const retired = switchboardSignature('retired-secret', now, body);
      assert.deepEqual(verifySwitchboardSignature({ secrets: rotating, timestamp: String(now), signature: retired, rawBody: body, nowSeconds: now }), { ok: false, reason: 'invalid_signature' });
    });

    it('refuses requests older (or further in the future) than 5 minutes', () => {
      const old = now - 301;
      const signature = switchboardSignature(secret, old, body);
      assert.deepEqual(verifySwitchboardSignature({ secrets: [secret], timestamp: String(old), signature, rawBody: body, nowSeconds: now }), { ok: false, reason: 'stale_timestamp' });
      const edge = now - 300;
      assert.deepEqual(verifySwitchboardSignature({ secrets: [secret], timestamp: String(edge), signature: switchboardSignature(secret, edge, body), rawBody: body, nowSeconds: now }), { ok: true });
      const future = now + 301;
      assert.deepEqual(verifySwitchboardSignature({ secrets: [secret], timestamp: String(future), signature: switchboardSignature(secret, future, body), rawBody: body, nowSeconds: now }), { ok: false, reason: 'stale_timestamp' });
    });
  });

  it('X-Hub-Signature-256 is sha256=<hex HMAC(app secret, raw body)>', () => {
    const body = Buffer.from('{"object":"whatsapp_business_account"}');
    const signature = metaSignature('app-secret', body);
    assert.deepEqual(verifyMetaSignature({ appSecrets: ['app-secret'], signature, rawBody: body }), { ok: true });
    assert.deepEqual(verifyMetaSignature({ appSecrets: ['other'], signature, rawBody: body }), { ok: false, reason: 'invalid_signature' });
    // While the app secret is reset, the old one keeps verifying beside the new one.
    assert.deepEqual(verifyMetaSignature({ appSecrets: ['new-app-secret', 'app-secret'], signature, rawBody: body }), { ok: true });
  });

  it('recording links are signed per tenant, call and expiry, and expire', () => {
    const now = 1_760_000_000;
    const expires = now + 60;
    const signature = recordingLinkSignature('link-secret', 'demo', 'pbx:1', expires);
    const check = (overrides: Partial<Parameters<typeof verifyRecordingLink>[0]>) =>
      verifyRecordingLink({ secrets: ['link-secret'], tenantId: 'demo', callId: 'pbx:1', expires: String(expires), signature, nowSeconds: now, ...overrides });
    assert.deepEqual(check({}), { ok: true });
    assert.deepEqual(check({ callId: 'pbx:2' }), { ok: false, reason: 'invalid_link' });
    assert.deepEqual(check({ tenantId: 'other' }), { ok: false, reason: 'invalid_link' });
    assert.deepEqual(check({ expires: String(expires + 3_600) }), { ok: false, reason: 'invalid_link' }, 'the expiry is signed');
    assert.deepEqual(check({ secrets: ['webhook-secret'] }), { ok: false, reason: 'invalid_link' });
    assert.deepEqual(check({ secrets: ['new-link-secret', 'link-secret'] }), { ok: true }, 'the old key verifies while it rotates');
    assert.deepEqual(check({ expires: undefined }), { ok: false, reason: 'invalid_link' });
    assert.deepEqual(check({ nowSeconds: expires + 1 }), { ok: false, reason: 'expired_link' });
    const link = new URL(recordingLink('https://switchboard.example/', 'link-secret', 'demo', 'pbx:1', expires));
    assert.equal(link.pathname, '/api/demo/calls/pbx%3A1/recording');
    assert.equal(link.searchParams.get('expires'), String(expires));
    assert.equal(link.searchParams.get('sig'), signature);
  });
});
