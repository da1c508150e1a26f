// Where the plugin learns about the pod: the annotations the runtime passes in
// runtimeConfig (containerd and CRI-O pass all of them for the capability
// io.kubernetes.cri.pod-annotations), and the Kubernetes API only when those do
// not decide (or are absent). The API client is loaded only then.
import { CniError } from '../cni/errors.js';
import { decideSidecar, PodInputError, podInfoFromAnnotations, podInfoFromObject, type PodInfo, type SidecarDecision } from '../mesh/index.js';
import type { Logger } from '../log/logger.js';
import type { PluginConfig } from './config.js';
import { PluginErrorCode, tryAgainLater } from '../node/errors.js';

export const ANNOTATIONS_CAPABILITY = 'io.kubernetes.cri.pod-annotations';

export interface PodLookup {
  pod: PodInfo;
  decision: SidecarDecision;
  source: 'annotations' | 'api';
}

/**
 * The annotations the runtime passed. A key that is present means "this runtime
 * passes annotations": `null` or `{}` then is a pod that has none (containerd
 * sends null for a sandbox made without annotations), which no injector touched.
 * undefined: the runtime passed none (no runtimeConfig, or no such key), so only
 * the API can tell. A value of another type is handed on for the caller to refuse.
 */
export function runtimeAnnotations(config: Readonly<Record<string, unknown>>): unknown {
  const rc = config['runtimeConfig'];
  if (!rc || typeof rc !== 'object' || Array.isArray(rc)) return undefined;
  if (!Object.prototype.hasOwnProperty.call(rc, ANNOTATIONS_CAPABILITY)) return undefined;
  const a = (rc as Record<string, unknown>)[ANNOTATIONS_CAPABILITY];
  return a === null ? {} : a;
}

async function fromApi(conf: PluginConfig, namespace: string, name: string, log: Logger): Promise<PodInfo> {
  const { loadKubeconfig, getPod, KubeApiError, KubeconfigError } = await import('../kube/index.js');
  try {
    const access = await loadKubeconfig(conf.kubeconfig);
    const obj = await getPod(access, namespace, name, {
      deadlineMs: conf.kubeApiTimeoutMs,
      onAttempt: (a) => log.debug('kubernetes API attempt', { attempt: a.attempt, status: a.status, error: a.error }),
    });
    return podInfoFromObject(obj);
  } catch (err) {
    if (err instanceof PodInputError) {
      throw new CniError(PluginErrorCode.KubeApi, `the Kubernetes API returned a pod ${namespace}/${name} meshlane cannot read: ${err.message}`);
    }
    if (err instanceof KubeconfigError) {
      throw tryAgainLater(`cannot read the pod ${namespace}/${name} from the Kubernetes API: ${err.message}`, 'meshlane install writes the kubeconfig; check that the meshlane DaemonSet pod runs on this node');
    }
    if (err instanceof KubeApiError) {
      const msg = `cannot read the pod ${namespace}/${name} from the Kubernetes API: ${err.message}`;
      if (err.kind === 'unauthorized' || err.kind === 'forbidden' || err.kind === 'invalid-name' || err.kind === 'bad-response' || err.kind === 'tls') {
        throw new CniError(PluginErrorCode.KubeApi, msg, 'check the meshlane service account (RBAC: get pods) and the kubeconfig the installer wrote');
      }
      throw tryAgainLater(msg);
    }
    throw err;
  }
}

/** The pod and whether the mesh owns it. */
export async function lookupPod(conf: PluginConfig, config: Readonly<Record<string, unknown>>, namespace: string, name: string, log: Logger): Promise<PodLookup> {
  const opts = { excludeNamespaces: conf.excludeNamespaces };
  const annotations = runtimeAnnotations(config);
  if (annotations !== undefined) {
    try {
      const pod = podInfoFromAnnotations(namespace, name, annotations);
      const decision = decideSidecar(pod, opts);
      if (decision.meshed !== 'unknown') return { pod, decision, source: 'annotations' };
      log.info('the annotations do not decide; asking the Kubernetes API', { reason: decision.reason });
    } catch (err) {
      if (!(err instanceof PodInputError)) throw err;
      log.warn('the annotations from the runtime cannot be read; asking the Kubernetes API', { error: err.message });
    }
  }
  const pod = await fromApi(conf, namespace, name, log);
  return { pod, decision: decideSidecar(pod, opts), source: 'api' };
}
