// meshlane's main job on a local sandbox node, shown step by step.
//
//   1. a sandbox node: a cgroup v2 subtree, a bpffs pin dir, a node netns with a
//      bridge (nothing is attached to this machine's own cgroup root or netns);
//   2. a primary CNI config (bridge + host-local) and `meshlane install --once`,
//      which places the plugin, attaches the eBPF datapath and chains itself in;
//   3. three pods made as kubelet + the runtime make them: pod cgroup first, then
//      the CNI chain (ADD) with the pod's annotations. Two are Istio sidecar pods
//      (annotations of a real injected pod), one is plain;
//   4. a test sidecar proxy as uid 1337 in each meshed pod, servers, and traffic;
//   5. what happened: which connections went through which proxy, the original
//      destinations the proxies saw, the datapath counters, `meshlane status`;
//   6. DEL, `meshlane uninstall`, and the node removed.
// It fails loudly when a connection that must be steered is not.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import type { Conflist, Json } from '../testing/sandbox/cni-chain.js';
import { podThroughChain, type ChainPod } from '../testing/sandbox/chain-pod.js';
import { buildTool, createNode, type SandboxNode, type SpawnedProcess } from '../testing/sandbox/node.js';
import { errorMessage } from '../src/describe-error.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const exe = join(root, 'dist', 'meshlane');
const fixtures = resolve(root, 'testing', 'fixtures', 'pods');
const PREFIX = 'mldmo';
const APP = { uid: 1000, gid: 1000 };
const PROXY = { uid: 1337, gid: 1337 };

const out = (s = ''): void => void process.stdout.write(`${s}\n`);
const step = (s: string): void => out(`\n== ${s}`);

interface DemoPod {
  name: string;
  meshed: boolean;
  ip: string;
  chained: ChainPod;
  place(container: string): { netnsPath: string; cgroupDir: string };
}

function annotationsOf(file: string | undefined): Record<string, string> {
  if (!file) return { app: 'plain' };
  const pod = JSON.parse(readFileSync(join(fixtures, file), 'utf8')) as { metadata: { annotations: Record<string, string> } };
  return pod.metadata.annotations;
}

