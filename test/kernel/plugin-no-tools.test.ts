// The CNI path runs no process and needs no host tool: dist/meshlane run as a
// CNI plugin with an empty PATH (no bpftool, tc, ip, nsenter reachable) still
// registers a sidecar pod, attaches its tc filters, passes CHECK, GC and STATUS,
// and DEL removes all of it. A native module that cannot be loaded (the CNI bin
// dir on a noexec mount) is a clear CNI error for a sidecar pod and leaves a pod
// the mesh does not own alone; a failing syscall names what failed.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { execPlugin, PluginError, type Conflist, type Json } from '../../testing/sandbox/cni-chain.js';
import { chainAddEach, meshlaneEntry, podSandbox, type PodSandbox } from '../../testing/sandbox/chain-pod.js';
import { createNode, type SandboxNode } from '../../testing/sandbox/node.js';
import { inboundFilters } from '../../src/bpf/inbound.js';
import { installDatapath, removeDatapath } from '../../src/bpf/loader.js';
import { MAP_NAMES } from '../../src/bpf/names.js';
import { DEFAULT_INTERCEPTION, encodePodConfig } from '../../src/bpf/pod-config.js';
import { listPodsByCgroup, mapEntryCount, registerPods, unregisterPods, type PodRegistration } from '../../src/bpf/registry.js';
import { ML_MAX_PODS } from '../../src/bpf/layout.js';
import { hasClsact } from '../../src/sys/tc.js';
import { cniPluginDir, distExe, requireBuiltExe, upstreamFixtures } from '../helpers/paths.js';
import { requireRoot } from '../helpers/root.js';
import { GOLDEN_DIR } from '../helpers/istio-golden.js';

requireRoot('the plugin test without host tools');
requireBuiltExe();
const PREFIX = 'mlknt';
const NO_TOOLS = { PATH: '' };

let node: SandboxNode | undefined;
const mounts: string[] = [];
t.teardown(async () => {
  for (const m of mounts.reverse()) {
    try {
      execFileSync('umount', [m]);
    } catch {
      // not mounted
    }
  }
  if (node) await removeDatapath({ pinDir: node.pinDir, cgroupDir: node.cgroupRoot }).catch(() => undefined);
  await node?.destroy();
});
node = await createNode({ prefix: PREFIX, ipv4Subnet: '10.213.130.0/24', ipv6Subnet: 'fd00:213:130::/64' });
const n = node;
await installDatapath({ pinDir: n.pinDir, cgroupDir: n.cgroupRoot }, join(distExe, '..', 'bpf', 'meshlane.o'));
const stateDir = join(n.stateDir, 'plugin-state');

interface FixturePod {
  metadata: { namespace: string; name: string; uid: string; annotations?: Record<string, string> };
}
const fixture = (file: string): FixturePod => JSON.parse(readFileSync(join(upstreamFixtures, 'pods', file), 'utf8')) as FixturePod;

function conflist(cniVersion = '1.0.0'): Conflist {
  return {
    cniVersion,
    name: 'meshlane-no-tools',
    plugins: [
      {
        type: 'bridge',
        bridge: n.names.extra('cbr'),
        isGateway: false,
        ipMasq: false,
        ipam: { type: 'host-local', ranges: [[{ subnet: '10.213.131.0/24' }], [{ subnet: 'fd00:213:131::/64' }]], dataDir: join(n.stateDir, 'ipam') },
      },
      meshlaneEntry(n, { stateDir }),
    ],
  };
}

let seq = 0;
async function sandbox(pod: FixturePod, binDir = join(distExe, '..'), env: Record<string, string> = NO_TOOLS): Promise<PodSandbox> {
  seq += 1;
  const uid = `${pod.metadata.uid.slice(0, 30)}${String(seq).padStart(6, '0')}`;
  const sb = await podSandbox(n, { ...pod.metadata, uid }, `n${seq}`, { binDirs: [binDir, cniPluginDir], containerId: `n${seq}${'0'.repeat(20)}` });
  sb.rt.env = env;
  return sb;
}

const counts = async (): Promise<{ cg: number; ip: number }> => ({
  cg: await mapEntryCount(n.pinDir, MAP_NAMES.podsByCgroup),
  ip: await mapEntryCount(n.pinDir, MAP_NAMES.podsByIp),
});

function tcShow(netnsPath: string, direction: string): string {
  return execFileSync('nsenter', [`--net=${netnsPath}`, '--', 'tc', 'filter', 'show', 'dev', 'eth0', direction], { encoding: 'utf8' });
}

