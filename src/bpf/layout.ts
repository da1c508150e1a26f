// The TypeScript mirror of bpf/meshlane.h: every struct stored in a map, its
// flags and the counter ids. Field names are the C names; offsets come from the
// field lists and are checked against the object's BTF by test/bpf/layout.test.ts.
import { defineStruct, type StructCodec } from './codec.js';

export const ML_MAX_PODS = 4096;
export const ML_MAX_POD_IPS = 8192;
export const ML_MAX_PORTS = 32;
export const ML_MAX_CIDRS = 32;
export const ML_MAX_COUNTERS = 64;

export const ML_FAMILY_NONE = 0;
export const ML_FAMILY_V4 = 2;
export const ML_FAMILY_V6 = 10;

export const POD_F = { MESHED: 1 << 0, HAS_V4: 1 << 1, HAS_V6: 1 << 2, DNS_CAPTURE: 1 << 3 } as const;
export const CFG_F = { IN_PORTS_LISTED: 1 << 0, OUT_CIDRS_LISTED: 1 << 1, OUT_CIDRS_EXCL_ALL: 1 << 2 } as const;
export const ODST_F = { OUTBOUND: 1 << 0, INBOUND: 1 << 1, V6_SOCKET: 1 << 2, TC_INBOUND: 1 << 3 } as const;
export const SET_F = { SOCKMAP_REDIRECT: 1 << 0, SOCKMAP_PROXY_ONLY: 1 << 1 } as const;

export interface PodCg {
  ip4: Uint8Array;
  ip6: Uint8Array;
  flags: number;
  proxy_uid: number;
  proxy_gid: number;
  reserved0?: number;
}

export const podCg: StructCodec<PodCg> = defineStruct<PodCg>(
  'ml_pod_cg',
  [
    { name: 'ip4', type: { bytes: 16 } },
    { name: 'ip6', type: { bytes: 16 } },
    { name: 'flags', type: 'u32' },
    { name: 'proxy_uid', type: 'u32' },
    { name: 'proxy_gid', type: 'u32' },
    { name: 'reserved0', type: 'u32' },
  ],
  48,
);

export interface Cidr {
  addr: Uint8Array;
  prefix_len: number;
  family: number;
  reserved0?: number;
}

export const cidr: StructCodec<Cidr> = defineStruct<Cidr>(
  'ml_cidr',
  [
    { name: 'addr', type: { bytes: 16 } },
    { name: 'prefix_len', type: 'u8' },
    { name: 'family', type: 'u8' },
    { name: 'reserved0', type: 'u16' },
  ],
  20,
);

export interface PodConfig {
  flags: number;
  status_port: number;
  reserved0?: number;
  include_in_ports: number[];
  exclude_in_ports: number[];
  include_out_ports: number[];
  exclude_out_ports: number[];
  include_out_cidrs: Cidr[];
  exclude_out_cidrs: Cidr[];
}

export const podConfig: StructCodec<PodConfig> = defineStruct<PodConfig>(
  'ml_pod_config',
  [
    { name: 'flags', type: 'u32' },
    { name: 'status_port', type: 'u16' },
    { name: 'reserved0', type: 'u16' },
    { name: 'include_in_ports', type: { array: 'u16', length: ML_MAX_PORTS } },
    { name: 'exclude_in_ports', type: { array: 'u16', length: ML_MAX_PORTS } },
    { name: 'include_out_ports', type: { array: 'u16', length: ML_MAX_PORTS } },
    { name: 'exclude_out_ports', type: { array: 'u16', length: ML_MAX_PORTS } },
    { name: 'include_out_cidrs', type: { structArray: cidr as StructCodec<object>, length: ML_MAX_CIDRS } },
    { name: 'exclude_out_cidrs', type: { structArray: cidr as StructCodec<object>, length: ML_MAX_CIDRS } },
  ],
  1544,
);

export interface OrigDst {
  addr: Uint8Array;
  /** host value; stored in network byte order */
  port: number;
  family: number;
  flags: number;
}

export const origDst: StructCodec<OrigDst> = defineStruct<OrigDst>(
  'ml_orig_dst',
  [
    { name: 'addr', type: { bytes: 16 } },
    { name: 'port', type: 'be16' },
    { name: 'family', type: 'u8' },
    { name: 'flags', type: 'u8' },
  ],
  20,
);

