// bpftool, the kernel's own BPF tool: what the installer loads, pins, attaches
// and detaches with it. Nothing is read back through bpftool's output (its JSON
// and its bpf(2) attrs change with its version: ./readback.ts reads in-process),
// and the CNI path never runs it. Many map writes can go to one bpftool
// process (`batch file -`): about 1 ms for the process instead of 1 ms per command.
import { run } from '../sys/exec.js';

export const BPFTOOL = process.env['MESHLANE_BPFTOOL'] ?? 'bpftool';

export async function bpftool(args: readonly string[], input?: string): Promise<string> {
  const r = await run(BPFTOOL, args, input === undefined ? {} : { input });
  return r.stdout;
}

export function toHexArgs(bytes: Uint8Array): string[] {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0'));
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
