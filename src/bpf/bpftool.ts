// bpftool, the kernel's own BPF tool, as a typed API. Every BPF syscall meshlane
// makes goes through here: load, pin, attach, detach, map reads and writes.
// Many map writes go to one bpftool process (`batch file -`): about 1 ms for the
// process instead of 1 ms per command.
import { CommandError, run } from '../sys/exec.js';

export const BPFTOOL = process.env['MESHLANE_BPFTOOL'] ?? 'bpftool';

export interface ProgInfo {
  id: number;
  type: string;
  name?: string;
  tag: string;
  map_ids?: number[];
}

export interface MapInfo {
  id: number;
  type: string;
  name?: string;
  bytes_key: number;
  bytes_value: number;
  max_entries: number;
}

export interface CgroupAttachment {
  id: number;
  attach_type: string;
  attach_flags?: string;
  name?: string;
}

export interface MapEntry {
  key: Uint8Array;
  value: Uint8Array;
}

export interface PercpuMapEntry {
  key: Uint8Array;
  values: Uint8Array[];
}

export async function bpftool(args: readonly string[], input?: string): Promise<string> {
  const r = await run(BPFTOOL, args, input === undefined ? {} : { input });
  return r.stdout;
}

async function bpftoolJson<T>(args: readonly string[]): Promise<T> {
  const out = await bpftool(['-j', ...args]);
  // Some listings (cgroup show of a cgroup with nothing attached) print nothing at all.
  if (out.trim() === '') return [] as T;
  try {
    return JSON.parse(out) as T;
  } catch {
    throw new Error(`bpftool ${args.join(' ')} printed no JSON: ${out.slice(0, 200)}`);
  }
}

export function toHexArgs(bytes: Uint8Array): string[] {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0'));
}

function fromHexList(list: unknown): Uint8Array {
  if (!Array.isArray(list)) throw new Error('bpftool: expected a list of hex bytes');
  return Uint8Array.from(list.map((h) => parseInt(String(h), 16)));
}

export const progShow = (pinned: string): Promise<ProgInfo> => bpftoolJson<ProgInfo>(['prog', 'show', 'pinned', pinned]);
export const mapShow = (pinned: string): Promise<MapInfo> => bpftoolJson<MapInfo>(['map', 'show', 'pinned', pinned]);
export const cgroupShow = (cgroup: string): Promise<CgroupAttachment[]> => bpftoolJson<CgroupAttachment[]>(['cgroup', 'show', cgroup]);

export async function mapDump(pinned: string): Promise<MapEntry[]> {
  const rows = await bpftoolJson<Array<Record<string, unknown>>>(['map', 'dump', 'pinned', pinned]);
  return rows.map((r) => ({ key: fromHexList(r['key']), value: fromHexList(r['value']) }));
}

/** How many entries a map holds (any map type). */
export async function mapCount(pinned: string): Promise<number> {
  return (await bpftoolJson<unknown[]>(['map', 'dump', 'pinned', pinned])).length;
}

export async function percpuMapDump(pinned: string): Promise<PercpuMapEntry[]> {
  const rows = await bpftoolJson<Array<Record<string, unknown>>>(['map', 'dump', 'pinned', pinned]);
  return rows.map((r) => ({
    key: fromHexList(r['key']),
    values: (r['values'] as Array<Record<string, unknown>>).map((v) => fromHexList(v['value'])),
  }));
}

export async function mapLookup(pinned: string, key: Uint8Array): Promise<Uint8Array | undefined> {
  try {
    const row = await bpftoolJson<Record<string, unknown>>(['map', 'lookup', 'pinned', pinned, 'key', 'hex', ...toHexArgs(key)]);
    return fromHexList(row['value']);
  } catch (err) {
    // A missing key: bpftool -j prints `null` and exits non-zero. A missing map is an error.
    if (err instanceof CommandError && err.stdout.trim() === 'null') return undefined;
    throw err;
  }
}

/** One map write or delete, as a line of `bpftool batch`. */
export type MapOp =
  | { op: 'update'; map: string; key: Uint8Array; value: Uint8Array; flag?: 'any' | 'exist' | 'noexist' }
  | { op: 'delete'; map: string; key: Uint8Array };

function batchLine(op: MapOp): string {
  if (/\s/.test(op.map)) throw new Error(`map path with white space: ${JSON.stringify(op.map)}`);
  const key = ['key', 'hex', ...toHexArgs(op.key)];
  if (op.op === 'delete') return ['map', 'delete', 'pinned', op.map, ...key].join(' ');
  return ['map', 'update', 'pinned', op.map, ...key, 'value', 'hex', ...toHexArgs(op.value), op.flag ?? 'any'].join(' ');
}

/**
 * Run map writes in one bpftool process, in order. bpftool stops at the first
 * failing line; the error says which one (`bpftool batch` reports the line number).
 */
export async function mapBatch(ops: readonly MapOp[]): Promise<void> {
  if (ops.length === 0) return;
  await bpftool(['batch', 'file', '-'], `${ops.map(batchLine).join('\n')}\n`);
}
