// The host dirs of a node for `meshlane install|status|uninstall` on a sandbox
// node, all below the node's own state dir, and the flags that name them.
import { join } from 'node:path';
import type { SandboxNode } from '../../testing/sandbox/node.js';

export interface NodeDirs {
  netDir: string;
  binDir: string;
  stateDir: string;
  kubeconfig: string;
}

export function nodeDirs(nd: SandboxNode): NodeDirs {
  return { netDir: join(nd.stateDir, 'net.d'), binDir: join(nd.stateDir, 'bin'), stateDir: join(nd.stateDir, 'state'), kubeconfig: join(nd.stateDir, 'kubeconfig') };
}

/** Every path flag of install (status and uninstall accept them too). */
export function nodeDirArgs(nd: SandboxNode): string[] {
  const d = nodeDirs(nd);
  return ['--cni-net-dir', d.netDir, '--cni-bin-dir', d.binDir, '--cgroup-root', nd.cgroupRoot, '--pin-dir', nd.pinDir, '--state-dir', d.stateDir, '--kubeconfig', d.kubeconfig];
}
