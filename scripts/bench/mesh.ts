// The `both` benchmark, as Istio's own performance runs measure a mesh: the
// client pod and the server pod each have a sidecar (app -> client sidecar ->
// server sidecar at 15006 -> server app), against a baseline with no sidecar
// at all, at a fixed request rate (open loop, testing/tools/mlload.c), plus a
// connection sweep, closed-loop maximum requests/s (wrk), the connection
// set-up rate, and the CPU the proxies and the apps use per 1,000 requests.
//
// Topologies: `same` (both pods on one sandbox node: meshlane steers the
// client proxy's connect to the server pod's 15006 in cgroup/connect4) and
// `cross` (the client pod on a second sandbox node linked to the first:
// the server pod's inbound is the tc path its CNI ADD attached).
//
// Modes: baseline (no sidecars, app -> server app), limit (explicit proxies:
// the app connects to its sidecar's fixed frontend, that one to the server
// sidecar's fixed frontend; no interception), iptables (istio-cni's rules in
// both pods), and meshlane with `--sockmap off`, `proxy-only` and `on`: the
// node installer (`meshlane install --once --sockmap X`) on every node, then
// both pods through the CNI chain (the meshlane entry the installer wrote,
// ADD as a runtime runs it). A mode the installer refuses (it keeps another
// sockmap setting, e.g. after a failed kernel probe) is reported, not run.
// The installer runs for every meshlane mode in the first repetition, and
// later whenever the datapath is not attached (after a mode without
// meshlane); from one meshlane mode to the next in a later repetition the
// bench writes the settings the installer wrote for that mode (its pass
// reloads the whole object, seconds that measure nothing).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import type { Conflist, Json } from '../../testing/sandbox/cni-chain.js';
import { sandboxPodThroughChain, type ChainPod } from '../../testing/sandbox/chain-pod.js';
import { buildTool, createNode, linkNodes, type Pod, type SandboxNode, type SpawnedProcess } from '../../testing/sandbox/node.js';
import { SET_F } from '../../src/bpf/layout.js';
import { removeDatapath } from '../../src/bpf/loader.js';
import { readCounters, readSettings, writeSettings } from '../../src/bpf/registry.js';
import type { Settings } from '../../src/bpf/layout.js';
import { errorMessage } from '../../src/describe-error.js';
import { APP, PROXY, goldenToRestore, haproxyServerCfg, iptablesRestore, startHaproxy, sysctls, writeCfg } from './net.js';
import { log, parseLoad, parseWrk, type LoadResult } from './util.js';

export const MESH_MODES = ['baseline', 'limit', 'iptables', 'ml-off', 'ml-proxy-only', 'ml-on'] as const;
export type MeshMode = (typeof MESH_MODES)[number];
export const MESH_MODE_TITLE: Record<MeshMode, string> = {
  baseline: 'baseline (no sidecars)',
  limit: 'explicit proxies (limit)',
  iptables: 'Istio iptables',
  'ml-off': 'meshlane, sockmap off',
  'ml-proxy-only': 'meshlane, sockmap proxy-only',
  'ml-on': 'meshlane, sockmap on',
};
const SOCKMAP: Partial<Record<MeshMode, 'off' | 'proxy-only' | 'on'>> = { 'ml-off': 'off', 'ml-proxy-only': 'proxy-only', 'ml-on': 'on' };
const SOCKMAP_FLAGS = { off: 0, on: SET_F.SOCKMAP_REDIRECT, 'proxy-only': SET_F.SOCKMAP_REDIRECT | SET_F.SOCKMAP_PROXY_ONLY } as const;

export const TOPOLOGIES = ['same', 'cross'] as const;
export type Topology = (typeof TOPOLOGIES)[number];
export const TOPOLOGY_TITLE: Record<Topology, string> = {
  same: 'both sidecars, same node',
  cross: 'both sidecars, across two nodes',
};

