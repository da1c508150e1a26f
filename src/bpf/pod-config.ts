// A pod's interception config, as the mesh layer decides it, turned into the
// ml_pod_config the programs read. Lists longer than the map holds are refused
// (never truncated): a silently shortened exclude list would capture traffic
// the operator excluded.
import { isIPv4 } from 'node:net';
import { toMapped16 } from './addr.js';
import { CFG_F, ML_FAMILY_V4, ML_FAMILY_V6, ML_MAX_CIDRS, ML_MAX_PORTS, type Cidr, type PodConfig } from './layout.js';

export type PortList = '*' | readonly number[];
export type CidrList = '*' | readonly string[];

export interface InterceptionConfig {
  /** includeInboundPorts: '*' (default) or a list; an empty list captures no inbound. */
  includeInboundPorts: PortList;
  excludeInboundPorts: readonly number[];
  includeOutboundPorts: readonly number[];
  excludeOutboundPorts: readonly number[];
  /** includeOutboundIPRanges: '*' (default) or a list; an empty list captures nothing by address. */
  includeOutboundCidrs: CidrList;
  /** excludeOutboundIPRanges: a list, or '*' (nothing captured by address or port). */
  excludeOutboundCidrs: CidrList;
  /** status.sidecar.istio.io/port; 0 means the default 15021. */
  statusPort: number;
}

export const DEFAULT_INTERCEPTION: InterceptionConfig = {
  includeInboundPorts: '*',
  excludeInboundPorts: [],
  includeOutboundPorts: [],
  excludeOutboundPorts: [],
  includeOutboundCidrs: '*',
  excludeOutboundCidrs: [],
  statusPort: 15021,
};

export class ConfigLimitError extends Error {
  override name = 'ConfigLimitError';
}

function ports(list: readonly number[], what: string): number[] {
  const unique = [...new Set(list)];
  for (const p of unique) {
    if (!Number.isInteger(p) || p < 1 || p > 65535) throw new RangeError(`${what}: port ${p} is not in 1..65535`);
  }
  if (unique.length > ML_MAX_PORTS) throw new ConfigLimitError(`${what}: ${unique.length} ports, the datapath holds at most ${ML_MAX_PORTS}`);
  return unique;
}

/** 'a.b.c.d/n' or 'v6/n' → the map's form (IPv4 mapped, prefix in the 128-bit space). */
export function encodeCidr(text: string): Cidr {
  const slash = text.indexOf('/');
  const ip = slash < 0 ? text : text.slice(0, slash);
  const v4 = isIPv4(ip);
  const max = v4 ? 32 : 128;
  const len = slash < 0 ? max : Number(text.slice(slash + 1));
  if (!/^\d{1,3}$/.test(slash < 0 ? String(max) : text.slice(slash + 1)) || len > max) {
    throw new RangeError(`CIDR ${JSON.stringify(text)}: prefix length must be 0..${max}`);
  }
  const addr = toMapped16(ip);
  const prefix = v4 ? 96 + len : len;
  // Zero the host bits so that matching compares networks.
  for (let bit = prefix; bit < 128; bit++) {
    const byte = bit >> 3;
    addr[byte] = (addr[byte] ?? 0) & ~(0x80 >> (bit & 7));
  }
  return { addr, prefix_len: prefix, family: v4 ? ML_FAMILY_V4 : ML_FAMILY_V6 };
}

function cidrs(list: readonly string[], what: string): Cidr[] {
  const out = [...new Set(list)].map(encodeCidr);
  if (out.length > ML_MAX_CIDRS) throw new ConfigLimitError(`${what}: ${out.length} ranges, the datapath holds at most ${ML_MAX_CIDRS}`);
  return out;
}

export function encodePodConfig(c: InterceptionConfig): PodConfig {
  let flags = 0;
  if (c.includeInboundPorts !== '*') flags |= CFG_F.IN_PORTS_LISTED;
  if (c.includeOutboundCidrs !== '*') flags |= CFG_F.OUT_CIDRS_LISTED;
  if (c.excludeOutboundCidrs === '*') flags |= CFG_F.OUT_CIDRS_EXCL_ALL;
  return {
    flags,
    status_port: c.statusPort,
    include_in_ports: c.includeInboundPorts === '*' ? [] : ports(c.includeInboundPorts, 'includeInboundPorts'),
    exclude_in_ports: ports(c.excludeInboundPorts, 'excludeInboundPorts'),
    include_out_ports: ports(c.includeOutboundPorts, 'includeOutboundPorts'),
    exclude_out_ports: ports(c.excludeOutboundPorts, 'excludeOutboundPorts'),
    include_out_cidrs: c.includeOutboundCidrs === '*' ? [] : cidrs(c.includeOutboundCidrs, 'includeOutboundIPRanges'),
    exclude_out_cidrs: c.excludeOutboundCidrs === '*' ? [] : cidrs(c.excludeOutboundCidrs, 'excludeOutboundIPRanges'),
  };
}
