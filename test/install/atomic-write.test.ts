// A writer killed at any moment leaves the old file or the new one: never a
// zero-length or half-written config (Istio's known failure after an unclean stop).
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
  const leftovers = readdirSync(dir).filter((f) => f.endsWith('.tmp'));
  t.ok(leftovers.length <= 25, 'temp files are named .*.tmp (never a config extension the runtime would read)');
  for (const f of leftovers) t.match(f, /^\.10-test\.conflist\..*\.tmp$/);
});
