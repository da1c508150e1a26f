// Seeded CNI calls as a hostile or broken node would make them: malformed stdin,
// wrong types for every config field, broken prevResults of every version,
// hostile annotations, bad CNI_* values, all six commands. The same seed gives
// the same cases (replay a failure with MESHLANE_FUZZ_SEED=<seed>), and every
// path the config names lies inside the case's own directory, so a case can
// only write where its config says.
import { join } from 'node:path';

/** mulberry32: small, fast, good enough to spread cases. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

export interface FuzzDirs {
  /** The case's own directory: the config's paths point inside it. */
  root: string;
  stateDir: string;
  logFile: string;
  pinDir: string;
  cgroupRoot: string;
  kubeconfig: string;
}

export function fuzzDirs(root: string): FuzzDirs {
  return {
    root,
    stateDir: join(root, 'state'),
    logFile: join(root, 'log', 'meshlane.log'),
    pinDir: join(root, 'pins'),
    cgroupRoot: join(root, 'cgroup'),
    kubeconfig: join(root, 'kubeconfig'),
  };
}

export interface FuzzCase {
  index: number;
  /** What was done to the valid call, for the failure message. */
  mutations: string[];
  env: Record<string, string>;
  stdin: string | Buffer;
  command: string;
  containerId: string;
  ifname: string;
}

export const POD_UID = '0d5c3a8e-2f6b-4c1e-9a77-1b2c3d4e5f60';
const SIDECAR_STATUS = JSON.stringify({ initContainers: ['istio-validation', 'istio-proxy'], containers: null, volumes: ['istio-envoy'], imageP: null });
const COMMANDS = ['ADD', 'DEL', 'CHECK', 'GC', 'STATUS', 'VERSION'];
const VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'];
const CONFIG_FIELDS = [
  'cniVersion', 'name', 'type', 'log_level', 'log_file', 'bpf_pin_dir', 'cgroup_root', 'state_dir', 'kubeconfig',
  'exclude_namespaces', 'kube_api_timeout_seconds', 'dns_capture', 'runtimeConfig', 'prevResult', 'capabilities',
  'cni.dev/valid-attachments', 'cni.dev/attachments', 'disableCheck',
];
const ANNOTATION_KEYS = [
  'sidecar.istio.io/status', 'sidecar.istio.io/inject', 'sidecar.istio.io/interceptionMode', 'status.sidecar.istio.io/port',
  'traffic.sidecar.istio.io/includeOutboundIPRanges', 'traffic.sidecar.istio.io/excludeOutboundIPRanges',
  'traffic.sidecar.istio.io/includeInboundPorts', 'traffic.sidecar.istio.io/excludeInboundPorts',
  'traffic.sidecar.istio.io/includeOutboundPorts', 'traffic.sidecar.istio.io/excludeOutboundPorts',
  'traffic.sidecar.istio.io/excludeInterfaces', 'proxy.istio.io/config', 'proxy.istio.io/overrides', 'sidecar.istio.io/proxyUID',
  '__proto__', 'constructor',
];

type Rand = () => number;
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
const int = (r: Rand, lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));

/** A value of a random type, sometimes huge or odd. */
function anyValue(r: Rand, depth = 0): unknown {
  switch (int(r, 0, 12)) {
    case 0: return null;
    case 1: return r() < 0.5;
    case 2: return int(r, -5, 70000);
    case 3: return r() * 1e20;
    case 4: return '';
    case 5: return 'x'.repeat(int(r, 1, 5000));
    case 6: return pick(r, ['relative/path', '/', '..', '../../etc', '\u0000', '*', '0.0.0.0/0', '::/0', '15001', '-1', 'debug', '1.0.0', '{"a":', '\ud800']);
    case 7: return depth > 3 ? [] : Array.from({ length: int(r, 0, 4) }, () => anyValue(r, depth + 1));
    case 8: return depth > 3 ? {} : Object.fromEntries(Array.from({ length: int(r, 0, 4) }, (_, i) => [pick(r, ['a', '__proto__', 'ips', 'code', String(i)]), anyValue(r, depth + 1)]));
    case 9: return Number.MAX_SAFE_INTEGER + 2;
    case 10: return -0;
    case 11: return pick(r, VERSIONS);
    default: return '\n\t"\\';
  }
}

function prevResult(r: Rand, version: string): Record<string, unknown> {
  const old = version.startsWith('0.');
  const ips: Array<Record<string, unknown>> = [{ interface: 2, address: '10.244.0.5/24', gateway: '10.244.0.1' }, { interface: 2, address: 'fd00:10:244::5/64' }];
  if (old) for (const ip of ips) ip['version'] = String(ip['address']).includes(':') ? '6' : '4';
  const res: Record<string, unknown> = {
    cniVersion: version,
    interfaces: [{ name: 'cni0', mac: '0a:58:0a:f4:00:01' }, { name: 'veth1', mac: 'aa:bb:cc:dd:ee:ff' }, { name: 'eth0', mac: '0a:58:0a:f4:00:05', sandbox: '/var/run/netns/fuzz' }],
    ips,
  };
  if (r() < 0.1) (res['interfaces'] as unknown[]).push({ name: 'net1', sandbox: '/var/run/netns/fuzz' });
  return res;
}

