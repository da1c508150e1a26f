// The eBPF object built into the executable (esbuild embeds dist/bpf/meshlane.o
// as bytes), written to a file for bpftool to load. It is staged in the state
// dir under a temp name of ours (never in TMPDIR): a kill leaves it where the
// next install's tidy-up removes it. Only the bundled executable can load this
// module; elsewhere pass --bpf-object.
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fchmodSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import objectBytes from '../../dist/bpf/meshlane.o';
import { atomicTempPath } from '../sys/atomic-write.js';
import { mkdirp } from '../sys/mkdirp.js';

export function embeddedObjectDigest(): string {
  return createHash('sha256').update(objectBytes).digest('hex').slice(0, 16);
}

/** A file holding the embedded object (made once per process, mode 0600, in `stateDir`). */
let written: string | undefined;
export function embeddedObjectPath(stateDir: string): string {
  if (written && existsSync(written) && readFileSync(written).equals(Buffer.from(objectBytes))) return written;
  mkdirp(stateDir, 0o700);
  const path = atomicTempPath(join(stateDir, `meshlane-${embeddedObjectDigest()}.o`));
  const fd = openSync(path, 'wx', 0o600);
  try {
    fchmodSync(fd, 0o600);
    let off = 0;
    while (off < objectBytes.length) off += writeSync(fd, objectBytes, off, objectBytes.length - off);
  } finally {
    closeSync(fd);
  }
  written = path;
  return path;
}

/** Remove the staged file (bpftool has loaded it; the kernel keeps the programs). */
export function removeEmbeddedObject(): void {
  if (written) rmSync(written, { force: true });
  written = undefined;
}
