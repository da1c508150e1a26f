// The pod as the mesh policy sees it, from either source: a Pod object from the
// Kubernetes API, or the annotations the runtime passes in runtimeConfig
// (io.kubernetes.cri.pod-annotations). Both inputs are untrusted: every field is
// type-checked, sizes are bounded, and maps are built without a prototype so
// that keys such as "__proto__" stay plain keys.
import { isJsonObject as isObj, jsonTypeName as typeName, ownValue as own } from '../json/value.js';

export interface ContainerInfo {
  name: string;
  /** securityContext.runAsUser (container level only, as istio-cni reads it). */
  runAsUser?: number;
  /** securityContext.runAsGroup (container level only). */
  runAsGroup?: number;
  /** env[].value by name; an entry with valueFrom (or no value) is "" as istio-cni sees it. */
  env: Record<string, string>;
  /** args, when given (istio-cni reads `proxy <type>` from the istio-proxy container). */
  args?: string[];
}

export interface PodInfo {
  namespace: string;
  name: string;
  uid?: string;
  annotations: Record<string, string>;
  /** From the API only; {} (and unknown) for a pod made from annotations. */
  labels: Record<string, string>;
  /** undefined when unknown (annotations only) */
  containers?: ContainerInfo[];
  /** undefined when unknown (annotations only) */
  initContainers?: ContainerInfo[];
}

/** Bounds on hostile input. Kubernetes itself caps annotations at 256 KiB in total. */
export const POD_LIMITS = {
  /** Sum of key and value lengths (UTF-16 units) of all annotations; the same for labels. */
  maxMapBytes: 256 * 1024,
  /** containers + initContainers */
  maxContainers: 1000,
  maxEnvPerContainer: 1000,
  maxArgsPerContainer: 1000,
  /** one env value or arg */
  maxStringBytes: 256 * 1024,
  /** namespace, pod name, uid, container name */
  maxNameLength: 253,
} as const;

/** The input is not a pod, or is one no API server would send (wrong types, absurd sizes). */
export class PodInputError extends Error {
  override name = 'PodInputError';
  /** Where in the input: "metadata.annotations", "spec.containers[3].name", ... */
  readonly field: string;
  constructor(field: string, problem: string) {
    super(`${field}: ${problem}`);
    this.field = field;
  }
}

type Obj = Record<string, unknown>;

function emptyMap(): Record<string, string> {
  return Object.create(null) as Record<string, string>;
}

/** Keys whose values the mesh reads: a wrong type there is an error, elsewhere it is ignored. */
function meshRelevant(key: string): boolean {
  return key.includes('istio.io/');
}

function name(v: unknown, field: string, required: boolean): string | undefined {
  if (v === undefined && !required) return undefined;
  if (typeof v !== 'string') throw new PodInputError(field, `must be a string, got ${typeName(v)}`);
  if (required && v.length === 0) throw new PodInputError(field, 'must not be empty');
  if (v.length > POD_LIMITS.maxNameLength) throw new PodInputError(field, `is ${v.length} characters long, at most ${POD_LIMITS.maxNameLength} allowed`);
  return v;
}

/**
 * A string map (annotations, labels) from untrusted input. Absent or null is {}.
 * A non-string value is an error under an Istio key (istio.io/ in the key) and
 * is dropped elsewhere (nothing meshlane reads).
 */
export function stringMap(v: unknown, field: string): Record<string, string> {
  const out = emptyMap();
  if (v === undefined || v === null) return out;
  if (!isObj(v)) throw new PodInputError(field, `must be an object of strings, got ${typeName(v)}`);
  let bytes = 0;
  for (const key of Object.keys(v)) {
    const value = own(v, key);
    bytes += key.length + (typeof value === 'string' ? value.length : 0);
    if (bytes > POD_LIMITS.maxMapBytes) {
      throw new PodInputError(field, `larger than ${POD_LIMITS.maxMapBytes} bytes in total (Kubernetes allows 256 KiB)`);
    }
    if (typeof value === 'string') {
      out[key] = value;
    } else if (meshRelevant(key)) {
      throw new PodInputError(`${field}[${JSON.stringify(key.slice(0, 100))}]`, `must be a string, got ${typeName(value)}`);
    }
  }
  return out;
}

function uidOrGid(v: unknown): number | undefined {
  // Kubernetes: int64; Linux: u32 with 2^32-1 meaning "none". Anything else is ignored.
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v < 0xffffffff ? v : undefined;
}

