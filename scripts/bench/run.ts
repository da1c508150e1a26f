// npm run bench: meshlane against Istio's iptables rules and against an
// explicit proxy, on this machine, inside a sandbox node (prefix mlbench),
// then BENCHMARKS.md. Not part of the tests. Root only.
//
// Two data-path benchmarks: `both` (scripts/bench/mesh.ts: client and server
// pod meshed, same node and across two nodes, fixed-rate open-loop latency
// against a no-sidecar baseline) and the client-sidecar-only one
// (scripts/bench/net.ts). The CNI benchmark (cni.ts) runs only when asked
// (BENCH_CNI=1, or BENCH_SKIP_NET=1); otherwise the CNI section of the
// existing BENCHMARKS.md is kept as it is.
//
// `npm run bench -- --quick` or BENCH_QUICK=1: a quick subset (1 repetition,
// `both` on one node only, short runs) for development; not for figures.
//
// Knobs (environment): BENCH_REPS (5; quick 1), BENCH_TOPOLOGIES
// (same,cross,client; quick same), BENCH_RATE (1000 requests/s),
// BENCH_CONNS (16), BENCH_LOAD_SECONDS (5), BENCH_MESH_WRK_SECONDS (3, the both-sidecars wrk runs), BENCH_SWEEP_MS (1500),
// BENCH_MESH_MODES (baseline,limit,iptables,ml-off,ml-proxy-only,ml-on),
// BENCH_WRK_SECONDS (2), BENCH_CONN_SECONDS (2), BENCH_IPERF_SECONDS (1, whole seconds), BENCH_CNI_RUNS (200),
// BENCH_STARTUP_RUNS (50), BENCH_MODES (client-only modes: limit,iptables,ml-off,ml-on),
// BENCH_SKIP_NET=1, BENCH_SKIP_CNI=1, BENCH_CNI=1, BENCH_NICE (0: e.g. -5 to run this
// process and everything it starts at a higher priority on a shared machine),
// BENCH_DEBUG=1, BENCH_OUT (BENCHMARKS.md; quick: .build/bench/BENCHMARKS-quick.md), BENCH_RENDER=<file> (only re-render
// BENCHMARKS.md from a saved run, e.g. .build/bench/last-run.json).
import { execFileSync } from 'node:child_process';
import { execa } from 'execa';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, setPriority, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createNode, type SandboxNode } from '../../testing/sandbox/node.js';
import { removeDatapath } from '../../src/bpf/loader.js';
import { runCni, type CniResult } from './cni.js';
import { runNet, type NetOptions, type NetResult } from './net.js';
import { MESH_MODES, TOPOLOGIES, runMesh, type MeshMode, type MeshResult, type Topology } from './mesh.js';
import { keptSection, renderReport, type Machine, type ReportInput } from './report.js';
import { log } from './util.js';
import { errorMessage } from '../../src/describe-error.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const PREFIX = 'mlbnc';
const envInt = (k: string, d: number): number => {
  const v = process.env[k];
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : d;
};
const QUICK = process.env['BENCH_QUICK'] === '1' || process.argv.includes('--quick');
const envList = <T extends string>(k: string, all: readonly T[], d: readonly T[]): T[] => {
  const v = process.env[k];
  if (v === undefined || v === '') return [...d];
  const want = v.split(',').map((x) => x.trim());
  const bad = want.filter((x) => !(all as readonly string[]).includes(x));
  if (bad.length > 0) {
    console.error(`bench: ${k}: unknown ${bad.join(', ')} (use ${all.join(', ')})`);
    process.exit(2);
  }
  return all.filter((x) => want.includes(x));
};

function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    return `${e.stdout ?? ''}${e.stderr ?? ''}`.trim();
  }
}

function checkTools(): void {
  // The CNI part needs bpftool only to load the datapath (the plugin itself runs no tool).
  const need: Record<string, string> =
    process.env['BENCH_SKIP_NET'] === '1'
      ? { bpftool: 'bpftool' }
      : { haproxy: 'haproxy', wrk: 'wrk', iperf3: 'iperf3', curl: 'curl', 'iptables-restore': 'iptables', nsenter: 'util-linux', bpftool: 'bpftool', cc: 'gcc' };
  const missing = Object.entries(need).filter(([cmd]) => sh('sh', ['-c', `command -v ${cmd} || echo MISSING`]).endsWith('MISSING'));
  if (missing.length > 0) {
    console.error(`bench: missing ${missing.map(([c]) => c).join(', ')}; install with:\n  apt-get install -y ${[...new Set(missing.map(([, p]) => p))].join(' ')}\n(scripts/setup.sh installs them)`);
    process.exit(2);
  }
}

/**
 * What `meshlane sockmap-probe --json` says the installer would do with
 * `--sockmap on` on this kernel: undefined when it would run it (or the
 * executable has no probe), else its message.
 */
