// The built executable run as a container runtime runs a CNI plugin: env + stdin
// in; exactly one JSON document (or nothing) on stdout, the documented exit code.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parseSingleJson, runExe } from '../helpers/exe.js';

const SUPPORTED = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'];

const logDir = mkdtempSync(join(tmpdir(), 'meshlane-exe-test-'));
t.teardown(() => rmSync(logDir, { recursive: true, force: true }));

function env(command: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    CNI_COMMAND: command,
    CNI_CONTAINERID: 'c0ffee1234',
    CNI_NETNS: '/var/run/netns/does-not-matter',
    CNI_IFNAME: 'eth0',
    CNI_PATH: '/usr/lib/cni',
    CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=demo;K8S_POD_NAME=web-0;K8S_POD_UID=0b4f0b9c-1d2e-4f00-9a1b-123456789abc',
    ...extra,
  };
}

// The runtime passes the pod's annotations (none here: not a sidecar pod, so the
// plugin hands prevResult on without asking the Kubernetes API).
function conf(cniVersion: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    cniVersion,
    name: 'k8s-pod-network',
    type: 'meshlane',
    log_file: join(logDir, 'meshlane.log'),
    state_dir: join(logDir, 'state'),
    runtimeConfig: { 'io.kubernetes.cri.pod-annotations': { app: 'web' } },
    ...extra,
  };
}

const prev100 = {
  cniVersion: '1.0.0',
  interfaces: [
    { name: 'cni0', mac: '0a:58:0a:f4:00:01' },
    { name: 'veth1234', mac: 'aa:bb:cc:dd:ee:ff' },
    { name: 'eth0', mac: '0a:58:0a:f4:00:05', sandbox: '/var/run/netns/does-not-matter' },
  ],
  ips: [
    { interface: 2, address: '10.244.0.5/24', gateway: '10.244.0.1' },
    { interface: 2, address: 'fd00:10:244::5/64', gateway: 'fd00:10:244::1' },
  ],
  routes: [{ dst: '0.0.0.0/0' }],
  dns: { nameservers: ['10.96.0.10'] },
};

t.test('VERSION without stdin', async (t) => {
  const r = await runExe({ CNI_COMMAND: 'VERSION' });
  t.equal(r.exitCode, 0, r.stderr);
  t.same(parseSingleJson(r.stdout), { cniVersion: '1.1.0', supportedVersions: SUPPORTED });
});

t.test('VERSION answers in the version asked', async (t) => {
  const r = await runExe({ CNI_COMMAND: 'VERSION' }, JSON.stringify({ cniVersion: '0.4.0' }));
  t.equal(r.exitCode, 0, r.stderr);
  t.same(parseSingleJson(r.stdout), { cniVersion: '0.4.0', supportedVersions: SUPPORTED });
});

for (const version of SUPPORTED) {
  t.test(`ADD passes prevResult through at ${version}, DEL and CHECK succeed silently`, async (t) => {
    const add = await runExe(env('ADD'), JSON.stringify(conf(version, { prevResult: prev100 })));
    t.equal(add.exitCode, 0, add.stdout + add.stderr);
    const result = parseSingleJson(add.stdout) as Record<string, unknown>;
    t.equal(result['cniVersion'], version);
    const ips = result['ips'] as Record<string, unknown>[];
    t.equal(ips.length, 2);
    if (version.startsWith('0.')) {
      t.same(ips.map((i) => i['version']), ['4', '6'], 'ips[].version below 1.0.0');
    } else {
      t.ok(ips.every((i) => !('version' in i)), 'no ips[].version from 1.0.0 on');
    }
    t.same(result['dns'], prev100.dns);
    t.same(result['interfaces'], prev100.interfaces);

    const del = await runExe(env('DEL'), JSON.stringify(conf(version, { prevResult: prev100 })));
    t.equal(del.exitCode, 0, del.stdout + del.stderr);
    t.equal(del.stdout, '');
    if (version !== '0.3.0' && version !== '0.3.1') {
      const check = await runExe(env('CHECK'), JSON.stringify(conf(version, { prevResult: prev100 })));
      t.equal(check.exitCode, 0, check.stdout + check.stderr);
      t.equal(check.stdout, '');
    }
  });
}

t.test('DEL without prevResult and with an empty netns succeeds', async (t) => {
  const r = await runExe(env('DEL', { CNI_NETNS: '' }), JSON.stringify(conf('1.1.0')));
  t.equal(r.exitCode, 0, r.stdout + r.stderr);
  t.equal(r.stdout, '');
});

t.test('GC succeeds at 1.1.0; STATUS says 50 where no datapath is installed', async (t) => {
  const gcEnv = { CNI_COMMAND: 'GC', CNI_PATH: '/usr/lib/cni' };
  const gc = await runExe(gcEnv, JSON.stringify(conf('1.1.0', { 'cni.dev/valid-attachments': [] })));
  t.equal(gc.exitCode, 0, gc.stdout + gc.stderr);
  t.equal(gc.stdout, '');
  const st = await runExe({ CNI_COMMAND: 'STATUS', CNI_PATH: '/usr/lib/cni' }, JSON.stringify(conf('1.1.0', { bpf_pin_dir: join(logDir, 'no-pins') })));
  t.equal(st.exitCode, 1, st.stdout + st.stderr);
  t.match(parseSingleJson(st.stdout), { code: 50, msg: /datapath is not installed/ });
});

