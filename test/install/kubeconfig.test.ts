// The plugin's kubeconfig written by the installer from the service account:
// mode 0600, readable by the plugin's own loader, rewritten when the token rotates,
// and no silent fall-back to an unverified connection.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { Installer } from '../../src/install/installer.js';
import { apiServerUrl, renderKubeconfig } from '../../src/install/kubeconfig.js';
import { INSTALL_FLAGS, parseOptions } from '../../src/install/options.js';
import { currentToken, loadKubeconfig } from '../../src/kube/index.js';
import { createLogger } from '../../src/log/logger.js';
import { upstreamFixtures } from '../helpers/paths.js';

const golden = join(upstreamFixtures, 'istio-install-golden');
const root = mkdtempSync(join(tmpdir(), 'meshlane-kubeconfig-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
const sa = join(root, 'serviceaccount');
mkdirSync(sa);
copyFileSync(join(golden, 'kube-ca.crt'), join(sa, 'ca.crt'));
copyFileSync(join(golden, 'token-foo'), join(sa, 'token'));
const kubeconfig = join(root, 'run', 'kubeconfig');

function installer(env: Record<string, string>): Installer {
  const opts = parseOptions(['--cgroup-root', '/sys/fs/cgroup/meshlane-test-none', '--kubeconfig', kubeconfig, '--state-dir', join(root, 'state'), '--cni-net-dir', join(root, 'net')], {}, INSTALL_FLAGS);
  return new Installer(opts, { log: createLogger({ level: 'error', stderr: false }), env, selfExe: undefined, bpfObject: async () => '/none.o', serviceAccountDir: sa });
}

t.test('written from the service account, rewritten when the token rotates', async (t) => {
  const inst = installer({ KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' });
  inst.writeKubeconfig();
  t.equal(statSync(kubeconfig).mode & 0o777, 0o600, 'mode 0600');
  let access = await loadKubeconfig(kubeconfig);
  t.equal(access.server.href, 'https://10.96.0.1/');
  t.ok(access.ca?.equals(readFileSync(join(golden, 'kube-ca.crt'))), 'the cluster CA');
  t.equal(await currentToken(access), readFileSync(join(golden, 'token-foo'), 'utf8').trim());
  const before = statSync(kubeconfig).mtimeMs;
  inst.writeKubeconfig();
  t.equal(statSync(kubeconfig).mtimeMs, before, 'unchanged token: not rewritten');
  copyFileSync(join(golden, 'token-bar'), join(sa, 'token'));
  inst.writeKubeconfig();
  access = await loadKubeconfig(kubeconfig);
  t.equal(await currentToken(access), readFileSync(join(golden, 'token-bar'), 'utf8').trim(), 'the rotated token');
  t.equal(statSync(kubeconfig).mode & 0o777, 0o600);
});

t.test('outside a cluster nothing is written; a missing CA is an error', async (t) => {
  rmSync(kubeconfig, { force: true });
  installer({}).writeKubeconfig();
  t.throws(() => statSync(kubeconfig), 'no KUBERNETES_SERVICE_HOST: no kubeconfig');
  rmSync(join(sa, 'ca.crt'));
  t.throws(() => installer({ KUBERNETES_SERVICE_HOST: '10.96.0.1' }).writeKubeconfig(), /cannot read the cluster CA/);
  copyFileSync(join(golden, 'kube-ca.crt'), join(sa, 'ca.crt'));
});

t.test('server URL and the rendered document', async (t) => {
  t.equal(apiServerUrl({ KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '6443' }), 'https://[fd00::1]:6443');
  t.throws(() => apiServerUrl({ KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443; rm -rf /' }), /not a port/);
  const doc = JSON.parse(renderKubeconfig({ server: 'https://10.96.0.1:443', token: 'tok' })) as Record<string, unknown>;
  t.match(doc, { kind: 'Config', 'current-context': 'meshlane-context', users: [{ user: { token: 'tok' } }] });
});
