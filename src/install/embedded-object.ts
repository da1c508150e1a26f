// The eBPF objects built into the executable (esbuild embeds dist/bpf/meshlane.o
// and dist/bpf/meshlane-compat.o, the build for kernels before 5.15, as bytes),
// written to files for bpftool to load. They are staged in the state dir under
// temp names of ours (never in TMPDIR): a kill leaves them where the next
// install's tidy-up removes them. Only the bundled executable can load this
// module; elsewhere pass --bpf-object.
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fchmodSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import objectBytes from '../../dist/bpf/meshlane.o';
import compatBytes from '../../dist/bpf/meshlane-compat.o';
import type { DatapathObjects } from '../bpf/loader.js';
import { atomicTempPath } from '../sys/atomic-write.js';
import { mkdirp } from '../sys/mkdirp.js';

export function embeddedObjectDigest(): string {
  return createHash('sha256').update(objectBytes).update(compatBytes).digest('hex').slice(0, 16);
}

/** Files made once per process, mode 0600, in the state dir. */
const written = new Map<Uint8Array, string>();

function writeOnce(bytes: Uint8Array, stateDir: string, name: string): string {
  const done = written.get(bytes);
  if (done && existsSync(done) && readFileSync(done).equals(Buffer.from(bytes))) return done;
  mkdirp(stateDir, 0o700);
  const path = atomicTempPath(join(stateDir, `${name}-${embeddedObjectDigest()}.o`));
  const fd = openSync(path, 'wx', 0o600);
  try {
    fchmodSync(fd, 0o600);
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
  } finally {
    closeSync(fd);
  }
  written.set(bytes, path);
  return path;
}

/** Files holding the embedded objects; the loader picks the one the kernel takes. */
export function embeddedObjectPaths(stateDir: string): DatapathObjects {
  return { path: writeOnce(objectBytes, stateDir, 'meshlane'), compatPath: writeOnce(compatBytes, stateDir, 'meshlane-compat') };
}

/** Remove the staged files (bpftool has loaded one; the kernel keeps the programs). */
export function removeEmbeddedObject(): void {
  for (const path of written.values()) rmSync(path, { force: true });
  written.clear();
}
