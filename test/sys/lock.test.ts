// The node-wide lock of the plugin's state dir: mutual exclusion between many
// processes, stale locks of killed owners taken over (a reused pid is not the
// owner), a lock never seen half-written, and no litter left by killed takers.
import { execFile } from 'node:child_process';
import { existsSync, linkSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { acquireLock, formatToken, LockTimeoutError, ownerAlive, parseToken, removeLockLitter, withLock } from '../../src/sys/lock.js';
import { processStartTime } from '../../src/sys/proc.js';
import { repoRoot } from '../helpers/paths.js';

const dir = mkdtempSync(join(tmpdir(), 'meshlane-lock-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const run = promisify(execFile);

t.test('owners: pid and start time, the old bare-pid format, nothing else', async (t) => {
  const start = (pid: number): string | undefined => (pid === 42 ? '777' : undefined);
  const tok = formatToken({ pid: 42, start: '777', nonce: '0123456789abcdef' });
  t.same(parseToken(tok), { pid: 42, start: '777', nonce: '0123456789abcdef' });
  t.ok(ownerAlive(tok, 0, start));
  t.notOk(ownerAlive(formatToken({ pid: 42, start: '778', nonce: '0123456789abcdef' }), 0, start), 'a reused pid is not the owner');
  t.notOk(ownerAlive(formatToken({ pid: 43, start: '777', nonce: '0123456789abcdef' }), 0, start), 'a dead owner');
  t.ok(ownerAlive('42', 0, start), 'a bare pid (meshlane 0.1) that runs');
  t.notOk(ownerAlive('43', 0, start));
  t.ok(ownerAlive('', 100, start), 'an empty file just created by an old binary is being written');
  t.notOk(ownerAlive('', 5000, start), 'an empty file that stays empty is stale');
  t.notOk(ownerAlive('garbage', 0, start));
});

t.test('mutual exclusion between 8 processes', async (t) => {
  const lock = join(dir, 'lock');
  const inside = join(dir, 'inside');
  const tsx = join(repoRoot, 'node_modules', '.bin', 'tsx');
  const contender = join(repoRoot, 'test', 'helpers', 'lock-contender.ts');
  const results = await Promise.all(Array.from({ length: 8 }, () => run(tsx, [contender, lock, inside, '25'], { timeout: 120_000 })));
  const parsed = results.map((r) => JSON.parse(r.stdout) as { rounds: number; overlaps: number });
  t.same(parsed.map((p) => p.overlaps), Array(8).fill(0), 'no process was ever inside while another was');
  t.same(parsed.map((p) => p.rounds), Array(8).fill(25), 'every round ran');
  t.notOk(existsSync(lock), 'released');
  t.same(readdirSync(dir).filter((f) => f.startsWith('lock')), [], 'no temp files left');
});

t.test('a stale lock of a dead owner is taken over; a live one waits, then times out', async (t) => {
  const lock = join(dir, 'stale');
  writeFileSync(lock, formatToken({ pid: 999_999_999, start: '1', nonce: '0123456789abcdef' }));
  let ran = false;
  await withLock(lock, 1000, async () => {
    ran = true;
  });
  t.ok(ran, 'taken over');
  writeFileSync(lock, formatToken({ pid: process.pid, start: `${processStartTime(process.pid) ?? ''}0`, nonce: '0123456789abcdef' }));
  await withLock(lock, 1000, async () => undefined);
  t.pass('a reused pid (same pid, other start time) is taken over');
  const release = await acquireLock(lock, 1000);
  await t.rejects(withLock(lock, 200, async () => undefined), LockTimeoutError, 'a live holder makes others wait, bounded');
  release();
  t.notOk(existsSync(lock));
});

t.test('a lock file being written by its owner is never taken', async (t) => {
  // meshlane 0.1 created the file, then wrote its pid: a contender that read it
  // in between saw no owner, deleted a live lock, and two processes held it.
  const lock = join(dir, 'being-written');
  writeFileSync(lock, '');
  await t.rejects(withLock(lock, 300, async () => undefined), LockTimeoutError, 'an empty, fresh lock file is held');
  t.ok(existsSync(lock), 'and left in place');
  rmSync(lock);
});

t.test('release never removes a lock that another process took', async (t) => {
  const lock = join(dir, 'mine');
  const release = await acquireLock(lock, 1000);
  rmSync(lock);
  const other = formatToken({ pid: process.pid, start: processStartTime(process.pid) ?? '', nonce: 'fedcba9876543210' });
  writeFileSync(`${lock}.x`, other);
  linkSync(`${lock}.x`, lock);
  rmSync(`${lock}.x`);
  release();
  t.ok(existsSync(lock), "the other holder's lock stays");
  rmSync(lock);
});

t.test('litter of killed takers is removed, that of live ones kept', async (t) => {
  const lock = join(dir, 'litter');
  const dead = `litter.999999999.0123456789abcdef.tmp`;
  const deadAside = `litter.stale.999999999.0123456789abcdef`;
  const live = `litter.${process.pid}.0123456789abcdef.tmp`;
  const other = `litterbox.999999999.0123456789abcdef.tmp`;
  for (const f of [dead, deadAside, live, other]) writeFileSync(join(dir, f), '');
  t.same(removeLockLitter(lock).sort(), [dead, deadAside].sort());
  t.ok(existsSync(join(dir, live)), 'a live taker keeps its temp file');
  t.ok(existsSync(join(dir, other)), 'files of another name are not touched');
});
