// The bpf(2) commands meshlane makes in-process through the native module:
// open a pinned object, read and write map entries, walk a map's keys, ask the
// kernel what a map or program is and which programs sit on a cgroup hook, and
// the installer's feature probes (load a tiny program, create a tiny map).
// Each attr is packed here with the offsets of <linux/bpf.h> that every kernel
// since 5.x shares (never a field a newer kernel added: an older one refuses a
// non-zero byte it does not know); the native side copies it into a zeroed union.
import { closeSync, openSync, readFileSync } from 'node:fs';
import { native, type NativeModule } from './native.js';
import { SyscallError } from './syscall-error.js';

const CMD = {
  MAP_CREATE: 0,
  MAP_LOOKUP_ELEM: 1,
  MAP_UPDATE_ELEM: 2,
  MAP_DELETE_ELEM: 3,
  MAP_GET_NEXT_KEY: 4,
  PROG_LOAD: 5,
  OBJ_GET: 7,
  PROG_GET_FD_BY_ID: 13,
  OBJ_GET_INFO_BY_FD: 15,
  PROG_QUERY: 16,
  MAP_LOOKUP_BATCH: 24,
} as const;
const CMD_NAME: Record<number, string> = Object.fromEntries(Object.entries(CMD).map(([k, v]) => [v, `BPF_${k}`]));

export const BPF_ANY = 0;
export const BPF_NOEXIST = 1;
export const BPF_EXIST = 2;
export type UpdateFlag = 'any' | 'noexist' | 'exist';
const FLAG: Record<UpdateFlag, number> = { any: BPF_ANY, noexist: BPF_NOEXIST, exist: BPF_EXIST };

const ENOENT = 2;
const EINVAL = 22;
const ENOSPC = 28;
const ENOTSUPP = 524; // the kernel's own, for map types without batch ops

/** Map types whose values are per CPU (lookups return one value per possible CPU). */
const PERCPU_TYPES = new Set([5 /* PERCPU_HASH */, 6 /* PERCPU_ARRAY */, 10 /* LRU_PERCPU_HASH */]);

function attr(size: number): { bytes: Uint8Array; view: DataView } {
  const bytes = new Uint8Array(size);
  return { bytes, view: new DataView(bytes.buffer) };
}

function call(n: NativeModule, cmd: number, a: Uint8Array, target: string): number {
  const r = n.bpf(cmd, a);
  if (r < 0) throw new SyscallError(CMD_NAME[cmd] ?? `bpf command ${cmd}`, target, -r);
  return r;
}

function cString(s: string): Uint8Array {
  return Buffer.from(`${s}\0`, 'utf8');
}

function nameOf(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return Buffer.from(bytes.subarray(0, end < 0 ? bytes.length : end)).toString('utf8');
}

/** A pinned map or program as an fd (BPF_OBJ_GET). */
export function objGet(path: string): number {
  const n = native();
  const p = cString(path);
  const { bytes, view } = attr(16);
  view.setBigUint64(0, n.addressOf(p), true); // pathname
  return call(n, CMD.OBJ_GET, bytes, path);
}

export interface MapInfo {
  type: number;
  id: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  name: string;
}

export interface ProgInfo {
  type: number;
  id: number;
  tag: string;
  name: string;
}

function objInfo(fd: number, size: number, target: string): DataView {
  const n = native();
  const info = new Uint8Array(size);
  const { bytes, view } = attr(16);
  view.setUint32(0, fd, true); // info.bpf_fd
  view.setUint32(4, size, true); // info.info_len
  view.setBigUint64(8, n.addressOf(info), true); // info.info
  call(n, CMD.OBJ_GET_INFO_BY_FD, bytes, target);
  return new DataView(info.buffer);
}

/** struct bpf_map_info (type, id, key_size, value_size, max_entries, map_flags, name[16]). */
export function mapInfo(fd: number, target: string): MapInfo {
  const v = objInfo(fd, 40, target);
  return {
    type: v.getUint32(0, true),
    id: v.getUint32(4, true),
    keySize: v.getUint32(8, true),
    valueSize: v.getUint32(12, true),
    maxEntries: v.getUint32(16, true),
    name: nameOf(new Uint8Array(v.buffer, 24, 16)),
  };
}

/** struct bpf_prog_info up to name[16] (at 64). */
export function progInfo(fd: number, target: string): ProgInfo {
  const v = objInfo(fd, 80, target);
  return {
    type: v.getUint32(0, true),
    id: v.getUint32(4, true),
    tag: Buffer.from(new Uint8Array(v.buffer, 8, 8)).toString('hex'),
    name: nameOf(new Uint8Array(v.buffer, 64, 16)),
  };
}