t.test('with PATH empty: ADD registers and attaches, CHECK passes, DEL removes everything', async (t) => {
  const list = conflist();
  const sb = await sandbox(fixture('istio-sidecar-cni-native.json'));
  const [fromBridge, fromMeshlane] = await chainAddEach(list, list.plugins, sb.rt, undefined);
  t.same(fromMeshlane, fromBridge, 'prevResult handed on unchanged');
  t.same(await counts(), { cg: 1, ip: 2 }, 'the pod registered by its cgroup and both IPs');
  const filters = await inboundFilters({ netnsPath: sb.netnsPath, ifname: 'eth0' });
  t.same(filters.map((f) => `${f.direction}:${f.progName}:${f.handle}`).sort(), ['egress:ml_tc_egress:0x1', 'ingress:ml_tc_ingress:0x1'], 'both tc programs attached');
  for (const d of ['ingress', 'egress']) {
    t.match(tcShow(sb.netnsPath, d), new RegExp(`pref 15006 bpf chain 0 handle 0x1 ml_tc_${d} direct-action .*name ml_tc_${d}`), `tc filter show ${d} shows it as tc would have attached it`);
  }
  await execPlugin('CHECK', list, list.plugins[1] as Json, sb.rt, fromMeshlane);
  t.pass('CHECK passes');
  await execPlugin('STATUS', { ...list, cniVersion: '1.1.0' }, list.plugins[1] as Json, sb.rt);
  t.pass('STATUS passes');
  const version = await execPlugin('VERSION', list, list.plugins[1] as Json, sb.rt);
  t.match(version, { supportedVersions: Array }, 'VERSION answers');

  await execPlugin('DEL', list, list.plugins[1] as Json, sb.rt, fromMeshlane);
  t.same(await counts(), { cg: 0, ip: 0 }, 'maps empty after DEL');
  t.equal(await hasClsact(sb.netnsPath, 'eth0'), false, 'the clsact qdisc ADD added is gone');
  t.notOk(existsSync(join(stateDir, 'attachments', `${sb.rt.containerId}@eth0.json`)), 'record removed');
  await execPlugin('DEL', list, list.plugins[0] as Json, sb.rt, fromMeshlane);
});

t.test('with PATH empty: GC removes the attachments no longer valid, with their tc filters', async (t) => {
  const list = conflist();
  const pods = [await sandbox(fixture('istio-sidecar-cni-native.json')), await sandbox(fixture('istio-sidecar-cni-native.json'))];
  const results: Json[] = [];
  for (const sb of pods) results.push((await chainAddEach(list, list.plugins, sb.rt, undefined))[1] ?? {});
  t.same(await counts(), { cg: 2, ip: 4 });
  const [keep, drop] = pods as [PodSandbox, PodSandbox];
  const entry = { ...(list.plugins[1] as Json), 'cni.dev/valid-attachments': [{ containerID: keep.rt.containerId, ifname: 'eth0' }] };
  await execPlugin('GC', { ...list, cniVersion: '1.1.0' }, entry, { ...keep.rt, containerId: 'gc', netns: '' });
  t.same(await counts(), { cg: 1, ip: 2 }, 'only the valid attachment stays');
  t.same(await inboundFilters({ netnsPath: drop.netnsPath, ifname: 'eth0' }), [], 'the dropped pod has no filters left');
  t.equal((await inboundFilters({ netnsPath: keep.netnsPath, ifname: 'eth0' })).length, 2, 'the kept pod keeps its filters');
  for (const [i, sb] of pods.entries()) {
    for (const p of [...list.plugins].reverse()) await execPlugin('DEL', list, p, sb.rt, results[i]);
  }
  t.same(await counts(), { cg: 0, ip: 0 });
});

t.test('a full map: the CNI error names the operation, the map, the pod and errno', async (t) => {
  const config = encodePodConfig(DEFAULT_INTERCEPTION);
  // Synthetic pods (cgroup ids and IPs no real pod has) up to the cgroup map's limit.
  const filler: PodRegistration[] = Array.from({ length: ML_MAX_PODS }, (_, i) => ({ cgroupId: 0x7f000000n + BigInt(i), ipv4: `10.215.${i >> 8}.${i & 255}`, config }));
  await registerPods(n.pinDir, filler);
  t.teardown(() => unregisterPods(n.pinDir, filler));
  const listed = await listPodsByCgroup(n.pinDir);
  t.equal(listed.length, ML_MAX_PODS, 'one batch read returns every entry of a full map');
  t.equal(new Set(listed.map((p) => p.cgroupId)).size, ML_MAX_PODS, 'each once');
  const list = conflist();
  const pod = fixture('istio-sidecar-cni-native.json');
  const sb = await sandbox(pod);
  const err = await chainAddEach(list, list.plugins, sb.rt, undefined).then(() => undefined, (e: unknown) => e);
  t.ok(err instanceof PluginError, 'ADD fails');
  const out = JSON.parse((err as PluginError).stdout) as Json;
  t.equal(out['code'], 102);
  t.match(String(out['msg']), /BPF_MAP_UPDATE_ELEM/, 'the operation');
  t.match(String(out['msg']), /ml_pods_cg/, 'the map');
  t.match(String(out['msg']), new RegExp(`${pod.metadata.namespace}/${pod.metadata.name}`), 'the pod');
  t.match(String(out['msg']), /E2BIG/, "errno's name");
  t.match(String(out['details']), /full/, 'what it means');
  t.same(await counts(), { cg: ML_MAX_PODS, ip: ML_MAX_PODS }, 'nothing of the pod left in the maps');
});

