// The CNI spec versions meshlane speaks, and which command exists from which version.
// Versions are data: every test and every conversion iterates over this list.

export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];

/** The newest version: used for VERSION output and errors when the request names none we know. */
export const LATEST_VERSION: CniVersion = '1.1.0';

/** What a config without `cniVersion` means (as libcni decodes it). */
export const IMPLICIT_VERSION = '0.1.0';

/** The commands of the protocol (VERSION included). */
export const CNI_COMMANDS = ['ADD', 'DEL', 'CHECK', 'GC', 'STATUS', 'VERSION'] as const;
export type CniCommand = (typeof CNI_COMMANDS)[number];
/** The commands that reach a handler. */
export type CniHandlerCommand = Exclude<CniCommand, 'VERSION'>;

/** The first spec version that has each command (undefined: every supported version). */
export const COMMAND_MIN_VERSION: Readonly<Record<CniCommand, CniVersion | undefined>> = {
  ADD: undefined,
  DEL: undefined,
  CHECK: '0.4.0',
  GC: '1.1.0',
  STATUS: '1.1.0',
  VERSION: undefined,
};

/** The first version whose results have no `ips[].version`. */
export const IPS_VERSION_FIELD_REMOVED_IN: CniVersion = '1.0.0';

export function isCniCommand(value: string): value is CniCommand {
  return (CNI_COMMANDS as readonly string[]).includes(value);
}

export function isSupportedVersion(value: unknown): value is CniVersion {
  return typeof value === 'string' && (SUPPORTED_VERSIONS as readonly string[]).includes(value);
}

/** Parse "X.Y.Z" (digits only, no leading zeros beyond "0"); undefined when it is not one. */
export function parseVersion(value: string): readonly [number, number, number] | undefined {
  const m = /^(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})$/.exec(value);
  if (!m) return undefined;
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

/** -1, 0 or 1 as a is older than, equal to or newer than b. Throws on a string that is not "X.Y.Z". */
export function compareVersions(a: string, b: string): -1 | 0 | 1 {
  const pa = parseVersion(a);
  const pb = parseVersion(b);
  if (!pa) throw new TypeError(`not a CNI version: ${JSON.stringify(a)}`);
  if (!pb) throw new TypeError(`not a CNI version: ${JSON.stringify(b)}`);
  for (let i = 0; i < 3; i++) {
    const x = pa[i] ?? 0;
    const y = pb[i] ?? 0;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

export function versionAtLeast(version: string, min: string): boolean {
  return compareVersions(version, min) >= 0;
}

/** Whether `command` exists in spec `version`. */
export function commandAllowed(command: CniCommand, version: CniVersion): boolean {
  const min = COMMAND_MIN_VERSION[command];
  return min === undefined || versionAtLeast(version, min);
}

/** Whether results of `version` carry `ips[].version` ("4"/"6"). */
export function resultHasIpVersion(version: string): boolean {
  return !versionAtLeast(version, IPS_VERSION_FIELD_REMOVED_IN);
}

/** The VERSION command's output. */
export interface VersionInfoJson {
  cniVersion: string;
  supportedVersions: string[];
}

export function versionInfo(cniVersion: CniVersion = LATEST_VERSION): VersionInfoJson {
  return { cniVersion, supportedVersions: [...SUPPORTED_VERSIONS] };
}
