// End to end with containerd's CRI, as kubelet drives it: a private containerd
// (own root, state, socket, config) whose CNI dir holds bridge + host-local and,
// after `meshlane install --once`, meshlane; a locally built pause image; pod
// cgroups created first, then RunPodSandbox over gRPC with the metadata and
// annotations of real Istio-injected pods. A native-sidecar pod is registered
// at RunPodSandbox and a process in it has its TCP traffic steered through a
// proxy running as uid 1337 in that pod; an iptables-mode (classic) Istio pod
// is left alone; StopPodSandbox + RemovePodSandbox leave nothing behind. containerd runs the
// plugin (through the recorder) with a PATH that holds nothing: no host tool on the CNI path.
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { execa } from 'execa';
import t from 'tap';
import { processCgroup } from '../../testing/sandbox/cgroup.js';
import { LEASE_DIR } from '../../testing/sandbox/runs.js';
import { acquireLock } from '../../src/sys/lock.js';
import { buildTool, createNode, type JsonObject, type Placement, type SandboxNode, type SpawnedProcess } from '../../testing/sandbox/node.js';
import { attachedPrograms } from '../../src/bpf/loader.js';
import { MAP_NAMES } from '../../src/bpf/names.js';
import { mapEntryCount } from '../../src/bpf/registry.js';
import { cniPluginDir, requireBuiltExe, upstreamFixtures } from '../helpers/paths.js';
import { requireCommand, requireRoot } from '../helpers/root.js';
import { recordedCalls, wrapPlugin, type RecordedCall } from './cni-recorder.js';
import { cleanupContainerd, Containerd, missingSharedDirs, removeEmptyDirs } from './containerd.js';
import type { PodSandboxConfig } from './cri-client.js';
import { buildPauseImage } from './pause-image.js';

requireRoot('the containerd end-to-end test');
requireCommand('containerd', 'containerd');
requireCommand('ctr', 'containerd');
requireCommand('runc', 'runc');
requireCommand('containerd-shim-runc-v2', 'containerd');
/** dist/meshlane, or another build to check (MESHLANE_E2E_EXE=/path/to/meshlane). */
const exe = process.env['MESHLANE_E2E_EXE'] ?? requireBuiltExe();

/** The sandbox node (cgroup root, pin dir) and this file's containerd dirs. */
const PREFIX = 'mle2e';
/**
 * containerd runs CNI in the host netns: the bridge and its route to SUBNET are
 * the host's, and containerd 1.6 uses some host-wide dirs whatever its config
 * says. So one run of this file at a time on a machine: a second test run
 * waits here (bounded) for the first.
 */
const E2E_LOCK = join(LEASE_DIR, 'e2e-containerd.lock');
const SUBNET = '10.213.160.0/24';
/** The primary conflist's name (libcni caches results as <name>-<sandbox id>-<ifname>). */
const NETWORK = `${PREFIX}-net`;
const BASE = join(tmpdir(), `meshlane-e2e-${PREFIX}`);
const PAUSE_IMAGE = `localhost/${PREFIX}/pause:e2e`;
const APP = { uid: 1000, gid: 1000 } as const;
const PROXY = { uid: 1337, gid: 1337 } as const;

const dirs = {
  cniBin: join(BASE, 'cni', 'bin'),
  cniConf: join(BASE, 'cni', 'net.d'),
  ipam: join(BASE, 'cni', 'ipam'),
  state: join(BASE, 'meshlane-state'),
  kubeconfig: join(BASE, 'kubeconfig'),
  pluginLog: join(BASE, 'meshlane.log'),
  calls: join(BASE, 'cni-calls'),
  image: join(BASE, 'image'),
};

interface FixturePod {
  metadata: { namespace: string; name: string; uid: string; labels?: Record<string, string>; annotations?: Record<string, string> };
}
function fixture(file: string): FixturePod {
  return JSON.parse(readFileSync(join(upstreamFixtures, 'pods', file), 'utf8')) as FixturePod;
}

interface RunningPod {
  fixture: FixturePod;
  id: string;
  ip: string;
  netnsPath: string;
  /** <node cgroup root>/kubepods/besteffort/pod<uid>, made before RunPodSandbox as kubelet does */
  cgroupDir: string;
  /** the pause process */
  pid: number;
  removed: boolean;
}