async function sockmapOnRefusal(exe: string): Promise<string | undefined> {
  const r = await execa(exe, ['sockmap-probe', '--json'], { reject: false, timeout: 60_000 });
  if (r.exitCode !== 0) return undefined;
  try {
    const on = (JSON.parse(r.stdout) as { modes?: { on?: { effective?: unknown; message?: unknown } } }).modes?.on;
    if (on && typeof on.effective === 'string' && on.effective !== 'on') return typeof on.message === 'string' ? on.message : `the installer would run ${on.effective}`;
  } catch {
    return undefined;
  }
  return undefined;
}

function machine(): Machine {
  const cpu = readFileSync('/proc/cpuinfo', 'utf8');
  const mem = /MemTotal:\s+(\d+) kB/.exec(readFileSync('/proc/meminfo', 'utf8'));
  return {
    nproc: sh('nproc', []),
    kernel: sh('uname', ['-r']),
    cpuModel: /^model name\s*:\s*(.*)$/m.exec(cpu)?.[1] ?? cpus()[0]?.model ?? 'unknown',
    memGiB: mem ? (Number(mem[1]) / 1048576).toFixed(1) : 'unknown',
    haproxy: sh('haproxy', ['-v']).split('\n')[0] ?? '',
    wrk: (sh('wrk', ['-v']).split('\n')[0] ?? '').replace(/ Copyright.*/, ''),
    iperf3: sh('iperf3', ['-v']).split('\n')[0] ?? '',
    iptables: sh('iptables', ['-V']),
    node: process.version,
    commit: sh('git', ['-C', root, 'rev-parse', '--short=12', 'HEAD']),
    dirty: sh('git', ['-C', root, 'status', '--porcelain', '--', 'src', 'bpf']).length > 0,
    date: new Date().toISOString(),
    loadStart: loadavg().map((x) => x.toFixed(1)).join(' '),
    loadEnd: '',
    nice: process.env['BENCH_NICE'] ?? '0',
  };
}

function knobs(): string[] {
  return Object.entries(process.env)
    .filter(([k]) => k.startsWith('BENCH_') && k !== 'BENCH_RENDER' && k !== 'BENCH_QUICK')
    .map(([k, v]) => `${k}=${v ?? ''}`)
    .concat(QUICK ? ['BENCH_QUICK=1'] : []);
}

