// The sandbox naming scheme. A test file picks a file prefix ("ml" + 3
// characters); each sandbox node it makes gets a run prefix: that file prefix
// plus a 3-character tag claimed for the life of the process that made it
// (runs.ts), so two test runs on one machine never share a name. Everything a
// node makes is named from its run prefix with a fixed set of suffixes, so that
// cleanup finds exactly what one run made, and never another run's objects.
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * "ml" (meshlane test objects, by convention and as a guard: a prefix can never
 * be "kubepods", "system" or another cgroup a real node uses), then 3 lower-case
 * letters or digits. Fixed length, so a run prefix is always the first 8
 * characters of a name and one run's names never parse as another's.
 */
export const FILE_PREFIX_RE = /^ml[a-z0-9]{3}$/;
/** A file prefix and a 3-character run tag. */
export const RUN_PREFIX_RE = /^ml[a-z0-9]{6}$/;
export const RUN_PREFIX_LENGTH = 8;
/** Highest pod index: names stay within 15 characters (IFNAMSIZ - 1). */
export const MAX_POD_INDEX = 250;
/** Extra names a test makes under a node's prefix: `<run prefix>x<tag>`, tag 1-6 of [a-z0-9]. */
const EXTRA_TAG_RE = /^[a-z0-9]{1,6}$/;

export function checkFilePrefix(prefix: string): void {
  if (!FILE_PREFIX_RE.test(prefix)) {
    throw new Error(`bad sandbox prefix '${prefix}': 'ml' then 3 of [a-z0-9] (a run tag of 3 more is added, and names must fit in 15 characters)`);
  }
}

export function checkPrefix(prefix: string): void {
  if (!RUN_PREFIX_RE.test(prefix)) {
    throw new Error(`bad sandbox prefix '${prefix}': a run prefix is 'ml' then 6 of [a-z0-9] (a file prefix and its run tag)`);
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
  /** A netns or link name of the test's own (a second bridge, a netns outside the node). */
  extra(tag: string): string;
}

export function stateDirOf(prefix: string): string {
  return join(tmpdir(), `meshlane-sandbox-${prefix}`);
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
    stateDir: stateDirOf(prefix),
    podNetns: (i) => `${prefix}p${idx(i)}`,
    podVeth: (i) => `${prefix}v${idx(i)}`,
    extra: (tag) => {
      if (!EXTRA_TAG_RE.test(tag)) throw new Error(`bad extra name tag '${tag}': 1-6 of [a-z0-9]`);
      return `${prefix}x${tag}`;
    },
  };
}

/** True when `name` (a netns or a link) is one this run prefix's sandbox makes. */
export function isSandboxName(prefix: string, name: string): boolean {
  checkPrefix(prefix);
  if (!name.startsWith(prefix)) return false;
  return /^(node|br|p\d{1,3}|v\d{1,3}|x[a-z0-9]{1,6})$/.test(name.slice(prefix.length));
}

/** The run prefix a name of the scheme belongs to, if it starts with one made from `filePrefix`. */
export function runPrefixOf(filePrefix: string, name: string): string | undefined {
  checkFilePrefix(filePrefix);
  if (!name.startsWith(filePrefix)) return undefined;
  const p = name.slice(0, RUN_PREFIX_LENGTH);
  return RUN_PREFIX_RE.test(p) && (name === p || isSandboxName(p, name)) ? p : undefined;
}
