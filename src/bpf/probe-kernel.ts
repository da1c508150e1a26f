// Probe the running kernel for what the datapath needs (./kernel-probe.ts has
// the list and the verdict), in-process: tiny programs loaded with
// BPF_PROG_LOAD (one per program type and attach type, one per helper and
// section, read the way libbpf's libbpf_probe_bpf_helper reads the verifier's
// log), tiny maps created with BPF_MAP_CREATE, and the cgroup v2 mount. About
// 60 loads of 2-instruction programs: a few milliseconds, nothing left behind.
import { existsSync } from 'node:fs';
import { release } from 'node:os';
import { probeMapCreate, probeProgLoad, raiseMemlockLimit, type BpfInsn } from '../sys/bpf.js';
import { isCgroup2 } from '../sys/fsinfo.js';
import { errnoName } from '../sys/syscall-error.js';
import { NativeModuleError } from '../sys/native.js';
import { HELPER, MAP_NEEDS, OPTIONAL_NEEDS, PROGRAM_NEEDS, PROG_TYPE, helperKey, type KernelFeatures, type Probed } from './kernel-probe.js';

const EPERM = 1;
const ENOSYS = 38;

const MOV_R0_1: BpfInsn = { code: 0xb7, dst: 0, imm: 1 }; // r0 = 1 (allow / SK_PASS / TC_ACT_... anything valid)
const EXIT: BpfInsn = { code: 0x95 };
const call = (helper: number): BpfInsn => ({ code: 0x85, imm: helper });

/** The verifier lines that mean "this program type has no such helper" (older and newer kernels' words). */
const NO_HELPER = /(invalid func |unknown func |program of this type cannot use helper )[^\n]*/;

/** EPERM is the kernel refusing the caller; EACCES is the verifier refusing the program (an argument not set up, say). */
function denied(errno: number): boolean {
  return errno === EPERM;
}

function errnoText(errno: number): string {
  const e = errnoName(errno);
  return `${e.name}: ${e.text}`;
}

function fromLoad(errno: number, log: string): Probed {
  if (errno === 0) return { ok: true };
  if (denied(errno)) return { ok: false, why: 'denied', detail: errnoText(errno) };
  if (errno === ENOSYS) return { ok: false, why: 'missing', detail: 'the kernel has no bpf system call (CONFIG_BPF_SYSCALL)' };
  // EINVAL: the kernel does not know the program type or attach type.
  const line = log.trim().split('\n').pop() ?? '';
  return { ok: false, why: 'missing', detail: line ? `${errnoText(errno)}; verifier: ${line}` : errnoText(errno) };
}

/** May a program of this type call `helper`? Loaded with a log: only the verifier's "no such helper" words mean no. */
function probeHelper(progType: number, attachType: number, helper: number): Probed {
  const r = probeProgLoad(progType, attachType, [call(helper), MOV_R0_1, EXIT]);
  if (r.errno === 0) return { ok: true };
  const m = NO_HELPER.exec(r.log);
  if (m) return { ok: false, why: 'missing', detail: m[0].trim() };
  if (denied(r.errno)) return { ok: false, why: 'denied', detail: errnoText(r.errno) };
  // Refused for another reason (the helper's arguments are not set up): the helper itself is known.
  return { ok: true };
}

export interface ProbeOptions {
  /** The cgroup v2 directory the programs would attach to; undefined when no cgroup2 mount was found. */
  cgroupDir: string | undefined;
}

export function probeKernel(opts: ProbeOptions): KernelFeatures {
  const f: KernelFeatures = {
    release: release(),
    bpf: { ok: true },
    cgroup2: cgroup2(opts.cgroupDir),
    programs: {},
    helpers: {},
    maps: {},
    optional: {},
  };
  let base;
  try {
    raiseMemlockLimit(); // a node with the datapath loaded, before 5.11: else EPERM for every tiny map and program
    base = probeProgLoad(PROG_TYPE.SOCKET_FILTER, 0, [MOV_R0_1, EXIT]);
  } catch (err) {
    if (!(err instanceof NativeModuleError)) throw err;
    f.bpf = { ok: false, why: 'error', detail: err.message };
    return f;
  }
  f.bpf = fromLoad(base.errno, base.log);
  if (!f.bpf.ok) return f;
  for (const need of PROGRAM_NEEDS) {
    const r = probeProgLoad(need.progType, need.attachType, [MOV_R0_1, EXIT]);
    const p = fromLoad(r.errno, r.log);
    f.programs[need.section] = p;
    if (!p.ok) continue;
    for (const h of need.helpers) f.helpers[helperKey(need.section, h)] = probeHelper(need.progType, need.attachType, HELPER[h]);
  }
  for (const o of OPTIONAL_NEEDS) {
    const results = o.sections.map((s) => {
      const need = PROGRAM_NEEDS.find((n) => n.section === s);
      return need && f.programs[s]?.ok ? probeHelper(need.progType, need.attachType, HELPER[o.helper]) : ({ ok: false, why: 'missing', detail: `no ${s} programs` } as const);
    });
    f.optional[o.name] = results.find((r) => !r.ok) ?? { ok: true };
  }
  for (const m of MAP_NEEDS) {
    const errno = probeMapCreate(m.type, m.keySize, m.valueSize, 1);
    f.maps[m.name] = errno === 0 ? { ok: true } : fromLoad(errno, '');
  }
  return f;
}

function cgroup2(dir: string | undefined): Probed & { dir?: string } {
  if (dir === undefined) return { ok: false, why: 'missing', detail: 'no cgroup2 mount in /proc/mounts; mount it, or pass --cgroup-root' };
  if (!existsSync(dir)) return { ok: false, why: 'missing', detail: `${dir} does not exist`, dir };
  if (!isCgroup2(dir)) return { ok: false, why: 'missing', detail: `${dir} is not a cgroup v2 directory (a hybrid host has it at /sys/fs/cgroup/unified)`, dir };
  return { ok: true, dir };
}
