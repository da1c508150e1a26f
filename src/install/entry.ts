// meshlane's entry in the chained conflist, carrying the paths the installer
// set up so that the plugin finds them (DESIGN.md, "Interfaces").
import type { InstallOptions } from './options.js';

export function pluginEntry(opts: InstallOptions, cgroupRoot: string): Record<string, unknown> {
  return {
    type: 'meshlane',
    log_level: opts.logLevel,
    log_file: opts.logFile ?? '',
    bpf_pin_dir: opts.pinDir,
    cgroup_root: cgroupRoot,
    state_dir: opts.stateDir,
    kubeconfig: opts.kubeconfig,
    exclude_namespaces: opts.excludeNamespaces,
    dns_capture: opts.dnsCapture,
    capabilities: { 'io.kubernetes.cri.pod-annotations': true },
  };
}
