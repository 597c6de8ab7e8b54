/**
 * Downloads a recording from a URL a webhook named, without letting that URL reach what it should
 * not (server-side request forgery): only the tenant's allowed hosts; every address a name resolves
 * to is checked and the connection is pinned to those checked addresses (no DNS-rebinding window);
 * redirects are followed by hand, each hop checked again; credentials go only to their own host;
 * the body is cut off at a size cap whether or not Content-Length was sent. The download stops
 * (the connection is closed) at its timeout or when the enclosing work is cancelled (`withCancellation`).
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import http from 'node:http';
import type { IncomingMessage } from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import type { LookupFunction } from 'node:net';
import { classifyAddress, hostMatches } from '../security/network.js';
import { currentCancellation, requestSignal } from './http.js';

export interface RecordingDownloadPolicy {
  /** Host names (or `*.example.com`) a recording, and every redirect on its way, may come from. */
  allowedHosts: readonly string[];
  /** Of those, the ones that may be (or resolve to) a non-public address: an on-premises PBX, a local sandbox. */
  privateNetworkHosts: readonly string[];
  /** Whether plain http:// is accepted (local sandboxes); otherwise only https://. */
  allowPlainHttp: boolean;
  maxBytes: number;
  maxRedirects: number;
  timeoutMs: number;
  /** HTTP credentials and the one host they are sent to (never to a redirect target elsewhere). */
  credentials?: { host: string; authorization: string };
}

export type RefusalReason =
  | 'invalid_url'
  | 'scheme_not_allowed'
  | 'credentials_in_url'
  | 'host_not_allowed'
  | 'address_not_allowed'
  | 'too_many_redirects'
  | 'too_large';

/** The URL (or a redirect) is one we will not fetch: permanent, since asking again changes nothing. */
export class RecordingDownloadRefused extends Error {
  override readonly name = 'RecordingDownloadRefused';
  constructor(
    readonly reason: RefusalReason,
    message: string,
  ) {
    super(message);
  }
}

/** The host failed or refused the request: `retryable` says whether asking again may help. */
export class RecordingDownloadFailed extends Error {
  override readonly name = 'RecordingDownloadFailed';
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly status?: number,
  ) {
    super(message);
  }
}

export interface DownloadedRecording {
  bytes: Buffer;
  /** The media type the host declared (lower case, without parameters), if any. */
  declaredType: string | undefined;
}

interface CheckedAddress {
  address: string;
  family: 4 | 6;
}

const redirectStatuses = new Set([301, 302, 303, 307, 308]);

const bareHost = (url: URL): string => url.hostname.replace(/^\[|\]$/g, '').replace(/\.$/, '').toLowerCase();

function checkUrl(url: URL, policy: RecordingDownloadPolicy): void {
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && policy.allowPlainHttp)) {
    throw new RecordingDownloadRefused('scheme_not_allowed', `${url.protocol.replace(/:$/, '')}:// is not allowed (only https://${policy.allowPlainHttp ? ' and http://' : ''})`);
  }
  if (url.username !== '' || url.password !== '') throw new RecordingDownloadRefused('credentials_in_url', 'the URL carries credentials');
  const host = bareHost(url);
  const allowed = policy.allowedHosts.some((pattern) => hostMatches(host, pattern.replace(/^\[|\]$/g, '')));
  if (!allowed) throw new RecordingDownloadRefused('host_not_allowed', `host ${host} is not in the tenant's recordings.allowedHosts`);
}

/** Every address the host stands for, each checked; refused when any of them may not be reached. */
async function checkedAddresses(url: URL, policy: RecordingDownloadPolicy): Promise<CheckedAddress[]> {
  const host = bareHost(url);
  let addresses: CheckedAddress[];
  const literal = isIP(host);
  if (literal !== 0) {
    addresses = [{ address: host, family: literal === 4 ? 4 : 6 }];
  } else {
    try {
      const found = await dnsLookup(host, { all: true, verbatim: true });
      addresses = found.map((entry) => ({ address: entry.address, family: entry.family === 6 ? 6 : 4 }));
    } catch {
      throw new RecordingDownloadFailed(`host ${host} could not be resolved`, true);
    }
    if (addresses.length === 0) throw new RecordingDownloadFailed(`host ${host} could not be resolved`, true);
  }
  const mayBePrivate = policy.privateNetworkHosts.some((pattern) => hostMatches(host, pattern.replace(/^\[|\]$/g, '')));
  for (const { address } of addresses) {
    const verdict = classifyAddress(address);
    if (verdict.kind === 'never' || (verdict.kind === 'non_public' && !mayBePrivate)) {
      const hint = verdict.kind === 'never' ? '' : " (allow it with recordings.privateNetworkHosts only if this host really is on your network)";
      throw new RecordingDownloadRefused('address_not_allowed', `host ${host} ${literal ? 'is a' : 'resolves to a'} ${verdict.label}, which recordings are not fetched from${hint}`);
    }
  }
  return addresses;
}

