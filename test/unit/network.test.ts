import assert from 'node:assert/strict';
import { tenantRecordingsSchema } from '../../config/schema.js';
import { classifyAddress, hostMatches, normalizeHostName } from '../../security/network.js';
import { recordingTypeToStore, servableAudioType, sniffAudioType } from '../../shared/audio-types.js';
import { deterministicWav } from '../../sandboxes/recordings.js';

const kindOf = (address: string): string => {
  const verdict = classifyAddress(address);
  return verdict.kind === 'public' ? 'public' : `${verdict.kind}: ${verdict.label}`;
};

describe('recording fetch address rules (security/network.ts)', () => {
  it('tells public addresses from every non-public IPv4 range', () => {
    for (const address of ['8.8.8.8', '1.1.1.1', '54.172.60.1', '172.32.0.1', '100.128.0.1', '192.169.0.1', '169.255.0.1']) assert.equal(kindOf(address), 'public', address);
    const expected: Record<string, string> = {
      '127.0.0.1': 'non_public: loopback address',
      '127.255.0.9': 'non_public: loopback address',
      '10.1.2.3': 'non_public: private address',
      '172.16.0.1': 'non_public: private address',
      '172.31.255.255': 'non_public: private address',
      '192.168.1.1': 'non_public: private address',
      '100.64.0.1': 'non_public: shared (carrier-grade NAT) address',
      '169.254.1.1': 'non_public: link-local address',
      '169.254.169.254': 'never: cloud metadata address',
      '100.100.100.200': 'never: cloud metadata address',
      '0.0.0.0': 'never: unspecified ("this network") address',
      '224.0.0.1': 'never: multicast address',
      '255.255.255.255': 'never: broadcast address',
      '240.0.0.1': 'non_public: reserved address',
      '192.0.2.10': 'non_public: documentation address',
      '198.18.0.1': 'non_public: benchmarking address',
    };
    for (const [address, kind] of Object.entries(expected)) assert.equal(kindOf(address), kind, address);
  });

  it('judges IPv6, including IPv4-mapped and NAT64 forms by the IPv4 address inside', () => {
    for (const address of ['2606:4700:4700::1111', '2a00:1450:4001:82b::200e', '64:ff9b::808:808']) assert.equal(kindOf(address), 'public', address);
    const expected: Record<string, string> = {
      '::1': 'non_public: loopback address',
      '[::1]': 'non_public: loopback address',
      '::': 'never: unspecified address',
      '::ffff:127.0.0.1': 'non_public: IPv4-mapped loopback address',
      '::ffff:7f00:1': 'non_public: IPv4-mapped loopback address',
      '::ffff:169.254.169.254': 'never: IPv4-mapped cloud metadata address',
      '::ffff:10.0.0.1': 'non_public: IPv4-mapped private address',
      '64:ff9b::a00:1': 'non_public: NAT64 private address',
      'fd00:ec2::254': 'never: cloud metadata address',
      'fd12:3456::1': 'non_public: unique-local address',
      'fc00::1': 'non_public: unique-local address',
      'fe80::1%eth0': 'non_public: link-local address',
      'fec0::1': 'non_public: site-local address',
      'ff02::1': 'never: multicast address',
      '2001:db8::1': 'non_public: documentation address',
      '2001::1': 'non_public: reserved address',
      '2002:7f00:1::1': 'non_public: reserved address',
      '::127.0.0.1': 'non_public: reserved address',
      '4000::1': 'non_public: reserved address',
    };
    for (const [address, kind] of Object.entries(expected)) assert.equal(kindOf(address), kind, address);
    assert.equal(kindOf('not-an-address'), 'never: malformed address');
  });

  it('normalizes configured host names the way URLs spell them, and matches wildcards below a domain only', () => {
    assert.equal(normalizeHostName('API.Twilio.com.'), 'api.twilio.com');
    assert.equal(normalizeHostName('[::FFFF:127.0.0.1]'), '[::ffff:7f00:1]');
    for (const bad of ['https://api.twilio.com', 'api.twilio.com:443', 'user@host', 'host/path', '']) assert.equal(normalizeHostName(bad), undefined, bad);
    assert.equal(hostMatches('media.twiliocdn.com', '*.twiliocdn.com'), true);
    assert.equal(hostMatches('a.b.twiliocdn.com', '*.twiliocdn.com'), true);
    assert.equal(hostMatches('twiliocdn.com', '*.twiliocdn.com'), false);
    assert.equal(hostMatches('eviltwiliocdn.com', '*.twiliocdn.com'), false);
    assert.equal(hostMatches('api.twilio.com.evil.example', 'api.twilio.com'), false);

    const parsed = tenantRecordingsSchema.parse({ allowedHosts: ['Recordings.PBX.example', '*.TwilioCDN.com'], privateNetworkHosts: ['127.0.0.1'] });
    assert.deepEqual(parsed.allowedHosts, ['recordings.pbx.example', '*.twiliocdn.com']);
    assert.deepEqual({ maxBytes: parsed.maxBytes, maxRedirects: parsed.maxRedirects, allowPlainHttp: parsed.allowPlainHttp, linkTtlHours: parsed.linkTtlHours }, { maxBytes: 200 * 1024 ** 2, maxRedirects: 3, allowPlainHttp: false, linkTtlHours: 168 });
    const refused = tenantRecordingsSchema.safeParse({ allowedHosts: ['https://pbx.example/recordings'] });
    assert.equal(refused.success, false);
    assert.deepEqual(refused.error?.issues.map((issue) => issue.path.join('.')), ['allowedHosts.0']);
  });

  it('keeps audio types only: canonical spellings, sniffed generic binary, refused HTML', () => {
    assert.equal(servableAudioType('audio/x-wav'), 'audio/wav');
    assert.equal(servableAudioType('Audio/MPEG; charset=binary'), 'audio/mpeg');
    assert.equal(servableAudioType('text/html'), undefined);
    assert.equal(servableAudioType('image/svg+xml'), undefined);
    const wav = deterministicWav(0.1, 'sniff');
    assert.equal(sniffAudioType(wav), 'audio/wav');
    assert.equal(sniffAudioType(Buffer.from('ID3\u0004rest')), 'audio/mpeg');
    assert.equal(sniffAudioType(Buffer.from('OggS\u0000')), 'audio/ogg');
    assert.equal(sniffAudioType(Buffer.from('<html>')), undefined);
    assert.equal(recordingTypeToStore('audio/x-wav', Buffer.alloc(0)), 'audio/wav');
    assert.equal(recordingTypeToStore('application/octet-stream', wav), 'audio/wav');
    assert.equal(recordingTypeToStore(undefined, Buffer.from('????')), 'application/octet-stream');
    assert.equal(recordingTypeToStore('text/html', wav), undefined, 'a declared non-audio type is refused even if the bytes look like audio');
    assert.equal(recordingTypeToStore('application/json', Buffer.from('{}')), undefined);
  });
});
