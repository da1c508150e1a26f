// What meshlane needs of a node's kernel, and the verdict on what a probe
// found (pure: ./probe-kernel.ts does the probing, tests inject results).
//
// The floor is what Linux 5.10 offers the datapath: the program types and
// attach types it loads (cgroup sock_addr connect4/6, sendmsg4/6, recvmsg4/6,
// sock_ops, cgroup getsockopt, sk_msg on a sockhash, tc cls_bpf), the helpers
// each of them calls, the map types, cgroup v2 and the right to use bpf(2).
// A kernel missing any of these is refused with one message naming the kernel
// and every missing piece. What only newer kernels have is an optional
// feature: probed and reported, never a refusal.
//
// Probed, not read from the version number: distribution kernels backport
// features, and a kernel built without some part (CONFIG_BPF_STREAM_PARSER,
// CONFIG_CGROUP_BPF) lacks it whatever its version says.

/** bpf_prog_type values (<linux/bpf.h>). */
export const PROG_TYPE = { SOCKET_FILTER: 1, SCHED_CLS: 3, CGROUP_SOCK: 9, SOCK_OPS: 13, SK_MSG: 16, CGROUP_SOCK_ADDR: 18, CGROUP_SOCKOPT: 25 } as const;

/** bpf_attach_type values (<linux/bpf.h>). */
export const ATTACH_TYPE = {
  CGROUP_INET_SOCK_CREATE: 2,
  CGROUP_SOCK_OPS: 3,
  SK_MSG_VERDICT: 7,
  CGROUP_INET4_CONNECT: 10,
  CGROUP_INET6_CONNECT: 11,
  CGROUP_UDP4_SENDMSG: 14,
  CGROUP_UDP6_SENDMSG: 15,
  CGROUP_UDP4_RECVMSG: 19,
  CGROUP_UDP6_RECVMSG: 20,
  CGROUP_GETSOCKOPT: 21,
} as const;

/** The helpers the object calls, by id (enum bpf_func_id). */
export const HELPER = {
  map_lookup_elem: 1,
  map_update_elem: 2,
  map_delete_elem: 3,
  skb_store_bytes: 9,
  l4_csum_replace: 11,
  get_current_uid_gid: 15,
  skb_load_bytes: 26,
  get_socket_cookie: 46,
  sock_ops_cb_flags_set: 59,
  bind: 64,
  sock_hash_update: 70,
  sk_storage_get: 107,
  msg_redirect_hash: 71,
  get_netns_cookie: 122,
  get_current_ancestor_cgroup_id: 123,
} as const;
export type HelperName = keyof typeof HELPER;

/** One kind of program the datapath loads: its type, the attach type it is loaded for, and the helpers it calls. */
export interface ProgramNeed {
  /** The ELF section (libbpf's name for the hook), which also names it in messages. */
  section: string;
  progType: number;
  /** expected_attach_type at load (0 where the type takes none). */
  attachType: number;
  helpers: readonly HelperName[];
}

const SOCK_ADDR_HELPERS: readonly HelperName[] = ['map_lookup_elem', 'map_update_elem', 'get_current_uid_gid', 'get_socket_cookie', 'get_current_ancestor_cgroup_id'];
/** connect4/6 of the build for kernels before 5.15 record the socket's netns cookie in its storage. */
const CONNECT_HELPERS: readonly HelperName[] = [...SOCK_ADDR_HELPERS, 'bind', 'get_netns_cookie', 'sk_storage_get'];

/**
 * Every program section of bpf/meshlane.bpf.c, with the helpers its two
 * builds call but the optional ones: the floor is what the build for kernels
 * before 5.15 (meshlane-compat.o) needs, and every kernel that has it can run
 * one of the two builds (the other needs the same less the socket storage, plus
 * the optional netns cookie in sock_ops, sk_msg and getsockopt). The SK_STORAGE
 * map type is not probed by itself: it came with bpf_sk_storage_get (5.2), and
 * creating one needs BTF.
 */
