// The interception config from a pod's annotations, with istio-cni's meaning
// of each (cni/pkg/plugin/sidecar_redirect.go, NewRedirect) and of the rules
// istio-iptables writes from it (tools/istio-iptables/pkg/capture/run.go).
// An invalid value is an AnnotationError: the plugin fails ADD (code >= 100)
// rather than start the pod without the interception it asked for.
import { ML_MAX_CIDRS, ML_MAX_PORTS } from '../bpf/layout.js';
import { fromMapped16, isMappedV4, toMapped16 } from '../bpf/addr.js';
import { isIPv4, isIPv6 } from 'node:net';
import type { InterceptionConfig } from '../bpf/pod-config.js';

export const ANNOTATIONS = {
  includeOutboundIPRanges: 'traffic.sidecar.istio.io/includeOutboundIPRanges',
  excludeOutboundIPRanges: 'traffic.sidecar.istio.io/excludeOutboundIPRanges',
  includeInboundPorts: 'traffic.sidecar.istio.io/includeInboundPorts',
  excludeInboundPorts: 'traffic.sidecar.istio.io/excludeInboundPorts',
  includeOutboundPorts: 'traffic.sidecar.istio.io/includeOutboundPorts',
  excludeOutboundPorts: 'traffic.sidecar.istio.io/excludeOutboundPorts',
  excludeInterfaces: 'traffic.sidecar.istio.io/excludeInterfaces',
  kubevirtInterfaces: 'traffic.sidecar.istio.io/kubevirtInterfaces',
  rerouteVirtualInterfaces: 'istio.io/reroute-virtual-interfaces',
  interceptionMode: 'sidecar.istio.io/interceptionMode',
  statusPort: 'status.sidecar.istio.io/port',
} as const;

/** Inbound ports istio-cni always appends to excludeInboundPorts (agent status, health, Envoy metrics). */
export const ALWAYS_EXCLUDED_INBOUND_PORTS: readonly number[] = [15020, 15021, 15090];
/** istio-cni's default for excludeInboundPorts and excludeOutboundPorts when the annotation is absent. */
export const DEFAULT_EXCLUDED_PORT = 15020;
export const DEFAULT_STATUS_PORT = 15021;
/** Longest annotation value looked at; Kubernetes caps all annotations together at 256 KiB. */
export const MAX_ANNOTATION_VALUE = 64 * 1024;
/** How much of a value an AnnotationError carries and prints. */
export const MAX_ERROR_VALUE = 200;

function bounded(value: string): string {
  return value.length > MAX_ERROR_VALUE ? `${value.slice(0, MAX_ERROR_VALUE)}…` : value;
}

/** An interception annotation has a value meshlane refuses. The plugin maps it to a CNI error code >= 100. */
export class AnnotationError extends Error {
  override name = 'AnnotationError';
  /** The annotation's name, e.g. traffic.sidecar.istio.io/excludeOutboundIPRanges. */
  readonly annotation: string;
  /** Its value, at most MAX_ERROR_VALUE characters (then "…"). */
  readonly value: string;
  constructor(annotation: string, value: string, problem: string, entry?: string) {
    const v = bounded(value);
    const what = entry !== undefined && entry !== value ? `${JSON.stringify(v)}: entry ${JSON.stringify(bounded(entry))}` : JSON.stringify(v);
    super(`${annotation}: ${what} ${problem}`);
    this.annotation = annotation;
    this.value = v;
  }
}

/** The raw annotation value: undefined when absent; AnnotationError when it is not a string or absurdly long. */
function raw(annotations: Record<string, string>, key: string): string | undefined {
  if (!Object.prototype.hasOwnProperty.call(annotations, key)) return undefined;
  const v: unknown = annotations[key];
  if (typeof v !== 'string') throw new AnnotationError(key, String(v), `is not a string (${v === null ? 'null' : typeof v})`);
  if (v.length > MAX_ANNOTATION_VALUE) throw new AnnotationError(key, v, `is ${v.length} characters long; at most ${MAX_ANNOTATION_VALUE} are accepted`);
  return v;
}

