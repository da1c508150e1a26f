// A writer killed at any moment leaves the old file or the new one: never a
// zero-length or half-written config (Istio's known failure after an unclean stop).
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { removeWriteLitter, tempWriter, writeFileAtomic } from '../../src/sys/atomic-write.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { repoRoot } from '../helpers/paths.js';

const dir = mkdtempSync(join(tmpdir(), 'meshlane-atomic-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const target = join(dir, '10-test.conflist');
const A = `${JSON.stringify({ v: 'a', pad: 'a'.repeat(512 * 1024) })}\n`;
const B = `${JSON.stringify({ v: 'b', pad: 'b'.repeat(512 * 1024) })}\n`;
writeFileSync(target, A);

const child = `
import { writeFileAtomic } from ${JSON.stringify(join(repoRoot, 'src/sys/atomic-write.ts'))};
const [target, a, b] = process.argv.slice(-3);
const bodies = [require('node:fs').readFileSync(a, 'utf8'), require('node:fs').readFileSync(b, 'utf8')];
process.stdout.write('go\\n');
for (let i = 0; ; i++) writeFileAtomic(target, bodies[i % 2], 0o644);
`;
writeFileSync(join(dir, 'a.body'), A);
writeFileSync(join(dir, 'b.body'), B);
writeFileSync(join(dir, 'writer.cts'), child);

t.test('SIGKILL at 25 random moments of a write loop', async (t) => {
  for (let round = 0; round < 25; round++) {
    const p = spawn(process.execPath, ['--import', 'tsx', join(dir, 'writer.cts'), target, join(dir, 'a.body'), join(dir, 'b.body')], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      p.stdout.once('data', () => resolve());
      p.once('exit', (code) => reject(new Error(`writer exited early (${code})`)));
    });
    await sleep(5 + ((round * 37) % 60));
    p.kill('SIGKILL');
    await new Promise((r) => p.once('exit', r));
    const content = readFileSync(target, 'utf8');
    t.ok(content === A || content === B, `round ${round}: the file is the old or the new content (${content.length} bytes)`);
  }
  const leftovers = readdirSync(dir).filter((f) => f.startsWith('.'));
  t.ok(leftovers.length <= 25, 'at most one temp file per killed writer');
  for (const f of leftovers) t.match(f, /^\.10-test\.conflist\.\d+\.[0-9a-f]{8}\.meshlane-tmp$/, 'named for its target and writer (never a config extension the runtime would read)');
  t.same(removeWriteLitter(dir).sort(), leftovers.sort(), 'the next run of ours removes every one (their writers are gone)');
  t.same(readdirSync(dir).sort(), ['10-test.conflist', 'a.body', 'b.body', 'writer.cts'], 'and nothing else');
});

t.test('litter: only our exact names, only of writers that are gone', async (t) => {
  const d = mkdtempSync(join(tmpdir(), 'meshlane-litter-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  const names = {
    dead: '.10-x.conflist.999999999.0123abcd.meshlane-tmp',
    deadOld: '.10-x.conflist.999999999.lq2x8k3z.tmp',
    live: `.10-x.conflist.${process.pid}.0123abcd.meshlane-tmp`,
    deadBinary: '.meshlane.999999999.89abcdef.meshlane-tmp',
    otherTool: '.10-x.conflist.swp',
    config: '10-x.conflist',
  };
  for (const n of Object.values(names)) writeFileSync(join(d, n), '');
  t.equal(tempWriter(names.dead), 999999999);
  t.equal(tempWriter(names.config), undefined);
  t.same(removeWriteLitter(d, (target) => target === 'meshlane'), [names.deadBinary], 'a filter on the target name');
  t.same(removeWriteLitter(d).sort(), [names.dead, names.deadOld].sort(), 'dead writers only');
  t.same(readdirSync(d).sort(), [names.config, names.live, names.otherTool].sort());
});

t.test('the temp file gets exactly the mode asked for, whatever the umask', async (t) => {
  const f = join(dir, 'mode.conflist');
  const old = process.umask(0o077);
  try {
    writeFileAtomic(f, 'x', 0o644);
  } finally {
    process.umask(old);
  }
  t.equal(statSync(f).mode & 0o777, 0o644);
});
