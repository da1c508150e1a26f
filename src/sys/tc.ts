// tc (clsact) filters on a pod's interface inside its netns: where the
// cross-node inbound programs (ml_tc_ingress / ml_tc_egress) attach.
//
// Every command runs as `nsenter --net=<netns path> -- tc ...` (not `ip netns
// exec`, which mounts a fresh /sys for the command and so hides the bpffs
// pins). The filters use one fixed preference and handle, so they are found
// and removed without guessing, and `tc filter replace` makes a repeated ADD
// idempotent. The clsact qdisc is added only when it is missing, and removed at
// detach only when we added it and no other filter is left on it.
import { existsSync } from 'node:fs';
import { CommandError, run } from './exec.js';

/** Preference of meshlane's filters on both hooks (the inbound listener port, for recognition). */
export const TC_PREF = 15006;
export const TC_HANDLE = '0x1';
const TIMEOUT_MS = 10_000;

export type TcDirection = 'ingress' | 'egress';

export interface TcAttachSpec {
  /** Path of the pod's netns (CNI_NETNS), e.g. /var/run/netns/x or /proc/<pid>/ns/net. */
  netnsPath: string;
  /** Interface inside the netns (CNI_IFNAME), e.g. eth0. */
  ifname: string;
  /** Pinned program per direction. */
  programs: Record<TcDirection, string>;
}

export interface TcAttachResult {
  /** true when this call created the clsact qdisc (then detach removes it). */
  addedClsact: boolean;
}

export interface TcFilter {
  direction: TcDirection;
  pref: number;
  handle?: string;
  /** The program's name as the kernel reports it (e.g. ml_tc_ingress). */
  progName?: string;
  progId?: number;
}

export class TcError extends Error {
  override name = 'TcError';
}

function tc(netnsPath: string, args: readonly string[]): Promise<{ stdout: string }> {
  return run('nsenter', [`--net=${netnsPath}`, '--', 'tc', ...args], { timeoutMs: TIMEOUT_MS });
}

/** Several tc commands in one process (`tc -batch`): a CNI call pays for every process it starts. */
function tcBatch(netnsPath: string, commands: ReadonlyArray<readonly string[]>): Promise<{ stdout: string }> {
  for (const c of commands) {
    for (const a of c) if (a === '' || /\s/.test(a)) throw new TcError(`tc batch argument with white space: ${JSON.stringify(a)}`);
  }
  return run('nsenter', [`--net=${netnsPath}`, '--', 'tc', '-batch', '-'], {
    timeoutMs: TIMEOUT_MS,
    input: `${commands.map((c) => c.join(' ')).join('\n')}\n`,
  });
}

const IFNAME_RE = /^[^\s/]{1,15}$/;

function checkSpec(netnsPath: string, ifname: string): void {
  if (!netnsPath.startsWith('/')) throw new TcError(`netns path must be absolute, got '${netnsPath}'`);
  if (!IFNAME_RE.test(ifname)) throw new TcError(`bad interface name '${ifname}'`);
}

interface JsonQdisc {
  kind?: string;
}

interface JsonFilter {
  pref?: number;
  kind?: string;
  options?: { handle?: string; prog?: { id?: number; name?: string } };
}

function parseJson<T>(text: string): T[] {
  const trimmed = text.trim();
  if (trimmed === '') return [];
  const v: unknown = JSON.parse(trimmed);
  return Array.isArray(v) ? (v as T[]) : [];
}

export async function hasClsact(netnsPath: string, ifname: string): Promise<boolean> {
  checkSpec(netnsPath, ifname);
  const { stdout } = await tc(netnsPath, ['-j', 'qdisc', 'show', 'dev', ifname]);
  return parseJson<JsonQdisc>(stdout).some((q) => q.kind === 'clsact');
}

/** Every filter on one hook of the interface (empty without clsact). */
export async function listFilters(netnsPath: string, ifname: string, direction: TcDirection): Promise<TcFilter[]> {
  checkSpec(netnsPath, ifname);
  if (!(await hasClsact(netnsPath, ifname))) return [];
  return showFilters(netnsPath, ifname, direction);
}