/** Comma separated entries, spaces around each ignored; an empty entry is an error (istio-cni refuses "80,,443" and "80,"). */
function entries(key: string, value: string): string[] {
  const list = value.split(',').map((e) => e.trim());
  if (list.some((e) => e === '')) throw new AnnotationError(key, value, 'has an empty entry');
  return list;
}

function port(key: string, value: string, entry: string): number {
  if (entry === '*') throw new AnnotationError(key, value, 'is not valid: "*" must stand alone, and only includeInboundPorts, includeOutboundIPRanges and excludeOutboundIPRanges take it', entry);
  if (!/^[0-9]+$/.test(entry)) throw new AnnotationError(key, value, 'is not a port number', entry);
  const n = Number(entry);
  if (n < 1 || n > 65535) throw new AnnotationError(key, value, 'is not a port in 1..65535', entry);
  return n;
}

function limitPorts(key: string, value: string, ports: number[], extra = ''): number[] {
  if (ports.length > ML_MAX_PORTS) {
    throw new AnnotationError(key, value, `lists ${ports.length} distinct ports${extra}; meshlane's datapath holds at most ${ML_MAX_PORTS}`);
  }
  return ports;
}

/** A port list ("80, 443"), duplicates removed in order. "" is the empty list. */
export function parsePortList(key: string, value: string): number[] {
  const t = value.trim();
  if (t === '') return [];
  if (t === '*') throw new AnnotationError(key, value, 'is not valid here: "*" is accepted only by includeInboundPorts (istio-iptables would write "--dport *" and fail)');
  return [...new Set(entries(key, t).map((e) => port(key, value, e)))];
}

const V4_PREFIX = /^(?:0|[1-9][0-9]?)$/;
const V6_PREFIX = /^(?:0|[1-9][0-9]{0,2})$/;

/** IPv6 text (RFC 5952); an IPv4-mapped address stays IPv6: ::ffff:a.b.c.d. */
function bytesToV6(b: Uint8Array): string {
  return isMappedV4(b) ? `::ffff:${fromMapped16(b)}` : fromMapped16(b);
}

/**
 * One CIDR in its normal form: host bits cleared, IPv6 compressed (RFC 5952),
 * a bare address as /32 or /128. undefined when it is not a CIDR (zone ids,
 * leading zeros, prefix out of range, anything else).
 */
export function normalizeCidr(text: string): string | undefined {
  const slash = text.indexOf('/');
  const ip = slash < 0 ? text : text.slice(0, slash);
  const bits = slash < 0 ? undefined : text.slice(slash + 1);
  if (ip.includes('%')) return undefined;
  if (isIPv4(ip)) {
    if (bits !== undefined && (!V4_PREFIX.test(bits) || Number(bits) > 32)) return undefined;
    const len = bits === undefined ? 32 : Number(bits);
    const n = ip.split('.').reduce((acc, p) => acc * 256 + Number(p), 0);
    // Plain arithmetic: JavaScript's bitwise operators are signed 32-bit.
    const net = n - (n % 2 ** (32 - len));
    const parts = [24, 16, 8, 0].map((s) => Math.floor(net / 2 ** s) % 256);
    return `${parts.join('.')}/${len}`;
  }
  if (isIPv6(ip)) {
    if (bits !== undefined && (!V6_PREFIX.test(bits) || Number(bits) > 128)) return undefined;
    const len = bits === undefined ? 128 : Number(bits);
    const b = toMapped16(ip);
    for (let bit = len; bit < 128; bit++) {
      const i = bit >> 3;
      b[i] = (b[i] ?? 0) & ~(0x80 >> (bit & 7));
    }
    return `${bytesToV6(b)}/${len}`;
  }
  return undefined;
}

