// The kernels of the matrix: exact Debian packages, so every run boots the same
// kernels. The generic (amd64) flavour, not cloud: Debian's cloud kernels have
// no 9p (CONFIG_NET_9P is not set), which the guests need to see the host's
// filesystem. When Debian's security archive replaces a version (it keeps only
// the newest), `fetch.ts` fails naming the newer packages it found: update the
// pin here in a commit of its own.
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface KernelPin {
  /** Short name used in tables, file names and `--kernel`. */
  name: string;
  /** The suite it comes from (for the error message and the docs). */
  suite: string;
  package: string;
  version: string;
}

export const KERNEL_PINS: readonly KernelPin[] = [
  { name: '5.10', suite: 'bullseye-security', package: 'linux-image-5.10.0-46-amd64', version: '5.10.262-1' },
  { name: '6.1', suite: 'bookworm-security', package: 'linux-image-6.1.0-57-amd64', version: '6.1.192-3' },
  { name: '6.12', suite: 'bookworm-security', package: 'linux-image-6.12.118+deb12-amd64', version: '6.12.118-1~deb12u1' },
];

/** The suites a private apt configuration reads (never the machine's own sources). */
export const APT_SUITES: readonly { uri: string; suite: string }[] = [
  { uri: 'http://deb.debian.org/debian', suite: 'bullseye' },
  { uri: 'http://deb.debian.org/debian-security', suite: 'bullseye-security' },
  { uri: 'http://deb.debian.org/debian', suite: 'bookworm' },
  { uri: 'http://deb.debian.org/debian-security', suite: 'bookworm-security' },
  { uri: 'http://deb.debian.org/debian', suite: 'bookworm-backports' },
];

/** Debian's archive keyring on this machine (holds the bullseye and bookworm keys). */
export const DEBIAN_KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Everything downloaded or built for the matrix (gitignored). */
export const kernelsBuildDir = join(repoRoot, '.build', 'kernels');

export function pinByName(name: string): KernelPin {
  const pin = KERNEL_PINS.find((k) => k.name === name);
  if (pin === undefined) throw new Error(`no kernel '${name}' in the matrix (known: ${KERNEL_PINS.map((k) => k.name).join(', ')})`);
  return pin;
}
