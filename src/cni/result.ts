// CNI results (the `prevResult` a chained plugin gets and the result ADD prints), for
// every supported version. The parsed model is a validated, read-only view; the raw
// object stays the source of truth, so every field meshlane does not own is re-emitted
// untouched. Converting to a request's version changes only what the versions differ
// in: `cniVersion`, and `ips[].version` (present below 1.0.0, derived from the address).
import { CniError, CniErrorCode } from './errors.js';
import { ipFamily, parseCidr, type IpFamily } from './ip.js';
import { isJsonObject, jsonTypeName } from '../json/value.js';
import { parseVersion, resultHasIpVersion, compareVersions } from './versions.js';

export type { IpFamily } from './ip.js';

export interface CniInterface {
  name: string;
  mac?: string;
  /** Set for interfaces inside the sandbox (the netns path). */
  sandbox?: string;
  mtu?: number;
  socketPath?: string;
  pciID?: string;
}

export interface CniIpConfig {
  family: IpFamily;
  /** As given: address with prefix length (CIDR). */
  address: string;
  gateway?: string;
  /** Index into `interfaces`. */
  interface?: number;
}

export interface CniRoute {
  dst: string;
  gw?: string;
}

export interface CniDns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

/** Marks a parsed result (a symbol key: JSON.stringify never sees it). */
export const PREV_RESULT: unique symbol = Symbol('meshlane.cni.PrevResult');

/** A parsed result. Build it with parseResult; the typed fields are a view of `raw`. */
export interface PrevResult {
  readonly [PREV_RESULT]: true;
  /** The `cniVersion` the result itself declares, if any (the request's version is what counts). */
  readonly declaredVersion: string | undefined;
  readonly interfaces: readonly CniInterface[];
  readonly ips: readonly CniIpConfig[];
  readonly routes: readonly CniRoute[];
  readonly dns: CniDns;
  /** The JSON object as received; re-emitted by resultToJson. */
  readonly raw: Readonly<Record<string, unknown>>;
}

/** A result as a plain JSON object (what a handler may return instead of a PrevResult). */
export type CniResultJson = Readonly<Record<string, unknown>>;

/** An IP of the sandbox interface, without prefix length. */
export interface SandboxIp {
  family: IpFamily;
  address: string;
}

export function isPrevResult(value: unknown): value is PrevResult {
  return typeof value === 'object' && value !== null && (value as { [PREV_RESULT]?: unknown })[PREV_RESULT] === true;
}

function invalid(msg: string, details?: string): CniError {
  return new CniError(CniErrorCode.InvalidNetworkConfig, msg, details);
}

/** Field readers that name the field in their errors. */
class Fields {
  constructor(
    private readonly obj: Record<string, unknown>,
    private readonly where: string,
  ) {}

  path(key: string): string {
    return `${this.where}.${key}`;
  }

  optString(key: string): string | undefined {
    const v = this.obj[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'string') throw invalid(`${this.path(key)} is not a string`, `got ${jsonTypeName(v)}`);
    return v;
  }

  optUint(key: string): number | undefined {
    const v = this.obj[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
      throw invalid(`${this.path(key)} is not a non-negative integer`, `got ${typeof v === 'number' ? String(v) : jsonTypeName(v)}`);
    }
    return v;
  }

  optArray(key: string): unknown[] | undefined {
    const v = this.obj[key];
    if (v === undefined) return undefined;
    if (!Array.isArray(v)) throw invalid(`${this.path(key)} is not an array`, `got ${jsonTypeName(v)}`);
    return v;
  }

  optStringArray(key: string): string[] | undefined {
    const arr = this.optArray(key);
    if (arr === undefined) return undefined;
    arr.forEach((item, i) => {
      if (typeof item !== 'string') throw invalid(`${this.path(key)}[${i}] is not a string`, `got ${jsonTypeName(item)}`);
    });
    return arr as string[];
  }

