// The reboot window, on the real kernel: the primary CNI's conflist lost
// meshlane's entry and the pins are gone (bpffs does not survive a reboot), a
// sidecar pod starts through the chain without meshlane, and its app connects
// out uncaptured. Then `meshlane install` comes up with the node's CRI socket
// (here a gRPC server of the test that lists the sandboxes it made, as
// containerd would): it puts the entry back and registers the running pod, and
// the next connection of the same app process goes through its proxy with the
// right original destination. A plain pod started in the same window stays
// untouched. Then the pod goes away without a DEL (its cached config had no
// meshlane entry) and the next round removes its registration. Last, the
// conflist entry survives but the pins do not: a sidecar pod's ADD fails with
// code 11 until the installer is back, then succeeds.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { execa, type ResultPromise } from 'execa';
import t from 'tap';
import { PluginError, type Conflist, type Json } from '../../testing/sandbox/cni-chain.js';
import { podThroughChain, type ChainPod, type PodMeta } from '../../testing/sandbox/chain-pod.js';
import { buildTool, createNode, type SandboxNode, type SpawnedProcess } from '../../testing/sandbox/node.js';
import { removeDatapath } from '../../src/bpf/loader.js';
import { listPodsByCgroup } from '../../src/bpf/registry.js';
import { recordPath } from '../../src/node/records.js';
import { cniPluginDir, repoRoot, requireBuiltExe, upstreamFixtures } from '../helpers/paths.js';
import { requireRoot } from '../helpers/root.js';
import { nodeDirArgs, nodeDirs } from '../helpers/node-dirs.js';

requireRoot('the reconcile test');
const exe = requireBuiltExe();
const [mlpeer, mlproxy, mlapp] = await Promise.all([buildTool('mlpeer'), buildTool('mlproxy'), buildTool('mlapp')]);
const APP = { uid: 1000, gid: 1000 } as const;
const PROXY = { uid: 1337, gid: 1337 } as const;

let node: SandboxNode | undefined;
const running = new Set<ResultPromise>();
const spawned: SpawnedProcess[] = [];
const pods: ChainPod[] = [];
const server = new grpc.Server();
t.teardown(async () => {
  for (const p of spawned) await p.kill('SIGKILL', 100).catch(() => undefined);
  for (const p of running) p.kill('SIGKILL');
  for (const p of pods) await p.del().catch(() => undefined);
  if (node) await execa(exe, ['uninstall', ...dirs(node)], { reject: false });
  server.forceShutdown();
  await node?.destroy();
});
node = await createNode({ prefix: 'mlkrc', ipv4Subnet: '10.213.130.0/24', ipv6Subnet: 'fd00:213:130::/64' });
const n = node;
const { netDir, binDir, stateDir } = nodeDirs(n);
mkdirSync(netDir);
mkdirSync(binDir);
const dirs = nodeDirArgs;

// The node's runtime, as far as the reconcile loop asks it: the sandboxes this test made.
interface FakeSandbox {
  pod: ChainPod;
  meta: PodMeta;
  ready: boolean;
  ip: string;
}
const sandboxes: FakeSandbox[] = [];
const socket = join(n.stateDir, 'cri.sock');
const def = protoLoader.loadSync(join(repoRoot, 'test', 'e2e', 'cri-api.proto'), { keepCase: true, longs: String, enums: String, defaults: true });
const pkg = grpc.loadPackageDefinition(def) as unknown as { runtime: { v1: { RuntimeService: grpc.ServiceClientConstructor } } };
const listed = (s: FakeSandbox): Json => ({ id: s.pod.rt.containerId, metadata: { name: s.meta.name, uid: s.meta.uid, namespace: s.meta.namespace, attempt: 0 }, state: s.ready ? 'SANDBOX_READY' : 'SANDBOX_NOTREADY', annotations: s.meta.annotations ?? {} });
server.addService(pkg.runtime.v1.RuntimeService.service, {
  ListPodSandbox: (_c: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, { items: sandboxes.map(listed) }),
  PodSandboxStatus: (call: grpc.ServerUnaryCall<{ pod_sandbox_id: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
    const s = sandboxes.find((x) => x.pod.rt.containerId === call.request.pod_sandbox_id);
    if (!s) return cb({ code: grpc.status.NOT_FOUND, details: 'no such sandbox' });
    const info = JSON.stringify({ pid: 0, runtimeSpec: { linux: { namespaces: [{ type: 'network', path: s.pod.netnsPath }] } } });
    cb(null, { status: { ...listed(s), network: { ip: s.ip, additional_ips: [] }, linux: { namespaces: { options: { network: 'POD' } } } }, info: { info } });
  },
});
await new Promise<void>((resolve, reject) => server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())));

