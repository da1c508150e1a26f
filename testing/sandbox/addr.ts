// The sandbox address plan: one IPv4 and one IPv6 subnet per node; the bridge
// (gateway) takes host index 1, pod number i takes host index i + 1.
import { isIPv4, isIPv6, SocketAddress } from 'node:net';

export interface Subnet {
  family: 4 | 6;
  /** Network address as an integer. */
  base: bigint;
  prefixLen: number;
  /** As given, e.g. "10.213.100.0/24". */
  cidr: string;
}

function v4ToBig(ip: string): bigint {
  return ip.split('.').reduce((acc, p) => (acc << 8n) | BigInt(Number(p)), 0n);
}

function v6ToBig(ip: string): bigint {
  const [head = '', tail] = ip.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  if (groups.length !== 8) throw new Error(`cannot parse IPv6 address '${ip}' (embedded IPv4 is not supported here)`);
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

export function formatAddress(family: 4 | 6, value: bigint): string {
  if (family === 4) {
    return [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 0xffn)).join('.');
  }
  const groups: string[] = [];
  for (let s = 112n; s >= 0n; s -= 16n) groups.push(((value >> s) & 0xffffn).toString(16));
  return new SocketAddress({ address: groups.join(':'), family: 'ipv6' }).address;
}

export function parseSubnet(cidr: string): Subnet {
  const [ip = '', len = ''] = cidr.split('/');
  const prefixLen = Number(len);
  const family = isIPv4(ip) ? 4 : isIPv6(ip) ? 6 : undefined;
  const bits = family === 4 ? 32 : 128;
  if (family === undefined || !/^\d+$/.test(len) || prefixLen < 8 || prefixLen > bits - 2) {
    throw new Error(`bad subnet '${cidr}': want an IPv4 /8../30 or IPv6 /8../126 CIDR`);
  }
  const value = family === 4 ? v4ToBig(ip) : v6ToBig(ip);
  const hostMask = (1n << BigInt(bits - prefixLen)) - 1n;
  if ((value & hostMask) !== 0n) throw new Error(`subnet '${cidr}' has host bits set`);
  return { family, base: value, prefixLen, cidr };
}

/** The address with host number `host` in the subnet (1 = gateway). */
export function hostAddress(subnet: Subnet, host: number): string {
  const bits = subnet.family === 4 ? 32 : 128;
  const size = 1n << BigInt(bits - subnet.prefixLen);
  const h = BigInt(host);
  // IPv4: neither the network nor the broadcast address.
  if (host < 1 || h >= size - (subnet.family === 4 ? 1n : 0n)) {
    throw new Error(`host ${host} does not fit in ${subnet.cidr}`);
  }
  return formatAddress(subnet.family, subnet.base + h);
}

/** True when `ip` lies inside `subnet` (and is not its network address). */
export function inSubnet(subnet: Subnet, ip: string): boolean {
  const fam = isIPv4(ip) ? 4 : isIPv6(ip) ? 6 : 0;
  if (fam !== subnet.family) return false;
  const v = fam === 4 ? v4ToBig(ip) : v6ToBig(ip);
  const bits = fam === 4 ? 32 : 128;
  const hostMask = (1n << BigInt(bits - subnet.prefixLen)) - 1n;
  return (v & ~hostMask) === subnet.base && v !== subnet.base;
}

/** Canonical text of an address (lower case, IPv6 compressed). */
export function canonicalAddress(ip: string): string {
  if (isIPv4(ip)) return formatAddress(4, v4ToBig(ip));
  if (isIPv6(ip)) return formatAddress(6, v6ToBig(ip));
  throw new Error(`not an IP address: '${ip}'`);
}