let node: SandboxNode | undefined;
let ctrd: Containerd | undefined;
let installed = false;
const pods: RunningPod[] = [];
const procs: SpawnedProcess[] = [];

// Shared dirs containerd 1.6 makes whatever its config says: remove them at the end when this
// run (or a killed earlier run, which noted them in BASE) made them and they are empty.
const SHARED_NOTE = join(BASE, 'shared-dirs-made.json');
// Leftovers of a killed run first: containerd + shims of this base dir (by PID), mounts, v1 cgroups,
// cached CNI results, links.
mkdirSync(LEASE_DIR, { recursive: true, mode: 0o700 });
const releaseE2eLock = await acquireLock(E2E_LOCK, 420_000);
const madeByKilledRun = existsSync(SHARED_NOTE) ? (JSON.parse(readFileSync(SHARED_NOTE, 'utf8')) as string[]) : [];
await cleanupContainerd(BASE, PREFIX, NETWORK);
removeEmptyDirs(madeByKilledRun);
const sharedDirsWeMayMake = missingSharedDirs();

t.teardown(async () => {
  const errors: string[] = [];
  const step = async (what: string, f: () => Promise<unknown>): Promise<void> => {
    try {
      await f();
    } catch (err) {
      errors.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  for (const p of procs) await step(`kill ${p.command}`, () => p.kill('SIGKILL', 500));
  const c = ctrd;
  if (c) {
    // Every sandbox containerd still holds (also one whose RunPodSandbox failed half-way).
    const ids = new Set(pods.filter((x) => !x.removed).map((x) => x.id));
    await step('list sandboxes', async () => {
      for (const x of await c.cri.listPodSandbox()) ids.add(x.id);
    });
    for (const id of ids) {
      await step(`stop ${id}`, () => c.cri.stopPodSandbox(id));
      await step(`remove ${id}`, () => c.cri.removePodSandbox(id));
    }
  }
  const n = node;
  if (installed && n) await step('meshlane uninstall', () => execa(exe, ['uninstall', ...meshlaneArgs(n, true)], { reject: false }));
  if (c) await step('stop containerd', () => c.stop());
  await step('containerd cleanup', () => cleanupContainerd(BASE, PREFIX, NETWORK));
  await step('sandbox node (and its host bridge)', async () => node?.destroy());
  removeEmptyDirs(sharedDirsWeMayMake);
  releaseE2eLock();
  if (errors.length > 0) throw new Error(`teardown: ${errors.join('; ')}`);
});

node = await createNode({ prefix: PREFIX, ipv4Subnet: '10.213.161.0/24', ipv6Subnet: 'fd00:213:161::/64' });
const n = node;
/** Host links made by the bridge plugin, under the node's run prefix (removed with the node). */
const BRIDGE = n.names.extra('cbr');
for (const d of [dirs.cniBin, dirs.cniConf, dirs.ipam, dirs.calls]) mkdirSync(d, { recursive: true });
writeFileSync(SHARED_NOTE, JSON.stringify(sharedDirsWeMayMake));
for (const p of ['bridge', 'host-local', 'loopback', 'portmap']) symlinkSync(join(cniPluginDir, p), join(dirs.cniBin, p));

function meshlaneArgs(nd: SandboxNode, withBin: boolean): string[] {
  return [
    '--cni-net-dir', dirs.cniConf,
    ...(withBin ? ['--cni-bin-dir', dirs.cniBin] : []),
    '--cgroup-root', nd.cgroupRoot,
    '--pin-dir', nd.pinDir,
    '--state-dir', dirs.state,
    ...(withBin ? ['--kubeconfig', dirs.kubeconfig] : []),
  ];
}

// The primary CNI: bridge + host-local (+ portmap), as containerd's own example config. The bridge
// lives in the host netns (containerd runs CNI there): named under our prefix, no address on it
// (isGateway false), pods reach each other on the bridge only.
const primary = {
  cniVersion: '1.0.0',
  name: NETWORK,
  plugins: [
    {
      type: 'bridge',
      bridge: BRIDGE,
      isGateway: false,
      ipMasq: false,
      hairpinMode: false,
      ipam: { type: 'host-local', ranges: [[{ subnet: SUBNET }]], dataDir: dirs.ipam },
    },
    { type: 'portmap', capabilities: { portMappings: true } },
  ],
};
writeFileSync(join(dirs.cniConf, '10-e2e.conflist'), `${JSON.stringify(primary, null, 2)}\n`);

const [mlproxy, mlpeer, archive] = await Promise.all([buildTool('mlproxy'), buildTool('mlpeer'), buildPauseImage(dirs.image, PAUSE_IMAGE)]);

async function status(): Promise<JsonObject & { pods: JsonObject[] }> {
  const r = await execa(exe, ['status', '--json', ...meshlaneArgs(n, false)], { reject: false });
  try {
    return JSON.parse(r.stdout) as JsonObject & { pods: JsonObject[] };
  } catch {
    throw new Error(`meshlane status --json (exit ${r.exitCode}) printed no JSON: ${r.stdout}\n${r.stderr}`);
  }
}

function calls(containerId: string): RecordedCall[] {
  return recordedCalls(dirs.calls).filter((c) => c.containerId === containerId);
}

/**
 * As kubelet: the pod cgroup first, then RunPodSandbox with metadata, labels, annotations and cgroup_parent.
 * `bare`: no annotations at all, as another CRI client may make a sandbox (kubelet always adds
 * kubernetes.io/config.seen and kubernetes.io/config.source).
 */
async function runPod(c: Containerd, fx: FixturePod, opts: { bare?: boolean } = {}): Promise<RunningPod> {
  const { name, namespace, uid } = fx.metadata;
  const cgroupDir = join(n.cgroupRoot, 'kubepods', 'besteffort', `pod${uid}`);
  mkdirSync(cgroupDir, { recursive: true });
  const config: PodSandboxConfig = {
    metadata: { name, namespace, uid, attempt: 0 },
    hostname: name.slice(0, 63),
    labels: { ...(fx.metadata.labels ?? {}), 'io.kubernetes.pod.name': name, 'io.kubernetes.pod.namespace': namespace, 'io.kubernetes.pod.uid': uid },
    annotations: opts.bare ? {} : { ...(fx.metadata.annotations ?? {}), 'kubernetes.io/config.source': 'api' },
    // containerd with the cgroupfs driver: the path below the cgroup mount(s).
    linux: { cgroup_parent: `/${relative(n.cgroup2Mount, cgroupDir)}`, security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } } },
  };
  const id = await c.cri.runPodSandbox(config, 60_000);
  const pod: RunningPod = { fixture: fx, id, ip: '', netnsPath: '', cgroupDir, pid: 0, removed: false };
  pods.push(pod);
  const st = await c.cri.podSandboxStatus(id, true);
  pod.ip = st.status?.network?.ip ?? '';
  const info = JSON.parse(st.info['info'] ?? '{}') as { pid?: number; runtimeSpec?: { linux?: { namespaces?: Array<{ type: string; path?: string }> } } };
  pod.pid = info.pid ?? 0;
  pod.netnsPath = info.runtimeSpec?.linux?.namespaces?.find((x) => x.type === 'network')?.path ?? (info.pid ? `/proc/${info.pid}/ns/net` : '');
  if (!pod.netnsPath) throw new Error(`no network namespace for sandbox ${id}: ${st.info['info'] ?? ''}`);
  return pod;
}

