// The node installer's settings: a flag for each, with a MESHLANE_* environment
// variable behind it (the DaemonSet's ConfigMap sets those), then the default.
import { isAbsolute, join } from 'node:path';
import { parseArgs } from 'node:util';
import { UsageError } from '../usage-error.js';
import { LOG_LEVELS, isLogLevel, type LogLevel } from '../log/logger.js';
import { errorMessage } from '../describe-error.js';

export interface InstallOptions {
  cniNetDir: string;
  cniBinDir: string;
  /** undefined: detect the cgroup2 mount. */
  cgroupRoot: string | undefined;
  bpffs: string;
  pinDir: string;
  stateDir: string;
  /** The primary conflist to chain into; undefined: pick as kubelet does. */
  confName: string | undefined;
  kubeconfig: string;
  once: boolean;
  json: boolean;
  logLevel: LogLevel;
  logFile: string | undefined;
  healthAddress: string;
  healthPort: number;
  sockmap: 'off' | 'on' | 'proxy-only';
  proxyUid: number;
  proxyGid: number;
  excludeNamespaces: string[];
  dnsCapture: boolean;
  /** An eBPF object to load instead of the one built into the executable. */
  bpfObject: string | undefined;
  /** The container runtime's CRI socket for the reconcile rounds; undefined: the first that exists; 'none': do not ask a runtime. */
  criSocket: string | undefined;
  /** Seconds between install passes and reconcile rounds when nothing else wakes the loop. */
  period: number;
}

interface Spec {
  flag: string;
  env: string;
  kind: 'path' | 'string' | 'bool' | 'int' | 'list';
  help: string;
  default?: string;
}

export const SPECS: readonly Spec[] = [
  { flag: 'cni-net-dir', env: 'MESHLANE_CNI_NET_DIR', kind: 'path', default: '/etc/cni/net.d', help: 'the CNI config dir kubelet reads' },
  { flag: 'cni-bin-dir', env: 'MESHLANE_CNI_BIN_DIR', kind: 'path', default: '/opt/cni/bin', help: 'where the runtime finds CNI plugins' },
  { flag: 'cgroup-root', env: 'MESHLANE_CGROUP_ROOT', kind: 'path', help: 'cgroup v2 dir to attach to (default: the cgroup2 mount)' },
  { flag: 'bpffs', env: 'MESHLANE_BPFFS', kind: 'path', default: '/sys/fs/bpf', help: 'the BPF filesystem (mounted when absent)' },
  { flag: 'pin-dir', env: 'MESHLANE_PIN_DIR', kind: 'path', help: 'where maps and programs are pinned (default: <bpffs>/meshlane)' },
  { flag: 'state-dir', env: 'MESHLANE_STATE_DIR', kind: 'path', default: '/var/lib/meshlane', help: "the plugin's attachment records and the installer's state" },
  { flag: 'conf-name', env: 'MESHLANE_CONF_NAME', kind: 'string', help: 'the primary CNI config file to chain into (default: the first valid, as kubelet)' },
  { flag: 'kubeconfig', env: 'MESHLANE_KUBECONFIG', kind: 'path', default: '/var/run/meshlane/kubeconfig', help: "the plugin's kubeconfig (written from the service account)" },
  { flag: 'log-level', env: 'MESHLANE_LOG_LEVEL', kind: 'string', default: 'info', help: `${LOG_LEVELS.join('|')}, also for the plugin` },
  { flag: 'log-file', env: 'MESHLANE_LOG_FILE', kind: 'string', default: '/var/run/meshlane/meshlane.log', help: "the plugin's log file (\"\" = stderr only)" },
  { flag: 'health-address', env: 'MESHLANE_HEALTH_ADDRESS', kind: 'string', default: '0.0.0.0', help: 'address of /healthz, /readyz, /metrics' },
  { flag: 'health-port', env: 'MESHLANE_HEALTH_PORT', kind: 'int', default: '15099', help: 'port of /healthz, /readyz, /metrics (0: any)' },
  { flag: 'sockmap', env: 'MESHLANE_SOCKMAP', kind: 'string', default: 'off', help: 'same-node bypass of TCP/IP: off, proxy-only (proxy<->proxy sockets), on (app sockets too). The kernel is probed for the known sockmap faults first; a mode it fails is refused and off runs instead (docs/datapath.md, "Sockmap fault probe")' },
  { flag: 'proxy-uid', env: 'MESHLANE_PROXY_UID', kind: 'int', default: '1337', help: "the proxy's uid when a pod does not say" },
  { flag: 'proxy-gid', env: 'MESHLANE_PROXY_GID', kind: 'int', default: '1337', help: "the proxy's gid when a pod does not say" },
  { flag: 'exclude-namespaces', env: 'MESHLANE_EXCLUDE_NAMESPACES', kind: 'list', default: 'kube-system', help: 'namespaces never intercepted (comma separated)' },
  { flag: 'dns-capture', env: 'MESHLANE_DNS_CAPTURE', kind: 'bool', help: "capture every meshed pod's DNS" },
  { flag: 'bpf-object', env: 'MESHLANE_BPF_OBJECT', kind: 'path', help: 'load this eBPF object instead of the built-in one' },
  { flag: 'cri-socket', env: 'MESHLANE_CRI_SOCKET', kind: 'string', help: 'the container runtime\'s CRI socket, asked for the pods running on this node (default: the first of /run/containerd/containerd.sock, /var/run/crio/crio.sock, /run/k3s/containerd/containerd.sock that exists; none: do not ask)' },
  { flag: 'period', env: 'MESHLANE_PERIOD', kind: 'int', default: '30', help: 'seconds between checks of the node (datapath, CNI config, running pods) when nothing changes' },
  { flag: 'once', env: 'MESHLANE_ONCE', kind: 'bool', help: 'one pass, then exit (else: keep the node right until SIGTERM)' },
  { flag: 'json', env: 'MESHLANE_JSON', kind: 'bool', help: 'machine-readable output' },
];