async function main(): Promise<void> {
  const render = process.env['BENCH_RENDER'];
  if (render) {
    const input = JSON.parse(readFileSync(render, 'utf8')) as ReportInput;
    const target = resolve(root, process.env['BENCH_OUT'] ?? 'BENCHMARKS.md');
    writeFileSync(target, renderReport(input));
    log(`re-rendered ${target} from ${render}`);
    return;
  }
  if (process.getuid?.() !== 0) {
    console.error('bench: needs root (cgroups, netns, eBPF)');
    process.exit(2);
  }
  checkTools();
  let exe = join(root, 'dist', 'meshlane');
  let bpfObject = join(root, 'dist', 'bpf', 'meshlane.o');
  for (const f of [exe, bpfObject]) {
    if (!existsSync(f)) {
      console.error(`bench: ${f} is missing: run npm run build`);
      process.exit(2);
    }
  }
  // Work on a copy: other builds may replace dist/ while the bench runs.
  const snap = join(tmpdir(), `${PREFIX}-dist-${process.pid}`);
  mkdirSync(join(snap, 'bpf'), { recursive: true });
  copyFileSync(exe, join(snap, 'meshlane'));
  chmodSync(join(snap, 'meshlane'), 0o755);
  copyFileSync(bpfObject, join(snap, 'bpf', 'meshlane.o'));
  exe = join(snap, 'meshlane');
  bpfObject = join(snap, 'bpf', 'meshlane.o');
  const shared = resolve(root, 'testing', 'fixtures');
  const goldenFile = join(shared, 'istio-plugin-iptables-golden', 'basic.txt.golden');
  const fixturePod = join(shared, 'pods', 'istio-sidecar-cni-native.json');
  // A quick run never replaces the report of a full one unless asked to.
  const out = resolve(root, process.env['BENCH_OUT'] ?? (QUICK ? join('.build', 'bench', 'BENCHMARKS-quick.md') : 'BENCHMARKS.md'));
  const cfgDir = join(tmpdir(), `${PREFIX}-cfg-${process.pid}`);
  const reps = envInt('BENCH_REPS', QUICK ? 1 : 5);
  const topologies = envList<Topology | 'client'>('BENCH_TOPOLOGIES', [...TOPOLOGIES, 'client'], QUICK ? ['same'] : [...TOPOLOGIES, 'client']);
  const netOpts: NetOptions = {
    reps,
    wrkSeconds: envInt('BENCH_WRK_SECONDS', QUICK ? 1 : 2),
    connSeconds: envInt('BENCH_CONN_SECONDS', QUICK ? 1 : 2),
    iperfSeconds: envInt('BENCH_IPERF_SECONDS', 1),
    connections: [100],
    sizes: [65536],
    bpfObject,
    goldenFile,
    cfgDir,
  };
  const meshOpts = {
    reps,
    topologies: topologies.filter((x): x is Topology => x !== 'client'),
    modes: envList<MeshMode>('BENCH_MESH_MODES', MESH_MODES, MESH_MODES),
    rate: envInt('BENCH_RATE', 1000),
    connections: envInt('BENCH_CONNS', 16),
    // 5 s at 1,000 requests/s: a p99 from 5,000 requests (3 s left it to 30 requests, and its
    // spread over repetitions was 10x); wrk 3 s for the same reason. About 16 minutes in all here.
    loadSeconds: envInt('BENCH_LOAD_SECONDS', QUICK ? 2 : 5),
    warmupMs: 500,
    sweep: QUICK ? [] : [1, 4, 64],
    sweepMs: envInt('BENCH_SWEEP_MS', 1500),
    maxConns: [16, 64],
    wrkSeconds: envInt('BENCH_MESH_WRK_SECONDS', QUICK ? 1 : 3),
    connSeconds: envInt('BENCH_CONN_SECONDS', 1),
    exe,
    bpfObject,
    goldenFile,
    fixturePod,
    cfgDir,
  };
  const runCniPart = process.env['BENCH_SKIP_CNI'] !== '1' && (process.env['BENCH_CNI'] === '1' || process.env['BENCH_SKIP_NET'] === '1');
  const cniOpts = { runs: envInt('BENCH_CNI_RUNS', 200), startupRuns: envInt('BENCH_STARTUP_RUNS', 50), exe, bpfObject, fixturePod, repoRoot: root };
  const nice = Number(process.env['BENCH_NICE'] ?? '0');
  if (Number.isInteger(nice) && nice !== 0) setPriority(nice);
  const m = machine();
  const started = Date.now();
  let node: SandboxNode | undefined;
  let cleaned = false;
  const cleanup = async (): Promise<void> => {
    if (cleaned) return;
    cleaned = true;
    if (node) await removeDatapath({ pinDir: node.pinDir, cgroupDir: node.cgroupRoot }).catch(() => undefined);
    await node?.destroy().catch((e: unknown) => log(`cleanup: ${errorMessage(e)}`));
    rmSync(cfgDir, { recursive: true, force: true });
    rmSync(snap, { recursive: true, force: true });
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      log(`${sig}: cleaning up`);
      void cleanup().finally(() => process.exit(130));
    });
  }
  let net: NetResult | undefined;
  let mesh: MeshResult | undefined;
  let cni: CniResult | undefined;
  // The CNI section to keep comes from the report a full run writes.
  const reportFile = resolve(root, 'BENCHMARKS.md');
  const previous = existsSync(out) ? readFileSync(out, 'utf8') : existsSync(reportFile) ? readFileSync(reportFile, 'utf8') : '';
  const write = (final: boolean): void => {
    m.loadEnd = loadavg().map((x) => x.toFixed(1)).join(' ');
    const input: ReportInput = { machine: m, net, mesh, cni, netOpts, meshOpts, cniOpts, final, seconds: (Date.now() - started) / 1000, knobs: knobs(), quick: QUICK, keptCni: cni ? undefined : keptSection(previous, '## Results: CNI') };
    // The raw samples, to re-render BENCHMARKS.md (BENCH_RENDER=<file>) without a new run.
    mkdirSync(join(root, '.build', 'bench'), { recursive: true });
    writeFileSync(join(root, '.build', 'bench', 'last-run.json'), `${JSON.stringify(input, null, 1)}\n`);
    // BENCHMARKS.md only from a finished run: an interrupted one must not replace the last full report.
    if (final) writeFileSync(out, renderReport(input));
  };
  try {
    node = await createNode({ prefix: PREFIX, ipv4Subnet: '10.213.150.0/24', ipv6Subnet: 'fd00:213:150::/64' });
    log(`node ${PREFIX}: ${m.nproc} CPUs, kernel ${m.kernel}, ${m.cpuModel}`);
    if (process.env['BENCH_SKIP_NET'] !== '1' && meshOpts.topologies.length > 0) {
      mesh = await runMesh(node, meshOpts, (r) => {
        mesh = r;
      });
      write(false);
    }
    if (process.env['BENCH_SKIP_NET'] !== '1' && topologies.includes('client')) {
      // These runs write the sockmap switch themselves: ask the installer's probe
      // whether it would run `on` on this kernel, and leave that mode out if not.
      const refusal = await sockmapOnRefusal(exe);
      if (refusal) {
        netOpts.skip = { 'ml-on': refusal };
        log(`client sidecar only: meshlane, sockmap on not measured: ${refusal}`);
      }
      net = await runNet(node, netOpts, (r) => {
        net = r;
      });
      write(false);
    }
    if (runCniPart) {
      cni = await runCni(node, cniOpts);
    }
  } finally {
    await cleanup();
  }
  write(true);
  log(`wrote ${out} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  const errs = [...(mesh?.errors ?? []), ...(net?.errors ?? []), ...(cni?.errors ?? [])];
  if (errs.length > 0) {
    log(`${errs.length} error(s):\n  ${errs.join('\n  ')}`);
    process.exitCode = 1;
  }
}

main().catch((err: unknown) => {
  console.error(`bench: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
});