  optObject(key: string): Record<string, unknown> | undefined {
    const v = this.obj[key];
    if (v === undefined) return undefined;
    if (!isJsonObject(v)) throw invalid(`${this.path(key)} is not a JSON object`, `got ${jsonTypeName(v)}`);
    return v;
  }

  cidr(key: string): { text: string; family: IpFamily } {
    const text = this.optString(key);
    if (text === undefined) throw invalid(`${this.path(key)} is missing`);
    const parsed = parseCidr(text);
    if (!parsed) throw invalid(`${this.path(key)} is not an IP address with a prefix length`, `got ${JSON.stringify(text.slice(0, 64))}`);
    return { text, family: parsed.family };
  }

  optIp(key: string): string | undefined {
    const text = this.optString(key);
    if (text === undefined) return undefined;
    if (ipFamily(text) === undefined) throw invalid(`${this.path(key)} is not an IP address`, `got ${JSON.stringify(text.slice(0, 64))}`);
    return text;
  }
}

function objectAt(value: unknown, where: string): Record<string, unknown> {
  if (!isJsonObject(value)) throw invalid(`${where} is not a JSON object`, `got ${jsonTypeName(value)}`);
  return value;
}

/**
 * Validate and model a result of any supported version (0.3.0 to 1.1.0). `where` names
 * the field in messages ("prevResult", or "result" for a handler's own result).
 * Errors: code 7 naming the field (e.g. `prevResult.ips[0].address`); a CNI 0.1/0.2
 * result (`ip4`/`ip6`) is code 1.
 */
export function parseResult(value: unknown, where = 'prevResult'): PrevResult {
  const obj = objectAt(value, where);
  const top = new Fields(obj, where);

  const declaredVersion = top.optString('cniVersion');
  if (declaredVersion !== undefined) {
    if (!parseVersion(declaredVersion)) {
      throw invalid(`${where}.cniVersion is not a CNI version`, `got ${JSON.stringify(declaredVersion.slice(0, 32))}`);
    }
    if (compareVersions(declaredVersion, '0.3.0') < 0) throw tooOld(where, declaredVersion);
  }
  if ((obj['ip4'] !== undefined || obj['ip6'] !== undefined) && obj['ips'] === undefined && obj['interfaces'] === undefined) {
    throw tooOld(where, declaredVersion ?? '0.2.0');
  }

  const interfaces = (top.optArray('interfaces') ?? []).map((item, i): CniInterface => {
    const at = `${where}.interfaces[${i}]`;
    const f = new Fields(objectAt(item, at), at);
    const out: CniInterface = { name: f.optString('name') ?? '' };
    const mac = f.optString('mac');
    const sandbox = f.optString('sandbox');
    const mtu = f.optUint('mtu');
    const socketPath = f.optString('socketPath');
    const pciID = f.optString('pciID');
    if (mac !== undefined) out.mac = mac;
    if (sandbox !== undefined) out.sandbox = sandbox;
    if (mtu !== undefined) out.mtu = mtu;
    if (socketPath !== undefined) out.socketPath = socketPath;
    if (pciID !== undefined) out.pciID = pciID;
    return out;
  });

  const ips = (top.optArray('ips') ?? []).map((item, i): CniIpConfig => {
    const at = `${where}.ips[${i}]`;
    const f = new Fields(objectAt(item, at), at);
    const { text: address, family } = f.cidr('address');
    const version = f.optString('version');
    if (version !== undefined) {
      if (version !== '4' && version !== '6') {
        throw invalid(`${at}.version is neither "4" nor "6"`, `got ${JSON.stringify(version.slice(0, 16))}`);
      }
      // A version that contradicts the address is not refused: the output derives it
      // from the address, as libcni does when it converts.
    }
    const out: CniIpConfig = { family, address };
    const gateway = f.optIp('gateway');
    if (gateway !== undefined) out.gateway = gateway;
    // An index past the end of interfaces is kept (libcni does not check it); it simply
    // names no interface, so sandboxIps never picks it.
    const index = f.optUint('interface');
    if (index !== undefined) out.interface = index;
    return out;
  });

  const routes = (top.optArray('routes') ?? []).map((item, i): CniRoute => {
    const at = `${where}.routes[${i}]`;
    const f = new Fields(objectAt(item, at), at);
    const out: CniRoute = { dst: f.cidr('dst').text };
    const gw = f.optIp('gw');
    if (gw !== undefined) out.gw = gw;
    // The 1.1.0 route attributes are kept as they are, but must be numbers when present.
    for (const key of ['mtu', 'advmss', 'priority', 'table', 'scope']) f.optUint(key);
    return out;
  });

  const dnsObj = top.optObject('dns');
  const dns: CniDns = {};
  if (dnsObj) {
    const f = new Fields(dnsObj, `${where}.dns`);
    const nameservers = f.optStringArray('nameservers');
    const domain = f.optString('domain');
    const search = f.optStringArray('search');
    const options = f.optStringArray('options');
    if (nameservers !== undefined) dns.nameservers = nameservers;
    if (domain !== undefined) dns.domain = domain;
    if (search !== undefined) dns.search = search;
    if (options !== undefined) dns.options = options;
  }

  return { [PREV_RESULT]: true, declaredVersion, interfaces, ips, routes, dns, raw: obj };
}

