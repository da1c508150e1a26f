// The exit status always tells the truth, on the built executable: a log file
// that fails every write (a full disk) changes neither the result nor the exit
// status, and is reported once on stderr without a stack; a log file that is
// stdout, stderr, a directory or a device is refused (code 7, naming log_file),
// so nothing but the one JSON document ever reaches stdout; names too long or
// odd for a path are code 4; a state dir that cannot hold the lock is code 104.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parseSingleJson, runExe } from '../helpers/exe.js';
import { requireBuiltExe } from '../helpers/paths.js';
import { requireRoot } from '../helpers/root.js';

requireRoot('the exit status test (it mounts a tiny tmpfs to fill it)');
const base = mkdtempSync(join(tmpdir(), 'meshlane-exit-'));
const full = join(base, 'full');
mkdirSync(full);
execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16k,nr_inodes=16', 'meshlane-exit-test', full]);
t.teardown(() => {
  execFileSync('umount', [full]);
  rmSync(base, { recursive: true, force: true });
});
// Fill the tmpfs: every later write to a file on it fails with ENOSPC.
const fullLog = join(full, 'meshlane.log');
closeSync(openSync(fullLog, 'a'));
try {
  writeFileSync(join(full, 'filler'), Buffer.alloc(64 * 1024));
} catch {
  // ENOSPC: full now
}

const SIDECAR_STATUS = JSON.stringify({ initContainers: ['istio-validation', 'istio-proxy'], containers: null, volumes: [], imagePullSecrets: null });
function env(command: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    CNI_COMMAND: command,
    CNI_CONTAINERID: 'c0ffee5678',
    CNI_NETNS: '/var/run/netns/gone',
    CNI_IFNAME: 'eth0',
    CNI_PATH: '/usr/lib/cni',
    CNI_ARGS: 'K8S_POD_NAMESPACE=demo;K8S_POD_NAME=web-0;K8S_POD_UID=0b4f0b9c-1d2e-4f00-9a1b-123456789abc',
    ...extra,
  };
}
const prev = { cniVersion: '1.0.0', interfaces: [{ name: 'eth0', sandbox: '/var/run/netns/gone' }], ips: [{ interface: 0, address: '10.244.0.5/24' }] };
function conf(extra: Record<string, unknown>, annotations: Record<string, string> = { 'sidecar.istio.io/status': SIDECAR_STATUS }): string {
  return JSON.stringify({
    cniVersion: '1.0.0',
    name: 'k8s-pod-network',
    type: 'meshlane',
    bpf_pin_dir: join(base, 'no-datapath'),
    state_dir: join(base, 'state'),
    prevResult: prev,
    runtimeConfig: { 'io.kubernetes.cri.pod-annotations': annotations },
    ...extra,
  });
}
const noStack = (stderr: string): boolean => !/^\s+at /m.test(stderr);

t.test('a full disk under log_file: a failing ADD still exits non-zero, with its one error document', async (t) => {
  const r = await runExe(env('ADD'), conf({ log_file: fullLog }));
  t.equal(r.exitCode, 1, 'the failure is not turned into success');
  t.match(parseSingleJson(r.stdout), { code: 11 }, 'the sidecar pod waits for the datapath');
  t.equal(r.stderr.split('\n').filter((l) => l.includes('cannot write the log file')).length, 1, 'the log file problem is reported once');
  t.match(r.stderr, /ENOSPC/);
  t.ok(noStack(r.stderr), 'no stack trace');
});

t.test('a full disk under log_file: a succeeding ADD exits 0 with its result', async (t) => {
  const r = await runExe(env('ADD'), conf({ log_file: fullLog }, { app: 'plain' }));
  t.equal(r.exitCode, 0, r.stderr);
  t.same(parseSingleJson(r.stdout), prev, 'prevResult handed on');
  t.ok(noStack(r.stderr));
});

