// Who the proxy is (the uid/gid whose sockets are never redirected) and
// whether its DNS proxy takes the pod's DNS queries.
import { containersKnown, findContainer, ownValue, parseGoBool, type PodInfo } from './pod.js';
import { ISTIO_PROXY } from './sidecar.js';
import { isJsonObject as isObj, ownValue as ownProp } from '../json/value.js';

export const DEFAULT_PROXY_UID = 1337;
export const DEFAULT_PROXY_GID = 1337;
export const PROXY_OVERRIDES_ANNOTATION = 'proxy.istio.io/overrides';
export const PROXY_CONFIG_ANNOTATION = 'proxy.istio.io/config';
export const DNS_CAPTURE_ENV = 'ISTIO_META_DNS_CAPTURE';

/** istio-cni: a uid/gid that is unset or 0 means the default 1337 (root is never "the proxy"). */
function orDefault(v: number | undefined, d: number): number {
  return v !== undefined && v !== 0 ? v : d;
}

function id(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v < 0xffffffff ? v : undefined;
}

/**
 * runAsUser/runAsGroup of istio-proxy in proxy.istio.io/overrides: the injector
 * keeps there the user's own istio-proxy container, which it lays over its
 * template, so its securityContext fields end up in the injected container.
 * Malformed JSON or missing fields give nothing.
 */
export function overridesIdentity(annotations: Record<string, string>): { uid?: number; gid?: number } {
  const raw = ownValue(annotations, PROXY_OVERRIDES_ANNOTATION);
  if (raw === undefined) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (err) {
    if (!(err instanceof SyntaxError)) throw err;
    return {};
  }
  if (!isObj(parsed)) return {};
  const out: { uid?: number; gid?: number } = {};
  for (const list of [ownProp(parsed, 'initContainers'), ownProp(parsed, 'containers')]) {
    if (!Array.isArray(list)) continue;
    for (const c of list) {
      if (!isObj(c) || ownProp(c, 'name') !== ISTIO_PROXY) continue;
      const sc = ownProp(c, 'securityContext');
      if (!isObj(sc)) continue;
      const u = id(ownProp(sc, 'runAsUser'));
      const g = id(ownProp(sc, 'runAsGroup'));
      if (u !== undefined) out.uid = u;
      if (g !== undefined) out.gid = g;
    }
  }
  return out;
}

/**
 * The proxy's uid and gid. From the API: the istio-proxy container's
 * securityContext, exactly as istio-cni reads it. From annotations only:
 * proxy.istio.io/overrides when it names them. Else (and for 0) 1337/1337.
 */
export function proxyIdentity(pod: PodInfo): { uid: number; gid: number } {
  if (containersKnown(pod)) {
    const proxy = findContainer(pod, ISTIO_PROXY);
    if (proxy) {
      return { uid: orDefault(proxy.runAsUser, DEFAULT_PROXY_UID), gid: orDefault(proxy.runAsGroup, DEFAULT_PROXY_GID) };
    }
  }
  const o = overridesIdentity(pod.annotations);
  return { uid: orDefault(o.uid, DEFAULT_PROXY_UID), gid: orDefault(o.gid, DEFAULT_PROXY_GID) };
}

function unquote(s: string): string {
  const t = s.trim();
  if (t.length >= 2 && ((t.startsWith('"') && t.endsWith('"')) || (t.startsWith("'") && t.endsWith("'")))) return t.slice(1, -1);
  // A plain YAML scalar ends at " #" (comment).
  const hash = t.search(/\s#/);
  return hash >= 0 ? t.slice(0, hash).trim() : t;
}

/**
 * proxyMetadata of proxy.istio.io/config (a ProxyConfig as YAML or JSON).
 * Reads JSON, and the YAML forms the annotation takes in practice: a block
 * mapping under a top-level `proxyMetadata:` key, or a flow mapping
 * `proxyMetadata: {K: v, ...}`. Anything else gives undefined (not known).
 */
export function proxyMetadata(annotations: Record<string, string>): Record<string, string> | undefined {
  const raw = ownValue(annotations, PROXY_CONFIG_ANNOTATION);
  if (raw === undefined) return undefined;
  const out = Object.create(null) as Record<string, string>;
  const text = raw.trim();
  if (text.startsWith('{')) {
    try {
      const parsed: unknown = JSON.parse(text);
      const pm = isObj(parsed) ? ownProp(parsed, 'proxyMetadata') : undefined;
      if (!isObj(pm)) return undefined;
      for (const k of Object.keys(pm)) {
        const v = ownProp(pm, k);
        if (typeof v === 'string') out[k] = v;
      }
      return out;
    } catch (err) {
      if (!(err instanceof SyntaxError)) throw err;
      // YAML flow style is not JSON; fall through to the line reader.
    }
  }
  const lines = raw.split(/\r?\n/);
  const start = lines.findIndex((l) => /^proxyMetadata\s*:/.test(l));
  if (start < 0) return undefined;
  const head = (lines[start] ?? '').replace(/^proxyMetadata\s*:/, '').trim();
  if (head.startsWith('{')) {
    if (!head.endsWith('}')) return undefined;
    for (const pair of head.slice(1, -1).split(',')) {
      const m = /^\s*("?)([^":]+)\1\s*:\s*(.*)$/.exec(pair);
      if (m && m[2]) out[m[2].trim()] = unquote(m[3] ?? '');
    }
    return out;
  }
  if (head !== '' && !head.startsWith('#')) return undefined;
  let indent: number | undefined;
  for (const line of lines.slice(start + 1)) {
    if (line.trim() === '' || line.trim().startsWith('#')) continue;
    const lead = line.length - line.trimStart().length;
    if (lead === 0) break; // the next top-level key
    indent ??= lead;
    if (lead !== indent) continue; // deeper (not a string value) or odd indentation
    const m = /^\s*("?)([^":]+)\1\s*:\s*(.*)$/.exec(line);
    if (m && m[2]) out[m[2].trim()] = unquote(m[3] ?? '');
  }
  return out;
}

/**
 * Does the proxy capture DNS? ISTIO_META_DNS_CAPTURE in istio-proxy's env (the
 * injector copies proxyMetadata there), else in proxy.istio.io/config's
 * proxyMetadata, else `defaultOn` (the mesh-wide setting the plugin is given).
 * A value Go's ParseBool rejects means false, as istio-cni reads it.
 */
export function dnsCapture(pod: PodInfo, defaultOn: boolean): boolean {
  if (containersKnown(pod)) {
    const env = findContainer(pod, ISTIO_PROXY)?.env;
    if (env && Object.prototype.hasOwnProperty.call(env, DNS_CAPTURE_ENV)) return parseGoBool(env[DNS_CAPTURE_ENV] ?? '') === true;
  }
  const pm = proxyMetadata(pod.annotations);
  if (pm && Object.prototype.hasOwnProperty.call(pm, DNS_CAPTURE_ENV)) return parseGoBool(pm[DNS_CAPTURE_ENV] ?? '') === true;
  return defaultOn;
}
