// The CNI_* environment: which variable each command needs (the table skel.go keeps),
// and how each is validated. Pure: the environment is passed in.
import { CniError, CniErrorCode } from './errors.js';
import { isCniCommand, type CniCommand } from './versions.js';

export const CNI_ENV_VARS = [
  'CNI_COMMAND',
  'CNI_CONTAINERID',
  'CNI_NETNS',
  'CNI_IFNAME',
  'CNI_ARGS',
  'CNI_PATH',
] as const;
export type CniEnvVar = (typeof CNI_ENV_VARS)[number];

/**
 * Which variables each command needs (non-empty). CNI_ARGS is never required; DEL may
 * come with an empty CNI_NETNS (the netns is gone); GC and STATUS are about the network,
 * not one container; VERSION needs only the command.
 */
export const REQUIRED_ENV: Readonly<Record<CniCommand, readonly CniEnvVar[]>> = {
  ADD: ['CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'],
  CHECK: ['CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'],
  DEL: ['CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_IFNAME', 'CNI_PATH'],
  GC: ['CNI_COMMAND', 'CNI_PATH'],
  STATUS: ['CNI_COMMAND', 'CNI_PATH'],
  VERSION: ['CNI_COMMAND'],
};

/** Which variables each command reads at all (required ones plus the optional ones it uses). */
export const USED_ENV: Readonly<Record<CniCommand, readonly CniEnvVar[]>> = {
  ADD: ['CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_ARGS', 'CNI_PATH'],
  CHECK: ['CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_ARGS', 'CNI_PATH'],
  DEL: ['CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_ARGS', 'CNI_PATH'],
  GC: ['CNI_COMMAND', 'CNI_PATH'],
  STATUS: ['CNI_COMMAND', 'CNI_PATH'],
  VERSION: ['CNI_COMMAND'],
};

/**
 * Length bounds (bytes, UTF-8). Container ids are 64 hex digits in practice; a
 * plugin makes file names of them (`<id>@<ifname>.json` and its temp names must
 * stay within NAME_MAX, 255).
 */
export const MAX_CONTAINER_ID_BYTES = 192;
/** Linux IFNAMSIZ - 1. */
export const MAX_IFNAME_BYTES = 15;
/** PATH_MAX. */
export const MAX_NETNS_BYTES = 4096;
export const MAX_PATH_BYTES = 65536;
export const MAX_ARGS_BYTES = 32768;
export const MAX_ARGS_PAIRS = 256;
export const MAX_COMMAND_BYTES = 16;
/** Bound on `namespace/name` in log lines (a namespace is at most 63, a name 253). */
export const MAX_POD_FIELD_LENGTH = 320;

const CONTAINER_ID_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const IFNAME_FORBIDDEN_RE = /[\s/:]/u;

/** The validated environment of one call. Variables a command does not use are empty. */
export interface CniEnv {
  command: CniCommand;
  containerId: string;
  netns: string;
  ifname: string;
  /** CNI_ARGS as given (empty when absent). */
  argsRaw: string;
  args: ReadonlyMap<string, string>;
  /** CNI_PATH split on ':' without empty entries. */
  path: string[];
}

export type EnvSource = Readonly<Record<string, string | undefined>>;

function envError(msg: string, details?: string): CniError {
  return new CniError(CniErrorCode.InvalidEnvironment, msg, details);
}