/** Break `p` in place; says how. */
function brokenPrevResult(r: Rand, p: Record<string, unknown>): string {
  const ips = (Array.isArray(p['ips']) ? p['ips'] : []) as Array<Record<string, unknown>>;
  switch (int(r, 0, 9)) {
    case 0: delete p['ips']; return 'prevResult without ips';
    case 1: if (ips[0]) ips[0]['interface'] = int(r, -3, 99); return 'ips[0].interface out of range';
    case 2: if (ips[0]) ips[0]['address'] = anyValue(r); return 'ips[0].address of a random type';
    case 3: p['interfaces'] = anyValue(r); return 'interfaces of a random type';
    case 4: p['cniVersion'] = anyValue(r); return 'prevResult.cniVersion of a random type';
    case 5: if (ips[0]) ips[0]['version'] = pick(r, ['4', '6', '7', 4]); return 'ips[0].version odd';
    case 6: p['ips'] = Array.from({ length: int(r, 0, 600) }, () => ({ address: '10.0.0.1/32' })); return 'many ips';
    case 7: p['routes'] = anyValue(r); return 'routes of a random type';
    case 8: if (ips[0]) ips[0]['address'] = pick(r, ['10.0.0.1', '999.1.1.1/24', 'fe80::1%eth0/64', '::ffff:10.0.0.1/96', '0.0.0.0/0']); return 'ips[0].address malformed';
    default: return 'prevResult unchanged';
  }
}