function tmpfs(dir: string, opts: string): void {
  mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', opts, `${PREFIX}-tmpfs`, dir]);
  mounts.push(dir);
}

t.test('the native module cannot be loaded: sidecar pods fail with code 5, others pass through', async (t) => {
  // The executable in a read-only dir (no file can be made beside it), TMPDIR on a noexec mount (none can be loaded there).
  const binDir = join(n.stateDir, 'ro-bin');
  tmpfs(binDir, 'size=256m');
  copyFileSync(distExe, join(binDir, 'meshlane'));
  t.equal(statSync(join(binDir, 'meshlane')).size, statSync(distExe).size);
  execFileSync('mount', ['-o', 'remount,ro', binDir]);
  const tmpDir = join(n.stateDir, 'noexec-tmp');
  tmpfs(tmpDir, 'noexec,size=1m');
  const env = { PATH: '', TMPDIR: tmpDir };
  const list = conflist();

  const sidecar = await sandbox(fixture('istio-sidecar-cni-native.json'), binDir, env);
  const [fromBridge] = await chainAddEach(list, list.plugins.slice(0, 1), sidecar.rt, undefined);
  const err = await execPlugin('ADD', list, list.plugins[1] as Json, sidecar.rt, fromBridge).then(() => undefined, (e: unknown) => e);
  t.ok(err instanceof PluginError, 'a sidecar pod: ADD fails');
  const out = JSON.parse((err as PluginError).stdout) as Json;
  t.equal(out['code'], 5, String(out['msg']));
  t.match(String(out['msg']), /native module/, 'says what is missing');
  t.same(await counts(), { cg: 0, ip: 0 }, 'nothing registered');
  await execPlugin('DEL', list, list.plugins[0] as Json, sidecar.rt, fromBridge);

  const plain = await sandbox(fixture('istio-sidecar-classic.json'), binDir, env);
  const [bridged, passed] = await chainAddEach(list, list.plugins, plain.rt, undefined);
  t.same(passed, bridged, 'a pod the mesh does not own: prevResult handed on');
  for (const p of [...list.plugins].reverse()) await execPlugin('DEL', list, p, plain.rt, passed);
});

t.test('with PATH empty: a TPROXY pod beside Istio\'s rules (iptables-nft, iptables-legacy or native nftables) is passed through; alone it is refused', async (t) => {
  const list = conflist();
  const base = fixture('istio-sidecar-cni-native.json');
  const tproxy: FixturePod = { metadata: { ...base.metadata, annotations: { ...base.metadata.annotations, 'sidecar.istio.io/interceptionMode': 'TPROXY' } } };
  const golden = readFileSync(join(GOLDEN_DIR, 'tproxy.txt.golden'), 'utf8');
  const nftGolden = readFileSync(join(upstreamFixtures, 'istio-nftables-golden', 'tproxy.golden'), 'utf8');
  // istio-cni's rules, put there before meshlane's ADD as istio-cni (earlier in the chain) would (the test's tools, not the plugin's):
  // iptables with either backend, or Istio's native nftables ruleset.
  const writers: Array<[string, string[], string]> = [['iptables-nft-restore', ['--noflush'], golden], ['iptables-legacy-restore', ['--noflush'], golden], ['nft', ['-f', '-'], nftGolden]];
  for (const [restore, args, input] of writers) {
    const sb = await sandbox(tproxy);
    execFileSync('nsenter', [`--net=${sb.netnsPath}`, '--', restore, ...args], { input });
    const [fromBridge, fromMeshlane] = await chainAddEach(list, list.plugins, sb.rt, undefined);
    t.same(fromMeshlane, fromBridge, `${restore}: passed through, prevResult unchanged`);
    t.same(await counts(), { cg: 0, ip: 0 }, `${restore}: nothing registered`);
    t.match(readFileSync(join(n.stateDir, 'meshlane.log'), 'utf8'), /TPROXY pod beside istio-cni: passing it through untouched/);
    for (const p of [...list.plugins].reverse()) await execPlugin('DEL', list, p, sb.rt, fromMeshlane);
  }
  const alone = await sandbox(tproxy);
  const [fromBridge] = await chainAddEach(list, list.plugins.slice(0, 1), alone.rt, undefined);
  const err = await execPlugin('ADD', list, list.plugins[1] as Json, alone.rt, fromBridge).then(() => undefined, (e: unknown) => e);
  t.ok(err instanceof PluginError, 'alone: ADD fails');
  const out = JSON.parse((err as PluginError).stdout) as Json;
  t.equal(out['code'], 100, String(out['msg']));
  t.match(String(out['msg']), /TPROXY/);
  await execPlugin('DEL', list, list.plugins[0] as Json, alone.rt, fromBridge);
});
