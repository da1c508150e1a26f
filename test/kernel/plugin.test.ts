// The plugin's ADD/DEL/CHECK/GC/STATUS through dist/meshlane, chained after the
// real bridge + host-local plugins, against real pinned maps in a sandbox node.
// Map contents are asserted byte for byte through the decoders.
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { chainDel, execPlugin, PluginError, type Conflist, type Json } from '../../testing/sandbox/cni-chain.js';
import { chainAddEach, meshlaneEntry, podSandbox, type PodSandbox } from '../../testing/sandbox/chain-pod.js';
import { createNode, type SandboxNode } from '../../testing/sandbox/node.js';
import { toMapped16 } from '../../src/bpf/addr.js';
import { POD_F, podCg, podConfig } from '../../src/bpf/layout.js';
import { installDatapath, removeDatapath } from '../../src/bpf/loader.js';
import { MAP_NAMES } from '../../src/bpf/names.js';
import { encodePodConfig } from '../../src/bpf/pod-config.js';
import { listPodsByCgroup, mapEntryCount, readPodConfig } from '../../src/bpf/registry.js';
import { interceptionFromAnnotations } from '../../src/mesh/index.js';
import { cniPluginDir, distBpfObject, distExe, requireBuiltExe, upstreamFixtures } from '../helpers/paths.js';
import { requireRoot } from '../helpers/root.js';

requireRoot('the plugin registration test');
requireBuiltExe();
const PREFIX = 'mlkrg';

let node: SandboxNode | undefined;
t.teardown(async () => {
  if (node) await removeDatapath({ pinDir: node.pinDir, cgroupDir: node.cgroupRoot }).catch(() => undefined);
  await node?.destroy();
});
node = await createNode({ prefix: PREFIX, ipv4Subnet: '10.213.110.0/24', ipv6Subnet: 'fd00:213:110::/64' });
const n = node;
await installDatapath({ pinDir: n.pinDir, cgroupDir: n.cgroupRoot }, distBpfObject);
const stateDir = join(n.stateDir, 'plugin-state');

interface FixturePod {
  metadata: { namespace: string; name: string; uid: string; annotations?: Record<string, string> };
}
function fixture(file: string): FixturePod {
  return JSON.parse(readFileSync(join(upstreamFixtures, 'pods', file), 'utf8')) as FixturePod;
}

function entry(extra: Json = {}): Json {
  return meshlaneEntry(n, { stateDir }, extra);
}

function conflist(extra: Json = {}): Conflist {
  return {
    cniVersion: '1.0.0',
    name: 'meshlane-plugin-test',
    plugins: [
      {
        type: 'bridge',
        bridge: n.names.extra('cbr'),
        isGateway: false,
        ipMasq: false,
        ipam: { type: 'host-local', ranges: [[{ subnet: '10.213.111.0/24' }], [{ subnet: 'fd00:213:111::/64' }]], dataDir: join(n.stateDir, 'ipam') },
      },
      entry(extra),
    ],
  };
}

let seq = 0;
type Sandbox = PodSandbox;
/** A pod sandbox as kubelet + runtime make it: pod cgroup first, then a netns. */
async function sandbox(pod: FixturePod, opts: { makeCgroup?: boolean; args?: Record<string, string> } = {}): Promise<Sandbox> {
  seq += 1;
  const uid = `${pod.metadata.uid.slice(0, 30)}${String(seq).padStart(6, '0')}`;
  return podSandbox(n, { ...pod.metadata, uid }, `c${seq}`, {
    binDirs: [join(distExe, '..'), cniPluginDir],
    containerId: `c${seq}${'0'.repeat(20)}`,
    ...(opts.makeCgroup === false ? { makeCgroup: false } : {}),
    ...(opts.args ? { args: opts.args } : {}),
  });
}

async function add(list: Conflist, sb: Sandbox): Promise<{ fromBridge: Json; fromMeshlane: Json }> {
  const [fromBridge, fromMeshlane] = await chainAddEach(list, list.plugins, sb.rt, undefined);
  return { fromBridge: fromBridge ?? {}, fromMeshlane: fromMeshlane ?? {} };
}