t.test('log_file that is stdout, stderr, a directory or a device is refused with code 7', async (t) => {
  for (const file of ['/dev/stdout', '/proc/self/fd/1', '/dev/stderr', '/proc/self/fd/2', '/dev/full', '/dev/null', base]) {
    for (const command of ['ADD', 'DEL', 'GC', 'CHECK']) {
      const r = await runExe(env(command), conf({ log_file: file, ...(command === 'GC' ? { cniVersion: '1.1.0', 'cni.dev/valid-attachments': [] } : {}) }, { app: 'plain' }));
      const doc = parseSingleJson(r.stdout) as Record<string, unknown>;
      t.equal(r.exitCode, 1, `${command} ${file}: exit 1`);
      t.equal(doc['code'], 7, `${command} ${file}: code 7`);
      t.match(String(doc['msg']), /log_file/, 'names log_file');
    }
  }
});

t.test('stdout redirected to a regular file, and log_file that same file: refused, stdout holds one document', async (t) => {
  const outFile = join(base, 'stdout.txt');
  const fd = openSync(outFile, 'w');
  // The child's own fd 1 is the file (not a pipe the test copies from).
  const r = spawnSync(requireBuiltExe(), [], {
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', ...env('DEL') },
    input: conf({ log_file: outFile }, { app: 'plain' }),
    stdio: ['pipe', fd, 'pipe'],
    timeout: 30_000,
  });
  closeSync(fd);
  t.equal(r.status, 1);
  const doc = parseSingleJson(readFileSync(outFile, 'utf8')) as Record<string, unknown>;
  t.equal(doc['code'], 7, 'one JSON document, code 7');
});

t.test('names that become paths are bounded: code 4 naming the variable', async (t) => {
  const cases: Array<[string, Record<string, string>, RegExp]> = [
    ['an overlong container id', { CNI_CONTAINERID: 'a'.repeat(300) }, /CNI_CONTAINERID/],
    ['a container id with a slash', { CNI_CONTAINERID: 'abc/../def' }, /CNI_CONTAINERID/],
    ['an interface name over IFNAMSIZ', { CNI_IFNAME: 'eth0123456789abc' }, /CNI_IFNAME/],
    ['an interface name ..', { CNI_IFNAME: '..' }, /CNI_IFNAME/],
    ['a pod name with a slash', { CNI_ARGS: 'K8S_POD_NAMESPACE=demo;K8S_POD_NAME=../../etc;K8S_POD_UID=0b4f0b9c' }, /K8S_POD_NAME/],
    ['an overlong namespace', { CNI_ARGS: `K8S_POD_NAMESPACE=${'n'.repeat(64)};K8S_POD_NAME=web-0` }, /K8S_POD_NAMESPACE/],
    ['an odd pod uid', { CNI_ARGS: 'K8S_POD_NAMESPACE=demo;K8S_POD_NAME=web-0;K8S_POD_UID=../x' }, /K8S_POD_UID/],
  ];
  for (const [what, extra, name] of cases) {
    const r = await runExe(env('ADD', extra), conf({ log_file: '' }));
    const doc = parseSingleJson(r.stdout) as Record<string, unknown>;
    t.equal(r.exitCode, 1, what);
    t.equal(doc['code'], 4, `${what}: code 4`);
    t.match(`${String(doc['msg'])} ${String(doc['details'] ?? '')}`, name, `${what}: names the variable`);
  }
});

t.test('a state dir that cannot hold the lock is code 104, not a bug', async (t) => {
  const r = await runExe(env('GC', { CNI_CONTAINERID: '', CNI_IFNAME: '', CNI_NETNS: '' }), JSON.stringify({ cniVersion: '1.1.0', name: 'k8s-pod-network', type: 'meshlane', log_file: '', state_dir: '/proc/self', 'cni.dev/valid-attachments': [] }));
  const doc = parseSingleJson(r.stdout) as Record<string, unknown>;
  t.equal(r.exitCode, 1);
  t.equal(doc['code'], 104, String(doc['msg']));
  t.ok(noStack(r.stderr));
});
