// The CRI messages the reconcile loop uses (k8s.io/cri-api, runtime.v1):
// ListPodSandbox and PodSandboxStatus, encoded and decoded by field number.
// Pure. What they carry is whatever a pod's author wrote: names and
// annotations are bounded here, and checked again by the mesh policy.
import { isJsonObject, ownValue } from '../json/value.js';
import { encode, last, msg, readFields, str, stringMapOf, uint, WireError, type Field } from './wire.js';

export const RUNTIME_SERVICE = 'runtime.v1.RuntimeService';

/** A runtime's answer this large is not a node's list of pods. */
export const MAX_CRI_MESSAGE_BYTES = 16 * 1024 * 1024;
/** Names and ids longer than Kubernetes allows are refused (pod names: 253; sandbox ids: 64 hex in practice). */
const MAX_NAME = 253;

export type SandboxState = 'ready' | 'notready';

export interface SandboxSummary {
  id: string;
  name: string;
  namespace: string;
  uid: string;
  attempt: number;
  state: SandboxState;
  annotations: Record<string, string>;
}

export interface SandboxStatus extends SandboxSummary {
  /** The pod's IPs on its default interface (status.network: ip, then additional_ips). */
  ips: string[];
  /** The sandbox runs in the node's network namespace (hostNetwork: true). */
  hostNetwork: boolean;
  /** The runtime's verbose info (containerd and CRI-O put one JSON document under "info"). */
  info: Record<string, string>;
}

function bounded(s: string, what: string): string {
  if (s.length > MAX_NAME) throw new WireError(`${what} is ${s.length} characters long (at most ${MAX_NAME})`);
  return s;
}

function metadataOf(fields: readonly Field[], at: number): Pick<SandboxSummary, 'name' | 'namespace' | 'uid' | 'attempt'> {
  const f = last(fields, at);
  const m = f ? readFields(msg(f)) : [];
  const s = (n: number, what: string): string => {
    const v = last(m, n);
    return v ? bounded(str(v), what) : '';
  };
  const attempt = last(m, 4);
  return { name: s(1, 'metadata.name'), uid: s(2, 'metadata.uid'), namespace: s(3, 'metadata.namespace'), attempt: attempt ? Number(uint(attempt) & 0xffffffffn) : 0 };
}

function stateOf(fields: readonly Field[], at: number): SandboxState {
  const f = last(fields, at);
  return f && uint(f) !== 0n ? 'notready' : 'ready';
}

function idOf(fields: readonly Field[]): string {
  const f = last(fields, 1);
  return f ? bounded(str(f), 'id') : '';
}

/** ListPodSandboxRequest with no filter: every sandbox the runtime knows, ready or not. */
export function encodeListPodSandboxRequest(): Uint8Array {
  return encode([]);
}

export function decodeListPodSandboxResponse(buf: Uint8Array): SandboxSummary[] {
  const out: SandboxSummary[] = [];
  for (const item of readFields(buf)) {
    if (item.field !== 1) continue;
    const f = readFields(msg(item));
    out.push({ id: idOf(f), ...metadataOf(f, 2), state: stateOf(f, 3), annotations: stringMapOf(f, 6) });
  }
  return out;
}

export function encodePodSandboxStatusRequest(id: string, verbose: boolean): Uint8Array {
  return encode([{ field: 1, string: id }, { field: 2, varint: verbose }]);
}

/** NamespaceMode NODE in LinuxPodSandboxStatus.namespaces.options.network. */
const NAMESPACE_MODE_NODE = 2n;

export function decodePodSandboxStatusResponse(buf: Uint8Array): SandboxStatus {
  const top = readFields(buf);
  const statusField = last(top, 1);
  if (!statusField) throw new WireError('PodSandboxStatusResponse has no status');
  const f = readFields(msg(statusField));
  const ips: string[] = [];
  const net = last(f, 5);
  if (net) {
    const n = readFields(msg(net));
    const ip = last(n, 1);
    if (ip && str(ip) !== '') ips.push(str(ip));
    for (const extra of n) {
      if (extra.field !== 2) continue;
      const e = last(readFields(msg(extra)), 1);
      if (e && str(e) !== '') ips.push(str(e));
    }
  }
  let hostNetwork = false;
  const linux = last(f, 6);
  if (linux) {
    const ns = last(readFields(msg(linux)), 1);
    const opts = ns ? last(readFields(msg(ns)), 2) : undefined;
    const mode = opts ? last(readFields(msg(opts)), 1) : undefined;
    hostNetwork = mode !== undefined && uint(mode) === NAMESPACE_MODE_NODE;
  }
  return {
    id: idOf(f),
    ...metadataOf(f, 2),
    state: stateOf(f, 3),
    annotations: stringMapOf(f, 8),
    ips,
    hostNetwork,
    info: stringMapOf(top, 2),
  };
}

/**
 * Where the sandbox's network namespace is, from the runtime's verbose info:
 * the OCI spec's network namespace path (containerd and CRI-O both show the
 * runtime spec), else the sandbox process's /proc/<pid>/ns/net.
 */
export function netnsFromInfo(info: Readonly<Record<string, string>>): { path: string } | { pid: number } | undefined {
  const raw = ownValue(info, 'info');
  if (typeof raw !== 'string' || raw.length > MAX_CRI_MESSAGE_BYTES) return undefined;
  let doc: unknown;
  try {
    doc = JSON.parse(raw);
  } catch (err) {
    if (!(err instanceof SyntaxError)) throw err;
    return undefined;
  }
  if (!isJsonObject(doc)) return undefined;
  const spec = ownValue(doc, 'runtimeSpec');
  const linux = isJsonObject(spec) ? ownValue(spec, 'linux') : undefined;
  const namespaces = isJsonObject(linux) ? ownValue(linux, 'namespaces') : undefined;
  if (Array.isArray(namespaces)) {
    for (const ns of namespaces) {
      if (!isJsonObject(ns) || ownValue(ns, 'type') !== 'network') continue;
      const path = ownValue(ns, 'path');
      if (typeof path === 'string' && path.startsWith('/') && path.length <= 4096 && !path.includes('\0')) return { path };
    }
  }
  const pid = ownValue(doc, 'pid');
  if (typeof pid === 'number' && Number.isInteger(pid) && pid > 1) return { pid };
  return undefined;
}
