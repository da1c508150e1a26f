// The built executable's command line (no CNI_COMMAND in the environment).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { runExe } from '../helpers/exe.js';

t.test('version prints version, commit and the CNI versions', async (t) => {
  const r = await runExe({}, '', ['version', '--json']);
  t.equal(r.exitCode, 0, r.stderr);
  const info = JSON.parse(r.stdout) as Record<string, unknown>;
  t.match(info['version'], /^\d+\.\d+\.\d+/);
  t.match(info['commit'], /^[0-9a-f]{7,40}$|^unknown$/);
  t.same(info['cniVersions'], ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']);
  t.match(info['node'], /^v22\./, 'the executable carries Node 22');

  const human = await runExe({}, '', ['version']);
  t.equal(human.exitCode, 0);
  t.match(human.stdout, /^meshlane \d+\.\d+\.\d+ \(commit /);
  t.match(human.stdout, /CNI versions: 0\.3\.0, 0\.3\.1, 0\.4\.0, 1\.0\.0, 1\.1\.0/);
});

t.test('--help lists every command, later ones marked as such', async (t) => {
  const r = await runExe({}, '', ['--help']);
  t.equal(r.exitCode, 0);
  for (const c of ['install', 'uninstall', 'status', 'version']) t.match(r.stdout, new RegExp(`^  ${c}\\b`, 'm'));
  t.match(r.stdout, /CNI_COMMAND/);
});

t.test('no arguments prints help with a usage exit code', async (t) => {
  const r = await runExe({}, '', []);
  t.equal(r.exitCode, 2);
  t.match(r.stdout, /Usage: meshlane <command>/);
});

t.test('an unknown command is a usage error on stderr, not a crash', async (t) => {
  const r = await runExe({}, '', ['frobnicate']);
  t.equal(r.exitCode, 2);
  t.equal(r.stdout, '');
  t.match(r.stderr, /unknown command 'frobnicate'/);
  t.notMatch(r.stderr, /at .*\.js:\d+/, 'no stack trace');
});

t.test('a bad flag is a usage error', async (t) => {
  const r = await runExe({}, '', ['version', '--bogus']);
  t.equal(r.exitCode, 2);
  t.match(r.stderr, /meshlane version: .*bogus/);
});

t.test('a problem on the node is one line with exit 1, not a bug report', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'meshlane-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const notADir = join(dir, 'net.d');
  writeFileSync(notADir, '');
  mkdirSync(join(dir, 'cgroup'));
  // Read only: status lists a dir that is no cgroup and a pin dir that does not exist.
  const r = await runExe({}, '', ['status', '--cni-net-dir', notADir, '--cgroup-root', join(dir, 'cgroup'), '--pin-dir', join(dir, 'pins'), '--state-dir', join(dir, 'state')]);
  t.equal(r.exitCode, 1, r.stderr);
  t.equal(r.stderr, `meshlane status: ENOTDIR: not a directory, scandir '${notADir}'\n`, 'one line naming the path');
  t.equal(r.stdout, '');
});
