// Run prefixes: which test run owns which sandbox names. A node's run prefix
// (names.ts) is claimed by an exclusive lease file naming the process that made
// it (pid and start time, so a reused pid is not mistaken for the owner). A
// later run removes the leftovers of a prefix only when its owner is gone: two
// runs on one machine (a developer's and CI's) never clear each other's sandboxes.
import { randomInt } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { processStartTime } from '../../src/sys/proc.js';
import { checkFilePrefix, checkPrefix, RUN_PREFIX_RE } from './names.js';
import { errnoOf } from '../../src/describe-error.js';

/** On tmpfs: leases go with a reboot, as the netns, cgroups and pins they guard do. */
export const LEASE_DIR = '/run/meshlane-sandbox';

export interface Lease {
  pid: number;
  /** Field 22 of /proc/<pid>/stat: the process's start time in clock ticks since boot. */
  start: string;
}

export const processStart = processStartTime;

export function parseLease(text: string): Lease | undefined {
  try {
    const v = JSON.parse(text) as Partial<Lease>;
    if (typeof v.pid === 'number' && Number.isInteger(v.pid) && v.pid > 0 && typeof v.start === 'string') return { pid: v.pid, start: v.start };
  } catch {
    // fall through
  }
  return undefined;
}

/** A lease's owner still runs (same pid, same start time). */
export function leaseOwnerAlive(lease: Lease, startOf: (pid: number) => string | undefined = processStart): boolean {
  return startOf(lease.pid) === lease.start;
}

function leasePath(prefix: string): string {
  checkPrefix(prefix);
  return join(LEASE_DIR, prefix);
}

/** A lease written whole, or one being written (empty for a moment: then treat as alive). */
function readLease(prefix: string): Lease | 'missing' | 'unreadable' {
  let text: string;
  try {
    text = readFileSync(leasePath(prefix), 'utf8');
  } catch {
    return 'missing';
  }
  return parseLease(text) ?? 'unreadable';
}

/** Is this run prefix held by a live process? An unreadable lease is one being written: held. */
export function runAlive(prefix: string): boolean {
  const l = readLease(prefix);
  if (l === 'missing') return false;
  if (l === 'unreadable') return true;
  return leaseOwnerAlive(l);
}

const TAG_CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789';

/** Claim a fresh run prefix for `filePrefix`, owned by this process until released. */
export function claimRunPrefix(filePrefix: string): string {
  checkFilePrefix(filePrefix);
  mkdirSync(LEASE_DIR, { recursive: true, mode: 0o700 });
  const me: Lease = { pid: process.pid, start: processStart(process.pid) ?? '' };
  for (let attempt = 0; attempt < 200; attempt++) {
    const tag = Array.from({ length: 3 }, () => TAG_CHARS[randomInt(TAG_CHARS.length)]).join('');
    const prefix = `${filePrefix}${tag}`;
    let fd: number;
    try {
      fd = openSync(leasePath(prefix), 'wx', 0o600);
    } catch (err) {
      if (errnoOf(err) === 'EEXIST') continue;
      throw err;
    }
    try {
      writeSync(fd, JSON.stringify(me));
    } finally {
      closeSync(fd);
    }
    return prefix;
  }
  throw new Error(`no free run prefix for '${filePrefix}' after 200 tries: remove stale leases in ${LEASE_DIR}`);
}

export function releaseRunPrefix(prefix: string): void {
  rmSync(leasePath(prefix), { force: true });
}

/** Every run prefix that has a lease, with whether its owner is alive. */
export function leasedPrefixes(): Array<{ prefix: string; alive: boolean }> {
  let names: string[];
  try {
    names = readdirSync(LEASE_DIR);
  } catch {
    return [];
  }
  return names.filter((n) => RUN_PREFIX_RE.test(n)).map((prefix) => ({ prefix, alive: runAlive(prefix) }));
}