/** A process of the pod: in its netns and in a container cgroup below its pod cgroup, as a container's would be. */
function place(pod: RunningPod, container: string): Placement {
  const cgroupDir = join(pod.cgroupDir, container);
  mkdirSync(cgroupDir, { recursive: true });
  return { netnsPath: pod.netnsPath, cgroupDir };
}

async function spawn(pod: RunningPod, container: string, cmd: string, args: string[], ids: { uid: number; gid: number }): Promise<SpawnedProcess> {
  const p = await n.spawnIn(place(pod, container), cmd, args, ids);
  procs.push(p);
  return p;
}

function summaryOf(stdout: string): JsonObject {
  const line = stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  if (!line) throw new Error(`no JSON summary in: ${stdout}`);
  return JSON.parse(line) as JsonObject;
}

// ---------------------------------------------------------------------------------------------

t.test('meshlane install --once chains into the primary conflist', async (t) => {
  const r = await execa(exe, ['install', '--once', ...meshlaneArgs(n, true), '--cri-socket', 'none', '--log-file', dirs.pluginLog, '--log-level', 'debug'], { reject: false });
  t.equal(r.exitCode, 0, `install --once: ${r.stdout}\n${r.stderr}`);
  installed = true;
  const list = JSON.parse(readFileSync(join(dirs.cniConf, '10-e2e.conflist'), 'utf8')) as { plugins: JsonObject[] };
  t.same(list.plugins.map((p) => p['type']), ['bridge', 'portmap', 'meshlane'], 'meshlane chained last');
  t.ok(statSync(join(dirs.cniBin, 'meshlane')).isFile(), 'plugin binary placed in the CNI bin dir');
  const st = await status();
  t.equal(st['installed'], true, 'datapath installed on the sandbox cgroup root');
  wrapPlugin(dirs.cniBin, dirs.calls);
});

