// Kernel and end-to-end tests need root and real kernel features. When they are
// missing the test fails and says what is missing: it never passes silently.
import { execFileSync } from 'node:child_process';

export function requireRoot(what: string): void {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    throw new Error(`${what} needs root (it creates network namespaces, cgroups and BPF pins); run the tests as root`);
  }
}

export function requireCommand(cmd: string, aptPackage: string): void {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
  } catch {
    throw new Error(`'${cmd}' is missing: apt-get install -y ${aptPackage} (scripts/setup.sh does it)`);
  }
}
