// Is this a sidecar pod whose traffic istio-cni would redirect? istio-cni's
// rules (cni/pkg/plugin/plugin.go, doAddRun), in its order:
//   excluded namespace                         -> skip
//   a container or init container istio-init   -> skip (iptables mode: istio-init does it)
//   DISABLE_ENVOY=true in istio-proxy's env    -> skip (proxyless)
//   no container or init container istio-proxy -> skip
//   istio-proxy args "proxy <type>", type not "sidecar" (a gateway: "proxy router") -> skip
//   sidecar.istio.io/inject false (the label wins over the annotation when present) -> skip
//   no sidecar.istio.io/status annotation      -> skip
//   otherwise                                  -> redirect
// istio-cni never parses the status annotation: it reads the containers from
// the API. When only the annotations are known, the status annotation (JSON
// naming what the injector added) stands in for the containers, and the answer
// is 'unknown' (ask the API) whenever it cannot decide exactly as the rules
// above would.
import { containersKnown, ownValue, parseGoBool, type PodInfo } from './pod.js';

export type SidecarDecision =
  | { meshed: true }
  | { meshed: false; reason: string }
  | { meshed: 'unknown'; reason: string /* need the API: annotations do not decide */ };

export const ISTIO_PROXY = 'istio-proxy';
export const ISTIO_INIT = 'istio-init';
export const ISTIO_VALIDATION = 'istio-validation';

export const SIDECAR_STATUS_ANNOTATION = 'sidecar.istio.io/status';
export const SIDECAR_INJECT = 'sidecar.istio.io/inject';
export const INJECT_TEMPLATES_ANNOTATION = 'inject.istio.io/templates';

/** Injection templates that leave the sidecar a `proxy sidecar` with interception (Istio's own "sidecar", and "spire" which only adds volumes). */
const SIDECAR_TEMPLATES: ReadonlySet<string> = new Set(['sidecar', 'spire']);
/** Istio's gateway template: its istio-proxy runs `proxy router`. */
const GATEWAY_TEMPLATE = 'gateway';

export interface InjectionStatus {
  initContainers: string[];
  containers: string[];
}

/**
 * The injector's status annotation, e.g.
 * {"initContainers":["istio-validation","istio-proxy"],"containers":null,...}.
 * undefined when it is not that JSON (istio-cni itself accepts any value, even "true").
 */
export function parseSidecarStatus(value: string): InjectionStatus | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch (err) {
    if (!(err instanceof SyntaxError)) throw err;
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined;
  const list = (key: string): string[] | undefined => {
    const v = Object.prototype.hasOwnProperty.call(parsed, key) ? (parsed as Record<string, unknown>)[key] : undefined;
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) return undefined;
    return v as string[];
  };
  const initContainers = list('initContainers');
  const containers = list('containers');
  if (!initContainers || !containers) return undefined;
  return { initContainers, containers };
}

