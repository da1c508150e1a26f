// Place the running executable in the host's CNI bin dir. A running binary
// cannot be written in place (ETXTBSY, and a half-written plugin would break
// every pod ADD), so it is copied to a temp file beside it, synced, and renamed.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { copyFileAtomic, removeWriteLitter } from '../sys/atomic-write.js';

function digest(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

export function sameFile(a: string, b: string): boolean {
  if (!existsSync(a) || !existsSync(b)) return false;
  if (statSync(a).size !== statSync(b).size) return false;
  return digest(a) === digest(b);
}

/** Copy `source` to `target` atomically (mode 0755). Returns false when `target` already has the same bytes. */
export function placeBinary(source: string, target: string): boolean {
  // A copy a killed installer left beside the target (about 120 MB each) goes first.
  removeWriteLitter(dirname(target), (name) => name === basename(target));
  if (sameFile(source, target)) return false;
  copyFileAtomic(source, target, 0o755);
  return true;
}
