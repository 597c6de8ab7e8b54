import assert from 'node:assert/strict';
import { describe, it } from 'mocha';
import { normalizePhone } from '../../shared/phone.js';

describe('normalizePhone', () => {
  it('reads a national number in the region it is given, also when the same text was read before in another', () => {
    assert.deepEqual(normalizePhone('030 12345678', 'DE'), { ok: true, e164: '+493012345678' });
    assert.deepEqual(normalizePhone('030 12345678', 'US'), { ok: false });
    assert.deepEqual(normalizePhone('030 1234567', 'FR'), { ok: true, e164: '+33301234567' });
    assert.deepEqual(normalizePhone('030 1234567', 'AU'), { ok: true, e164: '+61301234567' });
    assert.deepEqual(normalizePhone('030 12345678', 'DE'), { ok: true, e164: '+493012345678' });
  });

  it('treats a withheld caller id as no number, and international prefixes alike', () => {
    assert.deepEqual(normalizePhone(' Anonymous ', 'DE'), { ok: true, e164: undefined });
    assert.deepEqual(normalizePhone('0044 20 7946 0958', 'DE'), { ok: true, e164: '+442079460958' });
    assert.deepEqual(normalizePhone('+44 20 7946 0958', 'DE'), normalizePhone('0044 20 7946 0958', 'US'));
  });

  it('keeps giving the same answers past the bound of remembered numbers', () => {
    for (let n = 0; n < 10_050; n++) normalizePhone(`+1 415 555 ${String(n % 10_000).padStart(4, '0')}${n >= 10_000 ? ' ' : ''}`, 'US');
    assert.deepEqual(normalizePhone('+1 415 555 0042', 'US'), { ok: true, e164: '+14155550042' });
    assert.deepEqual(normalizePhone('12', 'US'), { ok: false });
  });
});