t.test('containerd starts with the CRI plugin and the local pause image', async (t) => {
  const c = await Containerd.start({ baseDir: BASE, cniBinDir: dirs.cniBin, cniConfDir: dirs.cniConf, sandboxImage: PAUSE_IMAGE, cgroupName: PREFIX });
  ctrd = c;
  const v = await c.cri.version();
  t.equal(v.runtime_name, 'containerd');
  t.equal(v.runtime_api_version, 'v1');
  await c.importImage(archive);
  t.ok(await c.cri.imageExists(PAUSE_IMAGE), 'pause image known to the CRI plugin');
  const deadline = Date.now() + 10_000;
  let conds = await c.cri.conditions();
  while (!conds.every((x) => x.status) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    conds = await c.cri.conditions();
  }
  t.same(conds.map((x) => [x.type, x.status]), [['RuntimeReady', true], ['NetworkReady', true]], 'runtime and network ready');
});

const sidecarFx = fixture('istio-sidecar-cni-native.json');
const classicFx = fixture('istio-sidecar-classic.json');
/** A pod with no Istio annotations at all. */
const plainFx: FixturePod = { metadata: { name: 'plain', namespace: 'default', uid: '5d7e0c3a-1b2f-4e6d-8a9c-0f1e2d3c4b05', labels: { app: 'plain' } } };
let sidecar: RunningPod | undefined;
let classic: RunningPod | undefined;
let plain: RunningPod | undefined;

t.test('RunPodSandbox: the sidecar pod is registered, the classic and the plain pod are not', async (t) => {
  const c = ctrd;
  if (!c) throw new Error('containerd did not start');
  sidecar = await runPod(c, sidecarFx);
  classic = await runPod(c, classicFx);
  plain = await runPod(c, plainFx);
  for (const p of [sidecar, classic, plain]) {
    t.match(p.ip, /^10\.213\.160\.\d+$/, `${p.fixture.metadata.name}: pod IP from host-local (${p.ip})`);
    t.ok(existsSync(p.netnsPath), `${p.fixture.metadata.name}: netns ${p.netnsPath}`);
    t.equal(processCgroup(p.pid), `/${relative(n.cgroup2Mount, join(p.cgroupDir, p.id))}`, `${p.fixture.metadata.name}: the pause process runs below the pod cgroup`);
  }

  const st = await status();
  t.equal(st.pods.length, 1, 'exactly one pod registered');
  const reg = st.pods[0] ?? {};
  t.equal(reg['name'], sidecarFx.metadata.name);
  t.equal(reg['namespace'], sidecarFx.metadata.namespace);
  t.equal(reg['containerId'], sidecar.id, 'the attachment is the sandbox id containerd used');
  t.equal(reg['ipv4'], sidecar.ip, 'with the IP containerd reports');
  t.equal(reg['registered'], true, 'in the maps');
  t.equal(reg['cgroup'], sidecar.cgroupDir, 'keyed by the pod cgroup made before RunPodSandbox');
  t.equal(reg['cgroupId'], statSync(sidecar.cgroupDir, { bigint: true }).ino.toString());
  t.equal(reg['proxyUid'], 1337);
  t.equal(await mapEntryCount(n.pinDir, MAP_NAMES.podsByCgroup), 1, 'one cgroup entry');
  t.equal(await mapEntryCount(n.pinDir, MAP_NAMES.podsByIp), 1, 'one IP entry');

  const add = calls(sidecar.id).filter((x) => x.command === 'ADD');
  t.equal(add.length, 1, 'one ADD for the sidecar pod');
  const rc = (add[0]?.stdin['runtimeConfig'] ?? {}) as Record<string, Record<string, string>>;
  t.equal(rc['io.kubernetes.cri.pod-annotations']?.['sidecar.istio.io/status'], sidecarFx.metadata.annotations?.['sidecar.istio.io/status'], 'containerd passed the pod annotations in runtimeConfig');
  t.ok(add[0]?.stdin['prevResult'], 'ADD chained after bridge (prevResult given)');
  for (const p of [classic, plain]) {
    const passAdd = calls(p.id).filter((x) => x.command === 'ADD');
    t.same(passAdd.map((x) => x.exitCode), [0], `${p.fixture.metadata.name}: passes through ADD`);
    t.same(JSON.parse(passAdd[0]?.stdout ?? '{}'), passAdd[0]?.stdin['prevResult'], `${p.fixture.metadata.name}: prevResult handed on unchanged`);
  }
});