export const INSTALL_FLAGS: readonly string[] = [
  'cni-net-dir', 'cni-bin-dir', 'cgroup-root', 'bpffs', 'pin-dir', 'state-dir', 'conf-name', 'kubeconfig',
  'log-level', 'log-file', 'health-address', 'health-port', 'sockmap', 'proxy-uid', 'proxy-gid',
  'exclude-namespaces', 'dns-capture', 'bpf-object', 'cri-socket', 'period', 'once',
];
export const UNINSTALL_FLAGS: readonly string[] = ['cni-net-dir', 'cni-bin-dir', 'cgroup-root', 'bpffs', 'pin-dir', 'state-dir', 'kubeconfig', 'log-level'];
export const STATUS_FLAGS: readonly string[] = ['cni-net-dir', 'cgroup-root', 'bpffs', 'pin-dir', 'state-dir', 'json'];

/**
 * What a node command accepts: its own flags, and every flag of install, so that an
 * operator can copy one command line between install, status and uninstall. A flag
 * a command has no use for is accepted and ignored (its help says which).
 */
export function acceptedFlags(flags: readonly string[]): readonly string[] {
  return [...flags, ...INSTALL_FLAGS.filter((f) => !flags.includes(f))];
}

export function optionsHelp(usage: string, flags: readonly string[]): string {
  const specs = SPECS.filter((s) => flags.includes(s.flag));
  const width = Math.max(...specs.map((s) => s.flag.length)) + 2;
  const ignored = acceptedFlags(flags).filter((f) => !flags.includes(f));
  return [
    usage,
    '',
    'Flags (each also read from its environment variable):',
    ...specs.map((s) => `  --${s.flag.padEnd(width)}${s.help}${s.default !== undefined ? ` [${s.default || '""'}]` : ''}  (${s.env})`),
    ...(ignored.length
      ? ['', "Accepted and ignored here (install's other flags, so one command line fits install, status and uninstall):", `  ${ignored.map((f) => `--${f}`).join(' ')}`]
      : []),
    '',
  ].join('\n');
}

function truthy(v: string, name: string): boolean {
  if (/^(1|true|yes|on)$/i.test(v)) return true;
  if (/^(0|false|no|off|)$/i.test(v)) return false;
  throw new UsageError(`${name}: ${JSON.stringify(v)} is not true or false`);
}

