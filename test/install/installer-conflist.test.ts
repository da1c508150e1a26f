// The installer's conflist step on a real directory (no kernel needed): invalid
// and unreadable configs are skipped with a log line, the entry goes into the
// first valid one with the installer's paths, the mode is kept, a .conf becomes
// a .conflist, and uninstall gives the original bytes back.
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { Installer } from '../../src/install/installer.js';
import { INSTALL_FLAGS, parseOptions } from '../../src/install/options.js';
import { upstreamFixtures } from '../helpers/paths.js';
import { RecordingLogger } from '../helpers/recording-logger.js';

function setup(t: { teardown(f: () => void): void }): { dir: string; state: string; installer: Installer; log: RecordingLogger } {
  const root = mkdtempSync(join(tmpdir(), 'meshlane-inst-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const dir = join(root, 'net.d');
  const state = join(root, 'state');
  writeFileSync(join(root, '.keep'), '');
  mkdirSync(dir);
  const opts = parseOptions(
    ['--cni-net-dir', dir, '--cgroup-root', '/sys/fs/cgroup/meshlane-test-none', '--pin-dir', '/sys/fs/bpf/meshlane-test-none', '--state-dir', state, '--kubeconfig', join(root, 'kubeconfig')],
    {},
    INSTALL_FLAGS,
  );
  const log = new RecordingLogger();
  const installer = new Installer(opts, { log, env: {}, selfExe: undefined, bpfObject: async () => '/nonexistent.o' });
  return { dir, state, installer, log };
}

t.test('invalid and unreadable configs are skipped with a log line', async (t) => {
  const { dir, installer, log } = setup(t);
  writeFileSync(join(dir, '00-broken.conflist'), '{"name": "x", "plugins": [');
  writeFileSync(join(dir, '01-empty.conf'), '');
  writeFileSync(join(dir, '02-map.conflist'), readFileSync(join(upstreamFixtures, 'istio-install-golden', 'invalid-map.conflist')));
  const flannel = readFileSync(join(upstreamFixtures, 'conflists', 'flannel-10-flannel.conflist'));
  writeFileSync(join(dir, '10-flannel.conflist'), flannel, { mode: 0o600 });
  chmodSync(join(dir, '10-flannel.conflist'), 0o600);
  const r = installer.ensureConflist();
  t.match(r, { conflist: true, conflistFile: '10-flannel.conflist', wroteConflist: true });
  const skipped = log.lines.filter((l) => l.msg.startsWith('CNI config skipped')).map((l) => l.fields['file']);
  t.same(skipped.sort(), ['00-broken.conflist', '01-empty.conf', '02-map.conflist']);
  const written = JSON.parse(readFileSync(join(dir, '10-flannel.conflist'), 'utf8')) as { plugins: Array<Record<string, unknown>> };
  t.match(written.plugins.at(-1), { type: 'meshlane', state_dir: installer.opts.stateDir, kubeconfig: installer.opts.kubeconfig, cgroup_root: installer.cgroupRoot });
  t.equal(statSync(join(dir, '10-flannel.conflist')).mode & 0o777, 0o600, 'the primary mode is kept');
  t.match(installer.ensureConflist(), { conflist: true, wroteConflist: false }, 'a second pass changes nothing');
});

t.test('a .conf becomes a .conflist without a downgrade; uninstall restores it byte for byte', async (t) => {
  const { dir, installer } = setup(t);
  const conf = readFileSync(join(upstreamFixtures, 'conflists', 'bridge-10-dbnet.conf'));
  writeFileSync(join(dir, '10-dbnet.conf'), conf);
  const r = installer.ensureConflist();
  t.match(r, { conflist: true, conflistFile: '10-dbnet.conflist', wroteConflist: true });
  t.same(readdirSync(dir).sort(), ['10-dbnet.conflist']);
  const list = JSON.parse(readFileSync(join(dir, '10-dbnet.conflist'), 'utf8')) as { cniVersion: string };
  t.equal(list.cniVersion, (JSON.parse(conf.toString()) as { cniVersion: string }).cniVersion, 'cniVersion kept');
  await installer.uninstall().catch(() => undefined); // the datapath part fails here (no pins): the conflist part ran first
  t.same(readdirSync(dir).sort(), ['10-dbnet.conf']);
  t.ok(readFileSync(join(dir, '10-dbnet.conf')).equals(conf), 'original bytes back');
});

t.test('with istio-cni in the list, meshlane goes after it and uninstall leaves it as it was', async (t) => {
  const { dir, installer } = setup(t);
  const original = readFileSync(join(upstreamFixtures, 'istio-install-golden', 'list-with-istio.conflist'));
  writeFileSync(join(dir, '10-calico.conflist'), original);
  installer.ensureConflist();
  const list = JSON.parse(readFileSync(join(dir, '10-calico.conflist'), 'utf8')) as { plugins: Array<Record<string, unknown>> };
  const types = list.plugins.map((p) => p['type']);
  t.ok(types.indexOf('meshlane') > types.indexOf('istio-cni'), `meshlane after istio-cni: ${types.join(', ')}`);
  const istioBefore = (JSON.parse(original.toString()) as { plugins: Array<Record<string, unknown>> }).plugins.find((p) => p['type'] === 'istio-cni');
  t.same(list.plugins.find((p) => p['type'] === 'istio-cni'), istioBefore, 'istio-cni entry unchanged');
  t.match(installer.ensureConflist(), { wroteConflist: false }, 'install twice: unchanged');
  await installer.uninstall().catch(() => undefined);
  t.ok(readFileSync(join(dir, '10-calico.conflist')).equals(original), 'uninstall: the file as it was');
});
