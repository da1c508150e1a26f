// cgroup v2 helpers: find the cgroup2 mount, make and remove subtrees, read
// cgroup ids and memberships. Processes are only ever ended by PID, and only
// those found inside a subtree the caller made.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { cgroupId, findCgroup2Mount } from '../../src/sys/fsinfo.js';
import { errnoOf } from '../../src/describe-error.js';

/**
 * Where cgroup2 is mounted: the same choice the installer and the plugin make
 * (src/sys/fsinfo.ts), so a sandbox node sits on the hierarchy meshlane attaches
 * to. Throws when there is none.
 */
export function cgroup2Mount(mounts?: string): string {
  const m = findCgroup2Mount(mounts);
  if (m === undefined) throw new Error('no cgroup2 mount in /proc/mounts: meshlane needs cgroup v2 (e.g. mount -t cgroup2 none /sys/fs/cgroup/unified)');
  return m;
}

/** The cgroup id the kernel uses (the inode number of the directory), as the product reads it. */
export { cgroupId };

/** Depth below the cgroup2 root (the root is level 0), as bpf_get_current_ancestor_cgroup_id counts. */
export function cgroupLevel(mount: string, dir: string): number {
  const rel = relative(mount, dir);
  if (rel === '') return 0;
  if (rel.startsWith('..')) throw new Error(`${dir} is not below ${mount}`);
  return rel.split(sep).length;
}

/** Make a cgroup directory and its missing parents (each one a cgroup). */
export function makeCgroup(dir: string): string {
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** The PIDs in one cgroup (not its children). */
export function cgroupProcs(dir: string): number[] {
  try {
    return readFileSync(join(dir, 'cgroup.procs'), 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map(Number);
  } catch {
    return [];
  }
}

/** Every cgroup directory of the subtree, deepest first (the root last). */
export function subtreeDeepestFirst(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string, depth: number): void => {
    if (depth > 32) throw new Error(`cgroup tree under ${root} is deeper than 32 levels`);
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) if (e.isDirectory()) walk(join(dir, e.name), depth + 1);
    out.push(dir);
  };
  walk(root, 0);
  return out;
}

/** PIDs anywhere in the subtree. */
export function subtreeProcs(root: string): number[] {
  return subtreeDeepestFirst(root).flatMap(cgroupProcs);
}

/** The cgroup v2 path ("0::" line) of a process, relative to the cgroup2 root, e.g. "/pfx/kubepods/...". */
export function processCgroup(pid: number): string | undefined {
  try {
    const line = readFileSync(`/proc/${pid}/cgroup`, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('0::'));
    return line?.slice(3);
  } catch {
    return undefined;
  }
}

function killPid(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/**
 * Remove a cgroup subtree: SIGKILL each process found in it (by PID), then
 * rmdir bottom-up; repeated a bounded number of times while processes exit.
 */
export async function removeCgroupTree(root: string, timeoutMs = 5000): Promise<void> {
  if (!existsSync(root)) return;
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (let round = 0; round < 1000; round++) {
    for (const pid of subtreeProcs(root)) killPid(pid);
    lastErr = undefined;
    for (const dir of subtreeDeepestFirst(root)) {
      try {
        rmdirSync(dir);
      } catch (err) {
        if (errnoOf(err) !== 'ENOENT') lastErr = err;
      }
    }
    if (!existsSync(root)) return;
    if (Date.now() > deadline) break;
    await sleep(20);
  }
  const left = subtreeProcs(root);
  throw new Error(
    `could not remove cgroup ${root}: ${lastErr instanceof Error ? lastErr.message : 'still present'}` +
      (left.length > 0 ? ` (processes still inside: ${left.join(', ')})` : ''),
  );
}
