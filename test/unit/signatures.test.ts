import assert from 'node:assert/strict';
import {
  metaSignature,
  recordingLinkSignature,
  switchboardSignature,
  twilioSignature,
  verifyMetaSignature,
  verifyRecordingLinkSignature,
  verifySwitchboardSignature,
  verifyTwilioSignature,
} from '../../security/signatures.js';

describe('webhook signatures', () => {
  describe('Twilio X-Twilio-Signature', () => {
    // The worked example in Twilio's webhook security documentation (auth token 12345).
    const url = 'https://mycompany.com/myapp.php?foo=1&bar=2';
    const params = { CallSid: 'CA1234567890ABCDE', Caller: '+14158675310', Digits: '1234', From: '+14158675310', To: '+18005551212' };

    it("matches Twilio's documented example", () => {
      assert.equal(twilioSignature('12345', url, params), 'GvWf1cFY/Q7PnoempGyD5oXAezc=');
    });

    it('accepts the right signature on any candidate URL and refuses tampering', () => {
      const form = new URLSearchParams(params);
      const signature = 'GvWf1cFY/Q7PnoempGyD5oXAezc=';
      assert.deepEqual(verifyTwilioSignature({ authToken: '12345', signature, urls: ['https://proxy.internal/x', url], params: form }), { ok: true });
      const tampered = new URLSearchParams({ ...params, Digits: '9999' });
      assert.deepEqual(verifyTwilioSignature({ authToken: '12345', signature, urls: [url], params: tampered }), { ok: false, reason: 'invalid_signature' });
      assert.deepEqual(verifyTwilioSignature({ authToken: 'other', signature, urls: [url], params: form }), { ok: false, reason: 'invalid_signature' });
      assert.deepEqual(verifyTwilioSignature({ authToken: '12345', signature: undefined, urls: [url], params: form }), { ok: false, reason: 'missing_signature' });
    });
  });

  describe('X-Switchboard-Signature', () => {
    const secret = 'demo-secret';
    const body = Buffer.from('{"event":"call.ended"}');
    const now = 1_800_000_000;

    it('is sha256=<hex HMAC(secret, timestamp + "." + body)>', () => {
      assert.match(switchboardSignature(secret, now, body), /^sha256=[0-9a-f]{64}$/);
      assert.deepEqual(verifySwitchboardSignature({ secret, timestamp: String(now), signature: switchboardSignature(secret, now, body), rawBody: body, nowSeconds: now }), { ok: true });
    });

    it('refuses a changed body, a wrong secret, a missing header and a garbled timestamp', () => {
      const signature = switchboardSignature(secret, now, body);
      const check = (overrides: Partial<Parameters<typeof verifySwitchboardSignature>[0]>) =>
        verifySwitchboardSignature({ secret, timestamp: String(now), signature, rawBody: body, nowSeconds: now, ...overrides });
      assert.deepEqual(check({ rawBody: Buffer.from('{"event":"call.ended "}') }), { ok: false, reason: 'invalid_signature' });
      assert.deepEqual(check({ secret: 'nope' }), { ok: false, reason: 'invalid_signature' });
      assert.deepEqual(check({ signature: undefined }), { ok: false, reason: 'missing_signature' });
      assert.deepEqual(check({ timestamp: '12ab' }), { ok: false, reason: 'invalid_timestamp' });
    });

    it('refuses requests older (or further in the future) than 5 minutes', () => {
      const old = now - 301;
      const signature = switchboardSignature(secret, old, body);
      assert.deepEqual(verifySwitchboardSignature({ secret, timestamp: String(old), signature, rawBody: body, nowSeconds: now }), { ok: false, reason: 'stale_timestamp' });
      const edge = now - 300;
      assert.deepEqual(verifySwitchboardSignature({ secret, timestamp: String(edge), signature: switchboardSignature(secret, edge, body), rawBody: body, nowSeconds: now }), { ok: true });
      const future = now + 301;
      assert.deepEqual(verifySwitchboardSignature({ secret, timestamp: String(future), signature: switchboardSignature(secret, future, body), rawBody: body, nowSeconds: now }), { ok: false, reason: 'stale_timestamp' });
    });
  });

  it('X-Hub-Signature-256 is sha256=<hex HMAC(app secret, raw body)>', () => {
    const body = Buffer.from('{"object":"whatsapp_business_account"}');
    const signature = metaSignature('app-secret', body);
    assert.deepEqual(verifyMetaSignature({ appSecret: 'app-secret', signature, rawBody: body }), { ok: true });
    assert.deepEqual(verifyMetaSignature({ appSecret: 'other', signature, rawBody: body }), { ok: false, reason: 'invalid_signature' });
  });

  it('recording links are signed per tenant and call', () => {
    const signature = recordingLinkSignature('secret', 'demo', 'pbx:1');
    assert.equal(verifyRecordingLinkSignature('secret', 'demo', 'pbx:1', signature), true);
    assert.equal(verifyRecordingLinkSignature('secret', 'demo', 'pbx:2', signature), false);
    assert.equal(verifyRecordingLinkSignature('secret', 'other', 'pbx:1', signature), false);
  });
});