t.test('a sandbox with no annotations at all is passed through, not held for the API', async (t) => {
  const c = ctrd;
  if (!c) throw new Error('containerd did not start');
  const fx: FixturePod = { metadata: { name: 'bare', namespace: 'default', uid: '6e8f1d4b-2c3a-4f7e-9b0d-1a2b3c4d5e06' } };
  const bare = await runPod(c, fx, { bare: true });
  const add = calls(bare.id).filter((x) => x.command === 'ADD');
  t.same(add.map((x) => x.exitCode), [0], 'ADD passes through (there is no kubeconfig: asking the API would fail with code 11)');
  const rc = add[0]?.stdin['runtimeConfig'];
  // What containerd 1.6 really sends for an empty annotation map: recorded here, and what the plugin's rule rests on.
  const key = 'io.kubernetes.cri.pod-annotations';
  const sent = rc && typeof rc === 'object' && key in rc ? JSON.stringify((rc as Record<string, unknown>)[key]) : 'no key';
  t.comment(`containerd put ${sent} under runtimeConfig["${key}"] for a sandbox without annotations`);
  t.ok(sent === 'null' || sent === '{}', `the key is present, with null or {} (it was ${sent}): "this runtime passes annotations and the pod has none"`);
  t.equal((await status()).pods.length, 1, 'still only the sidecar pod registered');
  await c.cri.stopPodSandbox(bare.id);
  await c.cri.removePodSandbox(bare.id);
  bare.removed = true;
  t.same(calls(bare.id).map((x) => x.exitCode).filter((x) => x !== 0), [], 'its DELs succeed too');
});