export interface Tuple {
  saddr: Uint8Array;
  daddr: Uint8Array;
  sport: number;
  dport: number;
  reserved0?: number;
  netns: bigint;
}

export const tuple: StructCodec<Tuple> = defineStruct<Tuple>(
  'ml_tuple',
  [
    { name: 'saddr', type: { bytes: 16 } },
    { name: 'daddr', type: { bytes: 16 } },
    { name: 'sport', type: 'be16' },
    { name: 'dport', type: 'be16' },
    { name: 'reserved0', type: 'u32' },
    { name: 'netns', type: 'u64' },
  ],
  48,
);

export interface Settings {
  proxy_uid: number;
  proxy_gid: number;
  outbound_port: number;
  inbound_port: number;
  dns_port: number;
  reserved0?: number;
  flags: number;
  reserved1?: number;
  reserved2?: bigint;
}

export const settings: StructCodec<Settings> = defineStruct<Settings>(
  'ml_settings',
  [
    { name: 'proxy_uid', type: 'u32' },
    { name: 'proxy_gid', type: 'u32' },
    { name: 'outbound_port', type: 'u16' },
    { name: 'inbound_port', type: 'u16' },
    { name: 'dns_port', type: 'u16' },
    { name: 'reserved0', type: 'u16' },
    { name: 'flags', type: 'u32' },
    { name: 'reserved1', type: 'u32' },
    { name: 'reserved2', type: 'u64' },
  ],
  32,
);

/** ml_sk_netns value: a socket's netns cookie (written by the programs of meshlane-compat.o only). */
export interface SkNetns {
  netns: bigint;
}

export const skNetns: StructCodec<SkNetns> = defineStruct<SkNetns>('ml_sk_netns', [{ name: 'netns', type: 'u64' }], 8);

/** enum ml_counter, in order (ids are append-only in the header). */
export const COUNTERS = [
  'connect4_redirect_out',
  'connect4_redirect_in',
  'connect4_pass',
  'connect4_excluded',
  'connect6_redirect_out',
  'connect6_redirect_in',
  'connect6_pass',
  'connect6_excluded',
  'sockops_odst_saved',
  'sockops_odst_deleted',
  'sockops_sockhash_added',
  'getsockopt_answered',
  'getsockopt_miss',
  'redirect_ok',
  'redirect_pass',
  'redirect_no_peer',
  'err_bind',
  'err_odst_ck_update',
  'err_odst_tup_update',
  'err_sockhash_update',
  'err_no_pod_config',
  'err_buffer',
  'sockops_connect_failed',
  'dns_redirected',
  'dns_pass',
  'dns_reply_rewritten',
  'err_dns_record',
  'tc_in_redirected',
  'tc_in_pass',
  'tc_in_excluded',
  'tc_out_restored',
  'tc_unsupported',
  'err_tc_nat',
] as const;

export type CounterName = (typeof COUNTERS)[number];

/** The C enumerator of a counter: connect4_pass -> ML_CNT_CONNECT4_PASS. */
export function counterEnumName(name: CounterName): string {
  return `ML_CNT_${name.toUpperCase()}`;
}

export function u32Key(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n, true);
  return b;
}

export function u64Key(n: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, n, true);
  return b;
}

/** ml_tc_flows key: a connection ml_tc_ingress steered to the inbound listener. */
export interface TcFlowKey {
  pod: Uint8Array;
  peer: Uint8Array;
  peer_port: number;
  reserved0?: number;
  reserved1?: number;
}

export const tcFlowKey: StructCodec<TcFlowKey> = defineStruct<TcFlowKey>(
  'ml_tc_flow_key',
  [
    { name: 'pod', type: { bytes: 16 } },
    { name: 'peer', type: { bytes: 16 } },
    { name: 'peer_port', type: 'be16' },
    { name: 'reserved0', type: 'u16' },
    { name: 'reserved1', type: 'u32' },
  ],
  40,
);

/** ml_tc_flows value: the pod port the client asked for. */
export interface TcFlow {
  orig_port: number;
  reserved0?: number;
  reserved1?: number;
}

export const tcFlow: StructCodec<TcFlow> = defineStruct<TcFlow>(
  'ml_tc_flow',
  [
    { name: 'orig_port', type: 'be16' },
    { name: 'reserved0', type: 'u16' },
    { name: 'reserved1', type: 'u32' },
  ],
  8,
);
