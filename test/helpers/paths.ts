import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Real inputs from other projects, copied into the repo with their provenance (testing/fixtures/README.md). */
export const upstreamFixtures = resolve(repoRoot, 'testing', 'fixtures');
export const distExe = resolve(repoRoot, 'dist', 'meshlane');
export const distBpfObject = resolve(repoRoot, 'dist', 'bpf', 'meshlane.o');
/** The build for kernels before 5.15 (no netns cookie in sock_ops, sk_msg and getsockopt). */
export const distBpfCompatObject = resolve(repoRoot, 'dist', 'bpf', 'meshlane-compat.o');
/** Both builds, as the installer hands them to the loader: the newer first, the compat one where the kernel rejects it. */
export const distBpfObjects = { path: distBpfObject, compatPath: distBpfCompatObject } as const;
/** Where containernetworking-plugins puts bridge, host-local, loopback ... */
export const cniPluginDir = '/usr/lib/cni';

/** The built executable, or a clear failure telling how to make it. */
export function requireBuiltExe(): string {
  if (!existsSync(distExe)) {
    throw new Error(`${distExe} is missing: run 'npm run build' before the tests`);
  }
  return distExe;
}
