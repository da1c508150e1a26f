// The node installer through dist/meshlane on the real kernel, in a sandbox node:
// install twice, status, readiness, a primary CNI that keeps rewriting its file,
// restart while a connection through the proxy carries data, uninstall.
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';
import t from 'tap';
import type { Conflist, Json } from '../../testing/sandbox/cni-chain.js';
import { podThroughChain } from '../../testing/sandbox/chain-pod.js';
import { buildTool, createNode, type SandboxNode } from '../../testing/sandbox/node.js';
import { attachedPrograms } from '../../src/bpf/loader.js';
import { CGROUP_PROGRAMS } from '../../src/bpf/names.js';
import { DEFAULT_INTERCEPTION, encodePodConfig } from '../../src/bpf/pod-config.js';
import { listPodsByCgroup, readSettings, registerPod } from '../../src/bpf/registry.js';
import { cniPluginDir, requireBuiltExe, upstreamFixtures } from '../helpers/paths.js';
import { requireRoot } from '../helpers/root.js';
import { nodeDirArgs, nodeDirs } from '../helpers/node-dirs.js';

requireRoot('the installer test');
const exe = requireBuiltExe();
const PREFIX = 'mlkit';

let node: SandboxNode | undefined;
const running = new Set<ResultPromise>();
t.teardown(async () => {
  for (const p of running) p.kill('SIGKILL');
  if (node) {
    await execa(exe, ['uninstall', ...dirs(node)], { reject: false });
  }
  await node?.destroy(); // also the netns and links named n.names.extra(...)
});
node = await createNode({ prefix: PREFIX, ipv4Subnet: '10.213.120.0/24', ipv6Subnet: 'fd00:213:120::/64' });
const n = node;
const { netDir, binDir, stateDir } = nodeDirs(n);
mkdirSync(netDir);
mkdirSync(binDir);

const dirs = nodeDirArgs;
const statusArgs = (nd: SandboxNode): string[] => ['--cni-net-dir', join(nd.stateDir, 'net.d'), '--cgroup-root', nd.cgroupRoot, '--pin-dir', nd.pinDir, '--state-dir', join(nd.stateDir, 'state')];
const installArgs = (): string[] => [...dirs(n), '--cri-socket', 'none', '--log-file', join(n.stateDir, 'plugin.log'), '--log-level', 'debug'];

// The primary CNI: a bridge conflist (bridge inside the node's netns), as a real node's primary would be.
const primaryName = '10-bridge.conflist';
const primaryBytes = `${JSON.stringify({
  cniVersion: '1.0.0',
  name: 'sandbox-net',
  plugins: [
    {
      type: 'bridge',
      bridge: n.names.extra('cbr'),
      isGateway: false,
      ipMasq: false,
      ipam: { type: 'host-local', ranges: [[{ subnet: '10.213.121.0/24' }]], dataDir: join(n.stateDir, 'ipam') },
    },
    { type: 'portmap', capabilities: { portMappings: true } },
  ],
}, null, 2)}\n`;

async function perHook(): Promise<number[]> {
  const a = await attachedPrograms(n.cgroupRoot);
  return CGROUP_PROGRAMS.map((p) => a.filter((x) => x.attach_type === p.shownAs).length);
}

function conflistNow(): Json {
  return JSON.parse(readFileSync(join(netDir, primaryName), 'utf8')) as Json;
}
function meshlaneEntries(list: Json): Json[] {
  return (list['plugins'] as Json[]).filter((p) => p['type'] === 'meshlane');
}

async function installOnce(): Promise<Json> {
  const r = await execa(exe, ['install', '--once', ...installArgs()], { reject: false });
  if (r.exitCode !== 0) throw new Error(`install --once failed (${r.exitCode}): ${r.stdout}\n${r.stderr}`);
  return JSON.parse(r.stdout) as Json;
}

