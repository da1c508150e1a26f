// The installer's refusal of this node's kernel, as the plugin reads it: one
// small file in the state dir, written when the kernel probe refuses and
// removed when it passes. The plugin reads it only on the path where the
// datapath is missing (STATUS, a sidecar pod's ADD), so the refusal costs the
// common path nothing and the failure path one small read, no process.
//
// A record holds the boot it was made in: after a reboot (perhaps into another
// kernel) it no longer speaks for the kernel, and is ignored until the
// installer probes again.
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../sys/atomic-write.js';
import { mkdirp } from '../sys/mkdirp.js';
import { errnoOf } from '../describe-error.js';

const BOOT_ID = '/proc/sys/kernel/random/boot_id';
/** Bounds what the plugin reads back (a message is a few hundred bytes). */
const MAX_BYTES = 16 * 1024;

export interface KernelRefusal {
  /** The one message: the kernel and what it lacks. */
  message: string;
  /** uname's release. */
  release: string;
  bootId: string;
}

export function kernelRefusalPath(stateDir: string): string {
  return join(stateDir, 'kernel-refusal.json');
}

export function currentBootId(path = BOOT_ID): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return '';
    throw err;
  }
}

export function writeKernelRefusal(stateDir: string, refusal: KernelRefusal): void {
  mkdirp(stateDir, 0o700);
  writeFileAtomic(kernelRefusalPath(stateDir), `${JSON.stringify(refusal)}\n`, 0o644);
}

export function clearKernelRefusal(stateDir: string): void {
  rmSync(kernelRefusalPath(stateDir), { force: true });
}

/** The refusal recorded in this boot, or undefined (none, another boot's, or unreadable). */
export function readKernelRefusal(stateDir: string, bootId: string = currentBootId()): KernelRefusal | undefined {
  let text: string;
  try {
    text = readFileSync(kernelRefusalPath(stateDir), 'utf8');
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EACCES') return undefined;
    throw err;
  }
  if (text.length > MAX_BYTES) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    if (!(err instanceof SyntaxError)) throw err;
    return undefined; // a torn or foreign file: no refusal to report
  }
  if (!v || typeof v !== 'object') return undefined;
  const r = v as Record<string, unknown>;
  if (typeof r['message'] !== 'string' || typeof r['release'] !== 'string' || typeof r['bootId'] !== 'string') return undefined;
  if (r['bootId'] !== bootId) return undefined;
  return { message: r['message'], release: r['release'], bootId: r['bootId'] };
}