/** Connects only to the addresses that were checked, whatever DNS would answer now. */
function pinnedLookup(addresses: CheckedAddress[]): LookupFunction {
  return (_hostname, options, callback) => {
    const [first] = addresses;
    if (!first) return callback(new Error('no checked address'), '', 4);
    if (options.all) callback(null, addresses.map(({ address, family }) => ({ address, family })));
    else callback(null, first.address, first.family);
  };
}

function requestOnce(url: URL, addresses: CheckedAddress[], headers: Record<string, string>, signal: AbortSignal): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    // A connection of its own (no pooled socket), so it always goes through the pinned lookup.
    const options = { method: 'GET', headers, lookup: pinnedLookup(addresses), agent: false, signal };
    const request = url.protocol === 'https:' ? https.request(url, options) : http.request(url, options);
    request.once('response', resolve);
    request.once('error', reject);
    request.end();
  });
}

async function readCapped(response: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const declared = Number(response.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes) {
    response.destroy();
    throw new RecordingDownloadRefused('too_large', `the recording is ${declared} bytes, more than recordings.maxBytes (${maxBytes})`);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of response as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > maxBytes) {
      response.destroy();
      throw new RecordingDownloadRefused('too_large', `the recording is more than recordings.maxBytes (${maxBytes}) bytes; the download was cut off`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}

function failureFor(status: number, host: string): RecordingDownloadFailed {
  // A recording is often published a little after the call ends: 404 is worth retrying for a while.
  const retryable = status === 404 || status === 408 || status === 429 || status >= 500;
  return new RecordingDownloadFailed(`recording host ${host} answered ${status}`, retryable, status);
}

const connectionProblem = (error: unknown): string => {
  if (currentCancellation()?.aborted) return 'cancelled';
  return error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError') ? 'no answer in time' : 'connection failed';
};

export async function downloadRecording(rawUrl: string, policy: RecordingDownloadPolicy): Promise<DownloadedRecording> {
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch {
    throw new RecordingDownloadRefused('invalid_url', 'the recording URL is not a URL');
  }
  const signal = requestSignal(policy.timeoutMs);
  for (let hop = 0; ; hop++) {
    let addresses: CheckedAddress[];
    try {
      checkUrl(url, policy);
      addresses = await checkedAddresses(url, policy);
    } catch (error) {
      if (hop > 0 && error instanceof RecordingDownloadRefused) throw new RecordingDownloadRefused(error.reason, `redirect ${hop}: ${error.message}`);
      throw error;
    }
    const host = bareHost(url);
    const headers: Record<string, string> = { accept: 'audio/*, application/octet-stream;q=0.5', 'accept-encoding': 'identity', 'user-agent': 'Switchboard-recording-fetch' };
    if (policy.credentials && policy.credentials.host.replace(/^\[|\]$/g, '') === host) headers.authorization = policy.credentials.authorization;
    let response: IncomingMessage;
    try {
      response = await requestOnce(url, addresses, headers, signal);
    } catch (error) {
      throw new RecordingDownloadFailed(`recording host ${host}: ${connectionProblem(error)}`, true);
    }
    const status = response.statusCode ?? 0;
    if (redirectStatuses.has(status)) {
      const location = response.headers.location;
      response.destroy();
      if (!location) throw new RecordingDownloadFailed(`recording host ${host} answered ${status} without a Location`, false, status);
      if (hop >= policy.maxRedirects) throw new RecordingDownloadRefused('too_many_redirects', `more than recordings.maxRedirects (${policy.maxRedirects}) redirects`);
      try {
        url = new URL(location, url);
      } catch {
        throw new RecordingDownloadFailed(`recording host ${host} redirected to something that is not a URL`, false, status);
      }
      continue;
    }
    if (status < 200 || status >= 300) {
      response.destroy();
      throw failureFor(status, host);
    }
    try {
      const bytes = await readCapped(response, policy.maxBytes);
      const declaredType = response.headers['content-type']?.split(';')[0]?.trim().toLowerCase() || undefined;
      return { bytes, declaredType };
    } catch (error) {
      if (error instanceof RecordingDownloadRefused) throw error;
      throw new RecordingDownloadFailed(`recording host ${host}: the download broke off (${connectionProblem(error)})`, true);
    }
  }
}