/** The port of the installer's "serving /healthz ..." log line, once it is there. */
function servingPort(stderr: string): number | undefined {
  for (const line of stderr.split('\n')) {
    if (!line.includes('serving /healthz')) continue;
    try {
      const rec = JSON.parse(line) as { message?: string; port?: number };
      if (rec.message === 'serving /healthz, /readyz, /metrics' && typeof rec.port === 'number') return rec.port;
    } catch {
      // a line cut in the middle: read again on the next round
    }
  }
  return undefined;
}

/** The long-running installer; resolves with its health port once it serves. */
async function startLoop(extra: string[] = []): Promise<{ proc: ResultPromise; port: number; stderr: () => string }> {
  const proc = execa(exe, ['install', ...installArgs(), '--health-address', '127.0.0.1', '--health-port', '0', ...extra], { reject: false, buffer: false });
  running.add(proc);
  void proc.finally(() => running.delete(proc));
  let err = '';
  proc.stderr?.on('data', (c: Buffer) => {
    err += c.toString();
  });
  const deadline = Date.now() + 20_000;
  for (;;) {
    const port = servingPort(err);
    if (port !== undefined) return { proc, port, stderr: () => err };
    if (Date.now() > deadline) throw new Error(`the installer did not serve within 20 s: ${err}`);
    await sleep(50);
  }
}

async function get(port: number, path: string): Promise<{ status: number; body: string }> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: r.status, body: await r.text() };
}