/** A program by its id (BPF_PROG_GET_FD_BY_ID), undefined when it is gone. */
export function progFdById(id: number): number | undefined {
  const n = native();
  const { bytes, view } = attr(16);
  view.setUint32(0, id, true); // prog_id
  const r = n.bpf(CMD.PROG_GET_FD_BY_ID, bytes);
  if (r === -ENOENT) return undefined;
  if (r < 0) throw new SyscallError('BPF_PROG_GET_FD_BY_ID', `program id ${id}`, -r);
  return r;
}

/**
 * The ids of the programs attached directly to a cgroup on one hook
 * (BPF_PROG_QUERY, query_flags 0), in the order the kernel runs them. The attr
 * is the layout every kernel since 4.15 reads (target_fd, attach_type,
 * query_flags, attach_flags, prog_ids, prog_cnt): 6.0's prog_attach_flags
 * stays zero, so a 5.10 kernel answers (bpftool 7.1 sets it, and 5.10 refuses).
 */
export function progQuery(cgroupDir: string, attachType: number): number[] {
  const n = native();
  const fd = openSync(cgroupDir, 'r');
  try {
    for (let room = 16; ; room *= 4) {
      const ids = new Uint8Array(room * 4);
      const { bytes, view } = attr(32);
      view.setUint32(0, fd, true); // query.target_fd
      view.setUint32(4, attachType, true); // query.attach_type
      view.setBigUint64(16, n.addressOf(ids), true); // query.prog_ids
      view.setUint32(24, room, true); // query.prog_cnt
      const r = n.bpf(CMD.PROG_QUERY, bytes);
      const count = view.getUint32(24, true);
      if (r === -ENOSPC && room < 65536) continue; // more programs than room: the kernel says how many
      if (r < 0) throw new SyscallError('BPF_PROG_QUERY', `${cgroupDir} (attach type ${attachType})`, -r);
      const out: number[] = [];
      const idView = new DataView(ids.buffer);
      for (let i = 0; i < Math.min(count, room); i++) out.push(idView.getUint32(i * 4, true));
      return out;
    }
  } finally {
    closeSync(fd);
  }
}

/** One instruction of a probe program (struct bpf_insn). */
export interface BpfInsn {
  code: number;
  dst?: number;
  src?: number;
  off?: number;
  imm?: number;
}

export interface ProbeLoad {
  /** 0 when the kernel took the program, else errno. */
  errno: number;
  /** The verifier's log (log level 1), when the load failed. */
  log: string;
}

/**
 * Load a probe program and close it at once: does this kernel take a program
 * of `progType` (with `expectedAttachType`) made of `insns`? The verifier's
 * log comes back when it refused (libbpf's feature probes read it the same way).
 */
export function probeProgLoad(progType: number, expectedAttachType: number, insns: readonly BpfInsn[]): ProbeLoad {
  const n = native();
  const code = new Uint8Array(insns.length * 8);
  const cv = new DataView(code.buffer);
  insns.forEach((insn, i) => {
    cv.setUint8(i * 8, insn.code);
    cv.setUint8(i * 8 + 1, ((insn.src ?? 0) << 4) | (insn.dst ?? 0));
    cv.setInt16(i * 8 + 2, insn.off ?? 0, true);
    cv.setInt32(i * 8 + 4, insn.imm ?? 0, true);
  });
  const license = cString('GPL');
  const log = new Uint8Array(4096);
  const { bytes, view } = attr(72);
  view.setUint32(0, progType, true); // prog_type
  view.setUint32(4, insns.length, true); // insn_cnt
  view.setBigUint64(8, n.addressOf(code), true); // insns
  view.setBigUint64(16, n.addressOf(license), true); // license
  view.setUint32(24, 1, true); // log_level
  view.setUint32(28, log.length, true); // log_size
  view.setBigUint64(32, n.addressOf(log), true); // log_buf
  view.setUint32(68, expectedAttachType, true); // expected_attach_type
  const r = n.bpf(CMD.PROG_LOAD, bytes);
  if (r >= 0) {
    closeSync(r);
    return { errno: 0, log: '' };
  }
  return { errno: -r, log: nameOf(log) };
}

