// What the filesystem says about the kernel's special mounts.
import { readFileSync, statfsSync, statSync } from 'node:fs';
import { isSystemError } from '../describe-error.js';

export const BPF_FS_MAGIC = 0xcafe4a11;
export const CGROUP2_SUPER_MAGIC = 0x63677270;

export function fsMagic(path: string): number | undefined {
  try {
    return Number(statfsSync(path).type);
  } catch (err) {
    if (!isSystemError(err)) throw err;
    return undefined;
  }
}

export function isBpffs(path: string): boolean {
  return fsMagic(path) === BPF_FS_MAGIC;
}

export function isCgroup2(path: string): boolean {
  return fsMagic(path) === CGROUP2_SUPER_MAGIC;
}

/** Mount points of a filesystem type, from /proc/self/mounts (octal escapes decoded). */
export function mountsOfType(fstype: string, mountsText = readFileSync('/proc/self/mounts', 'utf8')): string[] {
  const out: string[] = [];
  for (const line of mountsText.split('\n')) {
    const f = line.split(' ');
    if (f[2] === fstype && f[1]) out.push(f[1].replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
  }
  return out;
}

/** The cgroup v2 mount: /sys/fs/cgroup on a unified host, /sys/fs/cgroup/unified on a hybrid one. */
export function findCgroup2Mount(mountsText?: string): string | undefined {
  const mounts = mountsOfType('cgroup2', mountsText);
  return mounts.find((m) => m === '/sys/fs/cgroup') ?? mounts.find((m) => m === '/sys/fs/cgroup/unified') ?? mounts[0];
}

/** A cgroup v2 directory's id, as the kernel's bpf_get_current_cgroup_id() reports it: its inode number. */
export function cgroupId(dir: string): bigint {
  return statSync(dir, { bigint: true }).ino;
}
