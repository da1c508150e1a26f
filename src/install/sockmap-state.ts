// The installer's last sockmap decision, kept in the state dir so that
// `meshlane status` (another process) can say which mode runs and why.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isSystemError } from '../describe-error.js';
import { writeFileAtomic } from '../sys/atomic-write.js';
import { mkdirp } from '../sys/mkdirp.js';
import type { SockmapDecision, SockmapMode } from './sockmap-safety.js';

export interface SockmapRecord {
  requested: SockmapMode;
  effective: SockmapMode;
  allowed: SockmapMode[];
  faults: string[];
  kernel?: string;
  message: string;
  /** When the installer decided (ISO time). */
  at: string;
}

export function sockmapRecordPath(stateDir: string): string {
  return join(stateDir, 'sockmap.json');
}

export function writeSockmapRecord(stateDir: string, d: SockmapDecision, now = new Date()): void {
  const rec: SockmapRecord = {
    requested: d.requested,
    effective: d.effective,
    allowed: d.allowed,
    faults: d.faults,
    ...(d.kernel !== undefined ? { kernel: d.kernel } : {}),
    message: d.message,
    at: now.toISOString(),
  };
  mkdirp(stateDir);
  writeFileAtomic(sockmapRecordPath(stateDir), `${JSON.stringify(rec, null, 2)}\n`, 0o644);
}

const MODES: readonly string[] = ['off', 'on', 'proxy-only'];
const isMode = (v: unknown): v is SockmapMode => typeof v === 'string' && MODES.includes(v);

/** The record, or undefined when there is none (no installer ran here yet) or it is not one. */
export function readSockmapRecord(stateDir: string): SockmapRecord | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(sockmapRecordPath(stateDir), 'utf8'));
  } catch (err) {
    if (!isSystemError(err) && !(err instanceof SyntaxError)) throw err;
    return undefined;
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return undefined;
  const v = doc as Record<string, unknown>;
  if (!isMode(v['requested']) || !isMode(v['effective']) || typeof v['message'] !== 'string' || typeof v['at'] !== 'string') return undefined;
  const strings = (x: unknown): string[] => (Array.isArray(x) ? x.filter((s): s is string => typeof s === 'string') : []);
  return {
    requested: v['requested'],
    effective: v['effective'],
    allowed: strings(v['allowed']).filter(isMode),
    faults: strings(v['faults']),
    ...(typeof v['kernel'] === 'string' ? { kernel: v['kernel'] } : {}),
    message: v['message'],
    at: v['at'],
  };
}
