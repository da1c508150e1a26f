// The sandbox naming scheme. Everything a sandbox node makes is named from one
// caller-given prefix, with a fixed set of suffixes, so that cleanup finds
// exactly what an earlier run made (and never another test's objects whose
// prefix merely starts the same way).
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * 3 to 11 characters: "ml" (meshlane test objects, by convention and as a
 * guard: a prefix can never be "kubepods", "system" or another cgroup a real
 * node uses), then lower-case letters and digits.
 */
export const PREFIX_RE = /^ml[a-z0-9]{1,9}$/;
/** Highest pod index: names stay within 15 characters (IFNAMSIZ - 1). */
export const MAX_POD_INDEX = 250;

export function checkPrefix(prefix: string): void {
  if (!PREFIX_RE.test(prefix)) {
    throw new Error(`bad sandbox prefix '${prefix}': 3-11 characters, 'ml' then [a-z0-9] (names must fit in 15 characters)`);
  }
}

export interface SandboxNames {
  /** Netns that holds the bridge and the node side of every veth. */
  nodeNetns: string;
  bridge: string;
  /** Directory name of the node cgroup root on the cgroup2 mount, and of the pin dir on bpffs. */
  dirName: string;
  stateDir: string;
  podNetns(index: number): string;
  podVeth(index: number): string;
}

export function sandboxNames(prefix: string): SandboxNames {
  checkPrefix(prefix);
  const idx = (i: number): string => {
    if (!Number.isInteger(i) || i < 1 || i > MAX_POD_INDEX) throw new Error(`pod index ${i} out of 1..${MAX_POD_INDEX}`);
    return String(i);
  };
  return {
    nodeNetns: `${prefix}node`,
    bridge: `${prefix}br`,
    dirName: prefix,
    stateDir: join(tmpdir(), `meshlane-sandbox-${prefix}`),
    podNetns: (i) => `${prefix}p${idx(i)}`,
    podVeth: (i) => `${prefix}v${idx(i)}`,
  };
}

/** True when `name` (a netns or a link) is one this prefix's sandbox makes. */
export function isSandboxName(prefix: string, name: string): boolean {
  checkPrefix(prefix);
  if (!name.startsWith(prefix)) return false;
  return /^(node|br|p\d{1,3}|v\d{1,3})$/.test(name.slice(prefix.length));
}