async function main(): Promise<void> {
  const node: SandboxNode = await createNode({ prefix: PREFIX, ipv4Subnet: '10.213.99.0/24', ipv6Subnet: 'fd00:213:99::/64' });
  const procs: SpawnedProcess[] = [];
  const pods: DemoPod[] = [];
  const dirs = {
    net: join(node.stateDir, 'net.d'),
    bin: join(node.stateDir, 'bin'),
    state: join(node.stateDir, 'state'),
  };
  const paths = ['--cni-net-dir', dirs.net, '--cni-bin-dir', dirs.bin, '--cgroup-root', node.cgroupRoot, '--pin-dir', node.pinDir, '--state-dir', dirs.state, '--kubeconfig', join(node.stateDir, 'kubeconfig')];
  let list: Conflist | undefined;
  try {
    step('a sandbox node');
    out(`cgroup root ${node.cgroupRoot}, pins ${node.pinDir}, node netns ${node.netns}`);

    step('a primary CNI config, then meshlane install --once');
    mkdirSync(dirs.net);
    mkdirSync(dirs.bin);
    const primary = {
      cniVersion: '1.0.0',
      name: 'demo-net',
      plugins: [{ type: 'bridge', bridge: node.names.extra('br'), isGateway: true, ipMasq: false, ipam: { type: 'host-local', ranges: [[{ subnet: '10.213.98.0/24' }]], dataDir: join(node.stateDir, 'ipam') } }],
    };
    writeFileSync(join(dirs.net, '10-demo.conflist'), `${JSON.stringify(primary, null, 2)}\n`);
    const inst = await execa(exe, ['install', '--once', ...paths, '--cri-socket', 'none', '--log-file', join(node.stateDir, 'plugin.log')], { reject: false });
    if (inst.exitCode !== 0) throw new Error(`meshlane install failed: ${inst.stdout}${inst.stderr}`);
    out(`install: ${inst.stdout.trim()}`);
    list = JSON.parse(readFileSync(join(dirs.net, '10-demo.conflist'), 'utf8')) as Conflist;
    out(`chained conflist: ${list.plugins.map((p) => p['type']).join(' -> ')}`);

    step('three pods through the CNI chain (cgroup first, as kubelet)');
    const specs: Array<{ name: string; fixture: string | undefined }> = [
      { name: 'web-a', fixture: 'istio-sidecar-cni-native.json' },
      { name: 'web-b', fixture: 'istio-sidecar-cni-native.json' },
      { name: 'plain', fixture: undefined },
    ];
    for (const [i, s] of specs.entries()) {
      const uid = `de0de0de-0000-4000-8000-00000000000${i + 1}`;
      const chained = await podThroughChain(node, list, { namespace: 'demo', name: s.name, uid, annotations: annotationsOf(s.fixture) }, `p${i + 1}`, {
        binDirs: [dirs.bin, '/usr/lib/cni'],
        containerId: `demo${i + 1}`,
      });
      const ip = String(((chained.result['ips'] as Json[])[0] ?? {})['address']).split('/')[0] ?? '';
      pods.push({ name: s.name, meshed: s.fixture !== undefined, ip, chained, place: (container) => chained.place(container) });
      out(`${s.name.padEnd(6)} ${ip.padEnd(14)} ${s.fixture ? `Istio sidecar pod (${s.fixture})` : 'plain pod (no Istio annotations)'}`);
    }
    const status = await execa(exe, ['status', '--json', '--cni-net-dir', dirs.net, '--cgroup-root', node.cgroupRoot, '--pin-dir', node.pinDir, '--state-dir', dirs.state], { reject: false });
    const registered = (JSON.parse(status.stdout) as { pods: Array<{ name: string; registered: boolean }> }).pods.filter((p) => p.registered).map((p) => p.name).sort();
    out(`registered by meshlane: ${registered.join(', ') || '(none)'}`);
    if (registered.join(',') !== 'web-a,web-b') throw new Error(`expected web-a and web-b registered, got ${registered.join(',')}`);

    step('proxies (uid 1337) in the meshed pods, servers on :8080');
    const mlproxy = await buildTool('mlproxy');
    const mlpeer = await buildTool('mlpeer');
    const proxies = new Map<string, SpawnedProcess>();
    for (const p of pods) {
      if (p.meshed) {
        const proxy = await node.spawnIn(p.place('istio-proxy'), mlproxy, ['--inbound-src', '127.0.0.6', '--idle-timeout-ms', '10000', '--lifetime-ms', '120000'], PROXY);
        await proxy.waitForJson((e) => e['event'] === 'listening');
        proxies.set(p.name, proxy);
        procs.push(proxy);
      }
      const server = await node.spawnIn(p.place('app'), mlpeer, ['server', '--port', '8080'], APP);
      await server.waitForJson((e) => e['event'] === 'listening');
      procs.push(server);
    }

    step('traffic');
    const byName = (n: string): DemoPod => pods.find((p) => p.name === n) as DemoPod;
    const cases: Array<{ from: string; to: string; expect: string }> = [
      { from: 'web-a', to: 'web-b', expect: 'web-a proxy :15001 -> web-b proxy :15006 -> web-b app' },
      { from: 'web-a', to: 'plain', expect: 'web-a proxy :15001 -> plain app' },
      { from: 'plain', to: 'web-a', expect: 'web-a proxy :15006 (steered by tc on web-a eth0) -> web-a app' },
    ];
    let failures = 0;
    for (const c of cases) {
      const from = byName(c.from);
      const to = byName(c.to);
      const seen = new Map<string, number>();
      for (const [name, proxy] of proxies) seen.set(name, proxy.events().length);
      const r = await node.runIn(from.place('app'), mlpeer, ['client', '--connect', `${to.ip}:8080`, '--bytes', '65536', '--timeout-ms', '10000'], { ...APP, timeoutMs: 15_000 });
      const ok = r.exitCode === 0;
      const hops: string[] = [];
      for (const [name, proxy] of proxies) {
        for (const e of proxy.events().slice(seen.get(name) ?? 0)) {
          if (e['event'] === 'accept') hops.push(`${name} proxy :${String(e['listener'])} saw original destination ${String(e['orig_dst'])}`);
        }
      }
      out(`${c.from} -> ${c.to}:8080  ${ok ? '64 KiB echoed and verified' : `FAILED: ${r.stdout}${r.stderr}`}`);
      for (const h of hops) out(`    ${h}`);
      if (hops.length === 0) out('    no proxy involved');
      const wantHops = c.expect.split(' proxy :').length - 1;
      const rightDst = hops.every((h) => h.endsWith(`${to.ip}:8080`));
      if (!ok || hops.length !== wantHops || !rightDst) {
        failures += 1;
        out(`    NOT AS EXPECTED: ${c.expect}`);
      }
    }

    step('meshlane status');
    const human = await execa(exe, ['status', '--cni-net-dir', dirs.net, '--cgroup-root', node.cgroupRoot, '--pin-dir', node.pinDir, '--state-dir', dirs.state], { reject: false });
    out(human.stdout.trimEnd());
    if (failures > 0) throw new Error(`${failures} connection(s) were not steered as expected`);
    step('demo: OK — every connection of a meshed pod went through its sidecar');
  } finally {
    step('cleanup');
    for (const p of procs) await p.kill().catch(() => undefined);
    if (list) {
      for (const p of pods) {
        await p.chained.del().catch((e: unknown) => out(`DEL ${p.name}: ${errorMessage(e)}`));
      }
    }
    await execa(exe, ['uninstall', ...paths], { reject: false });
    await node.destroy(); // the pod netns too: they are named under the node's prefix
    out('removed the pods, meshlane and the sandbox node');
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`\ndemo FAILED: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