/** The filters of one hook, the clsact qdisc known to be there. */
async function showFilters(netnsPath: string, ifname: string, direction: TcDirection): Promise<TcFilter[]> {
  const { stdout } = await tc(netnsPath, ['-j', 'filter', 'show', 'dev', ifname, direction]);
  const out: TcFilter[] = [];
  for (const f of parseJson<JsonFilter>(stdout)) {
    // tc prints one line per preference (no options) and one per filter handle.
    if (!f.options?.handle) continue;
    const entry: TcFilter = { direction, pref: f.pref ?? 0, handle: f.options.handle };
    if (f.options.prog?.name !== undefined) entry.progName = f.options.prog.name;
    if (f.options.prog?.id !== undefined) entry.progId = f.options.prog.id;
    out.push(entry);
  }
  return out;
}

/**
 * Attach (or replace) meshlane's filters on both hooks. Idempotent. On failure
 * nothing of this call stays attached.
 */
export async function attachTc(spec: TcAttachSpec): Promise<TcAttachResult> {
  checkSpec(spec.netnsPath, spec.ifname);
  for (const d of ['ingress', 'egress'] as const) {
    if (!existsSync(spec.programs[d])) throw new TcError(`program pin ${spec.programs[d]} is missing: is the datapath installed?`);
  }
  if (!existsSync(spec.netnsPath)) throw new TcError(`netns ${spec.netnsPath} does not exist`);
  let addedClsact = false;
  try {
    const commands: string[][] = [];
    if (!(await hasClsact(spec.netnsPath, spec.ifname))) {
      commands.push(['qdisc', 'add', 'dev', spec.ifname, 'clsact']);
      addedClsact = true;
    }
    // Egress first: replies are restored before any connection is steered.
    for (const d of ['egress', 'ingress'] as const) {
      commands.push(['filter', 'replace', 'dev', spec.ifname, d, 'pref', String(TC_PREF), 'handle', TC_HANDLE, 'bpf', 'direct-action', 'pinned', spec.programs[d]]);
    }
    await tcBatch(spec.netnsPath, commands);
  } catch (err) {
    await detachTc({ netnsPath: spec.netnsPath, ifname: spec.ifname, removeClsact: addedClsact }).catch(() => undefined);
    throw new TcError(`attaching the inbound programs to ${spec.ifname} in ${spec.netnsPath} failed: ${(err as Error).message}`, { cause: err });
  }
  return { addedClsact };
}

export interface TcDetachSpec {
  netnsPath: string;
  ifname: string;
  /** Remove the clsact qdisc too (when ADD added it), if no other filter is left on it. */
  removeClsact: boolean;
}

/**
 * Remove meshlane's filters (and the clsact qdisc if asked and empty). A
 * missing netns, interface, qdisc or filter is not an error: it is gone
 * already. Returns what was removed.
 */
export async function detachTc(spec: TcDetachSpec): Promise<string[]> {
  checkSpec(spec.netnsPath, spec.ifname);
  const removed: string[] = [];
  if (!existsSync(spec.netnsPath)) return removed;
  let clsact: boolean;
  try {
    clsact = await hasClsact(spec.netnsPath, spec.ifname);
  } catch (err) {
    // The interface (or the netns behind the path) is gone: nothing attached remains.
    if (err instanceof CommandError && /Cannot find device|No such file|Invalid argument|does not exist/i.test(`${err.stderr} ${err.message}`)) return removed;
    throw err;
  }
  if (!clsact) return removed;
  const filters = [...(await showFilters(spec.netnsPath, spec.ifname, 'ingress')), ...(await showFilters(spec.netnsPath, spec.ifname, 'egress'))];
  const ours = filters.filter((f) => f.pref === TC_PREF);
  const describe = (d: TcDirection): string => `${d}:${ours.filter((f) => f.direction === d).map((f) => f.progName ?? f.handle).join(',')}`;
  const directions = (['ingress', 'egress'] as const).filter((d) => ours.some((f) => f.direction === d));
  if (spec.removeClsact && filters.every((f) => f.pref === TC_PREF)) {
    // We added the qdisc and only our filters are on it: removing it removes them.
    await tc(spec.netnsPath, ['qdisc', 'del', 'dev', spec.ifname, 'clsact']);
    removed.push(...directions.map(describe), 'qdisc:clsact');
    return removed;
  }
  if (directions.length > 0) {
    await tcBatch(spec.netnsPath, directions.map((d) => ['filter', 'del', 'dev', spec.ifname, d, 'pref', String(TC_PREF)]));
    removed.push(...directions.map(describe));
  }
  return removed;
}
