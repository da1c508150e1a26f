// Crash litter: an install or uninstall killed at any moment may leave temp
// files of its writes; the next install and uninstall remove those of earlier,
// dead runs of ours (by their exact name pattern, only when the writer is
// gone), never anyone else's, and nothing is staged in TMPDIR.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import t from 'tap';
import { createNode, type SandboxNode } from '../../testing/sandbox/node.js';
import { tempWriter } from '../../src/sys/atomic-write.js';
import { requireBuiltExe } from '../helpers/paths.js';
import { requireRoot } from '../helpers/root.js';

requireRoot('the installer crash-litter test');
const exe = requireBuiltExe();
let node: SandboxNode | undefined;
t.teardown(async () => {
  if (node) await execa(exe, ['uninstall', ...args(node)], { reject: false });
  await node?.destroy();
});
node = await createNode({ prefix: 'mlkli' });
const n = node;
const dirs = { net: join(n.stateDir, 'net.d'), bin: join(n.stateDir, 'bin'), state: join(n.stateDir, 'state'), tmp: join(n.stateDir, 'tmp') };
for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true });
function args(nd: SandboxNode): string[] {
  return ['--cni-net-dir', join(nd.stateDir, 'net.d'), '--cni-bin-dir', join(nd.stateDir, 'bin'), '--cgroup-root', nd.cgroupRoot, '--pin-dir', nd.pinDir, '--state-dir', join(nd.stateDir, 'state'), '--kubeconfig', join(nd.stateDir, 'kubeconfig'), '--log-file', '', '--cri-socket', 'none'];
}
const primary = `${JSON.stringify({ cniVersion: '1.0.0', name: 'litter-net', plugins: [{ type: 'bridge', bridge: n.names.extra('br'), ipam: { type: 'host-local', ranges: [[{ subnet: '10.213.122.0/24' }]] } }] }, null, 2)}\n`;
writeFileSync(join(dirs.net, '10-litter.conflist'), primary);
/** TMPDIR of the executable: empty, and it must stay so. */
const env = { TMPDIR: dirs.tmp };

const ours = (dir: string): string[] => readdirSync(dir).filter((f) => tempWriter(f) !== undefined);
const dead = 999_999_999;
function plant(): Record<string, string[]> {
  const planted = {
    [dirs.net]: [`.10-litter.conflist.${dead}.0123abcd.meshlane-tmp`, `.10-litter.conflist.${dead}.lq2x8k3z.tmp`],
    [dirs.bin]: [`.meshlane.${dead}.89abcdef.meshlane-tmp`],
    [dirs.state]: [`.meshlane-0123456789abcdef.o.${dead}.01234567.meshlane-tmp`],
  };
  for (const [d, files] of Object.entries(planted)) for (const f of files) writeFileSync(join(d, f), 'litter');
  // Not ours to remove: a live writer's temp, another tool's file.
  writeFileSync(join(dirs.net, `.10-litter.conflist.${process.pid}.76543210.meshlane-tmp`), 'live');
  writeFileSync(join(dirs.bin, `.bridge.${dead}.89abcdef.meshlane-tmp`), 'not the plugin');
  return planted;
}

function meshlaneEntries(): number {
  const list = JSON.parse(readFileSync(join(dirs.net, '10-litter.conflist'), 'utf8')) as { plugins: Array<{ type: string }> };
  return list.plugins.filter((p) => p.type === 'meshlane').length;
}

t.test('install --once removes what dead runs left, keeps the rest, stages nothing in TMPDIR', async (t) => {
  plant();
  const r = await execa(exe, ['install', '--once', ...args(n)], { reject: false, env });
  t.equal(r.exitCode, 0, 'exit 0', { stderr: r.stderr });
  t.same(ours(dirs.net), [`.10-litter.conflist.${process.pid}.76543210.meshlane-tmp`], "the net dir keeps only a live writer's temp");
  t.same(ours(dirs.bin), [`.bridge.${dead}.89abcdef.meshlane-tmp`], 'the bin dir keeps what is not the plugin');
  t.same(ours(dirs.state), [], 'the state dir is clean (the staged object too)');
  t.same(readdirSync(dirs.tmp), [], 'nothing in TMPDIR');
});

t.test('uninstall removes them too', async (t) => {
  plant();
  const r = await execa(exe, ['uninstall', ...args(n)], { reject: false, env });
  t.equal(r.exitCode, 0, 'exit 0', { stderr: r.stderr });
  t.same(ours(dirs.net), [`.10-litter.conflist.${process.pid}.76543210.meshlane-tmp`]);
  t.same(ours(dirs.state), []);
  t.equal(readFileSync(join(dirs.net, '10-litter.conflist'), 'utf8'), primary, 'the primary is back');
});

t.test('installs and uninstalls killed at random moments: the next run leaves no litter and one entry', async (t) => {
  for (const f of ours(dirs.net)) if (f.includes(String(process.pid))) (await import('node:fs')).rmSync(join(dirs.net, f));
  for (const [i, cmd] of ['install', 'install', 'install', 'install', 'install', 'install', 'uninstall', 'uninstall', 'uninstall', 'install', 'install', 'uninstall'].entries()) {
    const p = execa(exe, cmd === 'install' ? ['install', '--once', ...args(n)] : ['uninstall', ...args(n)], { reject: false, env });
    await sleep(20 + ((i * 97) % 400));
    p.kill('SIGKILL');
    await p;
  }
  const r = await execa(exe, ['install', '--once', ...args(n)], { reject: false, env });
  t.equal(r.exitCode, 0, 'exit 0', { stderr: r.stderr });
  t.same([...ours(dirs.net), ...ours(dirs.bin).filter((f) => !f.startsWith('.bridge.')), ...ours(dirs.state)], [], 'no temp file of ours anywhere');
  t.equal(meshlaneEntries(), 1, 'the entry once');
  t.same(readdirSync(dirs.tmp), [], 'nothing in TMPDIR');
  const u = await execa(exe, ['uninstall', ...args(n)], { reject: false, env });
  t.equal(u.exitCode, 0, 'exit 0', { stderr: u.stderr });
  t.equal(readFileSync(join(dirs.net, '10-litter.conflist'), 'utf8'), primary, 'the primary is back as it was');
});
