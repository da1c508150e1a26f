// Registrations, settings and counters in the pinned maps.
// The encoding is pure (ops from values); writing goes through one bpftool batch.
import { fromMapped16, toMapped16 } from './addr.js';
import { mapBatch, mapCount, mapDump, mapLookup, percpuMapDump, type MapOp } from './bpftool.js';
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

/** Map writes that register a pod: config by each IP first, then the cgroup entry that turns interception on. */
export function registerOps(pinDir: string, reg: PodRegistration): MapOp[] {
  const p = pinPaths(pinDir);
  const cfg = podConfig.encode(reg.config);
  return [
    ...podIps(reg).map((ip): MapOp => ({ op: 'update', map: p.map(MAP_NAMES.podsByIp), key: toMapped16(ip), value: cfg })),
    { op: 'update', map: p.map(MAP_NAMES.podsByCgroup), key: u64Key(reg.cgroupId), value: podCg.encode(podCgValue(reg)) },
  ];
}

/** Map deletes that unregister a pod: the cgroup entry first (interception off), then its IPs. */
export function unregisterOps(pinDir: string, reg: Pick<PodRegistration, 'cgroupId' | 'ipv4' | 'ipv6'>): MapOp[] {
  const p = pinPaths(pinDir);
  return [
    { op: 'delete', map: p.map(MAP_NAMES.podsByCgroup), key: u64Key(reg.cgroupId) },
    ...podIps(reg).map((ip): MapOp => ({ op: 'delete', map: p.map(MAP_NAMES.podsByIp), key: toMapped16(ip) })),
  ];
}

export async function registerPod(pinDir: string, reg: PodRegistration): Promise<void> {
  await mapBatch(registerOps(pinDir, reg));
}

/**
 * Remove what is there of a registration; entries already gone are fine. An IP
 * entry that another registered pod now owns (the IP was reused after this pod's
 * DEL was missed) is left alone: it is that pod's interception config.
 */
export async function unregisterPod(pinDir: string, reg: Pick<PodRegistration, 'cgroupId' | 'ipv4' | 'ipv6'>): Promise<void> {
  const p = pinPaths(pinDir);
  const all = await listPodsByCgroup(pinDir);
  const others = all.filter((e) => e.cgroupId !== reg.cgroupId);
  const ownedByOther = (ip: string): boolean => {
    const key = Buffer.from(toMapped16(ip));
    return others.some((o) => key.equals(Buffer.from(o.pod.ip4)) || key.equals(Buffer.from(o.pod.ip6)));
  };
  const ops = unregisterOps(pinDir, reg).filter((op) => !(op.map === p.map(MAP_NAMES.podsByIp) && ownedByOther(fromMapped16(op.key))));
  // The usual DEL: the cgroup entry is there, so ADD wrote the IP entries too.
  // One bpftool process for all of it; a CNI call starts processes for every pod.
  if (all.some((e) => e.cgroupId === reg.cgroupId)) {
    try {
      await mapBatch(ops);
      return;
    } catch {
      // Some entry was already gone (an earlier DEL stopped half-way): delete what is there.
    }
  }
  const present: MapOp[] = [];
  for (const op of ops) {
    if ((await mapLookup(op.map, op.key)) !== undefined) present.push(op);
  }
  await mapBatch(present);
}

export async function readPodByCgroup(pinDir: string, cgroupId: bigint): Promise<PodCg | undefined> {
  const v = await mapLookup(pinPaths(pinDir).map(MAP_NAMES.podsByCgroup), u64Key(cgroupId));
  return v ? podCg.decode(v) : undefined;
}

export async function readPodConfig(pinDir: string, ip: string): Promise<PodConfig | undefined> {
  const v = await mapLookup(pinPaths(pinDir).map(MAP_NAMES.podsByIp), toMapped16(ip));
  return v ? podConfig.decode(v) : undefined;
}

export async function listPodsByCgroup(pinDir: string): Promise<Array<{ cgroupId: bigint; pod: PodCg }>> {
  const rows = await mapDump(pinPaths(pinDir).map(MAP_NAMES.podsByCgroup));
  return rows.map((r) => ({ cgroupId: new DataView(r.key.buffer, r.key.byteOffset).getBigUint64(0, true), pod: podCg.decode(r.value) }));
}

export async function mapEntryCount(pinDir: string, map: string): Promise<number> {
  return mapCount(pinPaths(pinDir).map(map));
}

export async function writeSettings(pinDir: string, value: Settings): Promise<void> {
  await mapBatch([{ op: 'update', map: pinPaths(pinDir).map(MAP_NAMES.settings), key: u32Key(0), value: settings.encode(value) }]);
}

export async function readSettings(pinDir: string): Promise<Settings> {
  const v = await mapLookup(pinPaths(pinDir).map(MAP_NAMES.settings), u32Key(0));
  if (!v) throw new Error(`the settings map in ${pinDir} has no entry 0`);
  return settings.decode(v);
}

/** The datapath's counters, summed over CPUs. */
export async function readCounters(pinDir: string): Promise<Record<CounterName, bigint>> {
  const rows = await percpuMapDump(pinPaths(pinDir).map(MAP_NAMES.counters));
  const out = Object.fromEntries(COUNTERS.map((c) => [c, 0n])) as Record<CounterName, bigint>;
  for (const r of rows) {
    const idx = new DataView(r.key.buffer, r.key.byteOffset).getUint32(0, true);
    const name = COUNTERS[idx];
    if (!name) continue;
    out[name] = r.values.reduce((sum, v) => sum + new DataView(v.buffer, v.byteOffset).getBigUint64(0, true), 0n);
  }
  return out;
}