export const PROGRAM_NEEDS: readonly ProgramNeed[] = [
  { section: 'cgroup/connect4', progType: PROG_TYPE.CGROUP_SOCK_ADDR, attachType: ATTACH_TYPE.CGROUP_INET4_CONNECT, helpers: CONNECT_HELPERS },
  { section: 'cgroup/connect6', progType: PROG_TYPE.CGROUP_SOCK_ADDR, attachType: ATTACH_TYPE.CGROUP_INET6_CONNECT, helpers: CONNECT_HELPERS },
  { section: 'cgroup/sock_create', progType: PROG_TYPE.CGROUP_SOCK, attachType: ATTACH_TYPE.CGROUP_INET_SOCK_CREATE, helpers: ['sk_storage_get', 'get_netns_cookie'] },
  { section: 'cgroup/sendmsg4', progType: PROG_TYPE.CGROUP_SOCK_ADDR, attachType: ATTACH_TYPE.CGROUP_UDP4_SENDMSG, helpers: SOCK_ADDR_HELPERS },
  { section: 'cgroup/sendmsg6', progType: PROG_TYPE.CGROUP_SOCK_ADDR, attachType: ATTACH_TYPE.CGROUP_UDP6_SENDMSG, helpers: SOCK_ADDR_HELPERS },
  { section: 'cgroup/recvmsg4', progType: PROG_TYPE.CGROUP_SOCK_ADDR, attachType: ATTACH_TYPE.CGROUP_UDP4_RECVMSG, helpers: ['map_lookup_elem', 'get_socket_cookie'] },
  { section: 'cgroup/recvmsg6', progType: PROG_TYPE.CGROUP_SOCK_ADDR, attachType: ATTACH_TYPE.CGROUP_UDP6_RECVMSG, helpers: ['map_lookup_elem', 'get_socket_cookie'] },
  {
    section: 'sockops',
    progType: PROG_TYPE.SOCK_OPS,
    attachType: ATTACH_TYPE.CGROUP_SOCK_OPS,
    helpers: ['map_lookup_elem', 'map_update_elem', 'map_delete_elem', 'get_socket_cookie', 'sock_ops_cb_flags_set', 'sock_hash_update', 'sk_storage_get'],
  },
  { section: 'cgroup/getsockopt', progType: PROG_TYPE.CGROUP_SOCKOPT, attachType: ATTACH_TYPE.CGROUP_GETSOCKOPT, helpers: ['map_lookup_elem', 'sk_storage_get'] },
  { section: 'sk_msg', progType: PROG_TYPE.SK_MSG, attachType: ATTACH_TYPE.SK_MSG_VERDICT, helpers: ['map_lookup_elem', 'msg_redirect_hash', 'sk_storage_get'] },
  {
    section: 'tc',
    progType: PROG_TYPE.SCHED_CLS,
    attachType: 0,
    helpers: ['map_lookup_elem', 'map_update_elem', 'map_delete_elem', 'skb_load_bytes', 'skb_store_bytes', 'l4_csum_replace'],
  },
];

/**
 * Features of newer kernels: probed and reported, never a refusal. Each is a
 * helper in the sections listed (the object, or a variant of it, can use it
 * where the kernel has it).
 */
export interface OptionalNeed {
  name: string;
  /** What a node without it gets, for the status line. */
  without: string;
  helper: HelperName;
  sections: readonly string[];
}

export const OPTIONAL_NEEDS: readonly OptionalNeed[] = [
  {
    name: 'netns-cookie-in-sockops',
    without: 'bpf_get_netns_cookie is not callable from sock_ops, sk_msg and cgroup getsockopt programs (Linux 5.15)',
    helper: 'get_netns_cookie',
    sections: ['sockops', 'cgroup/getsockopt', 'sk_msg'],
  },
];

/** The map types the object declares. */
export const MAP_NEEDS: ReadonlyArray<{ name: string; type: number; keySize: number; valueSize: number }> = [
  { name: 'hash', type: 1, keySize: 8, valueSize: 8 },
  { name: 'array', type: 2, keySize: 4, valueSize: 8 },
  { name: 'percpu_array', type: 6, keySize: 4, valueSize: 8 },
  { name: 'lru_hash', type: 9, keySize: 8, valueSize: 8 },
  { name: 'sockhash', type: 18, keySize: 16, valueSize: 4 },
];

/** One probe's answer: there, not there, or the kernel would not let us ask (EPERM) / said something else. */
export type Probed = { ok: true } | { ok: false; why: 'missing' | 'denied' | 'error'; detail: string };