async function until<T>(what: string, f: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let v = await f();
  while (!ok(v)) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms (last: ${JSON.stringify(v)})`);
    await sleep(100);
    v = await f();
  }
  return v;
}

t.test('/readyz waits for a primary CNI config, then flips to ready', async (t) => {
  const { proc, port } = await startLoop();
  const first = await until('readyz 503 with a reason', () => get(port, '/readyz'), (r) => r.status === 503 && /waiting for a CNI config/.test(r.body));
  t.match(first.body, /waiting for a CNI config/);
  t.equal((await get(port, '/healthz')).status, 200, 'alive while not ready');
  writeFileSync(join(netDir, primaryName), primaryBytes, { mode: 0o644 });
  await until('readyz 200', () => get(port, '/readyz'), (r) => r.status === 200);
  t.same(await perHook(), CGROUP_PROGRAMS.map(() => 1), 'one program on each hook');
  t.equal(meshlaneEntries(conflistNow()).length, 1, 'entry present once');

  const metrics = await get(port, '/metrics');
  t.equal(metrics.status, 200);
  for (const line of metrics.body.trim().split('\n')) {
    t.match(line, /^(# (HELP|TYPE) [a-z_:]+ .+|[a-z_:]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? -?\d+(\.\d+)?)$/, `prometheus line: ${line}`);
  }
  t.match(metrics.body, /^meshlane_install_ready 1$/m);
  t.match(metrics.body, /^meshlane_map_entries\{map="ml_settings"\} 1$/m);
  t.match(metrics.body, /^meshlane_datapath_events_total\{event="connect4_redirect_out"\} \d+$/m);

  // The primary CNI rewrites its file 20 times in a second (dropping our entry each time).
  for (let i = 0; i < 20; i++) {
    writeFileSync(join(netDir, `.${primaryName}.tmp`), primaryBytes);
    cpSync(join(netDir, `.${primaryName}.tmp`), join(netDir, primaryName));
    await sleep(50);
  }
  rmSync(join(netDir, `.${primaryName}.tmp`), { force: true });
  await until('entry back after the storm', async () => meshlaneEntries(conflistNow()).length, (c) => c === 1);
  await sleep(1500);
  t.equal(meshlaneEntries(conflistNow()).length, 1, 'the entry is present exactly once after the storm settles');
  t.equal((await get(port, '/readyz')).status, 200);

  proc.kill('SIGTERM');
  const r = await proc;
  t.equal(r.exitCode, 0, 'SIGTERM ends the installer cleanly');
  t.same(await perHook(), CGROUP_PROGRAMS.map(() => 1), 'SIGTERM leaves the datapath attached');
  t.equal(meshlaneEntries(conflistNow()).length, 1, 'SIGTERM leaves the entry in place');
});

t.test('SIGTERM during the backoff of a rewrite storm ends the installer at once', async (t) => {
  // The loop backs off (up to 5 s) while another agent keeps rewriting the file; a
  // SIGTERM then must end it cleanly, not wait out the backoff (execa, like kubelet
  // after its grace period, kills a process that does not end: no exit code then).
  const { proc, port } = await startLoop();
  await until('readyz 200', () => get(port, '/readyz'), (r) => r.status === 200);
  for (let i = 0; i < 12; i++) {
    writeFileSync(join(netDir, primaryName), primaryBytes);
    await sleep(60);
  }
  proc.kill('SIGTERM');
  const r = await proc;
  t.equal(r.exitCode, 0, 'ended by its own handler with exit code 0');
  t.equal(r.signal, undefined, 'not killed by a signal');
  t.same(await perHook(), CGROUP_PROGRAMS.map(() => 1), 'the datapath stays attached');
});

t.test('install --once twice: one attachment per hook, nothing rewritten, binary placed', async (t) => {
  const r1 = await installOnce();
  t.match(r1, { ready: true, datapath: true, conflist: true, conflistFile: primaryName });
  const ids = (await attachedPrograms(n.cgroupRoot)).map((a) => a.id).sort();
  const conflistStat = statSync(join(netDir, primaryName));
  const binStat = statSync(join(binDir, 'meshlane'));
  t.ok(readFileSync(join(binDir, 'meshlane')).equals(readFileSync(exe)), 'the plugin binary is this executable');
  const r2 = await installOnce();
  t.match(r2, { ready: true });
  t.same((await attachedPrograms(n.cgroupRoot)).map((a) => a.id).sort(), ids, 'the same programs stay attached');
  t.equal(statSync(join(netDir, primaryName)).mtimeMs, conflistStat.mtimeMs, 'conflist not rewritten');
  t.equal(statSync(join(binDir, 'meshlane')).ino, binStat.ino, 'binary not rewritten');
  const settings = await readSettings(n.pinDir);
  t.match(settings, { proxy_uid: 1337, proxy_gid: 1337, flags: 0 }, 'settings written (sockmap off by default)');
  const entry = meshlaneEntries(conflistNow())[0] ?? {};
  t.match(entry, { bpf_pin_dir: n.pinDir, cgroup_root: n.cgroupRoot, state_dir: stateDir, kubeconfig: join(n.stateDir, 'kubeconfig') }, 'the entry carries the installer paths');
});

t.test('the chained conflist registers a sidecar pod; status --json lists it', async (t) => {
  const list = conflistNow() as unknown as Conflist;
  const pod = JSON.parse(readFileSync(join(upstreamFixtures, 'pods', 'istio-sidecar-cni-native.json'), 'utf8')) as { metadata: { namespace: string; name: string; annotations: Json } };
  const uid = '0a0b0c0d-1111-4222-8333-444455556666';
  const chained = await podThroughChain(n, list, { namespace: pod.metadata.namespace, name: pod.metadata.name, uid, annotations: pod.metadata.annotations as Record<string, string> }, 'c1', {
    binDirs: [binDir, cniPluginDir],
    containerId: 'installer0001',
    capabilityArgs: { 'io.kubernetes.cri.pod-annotations': pod.metadata.annotations, portMappings: [] },
  });
  const status = await execa(exe, ['status', '--json', ...statusArgs(n)], { reject: false });
  t.equal(status.exitCode, 0, status.stderr);
  const report = JSON.parse(status.stdout) as Json;
  t.equal(report['version'], 1);
  t.equal(report['installed'], true);
  t.match(report['conflist'], { hasEntry: true, file: primaryName });
  const pods = report['pods'] as Json[];
  t.equal(pods.length, 1);
  t.match(pods[0], { namespace: pod.metadata.namespace, name: pod.metadata.name, registered: true, proxyUid: 1337 });
  t.match(String(pods[0]?.['ipv4']), /^10\.213\.121\./);
  const human = await execa(exe, ['status', ...statusArgs(n)], { reject: false });
  t.match(human.stdout, new RegExp(`${pod.metadata.namespace}/${pod.metadata.name}.*registered`));

  // uninstall while the pod still needs its DEL: the binary stays, with a warning.
  const u1 = await execa(exe, ['uninstall', ...dirs(n)], { reject: false });
  t.equal(u1.exitCode, 0, u1.stderr);
  t.match(u1.stderr, /still have meshlane attachment records/);
  t.ok(existsSync(join(binDir, 'meshlane')), 'binary kept for the pending DEL');
  t.equal(readFileSync(join(netDir, primaryName), 'utf8'), primaryBytes, 'the primary conflist is byte for byte as before install');
  t.notOk(existsSync(n.pinDir), 'no pins');
  t.same(await attachedPrograms(n.cgroupRoot), [], 'no attachments');
  await chained.del();
  const u2 = await execa(exe, ['uninstall', ...dirs(n)], { reject: false });
  t.equal(u2.exitCode, 0, u2.stderr);
  t.notOk(existsSync(join(binDir, 'meshlane')), 'binary removed once no pod needs it');
});

t.test('a restart keeps registrations and a live connection through the proxy', async (t) => {
  const mlpeer = await buildTool('mlpeer');
  const mlproxy = await buildTool('mlproxy');
  await installOnce();
  const a = await n.addPod({ name: 'a' });
  const b = await n.addPod({ name: 'b' });
  // Only A is meshed: its proxy then connects to B directly (B has no inbound proxy).
  await registerPod(n.pinDir, { cgroupId: a.cgroupId, ipv4: a.ipv4, ipv6: a.ipv6, config: encodePodConfig(DEFAULT_INTERCEPTION) });
  const proxy = await a.spawn(mlproxy, ['--idle-timeout-ms', '20000', '--lifetime-ms', '120000'], { uid: 1337, gid: 1337, container: 'istio-proxy' });
  await proxy.waitForJson((e) => e['event'] === 'listening', { timeoutMs: 5000 });
  const server = await b.spawn(mlpeer, ['server', '--port', '8080']);
  await server.waitForJson((e) => e['event'] === 'listening');
  // ~4 s of data in 1 KiB steps, while the installer restarts.
  const client = a.run(mlpeer, ['client', '--connect', `${b.ipv4}:8080`, '--bytes', String(80 * 1024), '--chunk', '1024', '--pause-ms', '50', '--timeout-ms', '30000'], { uid: 1000, gid: 1000, timeoutMs: 40_000 });
  await sleep(500);
  const { proc, port } = await startLoop();
  await until('ready', () => get(port, '/readyz'), (r) => r.status === 200);
  proc.kill('SIGTERM');
  await proc;
  const { proc: proc2, port: port2 } = await startLoop();
  await until('ready again', () => get(port2, '/readyz'), (r) => r.status === 200);
  const r = await client;
  t.equal(r.exitCode, 0, `the connection completes across the restart: ${r.stdout}${r.stderr}`);
  const accepted = proxy.lines().some((l) => l.includes('"orig_dst"') && l.includes(`${b.ipv4}:8080`));
  t.ok(accepted, 'the connection went through the proxy');
  const registered = await listPodsByCgroup(n.pinDir);
  t.same(registered.map((x) => x.cgroupId), [a.cgroupId], 'registration kept');
  proc2.kill('SIGTERM');
  await proc2;
  await proxy.kill();
  await server.kill();
});
