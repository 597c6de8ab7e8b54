// Recording host: serves stored audio with byte-range support, as CRM recording players require.
import { createHash } from 'node:crypto';
import express from 'express';
import type { Request, Response } from 'express';
import { controlRoutes, CONTROL_PREFIX, createApp, listen, OutageSwitch, RequestCounter } from './http.js';
import type { RequestCounts } from './http.js';

export interface RecordingHostOptions {
  port?: number;
  /** Twilio-style HTTP Basic auth (AccountSid:AuthToken) on the served recordings. */
  basicAuth?: { user: string; pass: string };
}

export interface RecordingInfo {
  path: string;
  contentType: string;
  size: number;
}

export interface RecordingHostState {
  recordings: RecordingInfo[];
  requests: RequestCounts;
}

export interface RecordingHost {
  url: string;
  state(): RecordingHostState;
  setOutage(down: boolean): void;
  /** Stores a recording (like PUT /_sandbox/recordings/<path>) and returns its public URL. */
  put(path: string, data: Buffer, contentType?: string): string;
  stop(): Promise<void>;
}

const SAMPLE_RATE = 8000;

/** A valid 8 kHz 16-bit mono PCM WAV: a quiet tone whose pitch (300–900 Hz) is derived from `seed`. */
export function deterministicWav(seconds: number, seed: string): Buffer {
  if (!Number.isFinite(seconds) || seconds < 0) throw new RangeError(`seconds must be a finite number >= 0, got ${seconds}`);
  const samples = Math.round(seconds * SAMPLE_RATE);
  const dataBytes = samples * 2;
  const frequency = 300 + (createHash('sha256').update(seed).digest().readUInt16BE(0) % 601);
  const amplitude = 0.1 * 32767;
  const wav = Buffer.alloc(44 + dataBytes);
  wav.write('RIFF', 0, 'ascii');
  wav.writeUInt32LE(36 + dataBytes, 4);
  wav.write('WAVE', 8, 'ascii');
  wav.write('fmt ', 12, 'ascii');
  wav.writeUInt32LE(16, 16); // fmt chunk size
  wav.writeUInt16LE(1, 20); // PCM
  wav.writeUInt16LE(1, 22); // mono
  wav.writeUInt32LE(SAMPLE_RATE, 24);
  wav.writeUInt32LE(SAMPLE_RATE * 2, 28); // byte rate
  wav.writeUInt16LE(2, 32); // block align
  wav.writeUInt16LE(16, 34); // bits per sample
  wav.write('data', 36, 'ascii');
  wav.writeUInt32LE(dataBytes, 40);
  for (let i = 0; i < samples; i++) {
    wav.writeInt16LE(Math.round(amplitude * Math.sin((2 * Math.PI * frequency * i) / SAMPLE_RATE)), 44 + i * 2);
  }
  return wav;
}

type RangeResult = { kind: 'full' } | { kind: 'partial'; start: number; end: number } | { kind: 'unsatisfiable' };

/** Parses a single `bytes=` range (RFC 9110 §14.1.2); malformed or multi-range headers are ignored. */
export function parseRange(header: string | undefined, size: number): RangeResult {
  const match = header === undefined ? null : /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match) return { kind: 'full' };
  const [, first = '', last = ''] = match;
  if (first === '' && last === '') return { kind: 'full' };
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  const end = last === '' ? size - 1 : Number(last);
  if (last !== '' && end < start) return { kind: 'full' };
  if (start >= size) return { kind: 'unsatisfiable' };
  return { kind: 'partial', start, end: Math.min(end, size - 1) };
}

function contentTypeFor(path: string, declared: string | undefined): string {
  const type = declared?.split(';')[0]?.trim().toLowerCase();
  if (type === 'audio/mpeg' || type === 'audio/mp3') return 'audio/mpeg';
  if (type === 'audio/wav' || type === 'audio/x-wav' || type === 'audio/wave') return 'audio/wav';
  return /\.mp3$/i.test(path) ? 'audio/mpeg' : 'audio/wav';
}

function normalizePath(path: string): string {
  return `/${path.replace(/^\/+/, '')}`;
}

export async function startRecordingHost(options: RecordingHostOptions = {}): Promise<RecordingHost> {
  const recordings = new Map<string, { data: Buffer; contentType: string }>();
  const counter = new RequestCounter((req) => `${req.method} /<recording>`);
  const outage = new OutageSwitch();

  const store = (path: string, data: Buffer, contentType?: string): string => {
    const key = normalizePath(path);
    recordings.set(key, { data: Buffer.from(data), contentType: contentTypeFor(key, contentType) });
    return `${server.url}${key}`;
  };
  const state = (): RecordingHostState => ({
    recordings: [...recordings].map(([path, { data, contentType }]) => ({ path, contentType, size: data.length })),
    requests: counter.snapshot(),
  });

  const app = createApp();
  controlRoutes(app, state, outage);
  const recordingsPrefix = `${CONTROL_PREFIX}recordings/`;
  app.put(`${recordingsPrefix}*path`, express.raw({ type: () => true, limit: '200mb' }), (req: Request, res: Response) => {
    const body: unknown = req.body;
    const data = Buffer.isBuffer(body) ? body : Buffer.alloc(0);
    const url = store(req.path.slice(recordingsPrefix.length - 1), data, req.get('content-type'));
    res.status(201).json({ url, size: data.length });
  });

  app.use(counter.middleware());
  app.use(outage.middleware((res) => void res.status(503).type('text/plain').send('Service Unavailable')));
  app.use((req, res, next) => {
    const expected = options.basicAuth;
    if (!expected) return next();
    const match = /^Basic\s+(.+)$/i.exec(req.get('authorization') ?? '');
    const decoded = match?.[1] ? Buffer.from(match[1], 'base64').toString('utf8') : '';
    if (decoded === `${expected.user}:${expected.pass}`) return next();
    res.status(401).set('WWW-Authenticate', 'Basic realm="Recordings"').type('text/plain').send('Unauthorized');
  });

  // app.get also answers HEAD; Node drops the body for HEAD while keeping the headers.
  app.get('/*path', (req, res) => {
    const recording = recordings.get(req.path);
    if (!recording) return void res.status(404).type('text/plain').send('Not Found');
    const { data, contentType } = recording;
    res.set({ 'Accept-Ranges': 'bytes', 'Content-Type': contentType, 'Cache-Control': 'no-cache' });
    const range = parseRange(req.get('range'), data.length);
    if (range.kind === 'unsatisfiable') {
      res.status(416).set('Content-Range', `bytes */${data.length}`).end();
      return;
    }
    const [status, body] =
      range.kind === 'partial' ? [206, data.subarray(range.start, range.end + 1)] : [200, data];
    if (range.kind === 'partial') res.set('Content-Range', `bytes ${range.start}-${range.end}/${data.length}`);
    res.status(status).set('Content-Length', String(body.length));
    if (req.method === 'HEAD') res.end();
    else res.end(body);
  });
  app.use((_req, res) => {
    res.status(404).type('text/plain').send('Not Found');
  });

  const server = await listen(app, options.port ?? 0);
  return {
    url: server.url,
    state,
    setOutage: (down) => {
      outage.down = down;
    },
    put: store,
    stop: server.stop,
  };
}