/** Create a map of `mapType` and close it at once: 0 when the kernel can, else errno. */
export function probeMapCreate(mapType: number, keySize: number, valueSize: number, maxEntries: number): number {
  const n = native();
  const { bytes, view } = attr(20);
  view.setUint32(0, mapType, true);
  view.setUint32(4, keySize, true);
  view.setUint32(8, valueSize, true);
  view.setUint32(12, maxEntries, true);
  const r = n.bpf(CMD.MAP_CREATE, bytes);
  if (r >= 0) {
    closeSync(r);
    return 0;
  }
  return -r;
}

let possibleCpus: number | undefined;
/** How many values a per-CPU map returns: the possible CPUs (`0-3,8-11` style list). */
export function possibleCpuCount(): number {
  if (possibleCpus === undefined) {
    let count = 0;
    for (const part of readFileSync('/sys/devices/system/cpu/possible', 'utf8').trim().split(',')) {
      const [a, b] = part.split('-').map(Number);
      count += b === undefined ? 1 : b - (a ?? 0) + 1;
    }
    possibleCpus = Math.max(1, count);
  }
  return possibleCpus;
}

/**
 * A pinned map, opened once: every key and value is checked against the
 * sizes the kernel reports for it, so a wrong layout is an error and never a
 * partial write. `name` is what errors call it.
 */
export class BpfMap {
  readonly info: MapInfo;
  /** Bytes one lookup returns: value_size, or value_size rounded to 8 per possible CPU. */
  readonly valueBytes: number;
  readonly percpu: boolean;
  private fd: number;

