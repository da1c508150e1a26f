// The Kubernetes API fallback of the CNI plugin: load the installer's kubeconfig
// and GET one pod. Loaded lazily by the plugin, only when the runtime did not pass
// the pod's annotations; `yaml` is loaded only for a YAML (not JSON) kubeconfig.
export { loadKubeconfig, currentToken } from './kubeconfig.js';
export type { KubeAccess } from './kubeconfig.js';
export {
  getPod,
  isValidNamespace,
  isValidPodName,
  DEFAULT_ATTEMPT_TIMEOUT_MS,
  DEFAULT_MAX_ATTEMPTS,
  DEFAULT_MAX_RESPONSE_BYTES,
  DEFAULT_RETRY_INTERVAL_MS,
} from './client.js';
export type { GetPodOptions } from './client.js';
export { KubeApiError, KubeconfigError, INSTALLER_HINT } from './errors.js';
export type { KubeApiErrorKind, KubeconfigErrorKind } from './errors.js';