export interface KernelFeatures {
  /** uname's release (os.release()). */
  release: string;
  /** bpf(2) at all: a trivial socket filter loads. */
  bpf: Probed;
  /** The cgroup v2 directory the programs attach to. */
  cgroup2: Probed & { dir?: string };
  /** By section: the program type with its attach type. */
  programs: Record<string, Probed>;
  /** By `${section} ${helper}`. */
  helpers: Record<string, Probed>;
  /** By map type name. */
  maps: Record<string, Probed>;
  /** By optional need name. */
  optional: Record<string, Probed>;
}

export interface KernelVerdict {
  ok: boolean;
  /** What is missing (or not permitted), one phrase each. */
  missing: string[];
  /** The one message: names the kernel and every missing piece. Empty when ok. */
  message: string;
  /** Optional features this kernel lacks, each with what the node gets without it. */
  without: string[];
}

export const helperKey = (section: string, helper: HelperName): string => `${section} ${helper}`;

function what(p: Probed, thing: string): string | undefined {
  if (p.ok) return undefined;
  if (p.why === 'denied') return `${thing} not permitted (${p.detail})`;
  if (p.why === 'error') return `${thing}: ${p.detail}`;
  return `no ${thing}${p.detail ? ` (${p.detail})` : ''}`;
}

/** The helpers one section lacks, in one phrase ("no helper bpf_x, bpf_y in S programs"); refusals of another kind one each. */
function helperPhrases(f: KernelFeatures): string[] {
  const out: string[] = [];
  for (const need of PROGRAM_NEEDS) {
    if (f.programs[need.section]?.ok !== true) continue; // the program type itself is reported
    const failed = need.helpers.map((h) => ({ h, p: f.helpers[helperKey(need.section, h)] ?? ({ ok: false, why: 'error', detail: 'not probed' } as const) })).filter((x) => !x.p.ok);
    const absent = failed.filter((x) => !x.p.ok && x.p.why === 'missing').map((x) => `bpf_${x.h}`);
    if (absent.length > 0) out.push(`no helper ${absent.join(', ')} in ${need.section} programs`);
    for (const x of failed) if (!x.p.ok && x.p.why !== 'missing') out.push(what(x.p, `helper bpf_${x.h} in ${need.section} programs`) ?? '');
  }
  return out;
}

const FLOOR = 'meshlane needs Linux 5.10 or later';
const CAPS = 'The installer needs CAP_SYS_ADMIN (or CAP_BPF and CAP_NET_ADMIN), and before Linux 5.11 CAP_SYS_RESOURCE or a large enough RLIMIT_MEMLOCK';

export function judgeKernel(f: KernelFeatures): KernelVerdict {
  const missing: string[] = [];
  const push = (s: string | undefined): void => {
    if (s) missing.push(s);
  };
  push(what(f.cgroup2, 'cgroup v2'));
  push(what(f.bpf, 'BPF'));
  const all: Probed[] = [f.cgroup2, f.bpf];
  if (f.bpf.ok) {
    for (const need of PROGRAM_NEEDS) {
      const p = f.programs[need.section] ?? { ok: false, why: 'error', detail: 'not probed' };
      all.push(p);
      push(what(p, `${need.section} programs`));
    }
    missing.push(...helperPhrases(f));
    all.push(...Object.values(f.helpers));
    for (const m of MAP_NEEDS) {
      const p = f.maps[m.name] ?? { ok: false, why: 'error', detail: 'not probed' };
      all.push(p);
      push(what(p, `${m.name} maps`));
    }
  }
  const ok = missing.length === 0;
  const hints: string[] = [];
  if (all.some((p) => !p.ok && p.why === 'missing' && p !== f.cgroup2)) hints.push(FLOOR);
  if (all.some((p) => !p.ok && p.why === 'denied')) hints.push(CAPS);
  const message = ok ? '' : `meshlane cannot run on this kernel (Linux ${f.release}): ${missing.join('; ')}${hints.length ? `. ${hints.join('; ')}` : ''}`;
  const without = ok ? OPTIONAL_NEEDS.filter((o) => f.optional[o.name]?.ok !== true).map((o) => o.without) : [];
  return { ok, missing, message, without };
}
