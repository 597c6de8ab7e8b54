import assert from 'node:assert/strict';
import { deterministicWav, startRecordingHost } from '../../sandboxes/recordings.js';
import type { RecordingHost } from '../../sandboxes/recordings.js';

interface Reply {
  status: number;
  headers: Headers;
  body: Buffer;
}

async function get(url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Reply> {
  const response = await fetch(url, { method, headers });
  return { status: response.status, headers: response.headers, body: Buffer.from(await response.arrayBuffer()) };
}

/** Sign changes of the PCM samples: twice the tone's frequency per second. */
function zeroCrossings(wav: Buffer): number {
  let crossings = 0;
  let previous = 0;
  for (let offset = 44; offset + 1 < wav.length; offset += 2) {
    const sample = wav.readInt16LE(offset);
    if (sample !== 0 && previous !== 0 && Math.sign(sample) !== Math.sign(previous)) crossings++;
    if (sample !== 0) previous = sample;
  }
  return crossings;
}

describe('recording host sandbox (real HTTP, byte ranges)', () => {
  describe('deterministicWav', () => {
    it('produces a valid 8 kHz 16-bit mono PCM WAV of the requested length', () => {
      const wav = deterministicWav(2, 'call-1');
      assert.equal(wav.toString('ascii', 0, 4), 'RIFF');
      assert.equal(wav.readUInt32LE(4), wav.length - 8);
      assert.equal(wav.toString('ascii', 8, 12), 'WAVE');
      assert.equal(wav.toString('ascii', 12, 16), 'fmt ');
      assert.equal(wav.readUInt32LE(16), 16);
      assert.equal(wav.readUInt16LE(20), 1, 'PCM');
      assert.equal(wav.readUInt16LE(22), 1, 'mono');
      assert.equal(wav.readUInt32LE(24), 8000);
      assert.equal(wav.readUInt32LE(28), 16000);
      assert.equal(wav.readUInt16LE(32), 2);
      assert.equal(wav.readUInt16LE(34), 16);
      assert.equal(wav.toString('ascii', 36, 40), 'data');
      assert.equal(wav.readUInt32LE(40), 2 * 8000 * 2);
      assert.equal(wav.length, 44 + 32000);
      assert.equal(deterministicWav(0, 'empty').length, 44);
      assert.throws(() => deterministicWav(-1, 'x'), RangeError);
    });

    it('is a quiet tone that is identical for a seed and changes pitch with it', () => {
      const a = deterministicWav(1, 'seed-a');
      assert.ok(a.equals(deterministicWav(1, 'seed-a')));
      let peak = 0;
      for (let offset = 44; offset < a.length; offset += 2) peak = Math.max(peak, Math.abs(a.readInt16LE(offset)));
      assert.ok(peak > 1000 && peak < 8000, `peak ${peak}`);

      const pitches = new Set(['seed-a', 'seed-b', 'seed-c', 'seed-d'].map((seed) => Math.round(zeroCrossings(deterministicWav(1, seed)) / 2 / 10)));
      assert.ok(pitches.size > 1, 'every seed gave the same frequency');
      const hz = zeroCrossings(a) / 2;
      assert.ok(hz >= 295 && hz <= 905, `frequency ${hz}`);
    });
  });

  describe('serving', () => {
    let host: RecordingHost;
    const wav = deterministicWav(1, 'served');
    let wavUrl: string;
    before(async () => {
      host = await startRecordingHost({ port: 0 });
      const put = await fetch(`${host.url}/_sandbox/recordings/pbx/2024/call-1.wav`, { method: 'PUT', headers: { 'content-type': 'audio/wav' }, body: wav });
      assert.equal(put.status, 201);
      wavUrl = ((await put.json()) as { url: string }).url;
    });
    after(async () => {
      await host.stop();
    });

    it('serves the whole file with Content-Type and Accept-Ranges: bytes', async () => {
      assert.equal(wavUrl, `${host.url}/pbx/2024/call-1.wav`);
      const reply = await get(wavUrl);
      assert.equal(reply.status, 200);
      assert.equal(reply.headers.get('content-type'), 'audio/wav');
      assert.equal(reply.headers.get('accept-ranges'), 'bytes');
      assert.equal(reply.headers.get('content-length'), String(wav.length));
      assert.ok(reply.body.equals(wav));
    });

    it('answers HEAD with the headers and no body', async () => {
      const reply = await get(wavUrl, {}, 'HEAD');
      assert.equal(reply.status, 200);
      assert.equal(reply.headers.get('accept-ranges'), 'bytes');
      assert.equal(reply.headers.get('content-length'), String(wav.length));
      assert.equal(reply.body.length, 0);
    });

    const ranges: Array<[string, number, number]> = [
      ['bytes=0-99', 0, 99],
      ['bytes=100-', 100, wav.length - 1],
      ['bytes=-50', wav.length - 50, wav.length - 1],
      [`bytes=10-${wav.length + 500}`, 10, wav.length - 1],
    ];
    for (const [range, start, end] of ranges) {
      it(`answers ${range} with 206 and Content-Range`, async () => {
        const reply = await get(wavUrl, { range });
        assert.equal(reply.status, 206);
        assert.equal(reply.headers.get('content-range'), `bytes ${start}-${end}/${wav.length}`);
        assert.equal(reply.headers.get('content-length'), String(end - start + 1));
        assert.equal(reply.headers.get('accept-ranges'), 'bytes');
        assert.ok(reply.body.equals(wav.subarray(start, end + 1)));
      });
    }

    it('answers 416 with Content-Range: bytes */size for an unsatisfiable range', async () => {
      for (const range of [`bytes=${wav.length}-`, `bytes=${wav.length + 10}-${wav.length + 20}`, 'bytes=-0']) {
        const reply = await get(wavUrl, { range });
        assert.equal(reply.status, 416, range);
        assert.equal(reply.headers.get('content-range'), `bytes */${wav.length}`);
      }
    });

    it('ignores malformed and multi-range headers and serves the whole file', async () => {
      for (const range of ['bytes=abc', 'bytes=0-1,5-6', 'items=0-5', 'bytes=50-10']) {
        const reply = await get(wavUrl, { range });
        assert.equal(reply.status, 200, range);
        assert.equal(reply.body.length, wav.length);
      }
    });

    it('serves mp3 as audio/mpeg, 404s unknown paths and answers 503 during an outage', async () => {
      const url = host.put('/twilio/RE123.mp3', Buffer.from('ID3fake-mp3'));
      const mp3 = await get(url);
      assert.equal(mp3.status, 200);
      assert.equal(mp3.headers.get('content-type'), 'audio/mpeg');
      assert.equal(mp3.body.toString(), 'ID3fake-mp3');

      assert.equal((await get(`${host.url}/pbx/2024/missing.wav`)).status, 404);
      assert.equal((await get(`${host.url}/pbx/2024/missing.wav`, {}, 'HEAD')).status, 404);

      host.setOutage(true);
      assert.equal((await get(wavUrl)).status, 503);
      host.setOutage(false);
      assert.equal((await get(wavUrl, { range: 'bytes=0-0' })).status, 206);

      const state = host.state();
      assert.deepEqual(state.recordings, [
        { path: '/pbx/2024/call-1.wav', contentType: 'audio/wav', size: wav.length },
        { path: '/twilio/RE123.mp3', contentType: 'audio/mpeg', size: 11 },
      ]);
      assert.ok(state.requests.total >= 10);
    });
  });

  it('requires HTTP Basic auth when configured (Twilio AccountSid:AuthToken)', async () => {
    const host = await startRecordingHost({ port: 0, basicAuth: { user: 'AC123', pass: 'token' } });
    try {
      const url = host.put('Recordings/RE1.wav', deterministicWav(0.1, 'auth'));
      const anonymous = await get(url);
      assert.equal(anonymous.status, 401);
      assert.match(anonymous.headers.get('www-authenticate') ?? '', /^Basic /);
      const wrong = await get(url, { authorization: `Basic ${Buffer.from('AC123:nope').toString('base64')}` });
      assert.equal(wrong.status, 401);
      const right = await get(url, { authorization: `Basic ${Buffer.from('AC123:token').toString('base64')}`, range: 'bytes=0-3' });
      assert.equal(right.status, 206);
      assert.equal(right.body.toString('ascii'), 'RIFF');
    } finally {
      await host.stop();
    }
  });
});