async function del(list: Conflist, sb: Sandbox, cached: Json | undefined): Promise<void> {
  await chainDel(list, sb.rt, cached);
}

function ipsOf(result: Json): { v4: string; v6: string } {
  const ips = (result['ips'] as Json[]).map((i) => String(i['address']).split('/')[0] ?? '');
  return { v4: ips.find((a) => !a.includes(':')) ?? '', v6: ips.find((a) => a.includes(':')) ?? '' };
}

async function mapsEmpty(): Promise<{ cg: number; ip: number }> {
  return { cg: await mapEntryCount(n.pinDir, MAP_NAMES.podsByCgroup), ip: await mapEntryCount(n.pinDir, MAP_NAMES.podsByIp) };
}

function recordFile(sb: Sandbox): string {
  return join(stateDir, 'attachments', `${sb.rt.containerId}@eth0.json`);
}

t.test('a sidecar pod: ADD registers byte for byte, CHECK passes, DEL removes exactly it', async (t) => {
  const pod = fixture('istio-sidecar-cni-native.json');
  const list = conflist();
  const sb = await sandbox(pod);
  const { fromBridge, fromMeshlane } = await add(list, sb);
  t.same(fromMeshlane, fromBridge, 'prevResult handed on unchanged');
  const { v4, v6 } = ipsOf(fromBridge);

  const cgId = statSync(sb.cgroupDir, { bigint: true }).ino;
  const pods = await listPodsByCgroup(n.pinDir);
  t.equal(pods.length, 1);
  t.equal(pods[0]?.cgroupId, cgId, 'keyed by the pod cgroup id');
  t.same(Buffer.from(podCg.encode(pods[0]!.pod)), Buffer.from(podCg.encode({
    ip4: toMapped16(v4), ip6: toMapped16(v6), flags: POD_F.MESHED | POD_F.HAS_V4 | POD_F.HAS_V6, proxy_uid: 1337, proxy_gid: 1337,
  })), 'the cgroup entry, byte for byte');
  const want = Buffer.from(podConfig.encode(encodePodConfig(interceptionFromAnnotations(pod.metadata.annotations ?? {}))));
  for (const ip of [v4, v6]) {
    const got = await readPodConfig(n.pinDir, ip);
    t.ok(got, `config for ${ip}`);
    if (got) t.same(Buffer.from(podConfig.encode(got)), want, `config for ${ip}, byte for byte`);
  }
  const rec = recordFile(sb);
  t.ok(existsSync(rec), 'attachment record written');
  t.equal(statSync(rec).mode & 0o777, 0o600, 'record mode 0600');

  await execPlugin('CHECK', list, list.plugins[1] as Json, sb.rt, fromMeshlane);
  t.pass('CHECK passes');

  await del(list, sb, fromMeshlane);
  t.same(await mapsEmpty(), { cg: 0, ip: 0 }, 'maps empty after DEL');
  t.notOk(existsSync(rec), 'record removed');
  await execPlugin('DEL', list, list.plugins[1] as Json, { ...sb.rt, netns: '' }, undefined);
  await execPlugin('DEL', list, list.plugins[1] as Json, sb.rt, fromMeshlane);
  t.pass('repeated DEL, and DEL without prevResult or netns, succeed');
});

t.test('CHECK fails when the registration was changed behind its back', async (t) => {
  const pod = fixture('istio-sidecar-cni-native.json');
  const list = conflist();
  const sb = await sandbox(pod);
  const { fromMeshlane } = await add(list, sb);
  const { v4 } = ipsOf(fromMeshlane);
  const { unregisterPod } = await import('../../src/bpf/registry.js');
  await unregisterPod(n.pinDir, { cgroupId: statSync(sb.cgroupDir, { bigint: true }).ino, ipv4: v4 });
  const err = await execPlugin('CHECK', list, list.plugins[1] as Json, sb.rt, fromMeshlane).catch((e: unknown) => e);
  t.ok(err instanceof PluginError, 'CHECK fails');
  t.match((err as PluginError).stdout, /"code":\s*105/);
  await del(list, sb, fromMeshlane);
  t.same(await mapsEmpty(), { cg: 0, ip: 0 });
});

