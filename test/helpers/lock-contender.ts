// One contender of test/sys/lock.test.ts: takes the lock `rounds` times; while
// it holds it, it creates the "inside" marker exclusively (EEXIST means another
// process is inside too), stays a moment, and removes it. Prints one JSON line.
import { rmSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { withLock } from '../../src/sys/lock.js';

const [lockPath = '', inside = '', roundsArg = '20'] = process.argv.slice(2);
let overlaps = 0;
let rounds = 0;
for (let i = 0; i < Number(roundsArg); i++) {
  await withLock(lockPath, 60_000, async () => {
    try {
      writeFileSync(inside, String(process.pid), { flag: 'wx' });
    } catch {
      overlaps++;
      return;
    }
    await sleep(Math.random() * 3);
    rmSync(inside);
    rounds++;
  });
}
process.stdout.write(`${JSON.stringify({ pid: process.pid, rounds, overlaps })}\n`);
