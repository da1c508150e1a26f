// meshlane's own CNI error codes (100 and up), each with a message that says
// what failed, on what input, and what to do.
import { CniError, CniErrorCode } from '../cni/errors.js';

export const PluginErrorCode = {
  /** An interception annotation of the pod has a value meshlane refuses. */
  InvalidAnnotation: 100,
  /** kubelet's pod cgroup was not found under cgroup_root. */
  PodCgroupNotFound: 101,
  /** Writing or removing the registration in the BPF maps failed. */
  RegistrationFailed: 102,
  /** The pod could not be read from the Kubernetes API. */
  KubeApi: 103,
  /** The state dir could not be written or read. */
  StateDir: 104,
  /** CHECK: the registration is missing or differs from what ADD wrote. */
  CheckMismatch: 105,
  /** The previous plugin's result has no IP for the pod's interface. */
  NoPodIp: 106,
} as const;

export function tryAgainLater(msg: string, details?: string): CniError {
  return new CniError(CniErrorCode.TryAgainLater, msg, details);
}
