// The CNI error type is the wire format: `{cniVersion, code, msg, details}` printed on
// stdout with a non-zero exit. A CniError thrown anywhere passes through unchanged;
// anything else is a bug and becomes code 999 (see toCniError).
import { INTERNAL_ERROR_MSG } from '../describe-error.js';

/** The well-known codes of the CNI spec (0-99 are reserved; 100+ are the plugin's). */
export const CniErrorCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnvironment: 4,
  IoFailure: 5,
  DecodingFailure: 6,
  InvalidNetworkConfig: 7,
  TryAgainLater: 11,
  /** STATUS: the plugin cannot serve ADD requests right now. */
  PluginNotAvailable: 50,
  /** STATUS: not available, and existing containers may have limited connectivity. */
  PluginNotAvailableLimitedConnectivity: 51,
  /** Not a CNI spec code: libcni's ErrInternal, used for bugs (a non-CniError was thrown). */
  Internal: 999,
} as const;

export type WellKnownCniErrorCode = (typeof CniErrorCode)[keyof typeof CniErrorCode];

/** The first code a plugin may use for its own errors. */
export const PLUGIN_ERROR_CODE_MIN = 100;

/** Upper bound on msg and details on the wire: an error must stay one readable document. */
export const MAX_ERROR_TEXT_LENGTH = 4096;

/** The JSON document printed on stdout. `details` is left out when empty (as libcni does). */
export interface CniErrorJson {
  cniVersion: string;
  code: number;
  msg: string;
  details?: string;
}

export class CniError extends Error {
  override readonly name = 'CniError';
  readonly code: number;
  readonly msg: string;
  readonly details: string | undefined;

  constructor(code: number, msg: string, details?: string) {
    super(details ? `${msg}: ${details}` : msg);
    if (!Number.isSafeInteger(code) || code < 0) {
      throw new TypeError(`CNI error code must be a non-negative integer, got ${String(code)}`);
    }
    this.code = code;
    this.msg = bound(msg);
    this.details = details ? bound(details) : undefined;
  }

  /** The wire format for a request in `cniVersion`. */
  toJson(cniVersion: string): CniErrorJson {
    const out: CniErrorJson = { cniVersion, code: this.code, msg: this.msg };
    if (this.details) out.details = this.details;
    return out;
  }
}

/** A plugin-specific error (code 100 or more). */
export function pluginError(code: number, msg: string, details?: string): CniError {
  if (!Number.isSafeInteger(code) || code < PLUGIN_ERROR_CODE_MIN) {
    throw new TypeError(`plugin error codes start at ${PLUGIN_ERROR_CODE_MIN}, got ${String(code)}`);
  }
  return new CniError(code, msg, details);
}

export { INTERNAL_ERROR_MSG };

/**
 * A CniError passes through unchanged; anything else becomes code 999 with the
 * error's message (never its stack) as details.
 */
export function toCniError(err: unknown): CniError {
  if (err instanceof CniError) return err;
  return new CniError(CniErrorCode.Internal, INTERNAL_ERROR_MSG, describeThrown(err));
}

/** A one-line description of a thrown value: the message of an Error, never its stack. */
export function describeThrown(err: unknown): string {
  if (err instanceof Error) {
    const name = err.name && err.name !== 'Error' ? `${err.name}: ` : '';
    return bound(`${name}${err.message}`);
  }
  try {
    return bound(typeof err === 'string' ? err : `non-error value thrown: ${String(err)}`);
  } catch {
    return 'non-error value thrown';
  }
}

function bound(text: string): string {
  return text.length <= MAX_ERROR_TEXT_LENGTH ? text : `${text.slice(0, MAX_ERROR_TEXT_LENGTH)}... (truncated)`;
}
