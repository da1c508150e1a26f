// Where a node's meshlane state lives, as both the plugin (from its conflist
// entry) and the installer (from its flags) know it.
export interface NodePaths {
  /** The datapath's pins (maps, programs). */
  bpfPinDir: string;
  /** The cgroup v2 directory the pod cgroups are below. */
  cgroupRoot: string;
  /** The attachment records. */
  stateDir: string;
  /** Capture DNS for every meshed pod, whatever its proxy says. */
  dnsCapture: boolean;
}
