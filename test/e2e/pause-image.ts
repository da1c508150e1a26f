// The pod sandbox ("pause") image, built locally: no registry is reachable in
// the tests. One uncompressed layer holding busybox-static as /bin/busybox
// (and /bin/sh), an entrypoint that sleeps forever, written as an OCI image
// layout (oci-layout, index.json, blobs/sha256/<digest>) and tar'ed, ready for
// `ctr images import`. Digests and sizes are computed from the bytes written.
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';

export const BUSYBOX_STATIC = '/bin/busybox';
export const PAUSE_ENTRYPOINT = ['/bin/busybox', 'sleep', '2147483647'];

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { architecture: string; os: string };
}

function goArch(): string {
  const a = process.arch;
  return a === 'x64' ? 'amd64' : a === 'ia32' ? '386' : a;
}

/** busybox-static, not a dynamically linked busybox: the image has no libc. */
async function checkStatic(path: string): Promise<void> {
  const head = readFileSync(path).subarray(0, 4);
  if (head.toString('latin1') !== '\x7fELF') throw new Error(`${path} is not an ELF executable`);
  const r = await execa('ldd', [path], { reject: false });
  if (!/not a dynamic executable|statically linked/.test(`${r.stdout}${r.stderr}`)) {
    throw new Error(`${path} is dynamically linked; the pause image needs busybox-static (apt-get install -y busybox-static)`);
  }
}

function writeBlob(layoutDir: string, bytes: Buffer, mediaType: string): Descriptor {
  const hex = createHash('sha256').update(bytes).digest('hex');
  writeFileSync(join(layoutDir, 'blobs', 'sha256', hex), bytes);
  return { mediaType, digest: `sha256:${hex}`, size: bytes.length };
}

/**
 * Build the image archive in workDir and return its path. `name` is the full
 * reference containerd stores it under (e.g. docker.io/library/x:tag: what
 * the CRI plugin's sandbox_image must say).
 */
export async function buildPauseImage(workDir: string, name: string, busybox = BUSYBOX_STATIC): Promise<string> {
  await checkStatic(busybox);
  rmSync(workDir, { recursive: true, force: true });
  const rootfs = join(workDir, 'rootfs');
  const layout = join(workDir, 'oci');
  mkdirSync(join(rootfs, 'bin'), { recursive: true });
  mkdirSync(join(layout, 'blobs', 'sha256'), { recursive: true });
  copyFileSync(busybox, join(rootfs, 'bin', 'busybox'));
  symlinkSync('busybox', join(rootfs, 'bin', 'sh'));
  // Mount points runc and the CRI plugin use (they are made when missing, but an image usually has them).
  for (const d of ['dev', 'proc', 'sys', 'etc', 'tmp']) mkdirSync(join(rootfs, d));

  const layerTar = join(workDir, 'layer.tar');
  await execa('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', rootfs, '-cf', layerTar, 'bin', 'dev', 'proc', 'sys', 'etc', 'tmp']);
  const layerBytes = readFileSync(layerTar);
  const layer = writeBlob(layout, layerBytes, 'application/vnd.oci.image.layer.v1.tar');
  // Uncompressed layer: its diff id is its digest.
  const config = {
    architecture: goArch(),
    os: 'linux',
    config: { Entrypoint: PAUSE_ENTRYPOINT, WorkingDir: '/' },
    rootfs: { type: 'layers', diff_ids: [layer.digest] },
    history: [{ created_by: 'meshlane e2e: busybox-static pause image' }],
  };
  const configDesc = writeBlob(layout, Buffer.from(JSON.stringify(config)), 'application/vnd.oci.image.config.v1+json');
  const manifest = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: configDesc,
    layers: [layer],
  };
  const manifestDesc = writeBlob(layout, Buffer.from(JSON.stringify(manifest)), 'application/vnd.oci.image.manifest.v1+json');
  const tag = name.slice(name.lastIndexOf(':') + 1);
  const index = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [{
      ...manifestDesc,
      platform: { architecture: goArch(), os: 'linux' },
      annotations: { 'io.containerd.image.name': name, 'org.opencontainers.image.ref.name': tag },
    }],
  };
  writeFileSync(join(layout, 'index.json'), JSON.stringify(index));
  writeFileSync(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const archive = join(workDir, 'pause.oci.tar');
  await execa('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', layout, '-cf', archive, 'oci-layout', 'index.json', 'blobs']);
  if (statSync(archive).size < layerBytes.length) throw new Error('pause image archive is smaller than its layer');
  return archive;
}
