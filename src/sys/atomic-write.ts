// Write a file so that readers see the old content or the new, never a part:
// temp file in the same directory, fsync, rename, fsync the directory.
//
// Temp names are `.<name>.<pid>.<8 hex>.meshlane-tmp`: exactly ours, and naming
// the writer, so that the temp file a killed writer left (an installer SIGKILLed
// mid-write, a CNI call killed by the runtime's timeout) is removed by the next
// run of ours once its writer is gone, and never while it writes.
import { randomBytes } from 'node:crypto';
import { closeSync, fchmodSync, fsyncSync, openSync, readdirSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { processStartTime } from './proc.js';
import { isSystemError } from '../describe-error.js';

const TEMP_SUFFIX = '.meshlane-tmp';
/** Ours: `.<name>.<pid>.<8 hex>.meshlane-tmp`; meshlane 0.1 wrote `.<name>.<pid>.<base36 time>.tmp`. */
const TEMP_RE = /^\.(.+)\.(\d{1,10})\.(?:[0-9a-f]{8}\.meshlane-tmp|[0-9a-z]{6,12}\.tmp)$/;

/** The temp file name beside `path` for this process. */
export function atomicTempPath(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}${TEMP_SUFFIX}`);
}

/** The writer's pid of one of our temp names (undefined: not one of ours). */
export function tempWriter(name: string): number | undefined {
  const m = TEMP_RE.exec(name);
  return m ? Number(m[2]) : undefined;
}

/**
 * Remove the temp files in `dir` that a writer of ours left when it was killed
 * (its pid no longer runs). Optionally only those for target file names that
 * `forName` accepts. Returns the names removed.
 */
export function removeWriteLitter(dir: string, forName: (name: string) => boolean = () => true, alive: (pid: number) => boolean = (pid) => processStartTime(pid) !== undefined): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if (!isSystemError(err)) throw err; // no such dir (nothing to tidy) or not readable
    return [];
  }
  const removed: string[] = [];
  for (const n of names) {
    const m = TEMP_RE.exec(n);
    if (!m || !forName(m[1] ?? '') || alive(Number(m[2]))) continue;
    rmSync(join(dir, n), { force: true });
    removed.push(n);
  }
  return removed;
}

function fsyncDir(dir: string): void {
  const dfd = openSync(dir, 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}

export interface AtomicWriteOptions {
  /**
   * fsync the file and its directory (default true): the new content survives a
   * crash of the machine. Without it readers still see the old content or the
   * new, never a part, and a killed writer leaves the old one.
   */
  durable?: boolean;
}

/** Write `data` to a fresh temp file beside `path` and sync it; returns the temp path. */
function writeTemp(path: string, write: (fd: number) => void, mode: number, durable = true): string {
  const tmp = atomicTempPath(path);
  const fd = openSync(tmp, 'wx', mode);
  try {
    fchmodSync(fd, mode); // exactly `mode`, whatever the umask
    write(fd);
    if (durable) fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  return tmp;
}

/** Move a synced temp file into place and sync the directory. */
function commit(tmp: string, path: string, durable = true): void {
  try {
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  if (durable) fsyncDir(dirname(path));
}

export function writeFileAtomic(path: string, data: string | Uint8Array, mode: number, opts: AtomicWriteOptions = {}): void {
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  const tmp = writeTemp(
    path,
    (fd) => {
      let off = 0;
      while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
    },
    mode,
    opts.durable,
  );
  commit(tmp, path, opts.durable);
}

/** Copy the file `source` into place at `path` atomically (the running executable into the CNI bin dir). */
export function copyFileAtomic(source: string, path: string, mode: number): void {
  const tmp = writeTemp(
    path,
    (fd) => {
      const src = openSync(source, 'r');
      try {
        const buf = Buffer.allocUnsafe(1 << 20);
        for (;;) {
          const n = readSync(src, buf, 0, buf.length, null);
          if (n === 0) break;
          let off = 0;
          while (off < n) off += writeSync(fd, buf, off, n - off);
        }
      } finally {
        closeSync(src);
      }
    },
    mode,
  );
  commit(tmp, path);
}