function byteLength(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

/** A value quoted for an error message, cut to a readable length. */
export function quoteForMessage(value: string, max = 80): string {
  const cut = value.length > max ? `${value.slice(0, max)}...` : value;
  return JSON.stringify(cut);
}

/** Read CNI_COMMAND alone (missing or unknown: code 4). */
export function readCommand(env: EnvSource): CniCommand {
  const raw = env['CNI_COMMAND'] ?? '';
  if (raw === '') throw envError('required env variables [CNI_COMMAND] missing');
  if (!isCniCommand(raw)) {
    throw envError('unknown CNI_COMMAND', `CNI_COMMAND is ${quoteForMessage(raw, MAX_COMMAND_BYTES)}; known: ADD, DEL, CHECK, GC, STATUS, VERSION`);
  }
  return raw;
}

/**
 * Read and validate every variable the command needs. Missing required variables are
 * all named in one error (as skel does); an invalid one is reported on its own.
 */
export function readCniEnv(env: EnvSource): CniEnv {
  const command = readCommand(env);
  const required = REQUIRED_ENV[command];
  const used = USED_ENV[command];
  const get = (name: CniEnvVar): string => (used.includes(name) ? (env[name] ?? '') : '');

  const missing = required.filter((name) => get(name) === '');
  if (missing.length > 0) throw envError(`required env variables [${missing.join(',')}] missing`);

  const containerId = get('CNI_CONTAINERID');
  const netns = get('CNI_NETNS');
  const ifname = get('CNI_IFNAME');
  const argsRaw = get('CNI_ARGS');
  const pathRaw = get('CNI_PATH');

  if (required.includes('CNI_CONTAINERID')) validateContainerId(containerId);
  if (required.includes('CNI_IFNAME')) validateIfname(ifname);
  if (byteLength(netns) > MAX_NETNS_BYTES) throw envError(`CNI_NETNS is longer than ${MAX_NETNS_BYTES} bytes`);
  if (byteLength(pathRaw) > MAX_PATH_BYTES) throw envError(`CNI_PATH is longer than ${MAX_PATH_BYTES} bytes`);
  const args = parseCniArgs(argsRaw);
  if (command === 'ADD' || command === 'CHECK') validateK8sArgs(args);
  const path = pathRaw.split(':').filter((p) => p !== '');
  if (required.includes('CNI_PATH') && path.length === 0) {
    throw envError('CNI_PATH names no directory', `CNI_PATH is ${quoteForMessage(pathRaw)}`);
  }
  return { command, containerId, netns, ifname, argsRaw, args, path };
}

/** libcni's container id rule, plus a length bound. */
export function validateContainerId(id: string): void {
  if (id === '') throw envError('required env variables [CNI_CONTAINERID] missing');
  if (byteLength(id) > MAX_CONTAINER_ID_BYTES) {
    throw envError(`CNI_CONTAINERID is longer than ${MAX_CONTAINER_ID_BYTES} bytes`);
  }
  if (!CONTAINER_ID_RE.test(id)) {
    throw envError('invalid characters in CNI_CONTAINERID', `CNI_CONTAINERID is ${quoteForMessage(id)}; it must match ${CONTAINER_ID_RE.source}`);
  }
}

/** libcni's interface name rules (the kernel's dev_valid_name). */
export function validateIfname(ifname: string): void {
  if (ifname === '') throw envError('required env variables [CNI_IFNAME] missing');
  const bytes = byteLength(ifname);
  if (bytes > MAX_IFNAME_BYTES) {
    throw envError('CNI_IFNAME is too long', `interface names are at most ${MAX_IFNAME_BYTES} bytes, got ${bytes}`);
  }
  if (ifname === '.' || ifname === '..') throw envError('CNI_IFNAME is . or ..');
  if (IFNAME_FORBIDDEN_RE.test(ifname)) {
    throw envError('CNI_IFNAME contains / or : or whitespace characters', `CNI_IFNAME is ${quoteForMessage(ifname)}`);
  }
}

/**
 * Parse CNI_ARGS `K=V;K=V` like libcni's LoadArgs: every pair has exactly one '=' and a
 * non-empty key (code 4 otherwise). Empty segments (a trailing ';') are skipped; a
 * repeated key keeps its last value.
 */
export function parseCniArgs(raw: string): Map<string, string> {
  const out = new Map<string, string>();
  if (raw === '') return out;
  if (byteLength(raw) > MAX_ARGS_BYTES) throw envError(`CNI_ARGS is longer than ${MAX_ARGS_BYTES} bytes`);
  const segments = raw.split(';');
  let pairs = 0;
  for (const [i, segment] of segments.entries()) {
    if (segment === '') continue;
    pairs++;
    if (pairs > MAX_ARGS_PAIRS) throw envError(`CNI_ARGS has more than ${MAX_ARGS_PAIRS} pairs`);
    const parts = segment.split('=');
    if (parts.length !== 2 || parts[0] === '') {
      throw envError('invalid pair in CNI_ARGS', `pair ${i + 1} is ${quoteForMessage(segment)}; pairs are KEY=VALUE separated by ';'`);
    }
    out.set(parts[0] as string, parts[1] as string);
  }
  return out;
}

/** The Kubernetes keys runtimes put into CNI_ARGS. */
export const K8S_ARGS = {
  namespace: 'K8S_POD_NAMESPACE',
  name: 'K8S_POD_NAME',
  uid: 'K8S_POD_UID',
  infraContainerId: 'K8S_POD_INFRA_CONTAINER_ID',
} as const;

const DNS_LABEL_RE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN_RE = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const POD_UID_RE = /^[A-Za-z0-9-]{1,64}$/;

/**
 * The Kubernetes names in CNI_ARGS, when present, are what Kubernetes allows:
 * namespace a DNS label (63), name a DNS subdomain (253), uid [A-Za-z0-9-]
 * (64). They reach API paths, cgroup paths and log lines: anything else is code 4,
 * naming the variable. (DEL does not read them: it removes by container id.)
 */
export function validateK8sArgs(args: ReadonlyMap<string, string>): void {
  const rules: Array<[string, RegExp, string]> = [
    [K8S_ARGS.namespace, DNS_LABEL_RE, 'a DNS label (a-z, 0-9, -; at most 63)'],
    [K8S_ARGS.name, DNS_SUBDOMAIN_RE, 'a DNS subdomain (a-z, 0-9, -, .; at most 253)'],
    [K8S_ARGS.uid, POD_UID_RE, 'a pod UID (A-Z, a-z, 0-9, -; at most 64)'],
  ];
  for (const [key, re, want] of rules) {
    const v = args.get(key);
    if (v === undefined || v === '') continue;
    if (!re.test(v)) throw envError(`invalid ${key} in CNI_ARGS`, `${key} is ${quoteForMessage(v)}; it must be ${want}`);
  }
}

/** `namespace/name` for log lines, when both are in CNI_ARGS; bounded in size. */
export function podFromArgs(args: ReadonlyMap<string, string>): string | undefined {
  const namespace = args.get(K8S_ARGS.namespace);
  const name = args.get(K8S_ARGS.name);
  if (!namespace || !name) return undefined;
  return boundText(`${namespace}/${name}`, MAX_POD_FIELD_LENGTH);
}

/** Cut `text` to `max` characters, marking the cut (for log fields only, never for decisions). */
export function boundText(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}...`;
}
