// The names that tie the TypeScript side to bpf/meshlane.h: programs, maps,
// where each program attaches, and how the pin directory is laid out.
// (The kernel keeps at most 15 characters of a program or map name.)
import { join } from 'node:path';

export const MAP_NAMES = {
  podsByCgroup: 'ml_pods_cg',
  podsByIp: 'ml_pods_ip',
  origDstByCookie: 'ml_odst_ck',
  origDstByTuple: 'ml_odst_tup',
  sockPairs: 'ml_sock_pairs',
  settings: 'ml_settings',
  counters: 'ml_counters',
  tcFlows: 'ml_tc_flows',
  dnsOrigByCookie: 'ml_dns_ck',
  netnsBySocket: 'ml_sk_netns',
} as const;

export type MapKey = keyof typeof MAP_NAMES;
export const ALL_MAPS: readonly string[] = Object.values(MAP_NAMES);

/**
 * Maps whose entries cannot be listed: socket-local storage (ml_sk_netns,
 * BPF_MAP_TYPE_SK_STORAGE) answers BPF_MAP_GET_NEXT_KEY with ENOTSUPP; its
 * entries live and die with their sockets. Status and /metrics give no entry
 * count for them.
 */
export const UNCOUNTED_MAPS: ReadonlySet<string> = new Set([MAP_NAMES.netnsBySocket]);

export interface CgroupProgram {
  name: string;
  /** bpftool's word for the attach type in `bpftool cgroup attach CG <type> ...`. */
  attachType: string;
  /** How `bpftool -j cgroup show` names the same type (libbpf's attach type string). */
  shownAs: string;
  /** enum bpf_attach_type (<linux/bpf.h>), for BPF_PROG_QUERY. */
  attachTypeId: number;
}

export const CGROUP_PROGRAMS: readonly CgroupProgram[] = [
  { name: 'ml_connect4', attachType: 'connect4', shownAs: 'cgroup_inet4_connect', attachTypeId: 10 },
  { name: 'ml_connect6', attachType: 'connect6', shownAs: 'cgroup_inet6_connect', attachTypeId: 11 },
  { name: 'ml_sockops', attachType: 'sock_ops', shownAs: 'cgroup_sock_ops', attachTypeId: 3 },
  { name: 'ml_getsockopt', attachType: 'getsockopt', shownAs: 'cgroup_getsockopt', attachTypeId: 21 },
  { name: 'ml_sendmsg4', attachType: 'sendmsg4', shownAs: 'cgroup_udp4_sendmsg', attachTypeId: 14 },
  { name: 'ml_sendmsg6', attachType: 'sendmsg6', shownAs: 'cgroup_udp6_sendmsg', attachTypeId: 15 },
  { name: 'ml_recvmsg4', attachType: 'recvmsg4', shownAs: 'cgroup_udp4_recvmsg', attachTypeId: 19 },
  { name: 'ml_recvmsg6', attachType: 'recvmsg6', shownAs: 'cgroup_udp6_recvmsg', attachTypeId: 20 },
];

/**
 * Cgroup programs only the object for kernels before 5.15 has
 * (dist/bpf/meshlane-compat.o): there sock_ops, sk_msg and cgroup getsockopt
 * programs cannot call bpf_get_netns_cookie, and ml_sock_create records each
 * TCP socket's netns cookie in its storage instead (bpf/lib/tuple.h). The
 * loader attaches them when the object it loaded has them and detaches them
 * otherwise.
 */
export const COMPAT_CGROUP_PROGRAMS: readonly CgroupProgram[] = [
  { name: 'ml_sock_create', attachType: 'sock_create', shownAs: 'cgroup_inet_sock_create', attachTypeId: 2 },
];

/** Every cgroup program either object has: a hook is left with the loaded object's program or, when it has none for it, with no meshlane program. */
export const HOOKED_PROGRAMS: readonly CgroupProgram[] = [...CGROUP_PROGRAMS, ...COMPAT_CGROUP_PROGRAMS];

/**
 * The cgroup programs a loaded datapath hooks: every build's, plus the compat
 * build's own where they are pinned (the compat build is the one loaded).
 */
export function hooksOfLoaded(pinnedPrograms: readonly string[]): readonly CgroupProgram[] {
  return [...CGROUP_PROGRAMS, ...COMPAT_CGROUP_PROGRAMS.filter((p) => pinnedPrograms.includes(p.name))];
}

/**
 * The hooks of the loaded datapath that do not hold exactly one meshlane
 * program, each as "<attach type>: <count>" (empty: every hook is right).
 * `attached` lists the meshlane programs on the cgroup (loader.attachedPrograms).
 */
export function wrongHooks(pinnedPrograms: readonly string[], attached: ReadonlyArray<{ attach_type: string }>): string[] {
  return hooksOfLoaded(pinnedPrograms)
    .map((p) => ({ p, n: attached.filter((a) => a.attach_type === p.shownAs).length }))
    .filter(({ n }) => n !== 1)
    .map(({ p, n }) => `${p.attachType}: ${n}`);
}

export interface SockmapProgram {
  name: string;
  attachType: 'msg_verdict';
  map: string;
}

export const SOCKMAP_PROGRAMS: readonly SockmapProgram[] = [
  { name: 'ml_redirect', attachType: 'msg_verdict', map: MAP_NAMES.sockPairs },
];

/**
 * Programs attached per pod, not to the cgroup: tc (clsact) ingress/egress on
 * the pod's interface inside its netns, attached by the CNI plugin at ADD
 * (src/sys/tc.ts) from the pins in <pinDir>/progs, detached at DEL.
 */
export interface TcProgram {
  name: string;
  direction: 'ingress' | 'egress';
}

export const TC_PROGRAMS: readonly TcProgram[] = [
  { name: 'ml_tc_ingress', direction: 'ingress' },
  { name: 'ml_tc_egress', direction: 'egress' },
];

export const ALL_PROGRAMS: readonly string[] = [...CGROUP_PROGRAMS, ...SOCKMAP_PROGRAMS, ...TC_PROGRAMS].map((p) => p.name);

/** Every name we own starts with this; anything attached with it on our cgroup is ours. */
export const NAME_PREFIX = 'ml_';

export function pinPaths(pinDir: string): { maps: string; progs: string; map(name: string): string; prog(name: string): string } {
  const maps = join(pinDir, 'maps');
  const progs = join(pinDir, 'progs');
  return { maps, progs, map: (n) => join(maps, n), prog: (n) => join(progs, n) };
}