function container(v: unknown, field: string): ContainerInfo {
  if (!isObj(v)) throw new PodInputError(field, `must be an object, got ${typeName(v)}`);
  const c: ContainerInfo = { name: name(own(v, 'name'), `${field}.name`, true) as string, env: emptyMap() };
  const sc = own(v, 'securityContext');
  if (isObj(sc)) {
    const u = uidOrGid(own(sc, 'runAsUser'));
    const g = uidOrGid(own(sc, 'runAsGroup'));
    if (u !== undefined) c.runAsUser = u;
    if (g !== undefined) c.runAsGroup = g;
  }
  const env = own(v, 'env');
  if (env !== undefined && env !== null) {
    if (!Array.isArray(env)) throw new PodInputError(`${field}.env`, `must be an array, got ${typeName(env)}`);
    if (env.length > POD_LIMITS.maxEnvPerContainer) throw new PodInputError(`${field}.env`, `has ${env.length} entries, at most ${POD_LIMITS.maxEnvPerContainer} allowed`);
    env.forEach((e: unknown, i) => {
      if (!isObj(e)) throw new PodInputError(`${field}.env[${i}]`, `must be an object, got ${typeName(e)}`);
      const n = own(e, 'name');
      if (typeof n !== 'string' || n.length === 0 || n.length > POD_LIMITS.maxNameLength) {
        throw new PodInputError(`${field}.env[${i}].name`, 'must be a non-empty string');
      }
      const value = own(e, 'value');
      if (value !== undefined && typeof value !== 'string') throw new PodInputError(`${field}.env[${i}].value`, `must be a string, got ${typeName(value)}`);
      if (typeof value === 'string' && value.length > POD_LIMITS.maxStringBytes) throw new PodInputError(`${field}.env[${i}].value`, `longer than ${POD_LIMITS.maxStringBytes} characters`);
      // istio-cni copies e.Value: "" for an entry set by valueFrom.
      c.env[n] = typeof value === 'string' ? value : '';
    });
  }
  const args = own(v, 'args');
  if (args !== undefined && args !== null) {
    if (!Array.isArray(args)) throw new PodInputError(`${field}.args`, `must be an array, got ${typeName(args)}`);
    if (args.length > POD_LIMITS.maxArgsPerContainer) throw new PodInputError(`${field}.args`, `has ${args.length} entries, at most ${POD_LIMITS.maxArgsPerContainer} allowed`);
    c.args = args.map((a: unknown, i) => {
      if (typeof a !== 'string') throw new PodInputError(`${field}.args[${i}]`, `must be a string, got ${typeName(a)}`);
      if (a.length > POD_LIMITS.maxStringBytes) throw new PodInputError(`${field}.args[${i}]`, `longer than ${POD_LIMITS.maxStringBytes} characters`);
      return a;
    });
  }
  return c;
}

function containerList(v: unknown, field: string, budget: number): ContainerInfo[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new PodInputError(field, `must be an array, got ${typeName(v)}`);
  if (v.length > budget) throw new PodInputError(field, `more than ${POD_LIMITS.maxContainers} containers in the pod`);
  return v.map((c: unknown, i) => container(c, `${field}[${i}]`));
}

/** A Pod object as the API server returns it (GET /api/v1/namespaces/{ns}/pods/{name}). */
export function podInfoFromObject(obj: unknown): PodInfo {
  if (!isObj(obj)) throw new PodInputError('pod', `must be an object, got ${typeName(obj)}`);
  const kind = own(obj, 'kind');
  if (kind !== undefined && kind !== 'Pod') throw new PodInputError('kind', `is ${JSON.stringify(String(kind).slice(0, 100))}, not "Pod"`);
  const apiVersion = own(obj, 'apiVersion');
  if (apiVersion !== undefined && apiVersion !== 'v1') throw new PodInputError('apiVersion', `is ${JSON.stringify(String(apiVersion).slice(0, 100))}, not "v1"`);
  const metadata = own(obj, 'metadata');
  if (!isObj(metadata)) throw new PodInputError('metadata', `must be an object, got ${typeName(metadata)}`);
  const spec = own(obj, 'spec');
  if (!isObj(spec)) throw new PodInputError('spec', `must be an object, got ${typeName(spec)}`);

  const initContainers = containerList(own(spec, 'initContainers'), 'spec.initContainers', POD_LIMITS.maxContainers);
  const containers = containerList(own(spec, 'containers'), 'spec.containers', POD_LIMITS.maxContainers - initContainers.length);
  const pod: PodInfo = {
    namespace: name(own(metadata, 'namespace'), 'metadata.namespace', true) as string,
    name: name(own(metadata, 'name'), 'metadata.name', true) as string,
    annotations: stringMap(own(metadata, 'annotations'), 'metadata.annotations'),
    labels: stringMap(own(metadata, 'labels'), 'metadata.labels'),
    containers,
    initContainers,
  };
  const uid = name(own(metadata, 'uid'), 'metadata.uid', false);
  if (uid) pod.uid = uid;
  return pod;
}

/** A pod known only by its annotations (runtimeConfig["io.kubernetes.cri.pod-annotations"]). */
export function podInfoFromAnnotations(namespace: string, podName: string, annotations: unknown): PodInfo {
  return {
    namespace: name(namespace, 'namespace', true) as string,
    name: name(podName, 'name', true) as string,
    annotations: stringMap(annotations, 'annotations'),
    labels: emptyMap(),
  };
}

/** Were the containers known (a pod from the API), or only the annotations? */
export function containersKnown(pod: PodInfo): boolean {
  return pod.containers !== undefined || pod.initContainers !== undefined;
}

/** The container named `name`, as istio-cni finds it: init containers first, then containers; the last one wins. */
export function findContainer(pod: PodInfo, containerName: string): ContainerInfo | undefined {
  let found: ContainerInfo | undefined;
  for (const c of [...(pod.initContainers ?? []), ...(pod.containers ?? [])]) {
    if (c.name === containerName) found = c;
  }
  return found;
}

/** Go's strconv.ParseBool, which istio-cni uses for every boolean it reads. */
export function parseGoBool(v: string): boolean | undefined {
  switch (v) {
    case '1': case 't': case 'T': case 'TRUE': case 'true': case 'True':
      return true;
    case '0': case 'f': case 'F': case 'FALSE': case 'false': case 'False':
      return false;
    default:
      return undefined;
  }
}

/** An own annotation (or label) value; never one inherited from a prototype. */
export function ownValue(map: Record<string, string>, key: string): string | undefined {
  const v = own(map, key);
  return typeof v === 'string' ? v : undefined;
}
