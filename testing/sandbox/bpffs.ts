// bpffs: make sure it is mounted at /sys/fs/bpf, and make or remove one pin dir.
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';

export const BPFFS = '/sys/fs/bpf';

export function bpffsMounted(at = BPFFS, mounts = readFileSync('/proc/mounts', 'utf8')): boolean {
  return mounts.split('\n').some((l) => {
    const [, dir, fstype] = l.split(' ');
    return dir === at && fstype === 'bpf';
  });
}

/** Mount bpffs at /sys/fs/bpf when it is not (left mounted afterwards, as on a real node). */
export async function ensureBpffs(): Promise<string> {
  if (bpffsMounted()) return BPFFS;
  const r = await execa('mount', ['-t', 'bpf', 'bpf', BPFFS], { reject: false });
  if (r.exitCode !== 0 || !bpffsMounted()) {
    throw new Error(`could not mount bpffs at ${BPFFS}: ${r.stderr.trim() || `exit ${r.exitCode}`}`);
  }
  return BPFFS;
}

export function pinDirPath(dirName: string): string {
  return join(BPFFS, dirName);
}

export function makePinDir(dirName: string): string {
  const dir = pinDirPath(dirName);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

/** rm -r of the pin dir: unpinning is how pinned maps, programs and links are released. */
export function removePinDir(dirName: string): void {
  if (!bpffsMounted()) return;
  rmSync(pinDirPath(dirName), { recursive: true, force: true });
}