/** The i-th case of a seed. Deterministic. */
export function fuzzCase(seed: number, index: number, dirs: FuzzDirs): FuzzCase {
  const r = prng((seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0);
  const mutations: string[] = [];
  const command = r() < 0.55 ? 'ADD' : pick(r, COMMANDS);
  const version = command === 'GC' || command === 'STATUS' ? '1.1.0' : pick(r, VERSIONS);
  const sidecar = r() < 0.6;
  const annotations: Record<string, unknown> = sidecar ? { 'sidecar.istio.io/status': SIDECAR_STATUS } : { app: 'plain' };
  const config: Record<string, unknown> = {
    cniVersion: version,
    name: 'k8s-pod-network',
    type: 'meshlane',
    log_level: pick(r, ['debug', 'info', 'warn', 'error']),
    log_file: dirs.logFile,
    bpf_pin_dir: dirs.pinDir,
    cgroup_root: dirs.cgroupRoot,
    state_dir: dirs.stateDir,
    kubeconfig: dirs.kubeconfig,
    kube_api_timeout_seconds: 1,
    capabilities: { 'io.kubernetes.cri.pod-annotations': true },
    runtimeConfig: { 'io.kubernetes.cri.pod-annotations': annotations },
  };
  if (command === 'ADD' || command === 'CHECK' || (command === 'DEL' && r() < 0.5)) config['prevResult'] = prevResult(r, version);
  if (command === 'GC') config['cni.dev/valid-attachments'] = r() < 0.5 ? [] : [{ containerID: 'c0ffee', ifname: 'eth0' }];
  const env: Record<string, string> = {
    CNI_COMMAND: command,
    CNI_CONTAINERID: `fz${index.toString(16)}c0ffee`,
    CNI_NETNS: '/var/run/netns/fuzz',
    CNI_IFNAME: 'eth0',
    CNI_PATH: '/opt/cni/bin',
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-${index};K8S_POD_UID=${POD_UID}`,
  };
  let stdinOverride: string | Buffer | undefined;

  const n = int(r, 1, 3);
  for (let m = 0; m < n; m++) {
    switch (int(r, 0, 9)) {
      case 0: {
        // malformed stdin
        const text = JSON.stringify(config);
        const kind = int(r, 0, 6);
        stdinOverride = [
          () => text.slice(0, int(r, 0, text.length - 1)),
          () => Buffer.from(Array.from({ length: int(r, 0, 300) }, () => int(r, 0, 255))),
          () => `${'['.repeat(int(r, 100, 5000))}`,
          () => JSON.stringify(anyValue(r)),
          () => `\ufeff${text}`,
          () => `${text}${text}`,
          () => text.replace('"cniVersion"', '"cniVersion":"1.0.0","cniVersion"'),
        ][kind]?.() ?? '';
        mutations.push(`malformed stdin #${kind}`);
        break;
      }
      case 1:
      case 2: {
        const field = pick(r, CONFIG_FIELDS);
        const v = anyValue(r);
        // A path field set to a valid absolute path would point outside the case dir: never.
        config[field] = typeof v === 'string' && v.startsWith('/') && v.length > 1 ? `rel${v}` : v;
        mutations.push(`${field} = ${JSON.stringify(config[field])?.slice(0, 60)}`);
        break;
      }
      case 3: {
        const prev = config['prevResult'];
        if (prev && typeof prev === 'object' && !Array.isArray(prev)) mutations.push(brokenPrevResult(r, prev as Record<string, unknown>));
        break;
      }
      case 4:
      case 5: {
        const key = pick(r, ANNOTATION_KEYS);
        const v = anyValue(r);
        annotations[key] = typeof v === 'string' ? v : JSON.stringify(v) ?? 'null';
        if (r() < 0.2) config['runtimeConfig'] = { 'io.kubernetes.cri.pod-annotations': anyValue(r) };
        mutations.push(`annotation ${key}`);
        break;
      }
      case 6: {
        const key = pick(r, ['CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH', 'CNI_ARGS']);
        const value = pick(r, ['', 'x'.repeat(int(r, 16, 70000)), '../../etc/passwd', 'eth0/../x', 'a b', '\u00e9t\u00e9', ';;=;', 'K8S_POD_NAME=../../x', 'add', 'VERSION', '.', '..', 'a@b']);
        // CNI_COMMAND stays set (maybe empty): without it the executable is not a CNI plugin but the CLI.
        if (r() < 0.2 && key !== 'CNI_COMMAND') {
          delete env[key];
          mutations.push(`${key} unset`);
        } else {
          env[key] = value;
          mutations.push(`${key} = ${JSON.stringify(value.slice(0, 40))}${value.length > 40 ? '...' : ''}`);
        }
        break;
      }
      case 7: {
        const key = pick(r, ['K8S_POD_NAMESPACE', 'K8S_POD_NAME', 'K8S_POD_UID']);
        const value = pick(r, ['', 'kube-system', 'n'.repeat(300), '../x', 'A', 'ns;x=y', POD_UID.toUpperCase(), 'a.b']);
        env['CNI_ARGS'] = `${env['CNI_ARGS'] ?? ''};${key}=${value}`;
        mutations.push(`${key}=${value.slice(0, 30)}`);
        break;
      }
      case 8: {
        env['CNI_COMMAND'] = pick(r, COMMANDS);
        mutations.push(`command ${env['CNI_COMMAND']}`);
        break;
      }
      default:
        mutations.push('unchanged');
    }
  }
  const stdin = stdinOverride ?? JSON.stringify(config);
  return { index, mutations, env, stdin, command: env['CNI_COMMAND'] ?? '', containerId: env['CNI_CONTAINERID'] ?? '', ifname: env['CNI_IFNAME'] ?? '' };
}

export interface CallOutcome {
  exitCode: number;
  stdout: string;
}

/** What must hold for every call; returns the broken rules (empty when all hold). */
export function checkOutcome(c: FuzzCase, o: CallOutcome): string[] {
  const problems: string[] = [];
  if (o.exitCode !== 0 && o.exitCode !== 1) problems.push(`exit status ${o.exitCode}, neither 0 nor 1`);
  if (/^\s+at .+:\d+:\d+\)?$/m.test(o.stdout)) problems.push('a stack trace on stdout');
  const text = o.stdout;
  if (text === '') {
    if (o.exitCode !== 0) problems.push('a failure with nothing on stdout');
    if (c.command === 'VERSION' && o.exitCode === 0) problems.push('VERSION printed nothing');
    return problems;
  }
  if (!text.endsWith('\n') || text.slice(0, -1).includes('\n')) problems.push('stdout is not one line');
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    problems.push('stdout is not one JSON document');
    return problems;
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) {
    problems.push('stdout is JSON but not an object');
    return problems;
  }
  const d = doc as Record<string, unknown>;
  const isError = 'code' in d && 'msg' in d;
  if (o.exitCode === 0 && isError) problems.push('an error document with exit status 0');
  if (o.exitCode !== 0 && !isError) problems.push('a failure whose stdout is not an error document');
  if (isError) {
    const code = d['code'];
    if (typeof code !== 'number' || !Number.isInteger(code) || code < 1 || code >= 999) problems.push(`error code ${JSON.stringify(code)} (999 is a bug)`);
    if (typeof d['msg'] !== 'string') problems.push('msg is not a string');
  } else if (o.exitCode === 0 && (c.command === 'DEL' || c.command === 'GC' || c.command === 'CHECK' || c.command === 'STATUS')) {
    problems.push(`${c.command} printed a document on success`);
  }
  return problems;
}