function templates(pod: PodInfo): string[] | undefined {
  const v = ownValue(pod.annotations, INJECT_TEMPLATES_ANNOTATION);
  if (v === undefined) return undefined;
  return v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/** istio-cni: the label, when present (even empty), wins over the annotation; then Go's ParseBool. */
function optedOut(injectValue: string | undefined): boolean {
  return injectValue !== undefined && injectValue !== '' && parseGoBool(injectValue) === false;
}

function fromContainers(pod: PodInfo): SidecarDecision {
  const all = [...(pod.initContainers ?? []), ...(pod.containers ?? [])];
  if (all.some((c) => c.name === ISTIO_INIT)) {
    return { meshed: false, reason: 'an istio-init container is present: iptables mode, istio-init sets up the interception' };
  }
  // istio-cni merges the env of every istio-proxy container and takes the proxy type from the last one with "proxy <type>" args.
  const proxies = all.filter((c) => c.name === ISTIO_PROXY);
  const env: Record<string, string> = Object.create(null) as Record<string, string>;
  let proxyType = '';
  for (const p of proxies) {
    Object.assign(env, p.env);
    if (p.args && p.args.length >= 2 && p.args[0] === 'proxy') proxyType = p.args[1] ?? '';
  }
  const disable = Object.prototype.hasOwnProperty.call(env, 'DISABLE_ENVOY') ? env['DISABLE_ENVOY'] : undefined;
  if (disable !== undefined && parseGoBool(disable) === true) {
    return { meshed: false, reason: 'DISABLE_ENVOY=true on istio-proxy (proxyless)' };
  }
  if (proxies.length === 0) {
    return { meshed: false, reason: 'no istio-proxy container or init container' };
  }
  if (proxyType !== '' && proxyType !== 'sidecar') {
    return { meshed: false, reason: `istio-proxy runs "proxy ${proxyType}" (a gateway), not a sidecar` };
  }
  const label = ownValue(pod.labels, SIDECAR_INJECT);
  if (optedOut(label !== undefined ? label : ownValue(pod.annotations, SIDECAR_INJECT))) {
    return { meshed: false, reason: `opted out by ${label !== undefined ? 'label' : 'annotation'} ${SIDECAR_INJECT}` };
  }
  if (ownValue(pod.annotations, SIDECAR_STATUS_ANNOTATION) === undefined) {
    return { meshed: false, reason: `no ${SIDECAR_STATUS_ANNOTATION} annotation (not injected)` };
  }
  return { meshed: true };
}

function fromAnnotations(pod: PodInfo): SidecarDecision {
  const raw = ownValue(pod.annotations, SIDECAR_STATUS_ANNOTATION);
  if (raw === undefined) {
    // Decisive whatever the containers are: istio-cni requires the annotation.
    return { meshed: false, reason: `no ${SIDECAR_STATUS_ANNOTATION} annotation (not injected)` };
  }
  const status = parseSidecarStatus(raw);
  if (!status) {
    return { meshed: 'unknown', reason: `the ${SIDECAR_STATUS_ANNOTATION} annotation is not the injector's JSON; the containers decide` };
  }
  const injected = [...status.initContainers, ...status.containers];
  if (injected.includes(ISTIO_INIT)) {
    return { meshed: false, reason: 'the injector added istio-init: iptables mode, istio-init sets up the interception' };
  }
  const tpl = templates(pod);
  if (tpl?.includes(GATEWAY_TEMPLATE)) {
    return { meshed: false, reason: `injected with the gateway template (${INJECT_TEMPLATES_ANNOTATION}): istio-proxy runs "proxy router"` };
  }
  if (!injected.includes(ISTIO_PROXY)) {
    return { meshed: 'unknown', reason: `${SIDECAR_STATUS_ANNOTATION} names no istio-proxy; the containers decide` };
  }
  if (optedOut(ownValue(pod.annotations, SIDECAR_INJECT))) {
    // The label, which the runtime does not pass, would win over the annotation.
    return { meshed: 'unknown', reason: `annotation ${SIDECAR_INJECT} opts out but a label (not known here) would override it` };
  }
  if (tpl && !tpl.every((t) => SIDECAR_TEMPLATES.has(t))) {
    return { meshed: 'unknown', reason: `injection templates ${JSON.stringify(tpl.join(',').slice(0, 200))} may change the proxy's type or environment` };
  }
  if (!injected.includes(ISTIO_VALIDATION)) {
    // A CNI-mode sidecar always gets istio-validation; without it this may be a
    // gateway from a default template, or interceptionMode NONE.
    return { meshed: 'unknown', reason: `${SIDECAR_STATUS_ANNOTATION} names neither istio-validation nor istio-init; the containers decide` };
  }
  return { meshed: true };
}

export function decideSidecar(pod: PodInfo, opts: { excludeNamespaces: readonly string[] }): SidecarDecision {
  if (opts.excludeNamespaces.includes(pod.namespace)) {
    return { meshed: false, reason: `namespace ${pod.namespace} is excluded` };
  }
  return containersKnown(pod) ? fromContainers(pod) : fromAnnotations(pod);
}
