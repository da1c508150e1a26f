// Addresses as the maps hold them: 16 bytes, network order, IPv4 as ::ffff:a.b.c.d.
import { isIPv4, isIPv6 } from 'node:net';

export type Family = 4 | 6;

function v4Bytes(ip: string): number[] {
  return ip.split('.').map((p) => Number(p));
}

/** 16-byte form of an IPv4 or IPv6 address (IPv4 mapped). Throws on anything else. */
export function toMapped16(ip: string): Uint8Array {
  const out = new Uint8Array(16);
  if (isIPv4(ip)) {
    out[10] = 0xff;
    out[11] = 0xff;
    out.set(v4Bytes(ip), 12);
    return out;
  }
  if (!isIPv6(ip)) throw new TypeError(`not an IP address: ${JSON.stringify(ip)}`);
  let text = ip.toLowerCase();
  const zone = text.indexOf('%');
  if (zone >= 0) text = text.slice(0, zone);
  let tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.slice(lastColon + 1).includes('.')) {
    const v4 = v4Bytes(text.slice(lastColon + 1));
    tail = [((v4[0] ?? 0) << 8) | (v4[1] ?? 0), ((v4[2] ?? 0) << 8) | (v4[3] ?? 0)];
    text = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const [head = '', rest] = text.split('::');
  const a = head === '' ? [] : head.split(':');
  const b = rest === undefined || rest === '' ? [] : rest.split(':');
  const groups = rest === undefined ? a : [...a, ...Array<string>(8 - a.length - b.length).fill('0'), ...b];
  const words = groups.map((g) => parseInt(g, 16));
  if (tail.length === 2) words.splice(6, 2, tail[0] ?? 0, tail[1] ?? 0);
  words.forEach((w, i) => {
    out[i * 2] = w >> 8;
    out[i * 2 + 1] = w & 0xff;
  });
  return out;
}

export function isMappedV4(b: Uint8Array): boolean {
  return b.length === 16 && b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
}

/** Text form of a 16-byte address: dotted quad for a mapped IPv4, compressed IPv6 otherwise. */
export function fromMapped16(b: Uint8Array): string {
  if (b.length !== 16) throw new RangeError(`an address is 16 bytes, got ${b.length}`);
  if (isMappedV4(b)) return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  const words = Array.from({ length: 8 }, (_, i) => ((b[i * 2] ?? 0) << 8) | (b[i * 2 + 1] ?? 0));
  // Longest run of zero words (length >= 2) becomes '::' (RFC 5952).
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = words.map((w) => w.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

export function familyOf(ip: string): Family | undefined {
  return isIPv4(ip) ? 4 : isIPv6(ip) ? 6 : undefined;
}