const HTTP_PORT = 8080;
/** The response body: Istio's runs use 1 KiB payloads. */
export const BODY_BYTES = 1024;

export interface MeshOptions {
  reps: number;
  topologies: readonly Topology[];
  modes: readonly MeshMode[];
  /** Fixed request rate (requests/s over all connections). */
  rate: number;
  /** Connections of the main fixed-rate run. */
  connections: number;
  loadSeconds: number;
  warmupMs: number;
  /** Fixed-rate runs at these connection counts too (same node only), each sweepMs. */
  sweep: readonly number[];
  sweepMs: number;
  /** Closed-loop wrk at these connection counts, wrkSeconds each. */
  maxConns: readonly number[];
  wrkSeconds: number;
  connSeconds: number;
  exe: string;
  bpfObject: string;
  goldenFile: string;
  fixturePod: string;
  cfgDir: string;
}

export interface MeshSample {
  topo: Topology;
  metric: string;
  mode: MeshMode;
  rep: number;
  value: number;
}

export interface MeshResult {
  samples: MeshSample[];
  /** What the verification saw, per topology and mode (first repetition). */
  verification: Record<string, string>;
  /** Modes the installer did not run as asked: topology/mode -> what it said. */
  refused: Record<string, string>;
  /** Fixed-rate runs where requests were sent late (> 1 ms after they were due): topology/mode -> worst share. */
  lateShare: Record<string, number>;
  errors: string[];
}

/**
 * One sidecar config for both pods: 15001 outbound (SO_ORIGINAL_DST), 15006
 * inbound (SO_ORIGINAL_DST, to the app from 127.0.0.6 as Envoy's inbound
 * passthrough does, which istio-cni's rules and meshlane leave alone), and two
 * fixed frontends for the limit: 15002 (client side, to the server sidecar's
 * 15007) and 15007 (server side, to the app).
 */
function sidecarCfg(serverIp: string, withLog: boolean): string {
  const logLines = withLog ? '  log stdout format raw local0\n  log-format "frontend %f conn %ci:%cp dst %fi:%fp server %si:%sp bytes %U/%B state %ts"\n' : '';
  return `global
  maxconn 8000
  nbthread 1
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
${logLines}frontend outbound
  bind 0.0.0.0:15001
  tcp-request connection reject if { dst_port 15001 }
  default_backend orig_out
backend orig_out
  server orig 0.0.0.0:0
frontend inbound
  bind 0.0.0.0:15006
  tcp-request connection reject if { dst_port 15006 }
  default_backend orig_in
backend orig_in
  server orig 0.0.0.0:0 source 127.0.0.6
frontend explicit_out
  bind 127.0.0.1:15002
  default_backend fixed_out
backend fixed_out
  server s ${serverIp}:15007
frontend explicit_in
  bind 0.0.0.0:15007
  default_backend fixed_in
backend fixed_in
  server s ${serverIp}:${HTTP_PORT} source 127.0.0.6
`;
}

/** CPU time (µs) a cgroup used so far (cgroup v2 cpu.stat usage_usec). */
function usage(dir: string): number {
  const m = /^usage_usec (\d+)$/m.exec(readFileSync(join(dir, 'cpu.stat'), 'utf8'));
  return m ? Number(m[1]) : Number.NaN;
}

interface Pair {
  client: Pod;
  server: Pod;
}

/** Proxies (both istio-proxy containers) and apps (both app containers), µs so far. */
function cpuSplit(p: Pair): { proxy: number; app: number } {
  return {
    proxy: usage(p.client.containerCgroup(PROXY.container)) + usage(p.server.containerCgroup(PROXY.container)),
    app: usage(p.client.containerCgroup('app')) + usage(p.server.containerCgroup('app')),
  };
}

/** One node's installer setup: a primary conflist to chain into, and the dirs the installer writes. */
interface NodeSetup {
  node: SandboxNode;
  netDir: string;
  binDir: string;
  stateDir: string;
  installed: boolean;
  /** The settings the installer wrote for each sockmap mode it accepted. */
  settings: Map<'off' | 'proxy-only' | 'on', Settings>;
}

