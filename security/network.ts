/**
 * Which network addresses an outbound fetch may reach, and which host names a tenant allows. Used
 * by the recording download (adapters/recording-download.ts) against server-side request forgery.
 */
import { isIP } from 'node:net';

/**
 * `public`: a global unicast address. `never`: unspecified, multicast, broadcast and cloud metadata
 * addresses, which no configuration makes reachable. Anything else is a non-public kind that only a
 * host named in the tenant's `recordings.privateNetworkHosts` may resolve to.
 */
export type AddressClass = { kind: 'public' } | { kind: 'never' | 'non_public'; label: string };

const publicAddress: AddressClass = { kind: 'public' };
const nonPublic = (label: string): AddressClass => ({ kind: 'non_public', label });
const never = (label: string): AddressClass => ({ kind: 'never', label });

function ipv4Bytes(address: string): number[] | undefined {
  const parts = address.split('.');
  if (parts.length !== 4 || !parts.every((part) => /^\d{1,3}$/.test(part) && Number(part) <= 255)) return undefined;
  return parts.map(Number);
}

/** The 16 bytes of an IPv6 address (zone id dropped, a dotted IPv4 tail allowed). */
function ipv6Bytes(address: string): number[] | undefined {
  let text = address.replace(/%.*$/, '');
  const tail = /(\d{1,3}(?:\.\d{1,3}){3})$/.exec(text);
  if (tail?.[1]) {
    const v4 = ipv4Bytes(tail[1]);
    if (!v4) return undefined;
    text = `${text.slice(0, -tail[1].length)}${((v4[0] ?? 0) * 256 + (v4[1] ?? 0)).toString(16)}:${((v4[2] ?? 0) * 256 + (v4[3] ?? 0)).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const head = halves[0] ? halves[0].split(':') : [];
  const rest = halves.length === 2 && halves[1] ? halves[1].split(':') : [];
  const missing = 8 - head.length - rest.length;
  if ((halves.length === 1 && missing !== 0) || missing < 0) return undefined;
  const groups = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...rest];
  if (groups.length !== 8 || !groups.every((group) => /^[0-9a-fA-F]{1,4}$/.test(group))) return undefined;
  return groups.flatMap((group) => {
    const value = parseInt(group, 16);
    return [value >> 8, value & 0xff];
  });
}

/** Whether the first `bits` bits of `bytes` equal those of `prefix`. */
function inPrefix(bytes: readonly number[], prefix: readonly number[], bits: number): boolean {
  for (let bit = 0; bit < bits; bit += 8) {
    const mask = bits - bit >= 8 ? 0xff : (0xff << (8 - (bits - bit))) & 0xff;
    if (((bytes[bit / 8] ?? 0) & mask) !== ((prefix[bit / 8] ?? 0) & mask)) return false;
  }
  return true;
}

function classifyIpv4(bytes: readonly number[]): AddressClass {
  const [a = 0, b = 0, c = 0, d = 0] = bytes;
  const within = (prefix: number[], bits: number): boolean => inPrefix(bytes, prefix, bits);
  if (a === 0) return never('unspecified ("this network") address');
  if (a === 255 && b === 255 && c === 255 && d === 255) return never('broadcast address');
  if (a >= 224 && a <= 239) return never('multicast address');
  if (a === 169 && b === 254 && c === 169 && d === 254) return never('cloud metadata address');
  if (a === 100 && b === 100 && c === 100 && d === 200) return never('cloud metadata address');
  if (a === 127) return nonPublic('loopback address');
  if (a === 10 || within([172, 16], 12) || within([192, 168], 16)) return nonPublic('private address');
  if (within([100, 64], 10)) return nonPublic('shared (carrier-grade NAT) address');
  if (within([169, 254], 16)) return nonPublic('link-local address');
  if (within([192, 0, 0], 24) || within([192, 88, 99], 24) || a >= 240) return nonPublic('reserved address');
  if (within([192, 0, 2], 24) || within([198, 51, 100], 24) || within([203, 0, 113], 24)) return nonPublic('documentation address');
  if (within([198, 18], 15)) return nonPublic('benchmarking address');
  return publicAddress;
}

function classifyIpv6(bytes: readonly number[]): AddressClass {
  const within = (prefix: number[], bits: number): boolean => inPrefix(bytes, prefix, bits);
  const embeddedIpv4 = (): AddressClass => classifyIpv4(bytes.slice(12));
  if (bytes.every((byte) => byte === 0)) return never('unspecified address');
  if (bytes.slice(0, 15).every((byte) => byte === 0) && bytes[15] === 1) return nonPublic('loopback address');
  if (within([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff], 96)) {
    const inner = embeddedIpv4();
    return inner.kind === 'public' ? inner : { ...inner, label: `IPv4-mapped ${inner.label}` };
  }
  // NAT64 (well-known prefix): reaches the embedded IPv4 address, so it is judged by that one.
  if (within([0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0], 96)) {
    const inner = embeddedIpv4();
    return inner.kind === 'public' ? inner : { ...inner, label: `NAT64 ${inner.label}` };
  }
  if (within([0xff], 8)) return never('multicast address');
  if (within([0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54], 128)) return never('cloud metadata address');
  if (within([0xfc], 7)) return nonPublic('unique-local address');
  if (within([0xfe, 0x80], 10)) return nonPublic('link-local address');
  if (within([0xfe, 0xc0], 10)) return nonPublic('site-local address');
  if (within([0x20, 0x01, 0x0d, 0xb8], 32)) return nonPublic('documentation address');
  // IETF protocol assignments (Teredo, benchmarking, ORCHID…), 6to4 (embeds any IPv4 address), NAT64 local use,
  // IPv4-compatible and everything outside global unicast 2000::/3.
  if (within([0x20, 0x01, 0x00], 23) || within([0x20, 0x02], 16) || within([0, 0x64, 0xff, 0x9b, 0, 1], 48) || !within([0x20], 3)) {
    return nonPublic('reserved address');
  }
  return publicAddress;
}

/** Classifies an IP address (IPv4, IPv6, IPv4-mapped IPv6); anything that is not an IP address is `never`. */
export function classifyAddress(address: string): AddressClass {
  const bare = address.replace(/^\[|\]$/g, '');
  const family = isIP(bare.replace(/%.*$/, ''));
  const bytes = family === 4 ? ipv4Bytes(bare) : family === 6 ? ipv6Bytes(bare) : undefined;
  if (!bytes) return never('malformed address');
  return family === 4 ? classifyIpv4(bytes) : classifyIpv6(bytes);
}

/**
 * A host name as URLs spell it (lower case, punycode, IPv6 in brackets, no trailing dot), so a
 * configured name and a URL's name compare equal. Undefined when `text` is not a bare host name.
 */
export function normalizeHostName(text: string): string | undefined {
  const trimmed = text.trim();
  if (trimmed === '' || /[/?#@\s]/.test(trimmed)) return undefined;
  try {
    const url = new URL(`http://${trimmed}`);
    if (url.port !== '' || url.username !== '' || url.password !== '') return undefined;
    return url.hostname.replace(/\.$/, '');
  } catch {
    return undefined;
  }
}

/** `host` is a URL's hostname; a pattern is an exact host name or `*.example.com` (any name below example.com). */
export function hostMatches(host: string, pattern: string): boolean {
  const name = host.toLowerCase().replace(/\.$/, '');
  if (pattern.startsWith('*.')) return name.endsWith(pattern.slice(1)) && name.length > pattern.length - 1;
  return name === pattern;
}
