// GC (spec 1.1.0): the attachments the runtime still uses come in the config as
// `cni.dev/valid-attachments` (older libcni also sends `cni.dev/attachments`).
import { CniError, CniErrorCode } from './errors.js';
import { isJsonObject, jsonTypeName } from '../json/value.js';

export const VALID_ATTACHMENTS_KEY = 'cni.dev/valid-attachments';
export const LEGACY_ATTACHMENTS_KEY = 'cni.dev/attachments';

export interface GcAttachment {
  containerID: string;
  ifname: string;
}

/**
 * The valid attachments of a GC request, or undefined when the config carries none
 * (then a plugin must not assume that nothing is valid). Bad shapes are code 7.
 */
export function validAttachments(config: Readonly<Record<string, unknown>>): GcAttachment[] | undefined {
  const key = config[VALID_ATTACHMENTS_KEY] !== undefined ? VALID_ATTACHMENTS_KEY : LEGACY_ATTACHMENTS_KEY;
  const list = config[key];
  if (list === undefined) return undefined;
  const invalid = (msg: string, details?: string): CniError => new CniError(CniErrorCode.InvalidNetworkConfig, msg, details);
  if (!Array.isArray(list)) throw invalid(`${key} is not an array`, `got ${jsonTypeName(list)}`);
  return list.map((item, i) => {
    const at = `${key}[${i}]`;
    if (!isJsonObject(item)) throw invalid(`${at} is not a JSON object`, `got ${jsonTypeName(item)}`);
    const containerID = item['containerID'];
    const ifname = item['ifname'];
    if (typeof containerID !== 'string' || containerID === '') throw invalid(`${at}.containerID is not a non-empty string`);
    if (typeof ifname !== 'string') throw invalid(`${at}.ifname is not a string`);
    return { containerID, ifname };
  });
}
