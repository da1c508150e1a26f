// The eBPF object built into the executable (esbuild embeds dist/bpf/meshlane.o
// as bytes), written to a private temp file for bpftool to load. Only the
// bundled executable can load this module; elsewhere pass --bpf-object.
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import objectBytes from '../../dist/bpf/meshlane.o';

export function embeddedObjectDigest(): string {
  return createHash('sha256').update(objectBytes).digest('hex').slice(0, 16);
}

/** A file holding the embedded object (made once per process, mode 0600 in a private dir). */
let written: string | undefined;
export function embeddedObjectPath(): string {
  if (written && existsSync(written) && readFileSync(written).equals(Buffer.from(objectBytes))) return written;
  const dir = mkdtempSync(join(tmpdir(), 'meshlane-bpf-'));
  written = join(dir, `meshlane-${embeddedObjectDigest()}.o`);
  writeFileSync(written, objectBytes, { mode: 0o600 });
  return written;
}

/** Remove the temp file (bpftool has loaded it; the kernel keeps the programs). */
export function removeEmbeddedObject(): void {
  if (written) rmSync(dirname(written), { recursive: true, force: true });
  written = undefined;
}