function nodeSetup(node: SandboxNode): NodeSetup {
  const base = join(node.stateDir, 'bench-install');
  const s: NodeSetup = { node, netDir: join(base, 'net.d'), binDir: join(base, 'bin'), stateDir: join(base, 'state'), installed: false, settings: new Map() };
  mkdirSync(s.netDir, { recursive: true });
  mkdirSync(s.binDir, { recursive: true });
  // The primary CNI the installer chains into (never run here: the sandbox made the pods' links).
  const primary = { cniVersion: '1.0.0', name: 'bench-net', plugins: [{ type: 'bridge', bridge: node.names.extra('cbr'), ipam: { type: 'host-local', ranges: [[{ subnet: '10.213.159.0/24' }]] } }] };
  writeFileSync(join(s.netDir, '10-bench.conflist'), `${JSON.stringify(primary, null, 2)}\n`);
  return s;
}

/**
 * `meshlane install --once --sockmap <want>` on the node. Returns undefined when
 * the settings it left are what was asked, else what the installer said.
 */
async function installerPass(s: NodeSetup, exe: string, bpfObject: string, want: 'off' | 'proxy-only' | 'on'): Promise<string | undefined> {
  const args = [
    'install', '--once', '--sockmap', want, '--bpf-object', bpfObject,
    '--cni-net-dir', s.netDir, '--cni-bin-dir', s.binDir, '--cgroup-root', s.node.cgroupRoot, '--pin-dir', s.node.pinDir,
    '--state-dir', s.stateDir, '--kubeconfig', join(s.stateDir, 'kubeconfig'), '--cri-socket', 'none',
    '--log-file', join(s.node.stateDir, 'bench-plugin.log'), '--log-level', 'info',
  ];
  const r = await execa(exe, args, { reject: false, timeout: 60_000 });
  s.installed = true;
  const said = r.stderr.split('\n').filter((l) => /sockmap|refus|probe/i.test(l)).map((l) => l.trim()).slice(0, 4).join(' | ');
  if (r.exitCode !== 0) return `install --sockmap ${want} failed (exit ${String(r.exitCode)}): ${said || r.stderr.slice(-400)}`;
  // An installer that probes the kernel's sockmap faults reports its decision in the --once document.
  const decision = sockmapDecision(r.stdout);
  if (decision && decision.effective !== want) return `install --sockmap ${want} ran ${decision.effective}: ${decision.message}`;
  const settings = await readSettings(s.node.pinDir);
  if (settings.flags !== SOCKMAP_FLAGS[want]) return `install --sockmap ${want} left settings flags ${settings.flags} (asked ${SOCKMAP_FLAGS[want]})${said ? `: ${said}` : ''}${decision ? `: ${decision.message}` : ''}`;
  s.settings.set(want, settings);
  return undefined;
}

/** The `sockmap` decision in `install --once`'s JSON document, when the installer reports one. */
export function sockmapDecision(stdout: string): { effective: string; message: string } | undefined {
  try {
    const doc = JSON.parse(stdout) as { sockmap?: { effective?: unknown; message?: unknown } };
    const d = doc.sockmap;
    if (d && typeof d.effective === 'string') return { effective: d.effective, message: typeof d.message === 'string' ? d.message : '' };
  } catch {
    // not a JSON document: no decision reported
  }
  return undefined;
}

/** The meshlane entry of the conflist the installer wrote. */
function installedEntry(s: NodeSetup): Conflist {
  const list = JSON.parse(readFileSync(join(s.netDir, '10-bench.conflist'), 'utf8')) as { cniVersion: string; plugins: Json[] };
  const entry = list.plugins.find((p) => p['type'] === 'meshlane');
  if (!entry) throw new Error(`the installer wrote no meshlane entry into ${s.netDir}/10-bench.conflist`);
  return { cniVersion: list.cniVersion, name: 'bench-net', plugins: [entry] };
}

