// Place the running executable in the host's CNI bin dir. A running binary
// cannot be written in place (ETXTBSY, and a half-written plugin would break
// every pod ADD), so it is copied to a temp file beside it, synced, and renamed.
import { createHash } from 'node:crypto';
import { chmodSync, closeSync, copyFileSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

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
  if (sameFile(source, target)) return false;
  const tmp = join(dirname(target), `.${basename(target)}.${process.pid}.tmp`);
  rmSync(tmp, { force: true });
  try {
    copyFileSync(source, tmp);
    chmodSync(tmp, 0o755);
    const fd = openSync(tmp, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, target);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  const dfd = openSync(dirname(target), 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
  return true;
}