export function parseOptions(args: readonly string[], env: Readonly<Record<string, string | undefined>>, flags: readonly string[]): InstallOptions {
  const accepted = acceptedFlags(flags);
  const specs = SPECS.filter((s) => accepted.includes(s.flag));
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args: [...args],
      options: Object.fromEntries(specs.map((s) => [s.flag, { type: s.kind === 'bool' ? ('boolean' as const) : ('string' as const) }])),
      allowPositionals: false,
      strict: true,
    }).values as Record<string, string | boolean | undefined>;
  } catch (err) {
    throw new UsageError(errorMessage(err));
  }
  const raw = (flag: string): string | undefined => {
    const spec = SPECS.find((s) => s.flag === flag);
    if (!spec) throw new Error(`unknown option ${flag}`);
    if (!flags.includes(flag)) return spec.default; // accepted for copy-paste, no effect here
    const v = values[flag];
    if (typeof v === 'boolean') return v ? 'true' : 'false';
    if (typeof v === 'string') return v;
    return env[spec.env] ?? spec.default;
  };
  const path = (flag: string): string | undefined => {
    const v = raw(flag);
    // An empty value (e.g. MESHLANE_CGROUP_ROOT="" in a ConfigMap) means the default.
    if (v === undefined || v === '') return undefined;
    if (!isAbsolute(v) || v.includes('\0')) throw new UsageError(`--${flag}: ${JSON.stringify(v)} is not an absolute path`);
    return v;
  };
  const int = (flag: string, min: number, max: number): number => {
    const v = raw(flag) ?? '';
    if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new UsageError(`--${flag}: ${JSON.stringify(v)} is not a whole number from ${min} to ${max}`);
    return Number(v);
  };
  const logLevel = raw('log-level') ?? 'info';
  if (!isLogLevel(logLevel)) throw new UsageError(`--log-level: use one of ${LOG_LEVELS.join(', ')}`);
  const logFile = raw('log-file') ?? '';
  if (logFile !== '' && !isAbsolute(logFile)) throw new UsageError('--log-file: use an absolute path, or "" for stderr only');
  const sockmap = raw('sockmap') ?? 'off';
  if (sockmap !== 'off' && sockmap !== 'on' && sockmap !== 'proxy-only') throw new UsageError('--sockmap: use off, on or proxy-only');
  const confName = raw('conf-name');
  if (confName !== undefined && (confName.includes('/') || confName.startsWith('.'))) throw new UsageError('--conf-name: a file name in the CNI config dir, not a path');
  const criSocket = raw('cri-socket');
  if (criSocket !== undefined && criSocket !== '' && criSocket !== 'none' && (!isAbsolute(criSocket) || criSocket.includes('\0'))) {
    throw new UsageError(`--cri-socket: ${JSON.stringify(criSocket)} is not an absolute path or none`);
  }
  const namespaces = (raw('exclude-namespaces') ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
  const bpffs = path('bpffs') ?? '/sys/fs/bpf';
  return {
    cniNetDir: path('cni-net-dir') ?? '/etc/cni/net.d',
    cniBinDir: path('cni-bin-dir') ?? '/opt/cni/bin',
    cgroupRoot: path('cgroup-root'),
    bpffs,
    pinDir: path('pin-dir') ?? join(bpffs, 'meshlane'),
    stateDir: path('state-dir') ?? '/var/lib/meshlane',
    confName: confName === '' ? undefined : confName,
    kubeconfig: path('kubeconfig') ?? '/var/run/meshlane/kubeconfig',
    once: truthy(raw('once') ?? 'false', '--once'),
    json: truthy(raw('json') ?? 'false', '--json'),
    logLevel,
    logFile: logFile === '' ? undefined : logFile,
    healthAddress: raw('health-address') ?? '0.0.0.0',
    healthPort: int('health-port', 0, 65535),
    sockmap,
    proxyUid: int('proxy-uid', 0, 0xfffffffe),
    proxyGid: int('proxy-gid', 0, 0xfffffffe),
    excludeNamespaces: namespaces,
    dnsCapture: truthy(raw('dns-capture') ?? 'false', '--dns-capture'),
    bpfObject: path('bpf-object'),
    criSocket: criSocket === '' ? undefined : criSocket,
    period: int('period', 1, 3600),
  };
}
