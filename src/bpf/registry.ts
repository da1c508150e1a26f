// Registrations, settings and counters in the pinned maps, read and written
// in-process (bpf(2) through src/sys/bpf.ts): no bpftool on the CNI path.
// The packing of every key and value is here, with the codecs of layout.ts
// (whose offsets test/bpf/layout.test.ts ties to the object's BTF); each map is
// checked on open against the key and value sizes the kernel reports for it.
import { BpfMap } from '../sys/bpf.js';
import { toMapped16 } from './addr.js';
import { COUNTERS, POD_F, podCg, podConfig, settings, u32Key, u64Key, type CounterName, type PodCg, type PodConfig, type Settings } from './layout.js';
import { MAP_NAMES, pinPaths } from './names.js';

export interface PodRegistration {
  /** The pod-level cgroup's id (inode of its cgroup v2 directory). */
  cgroupId: bigint;
  ipv4?: string | undefined;
  ipv6?: string | undefined;
  /** Extra POD_F flags (DNS_CAPTURE); MESHED and HAS_V4/HAS_V6 are set from the fields. */
  extraFlags?: number;
  /** 0: the node's setting. */
  proxyUid?: number;
  proxyGid?: number;
  config: PodConfig;
}

/** Key and value sizes of the maps meshlane writes, from the layouts (undefined: not checked here). */
const MAP_SIZES: Readonly<Record<string, { key: number; value: number }>> = {
  [MAP_NAMES.podsByCgroup]: { key: 8, value: podCg.size },
  [MAP_NAMES.podsByIp]: { key: 16, value: podConfig.size },
  [MAP_NAMES.settings]: { key: 4, value: settings.size },
  [MAP_NAMES.counters]: { key: 4, value: 8 },
};

export class MapLayoutError extends Error {
  override name = 'MapLayoutError';
}

/** Open the pinned map `name` of `pinDir`, its key and value sizes checked against the layouts. */
export function openMap(pinDir: string, name: string): BpfMap {
  const m = BpfMap.open(pinPaths(pinDir).map(name));
  const want = MAP_SIZES[name];
  if (want && (m.info.keySize !== want.key || m.info.valueSize !== want.value)) {
    const got = `${m.info.keySize}/${m.info.valueSize}`;
    m.close();
    throw new MapLayoutError(`the map ${m.path} has keys/values of ${got} bytes, this meshlane writes ${want.key}/${want.value}: the datapath and this executable do not match (meshlane install replaces it)`);
  }
  return m;
}

function withMaps<T>(pinDir: string, names: readonly string[], body: (...maps: BpfMap[]) => T): T {
  const maps: BpfMap[] = [];
  try {
    for (const n of names) maps.push(openMap(pinDir, n));
    return body(...maps);
  } finally {
    for (const m of maps) m.close();
  }
}

export function podCgValue(reg: PodRegistration): PodCg {
  let flags = POD_F.MESHED | (reg.extraFlags ?? 0);
  if (reg.ipv4) flags |= POD_F.HAS_V4;
  if (reg.ipv6) flags |= POD_F.HAS_V6;
  return {
    ip4: reg.ipv4 ? toMapped16(reg.ipv4) : new Uint8Array(16),
    ip6: reg.ipv6 ? toMapped16(reg.ipv6) : new Uint8Array(16),
    flags,
    proxy_uid: reg.proxyUid ?? 0,
    proxy_gid: reg.proxyGid ?? 0,
  };
}

function podIps(reg: Pick<PodRegistration, 'ipv4' | 'ipv6'>): string[] {
  return [reg.ipv4, reg.ipv6].filter((ip): ip is string => typeof ip === 'string' && ip !== '');
}

/** Register a pod: its config by each IP first, then the cgroup entry that turns interception on. */
export async function registerPod(pinDir: string, reg: PodRegistration): Promise<void> {
  const cfg = podConfig.encode(reg.config);
  const cg = podCg.encode(podCgValue(reg));
  withMaps(pinDir, [MAP_NAMES.podsByIp, MAP_NAMES.podsByCgroup], (byIp, byCg) => {
    for (const ip of podIps(reg)) byIp.update(toMapped16(ip), cfg);
    byCg.update(u64Key(reg.cgroupId), cg);
  });
}

/** Many registrations at once (the benchmark's filler, the installer's reconcile): one open of each map. */
export async function registerPods(pinDir: string, regs: readonly PodRegistration[]): Promise<void> {
  withMaps(pinDir, [MAP_NAMES.podsByIp, MAP_NAMES.podsByCgroup], (byIp, byCg) => {
    for (const reg of regs) {
      const cfg = podConfig.encode(reg.config);
      for (const ip of podIps(reg)) byIp.update(toMapped16(ip), cfg);
      byCg.update(u64Key(reg.cgroupId), podCg.encode(podCgValue(reg)));
    }
  });
}

