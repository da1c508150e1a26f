// A node-wide lock between concurrent meshlane processes (the runtime runs ADD
// and DEL of different pods in parallel). The lock file is published whole:
// the owner's token (pid, start time, random) is written to a temp file that is
// then hard-linked to the lock path, which fails with EEXIST while another
// process holds it. So a contender never reads a half-written owner. A lock
// whose owner is gone (pid no longer running, or running with another start
// time: a reused pid) is moved aside and checked before it is dropped, so a
// lock taken meanwhile by a live process is put back, not deleted. Waiting is
// bounded. Release removes the lock only when it still holds our token.
import { randomBytes } from 'node:crypto';
import { linkSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { processStartTime } from './proc.js';
import { errnoOf, isSystemError } from '../describe-error.js';

export class LockTimeoutError extends Error {
  override name = 'LockTimeoutError';
}

export interface LockToken {
  pid: number;
  start: string;
  nonce: string;
}

export function formatToken(t: LockToken): string {
  return `${t.pid} ${t.start} ${t.nonce}\n`;
}

export function parseToken(text: string): LockToken | undefined {
  const m = /^(\d{1,10}) (\d{1,20}) ([0-9a-f]{16,64})\n?$/.exec(text);
  if (!m) return undefined;
  return { pid: Number(m[1]), start: m[2] ?? '', nonce: m[3] ?? '' };
}

/**
 * Whether the owner named by a lock file's text still runs. meshlane 0.1 wrote
 * a bare pid after creating the file, so an old binary still running during an
 * upgrade holds a lock that is a pid, or empty for a moment (`ageMs` small).
 * Any other text names no owner.
 */
export function ownerAlive(text: string, ageMs: number, startOf: (pid: number) => string | undefined = processStartTime): boolean {
  const t = parseToken(text);
  if (t) return startOf(t.pid) === t.start;
  if (/^\d{1,10}\n?$/.test(text)) return startOf(Number(text.trim())) !== undefined;
  return text === '' && ageMs < 2000;
}

function ageOf(path: string): number {
  try {
    return Date.now() - statSync(path).mtimeMs;
  } catch (err) {
    if (!isSystemError(err)) throw err;
    return 0;
  }
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return undefined;
    throw err;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const nonce = (): string => randomBytes(8).toString('hex');

/** Move a lock judged stale (`seen`) out of the way; a different lock found there is put back. */
function breakStale(path: string, seen: string): void {
  const aside = `${path}.stale.${process.pid}.${nonce()}`;
  try {
    renameSync(path, aside);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return; // another contender broke it
    throw err;
  }
  const moved = readText(aside);
  if (moved !== seen) {
    // Someone took the lock between our read and our rename: give it back.
    try {
      linkSync(aside, path);
    } catch (err) {
      if (errnoOf(err) !== 'EEXIST') throw err;
    }
  }
  rmSync(aside, { force: true });
}

const pidAlive = (pid: number): boolean => processStartTime(pid) !== undefined;

/** The temp and set-aside files of lock takers that were killed (their pid no longer runs). */
export function removeLockLitter(path: string, alive: (pid: number) => boolean = pidAlive): string[] {
  const base = basename(path);
  const re = new RegExp(`^${base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.(?:stale\\.)?(\\d{1,10})\\.[0-9a-f]{16}(?:\\.tmp)?$`);
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dirname(path));
  } catch (err) {
    if (!isSystemError(err)) throw err;
    return removed;
  }
  for (const n of names) {
    const m = re.exec(n);
    if (!m || alive(Number(m[1]))) continue;
    rmSync(join(dirname(path), n), { force: true });
    removed.push(n);
  }
  return removed;
}

/** Take the lock at `path`; resolves to its release. Throws LockTimeoutError after `timeoutMs`. */
export async function acquireLock(path: string, timeoutMs: number): Promise<() => void> {
  removeLockLitter(path);
  const token = formatToken({ pid: process.pid, start: processStartTime(process.pid) ?? '0', nonce: nonce() });
  const temp = `${path}.${process.pid}.${nonce()}.tmp`;
  writeFileSync(temp, token, { mode: 0o600, flag: 'wx' });
  const deadline = Date.now() + timeoutMs;
  let wait = 2;
  try {
    for (;;) {
      try {
        linkSync(temp, path);
        break;
      } catch (err) {
        if (errnoOf(err) !== 'EEXIST') throw err;
      }
      const held = readText(path);
      if (held === undefined) continue; // released just now
      if (!ownerAlive(held, ageOf(path))) {
        breakStale(path, held);
        continue;
      }
      if (Date.now() >= deadline) {
        const owner = parseToken(held);
        throw new LockTimeoutError(`${path} is held by another meshlane process${owner ? ` (pid ${owner.pid})` : ''} for more than ${timeoutMs} ms`);
      }
      await sleep(wait);
      wait = Math.min(wait * 2, 50);
    }
  } finally {
    rmSync(temp, { force: true });
  }
  return () => {
    if (readText(path) === token) rmSync(path, { force: true });
  };
}

export async function withLock<T>(path: string, timeoutMs: number, body: () => Promise<T>): Promise<T> {
  const release = await acquireLock(path, timeoutMs);
  try {
    return await body();
  } finally {
    release();
  }
}