const bridgeEntry: Json = {
  type: 'bridge',
  bridge: n.names.extra('rbr'),
  isGateway: false,
  ipMasq: false,
  ipam: { type: 'host-local', ranges: [[{ subnet: '10.213.131.0/24' }]], dataDir: join(n.stateDir, 'ipam') },
};
const primaryName = '10-bridge.conflist';
// The primary CNI's file as it rewrites it after a reboot: no meshlane entry.
writeFileSync(join(netDir, primaryName), `${JSON.stringify({ cniVersion: '1.0.0', name: 'sandbox-net', plugins: [bridgeEntry] }, null, 2)}\n`);
const conflistNow = (): Conflist => JSON.parse(readFileSync(join(netDir, primaryName), 'utf8')) as Conflist;
const hasMeshlane = (): boolean => conflistNow().plugins.some((p) => p['type'] === 'meshlane');

const sidecarAnnotations = (JSON.parse(readFileSync(join(upstreamFixtures, 'pods', 'istio-sidecar-cni-native.json'), 'utf8')) as { metadata: { annotations: Record<string, string> } }).metadata.annotations;

async function startPod(meta: PodMeta, tag: string): Promise<FakeSandbox> {
  const pod = await podThroughChain(n, conflistNow(), meta, tag, { binDirs: [binDir, cniPluginDir], containerId: `${tag}${'0'.repeat(24)}` });
  pods.push(pod);
  const ip = String(((pod.result['ips'] as Json[])[0] ?? {})['address']).split('/')[0] ?? '';
  const s = { pod, meta, ready: true, ip };
  sandboxes.push(s);
  return s;
}