function tooOld(where: string, version: string): CniError {
  return new CniError(
    CniErrorCode.IncompatibleVersion,
    `${where} is a CNI ${version} result (ip4/ip6), which meshlane cannot read`,
    'results of CNI 0.3.0 and later are supported; chain meshlane only with plugins configured for cniVersion 0.3.0 or later',
  );
}

/**
 * The JSON to print for a request in `cniVersion`: the raw result with `cniVersion` set
 * to the request's and `ips[].version` added (below 1.0.0, derived from the address) or
 * removed (1.0.0 and later). Everything else is copied as it is.
 * A plain JSON object is validated first (field names say `result`).
 */
export function resultToJson(result: PrevResult | CniResultJson, cniVersion: string): Record<string, unknown> {
  const parsed = isPrevResult(result) ? result : parseResult(result, 'result');
  const { cniVersion: _declared, ...rest } = parsed.raw;
  const out: Record<string, unknown> = { cniVersion, ...rest };
  const rawIps = parsed.raw['ips'];
  if (Array.isArray(rawIps)) {
    const withVersion = resultHasIpVersion(cniVersion);
    out['ips'] = rawIps.map((ip, i) => {
      const { version: _version, ...fields } = ip as Record<string, unknown>;
      const family = parsed.ips[i]?.family;
      return withVersion && family !== undefined ? { version: String(family), ...fields } : fields;
    });
  }
  return out;
}

/**
 * The IPs of the pod's interface `ifname` (CNI_IFNAME) inside the sandbox, as
 * containernetworking's portmap picks them: the ips whose `interface` index names
 * an interface called `ifname` that has a `sandbox`. A second sandbox interface
 * (Multus net1, a primary that reports several) never lends its IPs. When no ip
 * has an interface index at all (some primaries report none), all of them; ips
 * tied to other or host-side interfaces are never returned.
 */
export function sandboxIps(result: PrevResult, ifname: string): SandboxIp[] {
  const ours = result.ips.filter((ip) => {
    if (ip.interface === undefined) return false;
    const i = result.interfaces[ip.interface];
    return i !== undefined && i.name === ifname && i.sandbox !== undefined;
  });
  const chosen = ours.length > 0 || result.ips.some((ip) => ip.interface !== undefined) ? ours : result.ips;
  return chosen.map((ip) => ({ family: ip.family, address: ip.address.slice(0, ip.address.indexOf('/')) }));
}

/** An empty result (no interfaces, no IPs), for a plugin with nothing before it in the chain. */
export function emptyResult(): PrevResult {
  return parseResult({ interfaces: [], ips: [], dns: {} }, 'result');
}
