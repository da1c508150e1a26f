// The network config on stdin: bytes -> JSON (code 6) -> a checked config (code 7,
// code 1 for a version meshlane does not speak). The raw object is kept whole:
// plugin-specific fields pass through to the plugin.
import { CniError, CniErrorCode, describeThrown } from './errors.js';
import { findJsonProblem, formatJsonProblem, MAX_JSON_DEPTH } from '../json/scan.js';
import { isJsonObject, jsonTypeName } from '../json/value.js';
import { parseResult, type PrevResult } from './result.js';
import { IMPLICIT_VERSION, SUPPORTED_VERSIONS, isSupportedVersion, type CniVersion } from './versions.js';

/** libcni's network name rule. */
const NETWORK_NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
export const MAX_NETWORK_NAME_LENGTH = 256;

export interface NetConf {
  cniVersion: CniVersion;
  name: string;
  type: string;
  /** The parsed `prevResult`, when there is one (and it could be read; see prevResultError). */
  prevResult?: PrevResult;
  /** Only with `lenientPrevResult`: why a present prevResult could not be read. */
  prevResultError?: CniError;
  runtimeConfig?: Readonly<Record<string, unknown>>;
  capabilities?: Readonly<Record<string, unknown>>;
  args?: Readonly<Record<string, unknown>>;
  /** The whole config object as received. */
  raw: Readonly<Record<string, unknown>>;
}

export interface ParseNetConfOptions {
  /** Record a bad prevResult in `prevResultError` instead of failing (for DEL). */
  lenientPrevResult?: boolean;
}

function decodeError(msg: string, details?: string): CniError {
  return new CniError(CniErrorCode.DecodingFailure, msg, details);
}

function invalid(msg: string, details?: string): CniError {
  return new CniError(CniErrorCode.InvalidNetworkConfig, msg, details);
}

/** Bytes to a JSON value: not UTF-8, empty, not JSON or nested too deep is code 6. */
export function decodeJson(bytes: Uint8Array, maxDepth: number = MAX_JSON_DEPTH): unknown {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch (err) {
    if (!(err instanceof TypeError)) throw err; // what a fatal TextDecoder throws for bad bytes
    throw decodeError('network config is not valid UTF-8');
  }
  if (text.trim() === '') throw decodeError('network config is empty', 'stdin held no data');
  const problem = findJsonProblem(text, maxDepth);
  if (problem) throw decodeError('invalid JSON in network config', formatJsonProblem(problem));
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    // The scanner accepted what JSON.parse refused: report it without echoing the input.
    throw decodeError('invalid JSON in network config', describeThrown(err).replace(/,? ".*$/s, ''));
  }
}

/** The supported versions as a readable list, for messages. */
export function supportedList(): string {
  return SUPPORTED_VERSIONS.join(', ');
}

/** A version error (code 1) naming the config's version and the supported ones. */
export function incompatibleVersion(version: string, absent = false): CniError {
  const shown = absent ? `absent (meaning ${JSON.stringify(IMPLICIT_VERSION)})` : JSON.stringify(version.slice(0, 32));
  return new CniError(CniErrorCode.IncompatibleVersion, `incompatible CNI versions: config is ${shown}, meshlane supports ${supportedList()}`);
}

/** Check a decoded config. Codes: 7 for shapes (naming the field), 1 for the version. */
export function parseNetConf(value: unknown, opts: ParseNetConfOptions = {}): NetConf {
  if (!isJsonObject(value)) throw invalid('network config is not a JSON object', `got ${jsonTypeName(value)}`);

  const version = value['cniVersion'];
  if (version !== undefined && typeof version !== 'string') {
    throw invalid('cniVersion is not a string', `got ${jsonTypeName(version)}`);
  }
  if (!isSupportedVersion(version)) throw incompatibleVersion(version ?? IMPLICIT_VERSION, version === undefined);

  const name = value['name'];
  if (name === undefined || name === '') throw invalid('missing network name');
  if (typeof name !== 'string') throw invalid('name is not a string', `got ${jsonTypeName(name)}`);
  if (name.length > MAX_NETWORK_NAME_LENGTH) throw invalid(`network name is longer than ${MAX_NETWORK_NAME_LENGTH} characters`);
  if (!NETWORK_NAME_RE.test(name)) {
    throw invalid('invalid characters found in network name', `name is ${JSON.stringify(name.slice(0, 80))}; it must match ${NETWORK_NAME_RE.source}`);
  }

  const type = value['type'];
  if (type === undefined) throw invalid('missing type', 'the config names no plugin type');
  if (typeof type !== 'string') throw invalid('type is not a string', `got ${jsonTypeName(type)}`);
  if (type === '') throw invalid('type is empty');

  const conf: NetConf = { cniVersion: version, name, type, raw: value };
  for (const key of ['runtimeConfig', 'capabilities', 'args'] as const) {
    const field = value[key];
    if (field === undefined) continue;
    if (!isJsonObject(field)) throw invalid(`${key} is not a JSON object`, `got ${jsonTypeName(field)}`);
    conf[key] = field;
  }

  if (value['prevResult'] !== undefined) {
    try {
      conf.prevResult = parseResult(value['prevResult'], 'prevResult');
    } catch (err) {
      if (!opts.lenientPrevResult || !(err instanceof CniError)) throw err;
      conf.prevResultError = err;
    }
  }
  return conf;
}

/** The `cniVersion` of a config, if it is readable and supported (for VERSION and error output). */
export function peekVersion(bytes: Uint8Array): CniVersion | undefined {
  try {
    const value = decodeJson(bytes);
    if (!isJsonObject(value)) return undefined;
    const version = value['cniVersion'];
    return isSupportedVersion(version) ? version : undefined;
  } catch (err) {
    if (!(err instanceof CniError)) throw err;
    return undefined;
  }
}