t.test('a process in the sidecar pod is steered through the uid-1337 proxy; the classic pod goes direct', async (t) => {
  const a = sidecar;
  const b = classic;
  if (!a || !b) throw new Error('pods did not start');
  // As Envoy: the inbound passthrough connects from 127.0.0.6, which Istio's rules (and meshlane) leave
  // alone; from any other source its call to its own pod IP would go to its own 15006 again.
  const proxyA = await spawn(a, 'istio-proxy', mlproxy, ['--inbound-src', '127.0.0.6', '--lifetime-ms', '120000'], PROXY);
  const proxyB = await spawn(b, 'istio-proxy', mlproxy, ['--lifetime-ms', '120000'], PROXY);
  const serverA = await spawn(a, 'app', mlpeer, ['server', '--port', '8080', '--family', '4', '--lifetime-ms', '120000'], APP);
  const serverB = await spawn(b, 'app', mlpeer, ['server', '--port', '8080', '--family', '4', '--lifetime-ms', '120000'], APP);
  for (const p of [proxyA, proxyB, serverA, serverB]) await p.waitForJson((e) => e['event'] === 'listening', { timeoutMs: 5000 });

  // First the plain path the proxy's upstream takes: uid 1337 in the sidecar pod -> the other pod,
  // not captured (the proxy's own connections) and answered over the pod's interface.
  const r0 = await n.runIn(place(a, 'istio-proxy'), mlpeer, ['client', '--connect', `${b.ip}:8080`, '--bytes', '100', '--timeout-ms', '5000'], { ...PROXY, timeoutMs: 15_000 });
  t.equal(r0.exitCode, 0, `client as uid 1337 in the sidecar pod: ${r0.stdout} ${r0.stderr}`, r0.exitCode === 0 ? {} : { counters: (await status())['counters'] });
  t.equal(summaryOf(r0.stdout)['peer'], `${b.ip}:8080`, 'uid 1337 goes direct');
  await serverB.waitForJson((e) => e['event'] === 'close', { timeoutMs: 5000 }).catch(() => undefined);
  const serverBSeen = serverB.lines().length;

  // Sidecar pod's app -> classic pod's server: captured at connect, through A's proxy.
  const r = await n.runIn(place(a, 'app'), mlpeer, ['client', '--connect', `${b.ip}:8080`, '--bytes', '65536', '--half-close', '--timeout-ms', '5000'], { ...APP, timeoutMs: 15_000 });
  const diag = r.exitCode === 0 ? {} : { proxy: proxyA.lines().slice(-6), server: serverB.lines().slice(-4), counters: (await status())['counters'] };
  t.equal(r.exitCode, 0, `client in the sidecar pod: ${r.stdout} ${r.stderr}`, diag);
  const s = summaryOf(r.stdout);
  t.equal(s['peer'], '127.0.0.1:15001', 'the app socket was connected to the outbound listener');
  const acc = await proxyA.waitForJson((e) => e['event'] === 'accept' && e['listener'] === 15001 && e['orig_dst'] === `${b.ip}:8080`, { timeoutMs: 5000 });
  t.equal(acc['errno'], 0, 'SO_ORIGINAL_DST answered');
  const close = await proxyA.waitForJson((e) => e['event'] === 'close' && e['orig_dst'] === `${b.ip}:8080`, { timeoutMs: 5000 });
  t.equal(close['bytes_up'], 65536, 'all bytes relayed upstream');
  t.equal(close['error'], null);
  const srv = await serverB.waitForJson((e) => e['event'] === 'accept', { timeoutMs: 5000, from: serverBSeen });
  t.match(String(srv['peer']), new RegExp(`^${a.ip.replace(/\./g, '\\.')}:\\d+$`), 'the server sees the sidecar pod\'s IP');
  t.equal(srv['local'], `${b.ip}:8080`, 'reached on the address the app asked for');

  // Classic (not meshlane's) pod's app -> sidecar pod's server: a plain connection, its proxy sees nothing.
  const r2 = await n.runIn(place(b, 'app'), mlpeer, ['client', '--connect', `${a.ip}:8080`, '--bytes', '4096', '--timeout-ms', '5000'], { ...APP, timeoutMs: 15_000 });
  t.equal(r2.exitCode, 0, `client in the classic pod: ${r2.stdout} ${r2.stderr}`);
  const s2 = summaryOf(r2.stdout);
  t.equal(s2['peer'], `${a.ip}:8080`, 'connected directly to the destination');
  t.match(String(s2['local']), new RegExp(`^${b.ip.replace(/\./g, '\\.')}:\\d+$`));
  // (Whether the sidecar pod's inbound side passes it through its proxy is the inbound datapath's
  // business: only the classic pod's side is asserted here.)
  await serverA.waitForJson((e) => e['event'] === 'accept', { timeoutMs: 5000 });
  t.same(proxyB.events().filter((e) => e['event'] === 'accept'), [], 'the classic pod\'s proxy accepted nothing');
  t.equal(proxyA.events().filter((e) => e['event'] === 'accept' && e['listener'] === 15001).length, 1, 'the sidecar pod\'s outbound listener saw only its own app\'s connection');


});