async function until<T>(what: string, f: () => T | Promise<T>, ok: (v: T) => boolean, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms (last: ${JSON.stringify(v)})`);
    await sleep(100);
  }
}

function startInstaller(): ResultPromise {
  const proc = execa(exe, ['install', ...dirs(n), '--cri-socket', socket, '--period', '2', '--health-address', '127.0.0.1', '--health-port', '0', '--log-file', join(n.stateDir, 'plugin.log'), '--log-level', 'debug'], { reject: false, buffer: false });
  running.add(proc);
  void proc.finally(() => running.delete(proc));
  proc.stderr?.on('data', () => undefined);
  return proc;
}

const web = await startPod({ namespace: 'shop', name: 'web', uid: 'ec0ec0ec-0000-4000-8000-000000000001', annotations: sidecarAnnotations }, 'rweb');
const plain = await startPod({ namespace: 'shop', name: 'plain', uid: 'ec0ec0ec-0000-4000-8000-000000000002', annotations: { app: 'plain' } }, 'rpln');
const upstream = `${plain.ip}:8080`;
spawned.push(await n.spawnIn(plain.pod.place('app'), mlpeer, ['server', '--port', '8080', '--family', '4', '--lifetime-ms', '0'], APP));
const proxy = await n.spawnIn(web.pod.place('istio-proxy'), mlproxy, ['--inbound-src', '127.0.0.6', '--idle-timeout-ms', '10000', '--lifetime-ms', '0'], PROXY);
spawned.push(proxy);
const app = await n.spawnIn(web.pod.place('app'), mlapp, ['--connect', upstream, '--interval-ms', '200', '--count', '1500'], APP);
spawned.push(app);

type Attempt = { seq: number; ok: boolean; local: string; peer: string };
const attempts = (): Attempt[] => app.lines().flatMap((l) => { try { return [JSON.parse(l) as Attempt]; } catch { return []; } });

t.test('the window: a sidecar pod started while meshlane was out of the chain is not intercepted', async (t) => {
  const first = await until('the app connects', attempts, (a) => a.length >= 2, 10_000);
  t.equal(first[0]?.ok, true, JSON.stringify(first[0]));
  t.equal(first[0]?.peer, upstream, 'its connection goes straight to the upstream (nothing captures it)');
  t.notOk(existsSync(recordPath(stateDir, web.pod.rt.containerId, 'eth0')), 'no record: meshlane was not called');
  t.notOk(hasMeshlane(), 'the conflist has no meshlane entry');
});

let started = 0;
let installer: ResultPromise | undefined;
t.test('the installer comes up: entry back, the running pod registered, its next connection through the proxy', async (t) => {
  started = Date.now();
  installer = startInstaller();
  const rec = recordPath(stateDir, web.pod.rt.containerId, 'eth0');
  await until('the web pod registered', () => existsSync(rec), (v) => v, 30_000);
  const registeredMs = Date.now() - started;
  const seqAtRegistration = attempts().length;
  t.ok(hasMeshlane(), 'the installer put the entry back');
  const record = JSON.parse(readFileSync(rec, 'utf8')) as Json;
  t.match(record, { namespace: 'shop', name: 'web', netns: web.pod.netnsPath, ipv4: web.ip, registeredBy: 'reconcile' });
  const captured = await until('a connection of the same app process through the proxy', () => attempts().slice(seqAtRegistration), (a) => a.some((x) => x.peer === '127.0.0.1:15001'), 10_000);
  const hit = captured.find((x) => x.peer === '127.0.0.1:15001') as Attempt;
  t.equal(hit.ok, true, 'the proxied connection works end to end');
  const interceptedMs = Date.now() - started;
  const acc = await proxy.waitForJson((e) => e['event'] === 'accept' && e['peer'] === hit.local, { timeoutMs: 5000 });
  t.equal(acc['orig_dst'], upstream, 'SO_ORIGINAL_DST gives the upstream the app asked for');
  t.equal(app.pid > 0 && app.lines().length > seqAtRegistration, true, 'the same process, never restarted');
  t.comment(`late registration: registered ${registeredMs} ms after the installer started; first intercepted connection by ${interceptedMs} ms (the app connects every 200 ms)`);
  t.notOk(existsSync(recordPath(stateDir, plain.pod.rt.containerId, 'eth0')), 'the plain pod is not registered');
  const cgs = await listPodsByCgroup(n.pinDir);
  t.equal(cgs.length, 1, 'one pod in the cgroup map: web');
  const r = await n.runIn(plain.pod.place('app'), mlpeer, ['client', '--connect', upstream, '--bytes', '100', '--timeout-ms', '5000'], APP);
  t.match(r.stdout, new RegExp(`"peer":"${upstream.replace(/\./g, '\\.')}"`), 'the plain pod\'s own connections stay untouched');
  const status = await execa(exe, ['status', '--json', ...dirs(n)], { reject: false });
  const report = JSON.parse(status.stdout) as Json;
  t.match(report['reconcile'], { lateRegistrations: 1, registeredLateNow: 1 }, 'status counts the late registration');
  t.match(report['pods'], [{ name: 'web', registeredLate: true, registered: true }]);
});

t.test('the pod goes away without a DEL: the next round removes its registration', async (t) => {
  for (const p of [app, proxy]) await p.kill('SIGKILL', 100);
  const s = sandboxes.find((x) => x === web) as FakeSandbox;
  s.ready = false; // StopPodSandbox: the runtime had no meshlane entry in the cached config, so no DEL
  const rec = recordPath(stateDir, web.pod.rt.containerId, 'eth0');
  await until('the stale record removed', () => existsSync(rec), (v) => !v, 15_000);
  t.same(await listPodsByCgroup(n.pinDir), [], 'its map entries are gone');
  const status = await execa(exe, ['status', '--json', ...dirs(n)], { reject: false });
  t.match((JSON.parse(status.stdout) as Json)['reconcile'], { lateRegistrations: 1, staleRemoved: 1, registeredLateNow: 0 });
  sandboxes.splice(sandboxes.indexOf(s), 1);
});

t.test('the entry survived, the pins did not: ADD fails with code 11 until the datapath is back', async (t) => {
  installer?.kill('SIGTERM');
  t.equal((await installer)?.exitCode, 0, 'the installer ended on SIGTERM');
  t.ok(hasMeshlane(), 'SIGTERM left the entry in place');
  await removeDatapath({ pinDir: n.pinDir, cgroupDir: n.cgroupRoot }); // a reboot: bpffs and the cgroup attachments are gone
  t.notOk(existsSync(n.pinDir), 'no pins');
  const meta = { namespace: 'shop', name: 'api', uid: 'ec0ec0ec-0000-4000-8000-000000000003', annotations: sidecarAnnotations };
  const err = await podThroughChain(n, conflistNow(), meta, 'rap1', { binDirs: [binDir, cniPluginDir], containerId: `rap1${'0'.repeat(24)}` }).catch((e: unknown) => e);
  t.ok(err instanceof PluginError, 'the sidecar pod does not start');
  t.match((err as PluginError).stdout, /"code":\s*11/, 'code 11: try again later');
  installer = startInstaller();
  await until('the datapath back', () => existsSync(join(n.pinDir, 'maps')), (v) => v, 30_000);
  await until('the installer has attached everything', async () => (await execa(exe, ['status', '--json', ...dirs(n)], { reject: false })).exitCode, (c) => c === 0, 30_000);
  const again = await startPod(meta, 'rap2');
  t.ok(existsSync(recordPath(stateDir, again.pod.rt.containerId, 'eth0')), 'the retried ADD registers the pod');
  const record = JSON.parse(readFileSync(recordPath(stateDir, again.pod.rt.containerId, 'eth0'), 'utf8')) as Json;
  t.equal(record['registeredBy'], undefined, 'registered by its ADD, not late');
  installer.kill('SIGTERM');
  await installer;
  rmSync(socket, { force: true });
});
