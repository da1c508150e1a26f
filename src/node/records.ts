// One small record per attachment (container id + interface), written at ADD
// before the maps, so DEL, CHECK and GC know exactly what to remove without the
// pod, its netns or its cgroup. Files are written atomically, mode 0600.
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { InterceptionConfig } from '../bpf/pod-config.js';
import { writeFileAtomic } from '../sys/atomic-write.js';
import { mkdirp } from '../sys/mkdirp.js';
import { errnoOf, errorMessage } from '../describe-error.js';

export const STATE_VERSION = 1;

export interface AttachmentRecord {
  version: typeof STATE_VERSION;
  containerId: string;
  ifname: string;
  netns: string;
  namespace: string;
  name: string;
  podUid: string;
  cgroupPath: string;
  /** decimal string: JSON has no 64-bit integers */
  cgroupId: string;
  ipv4?: string;
  ipv6?: string;
  proxyUid: number;
  proxyGid: number;
  dnsCapture: boolean;
  interception: InterceptionConfig;
  createdAt: string;
  /**
   * The cross-node inbound programs attached to `ifname` in `netns` (tc clsact),
   * written once they are attached. Records of older versions have none: their
   * DEL still removes meshlane's filters, but never a clsact qdisc.
   */
  tc?: { attached: boolean; addedClsact: boolean };
  /** Who registered it: absent for the plugin's ADD; 'reconcile' for a pod the installer found running unregistered. */
  registeredBy?: 'reconcile';
}

export function attachmentsDir(stateDir: string): string {
  return join(stateDir, 'attachments');
}

/** Container ids never hold '@' (the CNI spec's [a-zA-Z0-9_.-]); interface names never hold '/'. */
export function recordPath(stateDir: string, containerId: string, ifname: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(containerId) || ifname.includes('/') || ifname === '' || ifname === '.' || ifname === '..') {
    throw new TypeError(`unsafe attachment name ${JSON.stringify(containerId)}/${JSON.stringify(ifname)}`);
  }
  return join(attachmentsDir(stateDir), `${containerId}@${ifname}.json`);
}

/** false when no record can exist (the dir is missing, or a path component is not a dir). */
export function recordsPossible(stateDir: string): boolean {
  try {
    return statSync(attachmentsDir(stateDir)).isDirectory();
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') return false;
    throw err;
  }
}

export function writeRecord(stateDir: string, rec: AttachmentRecord): void {
  mkdirp(attachmentsDir(stateDir), 0o700);
  // Not fsynced: what a record describes (the pins on bpffs, the pod's netns and
  // its tc filters) does not outlive the machine either, and a record cut short
  // by a crash is removed as unreadable. The fsyncs were 40 ms of an ADD here.
  writeFileAtomic(recordPath(stateDir, rec.containerId, rec.ifname), `${JSON.stringify(rec, null, 2)}\n`, 0o600, { durable: false });
}

function isRecord(v: unknown): v is AttachmentRecord {
  if (!v || typeof v !== 'object') return false;
  const r = v as Record<string, unknown>;
  return r['version'] === STATE_VERSION && typeof r['containerId'] === 'string' && typeof r['ifname'] === 'string' && typeof r['cgroupId'] === 'string' && /^\d+$/.test(r['cgroupId']);
}

export class CorruptRecordError extends Error {
  override name = 'CorruptRecordError';
}

export function readRecord(stateDir: string, containerId: string, ifname: string): AttachmentRecord | undefined {
  const path = recordPath(stateDir, containerId, ifname);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return undefined;
    throw err;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    if (!(err instanceof SyntaxError)) throw err;
    throw new CorruptRecordError(`${path} is not valid JSON`);
  }
  if (!isRecord(parsed)) throw new CorruptRecordError(`${path} is not a meshlane attachment record`);
  return parsed;
}

export function removeRecord(stateDir: string, containerId: string, ifname: string): void {
  rmSync(recordPath(stateDir, containerId, ifname), { force: true });
}

/** Every record in the state dir; unreadable ones are reported, not thrown. */
export function listRecords(stateDir: string): { records: AttachmentRecord[]; problems: string[] } {
  const dir = attachmentsDir(stateDir);
  if (!existsSync(dir)) return { records: [], problems: [] };
  const records: AttachmentRecord[] = [];
  const problems: string[] = [];
  for (const f of readdirSync(dir)) {
    const m = /^([A-Za-z0-9][A-Za-z0-9_.-]*)@(.+)\.json$/.exec(f);
    if (!m) continue;
    try {
      const rec = readRecord(stateDir, m[1] ?? '', m[2] ?? '');
      if (rec) records.push(rec);
    } catch (err) {
      problems.push(errorMessage(err));
    }
  }
  return { records, problems };
}