t.test('StopPodSandbox + RemovePodSandbox leave nothing behind', async (t) => {
  const c = ctrd;
  const a = sidecar;
  const b = classic;
  if (!c || !a || !b) throw new Error('pods did not start');
  // As kubelet: the pod's containers (here: our processes in its container cgroups) stop first.
  for (const p of procs) await p.kill('SIGTERM', 2000);
  await c.cri.stopPodSandbox(a.id);
  t.same((await status()).pods, [], 'unregistered at StopPodSandbox');
  await c.cri.removePodSandbox(a.id);
  a.removed = true;
  for (const p of [b, plain].filter((x): x is RunningPod => x !== undefined)) {
    await c.cri.stopPodSandbox(p.id);
    await c.cri.removePodSandbox(p.id);
    p.removed = true;
  }
  t.same(await c.cri.listPodSandbox(), [], 'containerd holds no sandbox');

  const st = await status();
  t.same(st.pods, [], 'no pod in meshlane status');
  t.same(st['orphanCgroupIds'], [], 'no orphan registration');
  t.equal(await mapEntryCount(n.pinDir, MAP_NAMES.podsByCgroup), 0, 'cgroup map empty');
  t.equal(await mapEntryCount(n.pinDir, MAP_NAMES.podsByIp), 0, 'IP map empty');
  const att = join(dirs.state, 'attachments');
  t.same(existsSync(att) ? readdirSync(att) : [], [], 'no attachment record in the state dir');

  const dels = calls(a.id).filter((x) => x.command === 'DEL');
  t.ok(dels.length >= 2, `containerd sent DEL at stop and again at remove (${dels.length})`);
  t.same(dels.map((x) => x.exitCode), dels.map(() => 0), 'every DEL succeeded');
  t.ok(dels[0]?.stdin['prevResult'], 'first DEL (StopPodSandbox) with the cached prevResult');
  const last = dels[dels.length - 1];
  t.notOk(last?.stdin['prevResult'], 'last DEL (RemovePodSandbox) without prevResult');
  t.same(recordedCalls(dirs.calls).filter((x) => x.exitCode !== 0).map((x) => `${x.command} ${x.containerId}: ${x.stdout}`), [], 'no CNI call of meshlane failed');

  // What kubelet removes after the sandbox: the pod cgroups (our container cgroups inside first).
  for (const p of [a, b]) {
    for (const d of readdirSync(p.cgroupDir, { withFileTypes: true }).filter((e) => e.isDirectory())) {
      t.same(readFileSync(join(p.cgroupDir, d.name, 'cgroup.procs'), 'utf8').trim(), '', `${p.fixture.metadata.name}/${d.name}: no process left`);
    }
  }
  const links = await execa('ip', ['-o', 'link', 'show', 'master', BRIDGE], { reject: false });
  t.equal(links.stdout.trim(), '', 'no veth left on the bridge');
});

async function untilTrue(what: string, f: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await f())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