/** A CIDR list: '*', or normalised CIDRs without duplicates. "" is the empty list. */
export function parseCidrList(key: string, value: string, wildcard: boolean): '*' | string[] {
  const t = value.trim();
  if (t === '') return [];
  if (t === '*') {
    if (wildcard) return '*';
    throw new AnnotationError(key, value, 'is not valid here: "*" is not a CIDR (istio-cni refuses it as well)');
  }
  const out: string[] = [];
  for (const e of entries(key, t)) {
    if (e === '*') throw new AnnotationError(key, value, 'is not valid: "*" must stand alone', e);
    const c = normalizeCidr(e);
    if (c === undefined) throw new AnnotationError(key, value, 'is not a valid CIDR', e);
    if (!out.includes(c)) out.push(c);
  }
  if (out.length > ML_MAX_CIDRS) {
    throw new AnnotationError(key, value, `lists ${out.length} distinct ranges; meshlane's datapath holds at most ${ML_MAX_CIDRS}`);
  }
  return out;
}

const INTERFACE_NAME = /^[a-zA-Z0-9_][a-zA-Z0-9_.-]*$/;

/** Linux interface names as Istio validates them (pkg/util/net ValidateInterfaceNames). */
export function parseInterfaceList(key: string, value: string): string[] {
  const t = value.trim();
  if (t === '') return [];
  const out: string[] = [];
  for (const e of entries(key, t)) {
    if (e.length > 15) throw new AnnotationError(key, value, 'is not an interface name (at most 15 characters)', e);
    if (!INTERFACE_NAME.test(e)) throw new AnnotationError(key, value, 'is not an interface name', e);
    if (!out.includes(e)) out.push(e);
  }
  return out;
}

/**
 * sidecar.istio.io/interceptionMode: REDIRECT (also when absent) or TPROXY;
 * AnnotationError for anything else (istio-cni's values are case-sensitive).
 */
export function interceptionMode(annotations: Record<string, string>): 'REDIRECT' | 'TPROXY' {
  const mode = raw(annotations, ANNOTATIONS.interceptionMode);
  if (mode === undefined || mode === 'REDIRECT') return 'REDIRECT';
  if (mode === 'TPROXY') return 'TPROXY';
  throw new AnnotationError(ANNOTATIONS.interceptionMode, mode, 'is not a valid interception mode: REDIRECT or TPROXY');
}

export interface InterceptionParse {
  config: InterceptionConfig;
  /** Always REDIRECT today (TPROXY is refused). */
  mode: 'REDIRECT';
  /** traffic.sidecar.istio.io/excludeInterfaces, validated; see notes for what the datapath does with it. */
  excludeInterfaces: string[];
  /** What the eBPF datapath applies differently from istio-cni's iptables, for the plugin to log. */
  notes: string[];
}