interface Case {
  name: string;
  env: Record<string, string>;
  stdin: string | Uint8Array;
  code: number;
  msg: RegExp;
}

const garbage = Uint8Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) % 256);
const cases: Case[] = [
  { name: 'missing CNI_CONTAINERID', env: { ...env('ADD'), CNI_CONTAINERID: '' }, stdin: JSON.stringify(conf('1.0.0')), code: 4, msg: /CNI_CONTAINERID/ },
  { name: 'missing CNI_NETNS on ADD', env: { ...env('ADD'), CNI_NETNS: '' }, stdin: JSON.stringify(conf('1.0.0')), code: 4, msg: /CNI_NETNS/ },
  { name: 'missing CNI_IFNAME', env: { ...env('ADD'), CNI_IFNAME: '' }, stdin: JSON.stringify(conf('1.0.0')), code: 4, msg: /CNI_IFNAME/ },
  { name: 'unknown CNI_COMMAND', env: env('FROB'), stdin: JSON.stringify(conf('1.0.0')), code: 4, msg: /CNI_COMMAND/ },
  { name: 'truncated JSON', env: env('ADD'), stdin: JSON.stringify(conf('1.0.0')).slice(0, 30), code: 6, msg: /./ },
  { name: 'binary garbage', env: env('ADD'), stdin: garbage, code: 6, msg: /./ },
  { name: 'huge input', env: env('ADD'), stdin: `{"cniVersion":"1.0.0","type":"meshlane","pad":"${'x'.repeat(3 * 1024 * 1024)}"}`, code: 6, msg: /./ },
  { name: 'JSON that is not an object', env: env('ADD'), stdin: '[1,2,3]', code: 7, msg: /./ },
  { name: 'no type', env: env('ADD'), stdin: JSON.stringify({ cniVersion: '1.0.0', name: 'x' }), code: 7, msg: /type/ },
  { name: 'type of the wrong type', env: env('ADD'), stdin: JSON.stringify({ cniVersion: '1.0.0', name: 'x', type: 5 }), code: 7, msg: /type/ },
  { name: 'unsupported cniVersion', env: env('ADD'), stdin: JSON.stringify(conf('9.9.9')), code: 1, msg: /9\.9\.9/ },
  { name: 'bad log_level', env: env('ADD'), stdin: JSON.stringify(conf('1.0.0', { log_level: 'loud', prevResult: prev100 })), code: 7, msg: /log_level/ },
  { name: 'prevResult of the wrong type', env: env('ADD'), stdin: JSON.stringify(conf('1.0.0', { prevResult: 'x' })), code: 7, msg: /prevResult/ },
  { name: 'ADD without prevResult', env: env('ADD'), stdin: JSON.stringify(conf('1.0.0')), code: 7, msg: /chained/ },
];

for (const c of cases) {
  t.test(`malformed: ${c.name} -> code ${c.code}`, async (t) => {
    const r = await runExe(c.env, c.stdin);
    t.equal(r.exitCode, 1, 'non-zero exit');
    const err = parseSingleJson(r.stdout) as Record<string, unknown>;
    t.equal(err['code'], c.code, r.stdout);
    t.match(err['msg'], c.msg);
    t.type(err['cniVersion'], 'string');
    t.notMatch(r.stdout, /\n\s+at /, 'no stack trace on stdout');
  });
}

t.test('every call logs JSON lines with container id, command and pod', async (t) => {
  const file = join(logDir, 'lines.log');
  const r = await runExe(env('ADD'), JSON.stringify(conf('1.0.0', { log_file: file, log_level: 'debug', prevResult: prev100 })));
  t.equal(r.exitCode, 0, r.stderr);
  const lines = readFileSync(file, 'utf8').trim().split('\n');
  t.ok(lines.length >= 1);
  for (const line of lines) {
    const rec = JSON.parse(line) as Record<string, unknown>;
    t.equal(rec['containerId'], 'c0ffee1234');
    t.equal(rec['command'], 'ADD');
    t.equal(rec['pod'], 'demo/web-0');
  }
  t.match(r.stderr, /"command":"ADD"/, 'stderr carries the log too');
});

t.test('a log file that cannot be opened does not fail the call', async (t) => {
  const r = await runExe(env('ADD'), JSON.stringify(conf('1.0.0', { log_file: '/proc/meshlane-cannot/x.log', prevResult: prev100 })));
  t.equal(r.exitCode, 0, r.stdout + r.stderr);
  t.equal((parseSingleJson(r.stdout) as Record<string, unknown>)['cniVersion'], '1.0.0');
  t.match(r.stderr, /cannot open the log file/);
});