t.test('DEL removes what is left when an earlier DEL stopped half-way', async (t) => {
  const pod = fixture('istio-sidecar-cni-native.json');
  const list = conflist();
  const sb = await sandbox(pod);
  const { fromMeshlane } = await add(list, sb);
  const { v6 } = ipsOf(fromMeshlane);
  const { mapBatch } = await import('../../src/bpf/bpftool.js');
  await mapBatch([{ op: 'delete', map: join(n.pinDir, 'maps', MAP_NAMES.podsByIp), key: toMapped16(v6) }]);
  t.same(await mapsEmpty(), { cg: 1, ip: 1 }, 'the IPv6 entry is already gone');
  await del(list, sb, fromMeshlane);
  t.same(await mapsEmpty(), { cg: 0, ip: 0 }, 'DEL removed the rest');
  t.notOk(existsSync(recordFile(sb)), 'record removed');
});

const passThrough: Array<[string, FixturePod, Record<string, string> | undefined]> = [
  ['classic iptables-mode pod (istio-init)', fixture('istio-sidecar-classic.json'), undefined],
  ['injection disabled', fixture('istio-inject-disabled.json'), undefined],
  ['a gateway', fixture('istio-gateway.json'), undefined],
  ['a Linkerd pod', fixture('linkerd-vote-bot.json'), undefined],
  ['a Kuma pod', fixture('kuma-busybox.json'), undefined],
  ['not a Kubernetes pod', fixture('istio-sidecar-cni-native.json'), { IgnoreUnknown: '1' }],
  ['an excluded namespace', { metadata: { ...fixture('istio-sidecar-cni-native.json').metadata, namespace: 'kube-system' } }, undefined],
];
for (const [what, pod, args] of passThrough) {
  t.test(`pass-through: ${what} — nothing written`, async (t) => {
    const list = conflist();
    const sb = await sandbox(pod, args ? { args } : {});
    const { fromBridge, fromMeshlane } = await add(list, sb);
    t.same(fromMeshlane, fromBridge);
    t.same(await mapsEmpty(), { cg: 0, ip: 0 });
    t.notOk(existsSync(recordFile(sb)), 'no record');
    await del(list, sb, fromMeshlane);
  });
}

interface Fault {
  what: string;
  code: number;
  list: () => Conflist;
  pod: () => FixturePod;
  sandboxOpts?: { makeCgroup?: boolean };
  before?: () => void;
  after?: () => void;
}
const faults: Fault[] = [
  {
    what: 'an invalid annotation',
    code: 100,
    list: () => conflist(),
    pod: () => {
      const p = fixture('istio-sidecar-cni-native.json');
      return { metadata: { ...p.metadata, annotations: { ...p.metadata.annotations, 'traffic.sidecar.istio.io/excludeOutboundIPRanges': '10.0.0.0/33' } } };
    },
  },
  { what: 'the pod cgroup missing', code: 101, list: () => conflist(), pod: () => fixture('istio-sidecar-cni-native.json'), sandboxOpts: { makeCgroup: false } },
  { what: 'no pins (datapath not installed)', code: 11, list: () => conflist({ bpf_pin_dir: join(n.pinDir, 'nothing-here') }), pod: () => fixture('istio-sidecar-cni-native.json') },
  {
    what: 'the state dir unusable',
    code: 104,
    list: () => conflist({ state_dir: join(n.stateDir, 'a-file', 'state') }),
    pod: () => fixture('istio-sidecar-cni-native.json'),
    before: () => writeFileSync(join(n.stateDir, 'a-file'), 'not a dir'),
    after: () => rmSync(join(n.stateDir, 'a-file'), { force: true }),
  },
  {
    what: 'no annotations and no kubeconfig (API unreachable)',
    code: 11,
    list: () => conflist({ capabilities: {} }),
    pod: () => fixture('istio-sidecar-cni-native.json'),
  },
];
for (const f of faults) {
  t.test(`fault: ${f.what} -> code ${f.code}, nothing left behind`, async (t) => {
    f.before?.();
    t.teardown(() => f.after?.());
    const list = f.list();
    const sb = await sandbox(f.pod(), f.sandboxOpts ?? {});
    const err = await add(list, sb).then(() => undefined, (e: unknown) => e);
    t.ok(err instanceof PluginError, 'ADD fails');
    const out = JSON.parse((err as PluginError).stdout) as Json;
    t.equal(out['code'], f.code, String(out['msg']));
    t.type(out['msg'], 'string');
    t.same(await mapsEmpty(), { cg: 0, ip: 0 }, 'no partial registration');
    t.notOk(existsSync(recordFile(sb)), 'no record');
    await execPlugin('DEL', list, list.plugins[1] as Json, sb.rt, undefined);
  });
}