t.test('the reboot window: a sidecar pod containerd ran without meshlane is registered late from its CRI, and dropped once stopped', async (t) => {
  const c = ctrd;
  if (!c) throw new Error('containerd did not start');
  const file = join(dirs.cniConf, '10-e2e.conflist');
  // The primary CNI rewrites its file after a reboot: no meshlane entry. containerd reloads it.
  writeFileSync(file, `${JSON.stringify(primary, null, 2)}\n`);
  await untilTrue('containerd loaded the conflist without meshlane', async () => !(await c.cri.cniConfig()).includes('"meshlane"'), 20_000);
  const fx: FixturePod = { metadata: { ...sidecarFx.metadata, name: 'late', uid: '7f9a2e5c-3d4b-4a8f-8c1e-2b3c4d5e6f07' } };
  const late = await runPod(c, fx);
  t.same(calls(late.id), [], 'containerd did not call meshlane for it');
  t.same((await status()).pods, [], 'not registered');
  const upstreamPod = await runPod(c, { metadata: { name: 'upstream', namespace: 'default', uid: '8a0b3f6d-4e5c-4b9a-9d2f-3c4d5e6f7a08' } });
  await spawn(upstreamPod, 'app', mlpeer, ['server', '--port', '8080', '--family', '4', '--lifetime-ms', '0'], APP);
  const proxy = await spawn(late, 'istio-proxy', mlproxy, ['--inbound-src', '127.0.0.6', '--idle-timeout-ms', '10000', '--lifetime-ms', '0'], PROXY);
  const mlapp = await buildTool('mlapp');
  const app = await spawn(late, 'app', mlapp, ['--connect', `${upstreamPod.ip}:8080`, '--interval-ms', '200', '--count', '1500'], APP);
  type Attempt = { seq: number; ok: boolean; local: string; peer: string };
  const attempts = (): Attempt[] => app.lines().flatMap((l) => { try { return [JSON.parse(l) as Attempt]; } catch { return []; } });
  await untilTrue('the app connects', async () => attempts().length >= 2, 10_000);
  t.equal(attempts()[0]?.peer, `${upstreamPod.ip}:8080`, 'its first connections go straight to the upstream');

  // The installer's binary goes to a dir of its own here, so that the recorder stays in front of the plugin.
  const lateArgs = [...meshlaneArgs(n, false), '--cni-bin-dir', join(BASE, 'late-bin'), '--kubeconfig', dirs.kubeconfig, '--cri-socket', c.paths.socket, '--log-file', dirs.pluginLog];
  const started = Date.now();
  const r = await execa(exe, ['install', '--once', ...lateArgs, '--log-level', 'debug'], { reject: false });
  const tookMs = Date.now() - started;
  t.equal(r.exitCode, 0, `install --once: ${r.stdout}\n${r.stderr}`);
  const out = JSON.parse(r.stdout) as { reconcile?: { registered: string[]; runtime: string } };
  t.same(out.reconcile?.registered, [`${fx.metadata.namespace}/${fx.metadata.name}`], 'the round registered exactly the late pod');
  t.equal(out.reconcile?.runtime, 'asked', 'from containerd\'s CRI');
  t.comment(`install --once with a late registration took ${tookMs} ms`);
  const st = await status();
  t.match(st.pods, [{ name: 'late', containerId: late.id, ipv4: late.ip, registered: true, registeredLate: true, netns: late.netnsPath }], 'registered with the sandbox id, IP and netns containerd reports');
  const seq = attempts().length;
  await untilTrue('a connection of the same process through the proxy', async () => attempts().slice(seq).some((x) => x.peer === '127.0.0.1:15001'), 10_000);
  const hit = attempts().slice(seq).find((x) => x.peer === '127.0.0.1:15001') as Attempt;
  t.equal(hit.ok, true);
  const acc = await proxy.waitForJson((e) => e['event'] === 'accept' && e['peer'] === hit.local, { timeoutMs: 5000 });
  t.equal(acc['orig_dst'], `${upstreamPod.ip}:8080`, 'SO_ORIGINAL_DST gives the upstream');

  // The pod stops while the primary has dropped meshlane's entry again. containerd 1.6 tears a
  // sandbox down with the CNI config it has loaded then (not the one of its ADD), so no DEL
  // reaches meshlane now: the record would stay without the reconcile.
  for (const p of [app, proxy]) await p.kill('SIGKILL', 500);
  writeFileSync(file, `${JSON.stringify(primary, null, 2)}\n`);
  await untilTrue('containerd loaded the conflist without meshlane again', async () => !(await c.cri.cniConfig()).includes('"meshlane"'), 20_000);
  await c.cri.stopPodSandbox(late.id);
  t.same(calls(late.id), [], 'no call of meshlane at StopPodSandbox');
  t.equal((await status()).pods.length, 1, 'the record is still there');
  const again = await execa(exe, ['install', '--once', ...lateArgs], { reject: false });
  t.equal(again.exitCode, 0, again.stderr);
  t.same((JSON.parse(again.stdout) as { reconcile?: { dropped: string[] } }).reconcile?.dropped, [`${fx.metadata.namespace}/${fx.metadata.name}`], 'the next round dropped it');
  t.same((await status()).pods, [], 'no pod registered');
  t.equal(await mapEntryCount(n.pinDir, MAP_NAMES.podsByCgroup), 0, 'cgroup map empty');
  t.equal(await mapEntryCount(n.pinDir, MAP_NAMES.podsByIp), 0, 'IP map empty');
  await c.cri.removePodSandbox(late.id);
  late.removed = true;
  await c.cri.stopPodSandbox(upstreamPod.id);
  await c.cri.removePodSandbox(upstreamPod.id);
  upstreamPod.removed = true;
});

t.test('meshlane uninstall takes it off the node', async (t) => {
  const r = await execa(exe, ['uninstall', ...meshlaneArgs(n, true)], { reject: false });
  t.equal(r.exitCode, 0, `uninstall: ${r.stdout}\n${r.stderr}`);
  installed = false;
  const list = JSON.parse(readFileSync(join(dirs.cniConf, '10-e2e.conflist'), 'utf8')) as JsonObject;
  t.same(list, primary, 'the primary conflist is back as it was');
  const st = await status();
  t.equal(st['installed'], false, 'datapath not installed');
  t.same(existsSync(n.pinDir) ? readdirSync(n.pinDir) : [], [], 'no pin left');
  t.same(await attachedPrograms(n.cgroupRoot), [], 'no program attached to the cgroup root');
});