  private constructor(
    readonly path: string,
    fd: number,
  ) {
    this.fd = fd;
    try {
      this.info = mapInfo(fd, path);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    this.percpu = PERCPU_TYPES.has(this.info.type);
    this.valueBytes = this.percpu ? Math.ceil(this.info.valueSize / 8) * 8 * possibleCpuCount() : this.info.valueSize;
  }

  static open(path: string): BpfMap {
    return new BpfMap(path, objGet(path));
  }

  private keyAttr(key: Uint8Array | undefined, op: string): { n: NativeModule; bytes: Uint8Array; view: DataView } {
    if (key && key.length !== this.info.keySize) {
      throw new RangeError(`${op} on ${this.path}: a key of ${key.length} bytes, the map's keys are ${this.info.keySize}`);
    }
    const n = native();
    const { bytes, view } = attr(32);
    view.setUint32(0, this.fd, true); // map_fd
    if (key) view.setBigUint64(8, n.addressOf(key), true); // key
    return { n, bytes, view };
  }

  /** The value under `key`, undefined when there is none. */
  lookup(key: Uint8Array): Uint8Array | undefined {
    const { n, bytes, view } = this.keyAttr(key, 'BPF_MAP_LOOKUP_ELEM');
    const value = new Uint8Array(this.valueBytes);
    view.setBigUint64(16, n.addressOf(value), true); // value
    const r = n.bpf(CMD.MAP_LOOKUP_ELEM, bytes);
    if (r === -ENOENT) return undefined;
    if (r < 0) throw new SyscallError('BPF_MAP_LOOKUP_ELEM', this.path, -r);
    return value;
  }

  update(key: Uint8Array, value: Uint8Array, flag: UpdateFlag = 'any'): void {
    if (value.length !== this.valueBytes) {
      throw new RangeError(`BPF_MAP_UPDATE_ELEM on ${this.path}: a value of ${value.length} bytes, the map's values are ${this.valueBytes}`);
    }
    const { n, bytes, view } = this.keyAttr(key, 'BPF_MAP_UPDATE_ELEM');
    view.setBigUint64(16, n.addressOf(value), true); // value
    view.setBigUint64(24, BigInt(FLAG[flag]), true); // flags
    call(n, CMD.MAP_UPDATE_ELEM, bytes, this.path);
  }

  /** Remove `key`; false when it was not there. */
  delete(key: Uint8Array): boolean {
    const { n, bytes } = this.keyAttr(key, 'BPF_MAP_DELETE_ELEM');
    const r = n.bpf(CMD.MAP_DELETE_ELEM, bytes);
    if (r === -ENOENT) return false;
    if (r < 0) throw new SyscallError('BPF_MAP_DELETE_ELEM', this.path, -r);
    return true;
  }

  /** The key after `key` (the first with undefined); undefined at the end. */
  nextKey(key: Uint8Array | undefined): Uint8Array | undefined {
    const { n, bytes, view } = this.keyAttr(key, 'BPF_MAP_GET_NEXT_KEY');
    const next = new Uint8Array(this.info.keySize);
    view.setBigUint64(16, n.addressOf(next), true); // next_key
    const r = n.bpf(CMD.MAP_GET_NEXT_KEY, bytes);
    if (r === -ENOENT) return undefined;
    if (r < 0) throw new SyscallError('BPF_MAP_GET_NEXT_KEY', this.path, -r);
    return next;
  }

  /** Every key (a hash map may change under the walk: entries added meanwhile may be missed). */
  keys(): Uint8Array[] {
    const out: Uint8Array[] = [];
    const limit = Math.max(this.info.maxEntries, 1) * 2;
    for (let k = this.nextKey(undefined); k && out.length < limit; k = this.nextKey(k)) out.push(k);
    return out;
  }

  /**
   * Every entry present. One BPF_MAP_LOOKUP_BATCH call reads them all (kernel
   * 5.6+); where the map type or kernel has none, keys are walked one by one
   * (keys that vanish during the walk are skipped).
   */
  entries(): Array<{ key: Uint8Array; value: Uint8Array }> {
    const batch = this.readAll();
    if (batch) {
      const { count, keys, values } = batch;
      const { keySize } = this.info;
      const out: Array<{ key: Uint8Array; value: Uint8Array }> = [];
      for (let i = 0; i < count; i++) {
        out.push({ key: keys.slice(i * keySize, (i + 1) * keySize), value: values.slice(i * this.valueBytes, (i + 1) * this.valueBytes) });
      }
      return out;
    }
    const out: Array<{ key: Uint8Array; value: Uint8Array }> = [];
    for (const key of this.keys()) {
      const value = this.lookup(key);
      if (value) out.push({ key, value });
    }
    return out;
  }

  /**
   * Every entry present, packed: entry i's key at i * keySize of `keys`, its
   * value at i * valueBytes of `values` (no per-entry copies: a DEL with
   * thousands of pods registered searches these buffers natively). undefined:
   * no batch lookup for this map type or kernel (then walk `keys()`).
   */
  readAll(): { count: number; keys: Uint8Array; values: Uint8Array } | undefined {
    if (this.percpu) return undefined;
    const n = native();
    const { keySize } = this.info;
    // A hash map never holds more than max_entries; room for twice that covers
    // entries that move buckets between two calls of one read.
    const capacity = 2 * Math.max(1, this.info.maxEntries);
    const keys = new Uint8Array(capacity * keySize);
    const values = new Uint8Array(capacity * this.valueBytes);
    // The position between calls: opaque to us, a bucket number for hash maps (at least 4 bytes; key-sized is enough).
    const tokens = [new Uint8Array(Math.max(8, keySize)), new Uint8Array(Math.max(8, keySize))];
    let count = 0;
    for (let call = 0; ; call++) {
      const { bytes, view } = attr(56);
      if (call > 0) view.setBigUint64(0, n.addressOf(tokens[(call - 1) % 2] as Uint8Array), true); // in_batch
      view.setBigUint64(8, n.addressOf(tokens[call % 2] as Uint8Array), true); // out_batch
      view.setBigUint64(16, n.addressOf(keys.subarray(count * keySize)), true);
      view.setBigUint64(24, n.addressOf(values.subarray(count * this.valueBytes)), true);
      view.setUint32(32, capacity - count, true); // count: room left
      view.setUint32(36, this.fd, true); // map_fd
      const r = n.bpf(CMD.MAP_LOOKUP_BATCH, bytes);
      if (r < 0 && r !== -ENOENT) {
        if (call === 0 && (r === -EINVAL || r === -ENOTSUPP)) return undefined;
        throw new SyscallError('BPF_MAP_LOOKUP_BATCH', this.path, -r);
      }
      count += view.getUint32(32, true);
      if (r === -ENOENT) return { count, keys, values };
      if (count >= capacity) throw new SyscallError('BPF_MAP_LOOKUP_BATCH', this.path, ENOSPC, 'the map grew faster than it could be read: try again');
    }
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

let memlockRaised = false;
/**
 * Lift RLIMIT_MEMLOCK for this process (once), as libbpf does before making
 * maps or programs: before Linux 5.11 their memory is charged to the user's
 * locked memory, so with the datapath's maps loaded a probe's tiny map or
 * program fails with EPERM under the default limit. A failure (no
 * CAP_SYS_RESOURCE) is left for the calls that follow to report.
 */
export function raiseMemlockLimit(): void {
  if (memlockRaised) return;
  memlockRaised = true;
  native().raiseMemlock();
}