t.test('no pins: a pod the mesh does not own still starts', async (t) => {
  const list = conflist({ bpf_pin_dir: join(n.pinDir, 'nothing-here') });
  const sb = await sandbox(fixture('istio-sidecar-classic.json'));
  const { fromBridge, fromMeshlane } = await add(list, sb);
  t.same(fromMeshlane, fromBridge);
  await del(list, sb, fromMeshlane);
});

t.test('STATUS: ok with the datapath, 50 without', async (t) => {
  const list = { ...conflist(), cniVersion: '1.1.0' };
  const rt = { containerId: 'status', netns: '', ifname: 'eth0', binDirs: [join(distExe, '..')] };
  await execPlugin('STATUS', list, list.plugins[1] as Json, rt);
  const without = { ...list, plugins: [list.plugins[0] as Json, entry({ bpf_pin_dir: join(n.pinDir, 'nothing-here') })] };
  const err = await execPlugin('STATUS', without, without.plugins[1] as Json, rt).catch((e: unknown) => e);
  t.ok(err instanceof PluginError);
  t.match((err as PluginError).stdout, /"code":\s*50/);
});

t.test('GC removes the registrations of attachments no longer valid', async (t) => {
  const list = conflist();
  const pods = [await sandbox(fixture('istio-sidecar-cni-native.json')), await sandbox(fixture('istio-sidecar-cni-native.json')), await sandbox(fixture('istio-sidecar-cni-native.json'))];
  const results: Json[] = [];
  for (const sb of pods) results.push((await add(list, sb)).fromMeshlane);
  t.same(await mapsEmpty(), { cg: 3, ip: 6 });
  const keep = pods[1] as Sandbox;
  const gcList = { ...list, cniVersion: '1.1.0' };
  const entry = { ...(gcList.plugins[1] as Json), 'cni.dev/valid-attachments': [{ containerID: keep.rt.containerId, ifname: 'eth0' }] };
  await execPlugin('GC', gcList, entry, { containerId: 'gc', netns: '', ifname: 'eth0', binDirs: [join(distExe, '..')] });
  t.same(await mapsEmpty(), { cg: 1, ip: 2 }, 'only the valid attachment stays');
  t.ok(existsSync(recordFile(keep)));
  for (const [i, sb] of pods.entries()) await del(list, sb, results[i]);
  t.same(await mapsEmpty(), { cg: 0, ip: 0 });
});

t.test('50 pods added and deleted in parallel leave maps and state exactly empty', async (t) => {
  const list = conflist();
  const pods: Sandbox[] = [];
  for (let i = 0; i < 50; i++) pods.push(await sandbox(fixture('istio-sidecar-cni-native.json')));
  const results = await Promise.all(pods.map((sb) => add(list, sb).then((r) => r.fromMeshlane)));
  t.same(await mapsEmpty(), { cg: 50, ip: 100 }, 'all 50 registered');
  await Promise.all(pods.map((sb, i) => del(list, sb, results[i])));
  t.same(await mapsEmpty(), { cg: 0, ip: 0 });
  const left = existsSync(join(stateDir, 'attachments')) ? (await import('node:fs')).readdirSync(join(stateDir, 'attachments')) : [];
  t.same(left, [], 'no records left');
  t.notOk(existsSync(join(stateDir, 'lock')), 'no lock left');
});