async function chainPod(s: NodeSetup, exe: string, pod: Pod, annotations: Record<string, string>): Promise<ChainPod> {
  const list = installedEntry(s);
  return sandboxPodThroughChain(s.node, list, list.plugins, pod, { name: pod.name, namespace: 'default', annotations }, { binDirs: [s.binDir, dirname(exe)], containerId: `bench${pod.uid.replace(/-/g, '')}`.slice(0, 64) });
}

async function load(p: Pair, mlload: string, url: string, o: { rate: number; conns: number; ms: number; warmupMs: number }): Promise<LoadResult & { cpuProxyUs: number; cpuAppUs: number }> {
  const before = cpuSplit(p);
  const r = await p.client.run(mlload, ['--connect', url, '--path', '/', '--host', 'server', '--rate', String(o.rate), '--connections', String(o.conns), '--duration-ms', String(o.ms), '--warmup-ms', String(o.warmupMs), '--timeout-ms', '5000'], { ...APP, timeoutMs: o.ms + o.warmupMs + 20_000 });
  const after = cpuSplit(p);
  const res = parseLoad(r.stdout);
  if (res.error) throw new Error(`mlload ${url} -c ${o.conns}: exit ${String(r.exitCode)} ${res.error} ${r.stderr.slice(0, 300)}`);
  return { ...res, cpuProxyUs: after.proxy - before.proxy, cpuAppUs: after.app - before.app };
}

async function wrkMax(p: Pair, url: string, conns: number, seconds: number, extra: string[] = []): Promise<{ rps: number; errors: number; cpuUs: number }> {
  const before = cpuSplit(p);
  const r = await p.client.run('wrk', ['-t', String(Math.min(2, conns)), '-c', String(conns), '-d', `${seconds}s`, '--timeout', '5s', ...extra, url], { ...APP, timeoutMs: (seconds + 20) * 1000 });
  if (r.exitCode !== 0) throw new Error(`wrk ${url} -c ${conns}: exit ${String(r.exitCode)} ${r.stderr}`);
  const after = cpuSplit(p);
  const w = parseWrk(r.stdout);
  return { rps: w.requestsPerSec, errors: w.errors, cpuUs: after.proxy - before.proxy + after.app - before.app };
}

/** One request through logging sidecars: both must show the hop they are for, with the server's address as the original destination. */
async function verify(p: Pair, mode: MeshMode, cfgDir: string): Promise<string> {
  const url = mode === 'limit' ? 'http://127.0.0.1:15002/' : `http://${p.server.ipv4}:${HTTP_PORT}/`;
  if (mode === 'baseline') {
    const r = await p.client.run('curl', ['-sS', '--max-time', '5', '-o', '/dev/null', '-w', '%{http_code} %{size_download}', url], { ...APP, timeoutMs: 10_000 });
    if (r.stdout.trim() !== `200 ${BODY_BYTES}`) throw new Error(`baseline: request got '${r.stdout}' ${r.stderr}`);
    return `curl ${url}: ${r.stdout.trim()} (no sidecar)`;
  }
  const cfg = (pod: Pod): string => writeCfg(cfgDir, `sidecar-log-${pod.name}.cfg`, sidecarCfg(p.server.ipv4, true));
  const cp = await startHaproxy(p.client, cfg(p.client), PROXY, 15001);
  let sp: SpawnedProcess | undefined;
  try {
    sp = await startHaproxy(p.server, cfg(p.server), PROXY, 15006);
    const r = await p.client.run('curl', ['-sS', '--max-time', '5', '-o', '/dev/null', '-w', '%{http_code} %{size_download}', url], { ...APP, timeoutMs: 10_000 });
    if (r.stdout.trim() !== `200 ${BODY_BYTES}`) throw new Error(`${mode}: verification request got '${r.stdout}' ${r.stderr}`);
    const dst = `${p.server.ipv4}:${HTTP_PORT}`;
    const [outFront, inFront] = mode === 'limit' ? ['frontend explicit_out ', 'frontend explicit_in '] : ['frontend outbound ', 'frontend inbound '];
    const want = (proc: SpawnedProcess, front: string, extra: (l: string) => boolean): string | undefined => proc.lines().find((l) => l.includes(front) && extra(l));
    let out: string | undefined;
    let inb: string | undefined;
    for (let i = 0; i < 40 && (!out || !inb); i++) {
      out = want(cp, outFront, (l) => mode === 'limit' || (l.includes(`dst ${dst} `) && l.includes(`server ${dst} `)));
      inb = want(sp, inFront, (l) => l.includes(`server ${dst} `) && (mode === 'limit' || l.includes(`dst ${dst} `)));
      if (!out || !inb) await sleep(50);
    }
    if (!out) throw new Error(`${mode}: the client sidecar did not log ${outFront}to ${dst}: ${cp.lines().join(' | ')} ${cp.stderr()}`);
    if (!inb) throw new Error(`${mode}: the server sidecar did not log ${inFront}with original destination ${dst}: ${sp.lines().join(' | ')} ${sp.stderr()}`);
    return `client sidecar: ${out}; server sidecar: ${inb}`;
  } finally {
    await cp.kill();
    await sp?.kill();
  }
}

