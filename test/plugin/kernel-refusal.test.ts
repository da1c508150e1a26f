// The plugin on a node whose kernel the installer refused (the refusal record
// in the state dir, no datapath pinned): STATUS answers code 50 with the
// installer's message, a sidecar pod's ADD fails with code 11 naming it, a pod
// the mesh does not own passes through untouched, and a record of another boot
// is not believed. In-process: the real dispatcher and handlers, I/O in memory.
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import t from 'tap';
import { runCni } from '../../src/cni/skel.js';
import { handlers } from '../../src/plugin/handlers.js';
import { pluginLogger } from '../../src/plugin/run.js';
import { currentBootId, writeKernelRefusal } from '../../src/node/kernel-refusal.js';

const MESSAGE = 'meshlane cannot run on this kernel (Linux 5.4.0-150-generic): no helper bpf_get_current_ancestor_cgroup_id in cgroup/connect4 programs. meshlane needs Linux 5.10 or later';
const POD_UID = '6f1c2f9e-8a43-4d5e-9b0a-0c1d2e3f4a5b';
const SIDECAR_STATUS = JSON.stringify({ initContainers: ['istio-validation', 'istio-proxy'], containers: null, volumes: ['istio-envoy'], imagePullSecrets: null });

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.text += chunk.toString('utf8');
    cb();
  }
}

function node(t: { teardown(f: () => void): void }) {
  const root = mkdtempSync(join(tmpdir(), 'meshlane-krefuse-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const d = { root, state: join(root, 'state'), pins: join(root, 'pins'), cgroup: join(root, 'cgroup'), log: join(root, 'log', 'meshlane.log') };
  mkdirSync(join(d.cgroup, 'kubepods', 'besteffort', `pod${POD_UID}`), { recursive: true });
  return d;
}

const PREV = { cniVersion: '1.1.0', interfaces: [{ name: 'eth0', sandbox: '/var/run/netns/x' }], ips: [{ interface: 0, address: '10.244.0.5/24' }] };

async function call(d: ReturnType<typeof node>, command: 'ADD' | 'STATUS', annotations: Record<string, string> = {}) {
  const config: Record<string, unknown> = {
    cniVersion: '1.1.0',
    name: 'k8s-pod-network',
    type: 'meshlane',
    log_file: d.log,
    bpf_pin_dir: d.pins,
    cgroup_root: d.cgroup,
    state_dir: d.state,
    kubeconfig: join(d.root, 'kubeconfig'),
    capabilities: { 'io.kubernetes.cri.pod-annotations': true },
    runtimeConfig: { 'io.kubernetes.cri.pod-annotations': annotations },
  };
  if (command === 'ADD') config['prevResult'] = PREV;
  const env = {
    CNI_COMMAND: command,
    CNI_CONTAINERID: 'c0ffee01',
    CNI_NETNS: '/var/run/netns/x',
    CNI_IFNAME: 'eth0',
    CNI_PATH: '/opt/cni/bin',
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_UID=${POD_UID}`,
  };
  const stdout = new Capture();
  const exitCode = await runCni({ env, stdin: Readable.from([Buffer.from(JSON.stringify(config))]), stdout }, handlers, { createLogger: pluginLogger({ stderr: false }) });
  return { exitCode, out: stdout.text.trim() ? (JSON.parse(stdout.text) as Record<string, unknown>) : undefined };
}

t.test('STATUS: code 50 with the installer\'s message', async (t) => {
  const d = node(t);
  writeKernelRefusal(d.state, { message: MESSAGE, release: '5.4.0-150-generic', bootId: currentBootId() });
  const r = await call(d, 'STATUS');
  t.not(r.exitCode, 0);
  t.match(r.out, { code: 50, msg: MESSAGE });
});

t.test('ADD of a sidecar pod: code 11 naming the kernel and what it lacks; nothing recorded', async (t) => {
  const d = node(t);
  writeKernelRefusal(d.state, { message: MESSAGE, release: '5.4.0-150-generic', bootId: currentBootId() });
  const r = await call(d, 'ADD', { 'sidecar.istio.io/status': SIDECAR_STATUS });
  t.not(r.exitCode, 0);
  t.equal(r.out?.['code'], 11);
  t.equal(r.out?.['msg'], `the sidecar pod default/web cannot be intercepted on this node: ${MESSAGE}`);
  t.same(readdirSync(d.state).sort(), ['kernel-refusal.json'], 'no attachment record, no lock litter beyond the state dir');
});

t.test('ADD of a pod the mesh does not own: prevResult unchanged', async (t) => {
  const d = node(t);
  writeKernelRefusal(d.state, { message: MESSAGE, release: '5.4.0-150-generic', bootId: currentBootId() });
  const r = await call(d, 'ADD', { app: 'plain' });
  t.equal(r.exitCode, 0);
  t.same(r.out, PREV);
});

t.test('a record of another boot is not believed: the plain "not installed" answers', async (t) => {
  const d = node(t);
  writeKernelRefusal(d.state, { message: MESSAGE, release: '5.4.0-150-generic', bootId: 'an-earlier-boot' });
  const s = await call(d, 'STATUS');
  t.match(s.out, { code: 50, msg: /the meshlane datapath is not installed on this node/ });
  const a = await call(d, 'ADD', { 'sidecar.istio.io/status': SIDECAR_STATUS });
  t.match(a.out, { code: 11, msg: /the meshlane datapath is not installed on this node/ });
});