type Unreg = Pick<PodRegistration, 'cgroupId' | 'ipv4' | 'ipv6'>;

/**
 * Remove what is there of a registration: the cgroup entry first (interception
 * off), then its IPs; entries already gone are fine. An IP entry that another
 * registered pod now owns (the IP was reused after this pod's DEL was missed) is
 * left alone: it is that pod's interception config.
 */
export async function unregisterPod(pinDir: string, reg: Unreg): Promise<void> {
  await unregisterPods(pinDir, [reg]);
}

export async function unregisterPods(pinDir: string, regs: readonly Unreg[]): Promise<void> {
  withMaps(pinDir, [MAP_NAMES.podsByCgroup, MAP_NAMES.podsByIp], (byCg, byIp) => {
    for (const r of regs) byCg.delete(u64Key(r.cgroupId));
    const ips = regs.flatMap(podIps);
    if (ips.length === 0) return;
    // Who else holds these IPs: the remaining cgroup entries (the ones just deleted are gone).
    const owners = ipOwnerSearch(byCg);
    for (const ip of ips) {
      const key = toMapped16(ip);
      if (!owners(key)) byIp.delete(key);
    }
  });
}

const IP_FIELDS = podCg.fields.filter((f) => f.name === 'ip4' || f.name === 'ip6').map((f) => f.offset);

function packValues(values: Uint8Array[]): { count: number; values: Uint8Array } {
  return { count: values.length, values: Buffer.concat(values) };
}

/**
 * A test "does a cgroup entry hold this address as its ip4 or ip6": the map
 * read once into two buffers, each address searched with Buffer#indexOf (native),
 * a hit counting only at an ip4/ip6 offset of an entry. A DEL with thousands of
 * pods registered costs one batch read and no per-entry work in JS.
 */
function ipOwnerSearch(byCg: BpfMap): (addr: Uint8Array) => boolean {
  const all = byCg.readAll() ?? packValues(byCg.entries().map((e) => e.value));
  const stride = byCg.valueBytes;
  if (all.count === 0) return () => false;
  const hay = Buffer.from(all.values.buffer, all.values.byteOffset, all.count * stride);
  return (addr) => {
    for (let at = hay.indexOf(addr); at >= 0; at = hay.indexOf(addr, at + 1)) {
      if (IP_FIELDS.includes(at % stride)) return true;
    }
    return false;
  };
}

export async function readPodByCgroup(pinDir: string, cgroupId: bigint): Promise<PodCg | undefined> {
  const v = withMaps(pinDir, [MAP_NAMES.podsByCgroup], (m) => m.lookup(u64Key(cgroupId)));
  return v ? podCg.decode(v) : undefined;
}

export async function readPodConfig(pinDir: string, ip: string): Promise<PodConfig | undefined> {
  const v = withMaps(pinDir, [MAP_NAMES.podsByIp], (m) => m.lookup(toMapped16(ip)));
  return v ? podConfig.decode(v) : undefined;
}

export async function listPodsByCgroup(pinDir: string): Promise<Array<{ cgroupId: bigint; pod: PodCg }>> {
  const rows = withMaps(pinDir, [MAP_NAMES.podsByCgroup], (m) => m.entries());
  return rows.map((r) => ({ cgroupId: new DataView(r.key.buffer, r.key.byteOffset).getBigUint64(0, true), pod: podCg.decode(r.value) }));
}

/** How many entries a map holds (any map type: its keys are walked). */
export async function mapEntryCount(pinDir: string, map: string): Promise<number> {
  return withMaps(pinDir, [map], (m) => m.keys().length);
}

export async function writeSettings(pinDir: string, value: Settings): Promise<void> {
  withMaps(pinDir, [MAP_NAMES.settings], (m) => m.update(u32Key(0), settings.encode(value)));
}

export async function readSettings(pinDir: string): Promise<Settings> {
  const v = withMaps(pinDir, [MAP_NAMES.settings], (m) => m.lookup(u32Key(0)));
  if (!v) throw new Error(`the settings map in ${pinDir} has no entry 0`);
  return settings.decode(v);
}

/** The datapath's counters, summed over CPUs. */
export async function readCounters(pinDir: string): Promise<Record<CounterName, bigint>> {
  const out = Object.fromEntries(COUNTERS.map((c) => [c, 0n])) as Record<CounterName, bigint>;
  withMaps(pinDir, [MAP_NAMES.counters], (m) => {
    COUNTERS.forEach((name, idx) => {
      const v = m.lookup(u32Key(idx));
      if (!v) return;
      const view = new DataView(v.buffer, v.byteOffset, v.byteLength);
      let sum = 0n;
      for (let off = 0; off + 8 <= v.length; off += 8) sum += view.getBigUint64(off, true);
      out[name] = sum;
    });
  });
  return out;
}
