// IP address and CIDR syntax as results carry them (Go's net.ParseIP / ParseCIDR forms).
import { isIP } from 'node:net';

export type IpFamily = 4 | 6;

export interface ParsedCidr {
  family: IpFamily;
  /** The address without the prefix length, as written. */
  address: string;
  prefixLength: number;
}

/** The family of a plain address (no prefix, no zone), or undefined. */
export function ipFamily(address: string): IpFamily | undefined {
  if (address.includes('%')) return undefined;
  const family = isIP(address);
  return family === 4 || family === 6 ? family : undefined;
}

/** Parse `address/prefix`; undefined when it is not one. */
export function parseCidr(text: string): ParsedCidr | undefined {
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const address = text.slice(0, slash);
  const prefix = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefix)) return undefined;
  const family = ipFamily(address);
  if (family === undefined) return undefined;
  const prefixLength = Number(prefix);
  if (prefixLength > (family === 4 ? 32 : 128)) return undefined;
  return { family, address, prefixLength };
}