type Counters = Awaited<ReturnType<typeof readCounters>>;

async function countersOf(nodes: readonly SandboxNode[]): Promise<Counters[]> {
  return Promise.all(nodes.map((n) => readCounters(n.pinDir)));
}

function counterDelta(before: Counters[], after: Counters[], k: keyof Counters): number {
  return after.reduce((sum, a, i) => sum + Number(a[k] - (before[i] as Counters)[k]), 0);
}

export async function runMesh(n1: SandboxNode, opts: MeshOptions, onProgress: (r: MeshResult) => void): Promise<MeshResult> {
  const result: MeshResult = { samples: [], verification: {}, refused: {}, lateShare: {}, errors: [] };
  mkdirSync(opts.cfgDir, { recursive: true });
  const mlload = await buildTool('mlload');
  const restore = goldenToRestore(readFileSync(opts.goldenFile, 'utf8'));
  const annotations = (JSON.parse(readFileSync(opts.fixturePod, 'utf8')) as { metadata: { annotations?: Record<string, string> } }).metadata.annotations ?? {};
  let n2: SandboxNode | undefined;
  const setups = new Map<SandboxNode, NodeSetup>([[n1, nodeSetup(n1)]]);
  try {
    if (opts.topologies.includes('cross')) {
      n2 = await createNode({ prefix: 'mlbnx', ipv4Subnet: '10.213.152.0/24', ipv6Subnet: 'fd00:213:152::/64' });
      setups.set(n2, nodeSetup(n2));
      await linkNodes(n1, n2);
    }
    const refusedModes = new Set<string>();
    const cells = opts.reps * opts.topologies.length * opts.modes.length;
    let done = 0;
    const t0 = Date.now();
    const serverCfg = writeCfg(opts.cfgDir, 'mesh-server-app.cfg', haproxyServerCfg('x'.repeat(BODY_BYTES)));
    for (let rep = 1; rep <= opts.reps; rep++) {
      for (const topo of opts.topologies) {
        const clientNode = topo === 'cross' ? (n2 as SandboxNode) : n1;
        const nodes = topo === 'cross' ? [n1, clientNode] : [n1];
        // Rotate the order of the modes between repetitions.
        const order = opts.modes.map((_, i) => opts.modes[(i + rep - 1) % opts.modes.length] as MeshMode);
        for (const mode of order) {
          const key = `${topo}/${mode}`;
          if (refusedModes.has(key)) continue;
          const started = Date.now();
          const sockmap = SOCKMAP[mode];
          const chained: ChainPod[] = [];
          let pair: Pair | undefined;
          // Where the time goes (logged per cell): node setup, pods, verification, measuring, teardown.
          const phases: string[] = [];
          let mark = Date.now();
          const phase = (name: string): void => {
            phases.push(`${name} ${((Date.now() - mark) / 1000).toFixed(1)}`);
            mark = Date.now();
          };
          try {
            // The node(s): the installer for meshlane modes; nothing of meshlane otherwise.
            for (const n of nodes) {
              const s = setups.get(n) as NodeSetup;
              const learned = s.settings.get(sockmap ?? 'off');
              if (sockmap && rep > 1 && s.installed && learned) {
                // The installer ran for this mode in the first repetition; the datapath is
                // still attached (a meshlane mode ran just before): switch to the settings it wrote.
                await writeSettings(n.pinDir, learned);
              } else if (sockmap) {
                const refused = await installerPass(s, opts.exe, opts.bpfObject, sockmap);
                if (refused) {
                  phase('installer');
                  refusedModes.add(key);
                  result.refused[key] = refused;
                  throw new Error(`refused: ${refused}`);
                }
              } else if (s.installed) {
                await removeDatapath({ pinDir: n.pinDir, cgroupDir: n.cgroupRoot });
                s.installed = false;
              }
            }
            phase(sockmap ? 'installer' : 'node');
            const server = await n1.addPod({ name: `s${rep}${mode.slice(-3)}` });
            const client = await clientNode.addPod({ name: `c${rep}${mode.slice(-3)}` });
            pair = { client, server };
            await sysctls(server);
            await sysctls(client);
            if (mode === 'iptables') {
              await iptablesRestore(server, restore);
              await iptablesRestore(client, restore);
            }
            if (sockmap) {
              chained.push(await chainPod(setups.get(n1) as NodeSetup, opts.exe, server, annotations));
              chained.push(await chainPod(setups.get(clientNode) as NodeSetup, opts.exe, client, annotations));
            }
            await startHaproxy(server, serverCfg, APP, HTTP_PORT);
            phase(sockmap ? 'pods+ADD' : 'pods');
            const before = sockmap ? await countersOf(nodes) : undefined;
            const v = await verify(pair, mode, opts.cfgDir);
            if (rep === 1) result.verification[key] = v;
            if (mode !== 'baseline') {
              const cfg = (pod: Pod): string => writeCfg(opts.cfgDir, `sidecar-${pod.name}.cfg`, sidecarCfg(server.ipv4, false));
              await startHaproxy(client, cfg(client), PROXY, 15001);
              await startHaproxy(server, cfg(server), PROXY, 15006);
            }
            phase('verify');
            const url = mode === 'limit' ? '127.0.0.1:15002' : `${server.ipv4}:${HTTP_PORT}`;
            const push = (metric: string, value: number): void => {
              result.samples.push({ topo, metric, mode, rep, value });
            };
            const fixed = async (conns: number, ms: number, main: boolean): Promise<void> => {
              const l = await load(pair as Pair, mlload, url, { rate: opts.rate, conns, ms, warmupMs: main ? opts.warmupMs : Math.min(250, opts.warmupMs) });
              push(`p50@${conns}`, l.p50Us);
              push(`p90@${conns}`, l.p90Us);
              push(`p99@${conns}`, l.p99Us);
              push(`p999@${conns}`, l.p999Us);
              const late = l.lateSends / Math.max(1, l.sent);
              result.lateShare[key] = Math.max(result.lateShare[key] ?? 0, late);
              if (main) {
                push('late', late);
                push('cpuproxy', (l.cpuProxyUs / l.completed) * 1000);
                push('cpuapp', (l.cpuAppUs / l.completed) * 1000);
                push('cputotal', ((l.cpuProxyUs + l.cpuAppUs) / l.completed) * 1000);
              }
            };
            await fixed(opts.connections, opts.loadSeconds * 1000, true);
            if (topo === 'same') for (const c of opts.sweep) if (c !== opts.connections) await fixed(c, opts.sweepMs, false);
            for (const c of opts.maxConns) {
              const w = await wrkMax(pair, `http://${url}/`, c, opts.wrkSeconds);
              if (w.errors > 0) result.errors.push(`${key} rep ${rep} wrk -c ${c}: ${w.errors} errors`);
              push(`rps@${c}`, w.rps);
            }
            const cc = await wrkMax(pair, `http://${url}/`, 16, opts.connSeconds, ['-H', 'Connection: close']);
            if (cc.errors > 0) result.errors.push(`${key} rep ${rep} connection rate: ${cc.errors} errors`);
            push('cps', cc.rps);
            phase('measure');
            if (sockmap && before) {
              const after = await countersOf(nodes);
              const d = (k: keyof Counters): number => counterDelta(before, after, k);
              const inbound = topo === 'cross' ? d('tc_in_redirected') : d('connect4_redirect_in');
              const summary = `redirect out ${d('connect4_redirect_out')}, to a peer's inbound ${topo === 'cross' ? `(tc) ${inbound}` : inbound}, getsockopt answered ${d('getsockopt_answered')}, miss ${d('getsockopt_miss')}, sockhash added ${d('sockops_sockhash_added')}, sk_msg redirected ${d('redirect_ok')}`;
              if (d('getsockopt_answered') === 0 || inbound === 0) throw new Error(`${key}: meshlane did not steer both hops (${summary})`);
              if (sockmap === 'off' && d('redirect_ok') !== 0) throw new Error(`${key}: sockmap off but sk_msg redirects (${summary})`);
              if (sockmap === 'on' && d('redirect_ok') === 0) throw new Error(`${key}: sockmap on but no sk_msg redirect (${summary})`);
              if (sockmap === 'proxy-only' && topo === 'same' && d('redirect_ok') === 0) throw new Error(`${key}: sockmap proxy-only but no sk_msg redirect between the sidecars (${summary})`);
              // proxy-only: only the two ends of sidecar -> peer sidecar (15006) connections on this node may join.
              if (sockmap === 'proxy-only' && d('sockops_sockhash_added') > 2 * d('connect4_redirect_in')) throw new Error(`${key}: sockmap proxy-only but more sockets joined the sockhash than the sidecar-to-sidecar connections have ends: application sockets joined (${summary})`);
              if (rep === 1) result.verification[key] = `${result.verification[key] ?? ''}\n  meshlane counters over the run: ${summary}`;
            }
          } catch (err) {
            if (!refusedModes.has(key) || !errorMessage(err).startsWith('refused')) {
              result.errors.push(`${key} rep ${rep}: ${errorMessage(err)}`);
              log(`ERROR ${key} rep ${rep}: ${errorMessage(err)}`);
            } else {
              log(`${key}: ${errorMessage(err)}; not measured`);
            }
          } finally {
            for (const c of chained.reverse()) await c.del().catch((e: unknown) => result.errors.push(`${key} rep ${rep} DEL: ${errorMessage(e)}`));
            if (pair) {
              await clientNode.removePod(pair.client);
              await n1.removePod(pair.server);
            }
          }
          phase('teardown');
          done += 1;
          const eta = ((Date.now() - t0) / done) * (cells - done);
          log(`rep ${rep}/${opts.reps} ${key}: ${((Date.now() - started) / 1000).toFixed(1)} s (${phases.join(', ')}); ${done}/${cells} cells, about ${Math.round(eta / 1000)} s of the both runs left`);
          onProgress(result);
        }
      }
    }
  } finally {
    for (const s of setups.values()) if (s.installed) await removeDatapath({ pinDir: s.node.pinDir, cgroupDir: s.node.cgroupRoot }).catch(() => undefined);
    await n2?.destroy().catch((e: unknown) => log(`cleanup of node 2: ${errorMessage(e)}`));
  }
  return result;
}