/** Every interception annotation, validated, with what the datapath cannot honour. */
export function parseInterceptionAnnotations(annotations: Record<string, string>): InterceptionParse {
  const notes: string[] = [];

  if (interceptionMode(annotations) === 'TPROXY') {
    throw new AnnotationError(
      ANNOTATIONS.interceptionMode,
      'TPROXY',
      'is not supported by meshlane yet; only REDIRECT is (remove the annotation or set it to REDIRECT; beside istio-cni, whose rules intercept a TPROXY pod, meshlane passes such a pod through)',
    );
  }

  const inclIn = raw(annotations, ANNOTATIONS.includeInboundPorts);
  const includeInboundPorts: '*' | number[] =
    inclIn === undefined || inclIn.trim() === '*' ? '*' : limitPorts(ANNOTATIONS.includeInboundPorts, inclIn, parsePortList(ANNOTATIONS.includeInboundPorts, inclIn));

  // istio-cni: the annotation (default "15020"), then ",15020,15021,15090", duplicates removed.
  const exclIn = raw(annotations, ANNOTATIONS.excludeInboundPorts);
  const exclInUser = exclIn === undefined ? [DEFAULT_EXCLUDED_PORT] : parsePortList(ANNOTATIONS.excludeInboundPorts, exclIn);
  const excludeInboundPorts = limitPorts(
    ANNOTATIONS.excludeInboundPorts,
    exclIn ?? '',
    [...new Set([...exclInUser, ...ALWAYS_EXCLUDED_INBOUND_PORTS])],
    ` with ${ALWAYS_EXCLUDED_INBOUND_PORTS.join(', ')} that are always excluded`,
  );

  const inclOut = raw(annotations, ANNOTATIONS.includeOutboundPorts);
  const includeOutboundPorts = inclOut === undefined ? [] : limitPorts(ANNOTATIONS.includeOutboundPorts, inclOut, parsePortList(ANNOTATIONS.includeOutboundPorts, inclOut));

  // istio-cni's default is "15020"; a present annotation (even "") replaces it.
  const exclOut = raw(annotations, ANNOTATIONS.excludeOutboundPorts);
  const excludeOutboundPorts =
    exclOut === undefined ? [DEFAULT_EXCLUDED_PORT] : limitPorts(ANNOTATIONS.excludeOutboundPorts, exclOut, parsePortList(ANNOTATIONS.excludeOutboundPorts, exclOut));

  const inclCidr = raw(annotations, ANNOTATIONS.includeOutboundIPRanges);
  const includeOutboundCidrs = inclCidr === undefined ? '*' : parseCidrList(ANNOTATIONS.includeOutboundIPRanges, inclCidr, true);

  // istio-cni refuses "*" here (ValidateExcludeIPRanges: "*" is not a CIDR), and so does meshlane.
  const exclCidr = raw(annotations, ANNOTATIONS.excludeOutboundIPRanges);
  const excludeOutboundCidrs = exclCidr === undefined ? [] : parseCidrList(ANNOTATIONS.excludeOutboundIPRanges, exclCidr, false);

  const sp = raw(annotations, ANNOTATIONS.statusPort);
  let statusPort = DEFAULT_STATUS_PORT;
  if (sp !== undefined) {
    const t = sp.trim();
    if (!/^[0-9]+$/.test(t) || Number(t) > 65535) throw new AnnotationError(ANNOTATIONS.statusPort, sp, 'is not a port number (0..65535)');
    statusPort = Number(t); // 0: "no status port"; the datapath reads 0 as 15021, which it always leaves alone
  }

  const ei = raw(annotations, ANNOTATIONS.excludeInterfaces);
  const excludeInterfaces = ei === undefined ? [] : parseInterfaceList(ANNOTATIONS.excludeInterfaces, ei);
  if (excludeInterfaces.length > 0) {
    notes.push(
      `${ANNOTATIONS.excludeInterfaces} (${excludeInterfaces.join(',')}): inbound is intercepted only on the CNI interface, so other interfaces are never intercepted inbound; ` +
        'outbound connections are redirected at connect() before routing picks an interface, so outbound traffic leaving by an excluded interface is still sent to the proxy',
    );
  }

  // Traffic arriving from a VM interface is to be treated as outbound and redirected: the
  // datapath cannot do that, and the pod must not run without the interception it asks for.
  for (const key of [ANNOTATIONS.rerouteVirtualInterfaces, ANNOTATIONS.kubevirtInterfaces]) {
    const v = raw(annotations, key);
    if (v !== undefined && v.trim() !== '') {
      parseInterfaceList(key, v);
      throw new AnnotationError(key, v, 'is not supported by meshlane: its eBPF datapath cannot redirect traffic arriving from a virtual interface');
    }
  }

  return {
    config: { includeInboundPorts, excludeInboundPorts, includeOutboundPorts, excludeOutboundPorts, includeOutboundCidrs, excludeOutboundCidrs, statusPort },
    mode: 'REDIRECT',
    excludeInterfaces,
    notes,
  };
}

export function interceptionFromAnnotations(annotations: Record<string, string>): InterceptionConfig {
  return parseInterceptionAnnotations(annotations).config;
}
