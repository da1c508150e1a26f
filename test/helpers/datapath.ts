// Shared pieces of the datapath kernel tests (test/kernel/datapath-*.test.ts),
// kept here because tap runs every file in test/kernel/:
// a sandbox node with the datapath attached to its cgroup root, pods
// registered as the CNI plugin would, the test proxy as uid 1337 in the
// pod's istio-proxy container, apps as uid 1000, and counter deltas.
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Test } from 'tap';
import { buildTool, createNode, type JsonObject, type Pod, type RunOptions, type RunResult, type SandboxNode, type SpawnedProcess } from '../../testing/sandbox/node.js';
import type { CounterName } from '../../src/bpf/layout.js';
import { SET_F } from '../../src/bpf/layout.js';
import { installDatapath, removeDatapath, type DatapathLocation, type DatapathObjects } from '../../src/bpf/loader.js';
import { DEFAULT_INTERCEPTION, encodePodConfig, type InterceptionConfig } from '../../src/bpf/pod-config.js';
import { mapEntryCount, readCounters, registerPod, writeSettings } from '../../src/bpf/registry.js';
import { distBpfObjects } from './paths.js';

/**
 * The object under test: MESHLANE_TEST_BPF_OBJECT (e.g. a candidate build, or
 * one of the two builds forced), else both builds as the installer gives them
 * (the compat one on a kernel that rejects the newer).
 */
export const bpfObject: string | DatapathObjects = process.env['MESHLANE_TEST_BPF_OBJECT'] ?? distBpfObjects;

export const APP = { uid: 1000, gid: 1000 } as const;

/**
 * How much slower than this machine the tests run: 1 here, 4 in a qemu guest
 * (scripts/kernels/guest-run.ts sets MESHLANE_TEST_SLOWDOWN; TCG runs code
 * about 17x slower on one vCPU). Liveness bounds of loads (many connections,
 * large transfers) scale with it; they are limits, not timed assertions.
 */
export const SLOWDOWN = Math.max(1, Number(process.env['MESHLANE_TEST_SLOWDOWN'] ?? '1') || 1);
export const scaled = (ms: number): number => ms * SLOWDOWN;
export const PROXY = { uid: 1337, gid: 1337, container: 'istio-proxy' } as const;

export type Counters = Record<CounterName, bigint>;

export interface DatapathNode {
  node: SandboxNode;
  loc: DatapathLocation;
  mlpeer: string;
  mlproxy: string;
}

/**
 * A node with its own prefix and subnets (10.213.<octet>.0/24,
 * fd00:213:<octet>::/64), the datapath installed on its cgroup root, and a
 * teardown on `t` that removes the datapath and destroys the node even when
 * the test fails.
 */
export async function datapathNode(t: Test, prefix: string, octet: number): Promise<DatapathNode> {
  for (const o of typeof bpfObject === 'string' ? [bpfObject] : [bpfObject.path, bpfObject.compatPath]) {
    if (!existsSync(o)) throw new Error(`${o} is missing: run 'node scripts/build.mjs bpf'`);
  }
  const mlpeer = await buildTool('mlpeer');
  const mlproxy = await buildTool('mlproxy');
  let node: SandboxNode | undefined;
  t.teardown(async () => {
    if (node) await removeDatapath({ pinDir: node.pinDir, cgroupDir: node.cgroupRoot }).catch(() => undefined);
    await node?.destroy();
  });
  node = await createNode({ prefix, ipv4Subnet: `10.213.${octet}.0/24`, ipv6Subnet: `fd00:213:${octet}::/64` });
  const loc: DatapathLocation = { pinDir: node.pinDir, cgroupDir: node.cgroupRoot };
  return { node, loc, mlpeer, mlproxy };
}

export async function install(loc: DatapathLocation): Promise<void> {
  await installDatapath(loc, bpfObject);
}

export async function register(node: SandboxNode, pod: Pod, config: Partial<InterceptionConfig> = {}): Promise<void> {
  await registerPod(node.pinDir, {
    cgroupId: pod.cgroupId,
    ipv4: pod.ipv4,
    ipv6: pod.ipv6,
    config: encodePodConfig({ ...DEFAULT_INTERCEPTION, ...config }),
  });
}

export async function setSockmap(node: SandboxNode, on: boolean): Promise<void> {
  await writeSettings(node.pinDir, {
    proxy_uid: 0,
    proxy_gid: 0,
    outbound_port: 0,
    inbound_port: 0,
    dns_port: 0,
    flags: on ? SET_F.SOCKMAP_REDIRECT : 0,
  });
}

/** ::6 on the pod's lo, as istio does for the proxy's IPv6 inbound passthrough. */
export async function addPassthrough6(pod: Pod): Promise<void> {
  const r = await pod.run('ip', ['-6', 'addr', 'add', '::6/128', 'dev', 'lo', 'nodad']);
  if (r.exitCode !== 0 && !/exists/.test(r.stderr)) throw new Error(`ip addr add ::6 in ${pod.name}: ${r.stderr}`);
}

/** mlproxy as uid 1337 in the pod's istio-proxy container, listening. */
export async function startProxy(pod: Pod, mlproxy: string, args: readonly string[] = []): Promise<SpawnedProcess> {
  const p = await pod.spawn(mlproxy, ['--idle-timeout-ms', '20000', '--lifetime-ms', '300000', ...args], PROXY);
  await p.waitForJson((e) => e['event'] === 'listening');
  return p;
}

/** An inbound-capable proxy: passthrough from 127.0.0.6 and ::6 (added to lo). */
export async function startInboundProxy(pod: Pod, mlproxy: string): Promise<SpawnedProcess> {
  await addPassthrough6(pod);
  return startProxy(pod, mlproxy, ['--inbound-src', '127.0.0.6', '--inbound-src6', '::6']);
}

/** mlpeer server (both families) as the app uid; waits until it listens. */
export async function startServer(pod: Pod, mlpeer: string, port: number, args: readonly string[] = []): Promise<SpawnedProcess> {
  const s = await pod.spawn(mlpeer, ['server', '--port', String(port), '--idle-timeout-ms', '20000', '--lifetime-ms', '300000', ...args], APP);
  await s.waitForJson((e) => e['event'] === 'listening');
  return s;
}

export function hostPort(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** The one summary line mlpeer client prints. */
export function summary(r: RunResult): JsonObject {
  const last = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(last) as JsonObject;
  } catch {
    return { ok: false, unparsed: r.stdout, stderr: r.stderr };
  }
}

export function describe(r: RunResult): string {
  return `exit ${String(r.exitCode)}${r.timedOut ? ' (timed out)' : ''}: ${r.stdout.trim()} ${r.stderr.trim()}`.slice(0, 1500);
}

export async function counters(node: SandboxNode): Promise<Counters> {
  return readCounters(node.pinDir);
}

/** after - before, only the counters that moved. */
export function delta(before: Counters, after: Counters): Partial<Record<CounterName, number>> {
  const out: Partial<Record<CounterName, number>> = {};
  for (const k of Object.keys(after) as CounterName[]) {
    const d = after[k] - (before[k] ?? 0n);
    if (d !== 0n) out[k] = Number(d);
  }
  return out;
}

/** Poll until `pred` holds or `timeoutMs` passes; returns the last value. */
export async function until<T>(get: () => Promise<T>, pred: (v: T) => boolean, timeoutMs = 3000, stepMs = 50): Promise<T> {
  const end = Date.now() + timeoutMs;
  let v = await get();
  while (!pred(v) && Date.now() < end) {
    await sleep(stepMs);
    v = await get();
  }
  return v;
}

export async function sockPairs(node: SandboxNode): Promise<number> {
  return mapEntryCount(node.pinDir, 'ml_sock_pairs');
}

export async function tupleRecords(node: SandboxNode): Promise<number> {
  return mapEntryCount(node.pinDir, 'ml_odst_tup');
}

/** One process on a connection's path, as it logs (mlproxy or an mlpeer server). */
export interface Hop {
  name: string;
  proc: SpawnedProcess;
}

/** One mlproxy / mlpeer event in a few words. */
function brief(e: JsonObject): string {
  const parts = [String(e['event'])];
  if (e['orig_dst'] !== undefined) parts.push(`to ${String(e['orig_dst'])}`);
  if (typeof e['upstream_local'] === 'string') parts.push(`from ${e['upstream_local']}`);
  if (e['bytes_up'] !== undefined) parts.push(`${String(e['bytes_up'])} B up, ${String(e['bytes_down'])} B down`);
  if (e['bytes_in'] !== undefined) parts.push(`${String(e['bytes_in'])} B in, ${String(e['bytes_out'])} B out`);
  if (e['error'] !== undefined && e['error'] !== null) parts.push(`error ${String(e['error'])}`);
  return parts.join(' ');
}

/**
 * What each process on the path logged about one connection, followed hop by
 * hop from the client's local end ("ip:port" / "[ip6]:port"): the events whose
 * `peer` is that end, then the next hop's for the `upstream_local` the proxy
 * reported (its "upstream" or "close" event). Where the trail ends says where
 * the connection stopped: never accepted, no upstream, or still relaying (an
 * accept with no close). For a failure message; bounded in size.
 */
export function connectionTrail(hops: readonly Hop[], local: string): string {
  const out: string[] = [];
  let key: string | undefined = local;
  for (const { name, proc } of hops) {
    if (key === undefined) break;
    const mine: JsonObject[] = proc.events().filter((e) => e['peer'] === key);
    if (mine.length === 0) {
      out.push(`${name}: nothing from ${key}`);
      break;
    }
    out.push(`${name}: ${mine.slice(-4).map(brief).join(', ')}`);
    const up = mine.map((e) => e['upstream_local']).filter((u): u is string => typeof u === 'string').pop();
    key = up;
  }
  return out.join(' | ').slice(0, 3000);
}

const TCP_COUNTERS = /^(TcpExt(ListenDrops|ListenOverflows|TCPChallengeACK|TCPSYNChallenge|TCPReqQFullDrop|PAWS\w+|TCPTimeWaitOverflow|TCPTimeouts|TCPSynRetrans|TCPAbort\w+|TCPBacklogDrop|TCPMinTTLDrop|TCPZeroWindowDrop|TCPRcvQDrop)|Tcp(AttemptFails|EstabResets|RetransSegs|InErrs|OutRsts)|Ip6(InDiscards|InNoRoutes|OutNoRoutes|OutDiscards)|Ip(InDiscards|OutNoRoutes))\s/;

/**
 * The TCP sockets of `pods` on `ports` (`ss -tanei`) and their netns' drop and
 * retransmit counters (`nstat`, non-zero ones): what a connection that does
 * not complete meets (a stale socket on the same 4-tuple, a full accept queue,
 * challenge ACKs). For a failure message; bounded in size.
 */
export async function tcpSnapshot(pods: readonly Pod[], ports: readonly number[]): Promise<string> {
  const filter = ['(', ...ports.flatMap((p, i) => [...(i > 0 ? ['or'] : []), 'sport', '=', `:${p}`, 'or', 'dport', '=', `:${p}`]), ')'];
  const out: string[] = [];
  for (const pod of pods) {
    const ss = await pod.run('ss', ['-taneiO', 'exclude', 'time-wait', ...filter], { timeoutMs: 10000 });
    const tw = await pod.run('ss', ['-tanH', 'state', 'time-wait', ...filter], { timeoutMs: 10000 });
    const lines = ss.stdout.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('State'));
    const twCount = tw.stdout.split('\n').filter((l) => l.trim() !== '').length;
    out.push(`${pod.name}: ${twCount} sockets in TIME-WAIT; the others (${lines.length}):\n${lines.slice(0, 80).join('\n')}${ss.stderr.trim()}`);
    const ns = await pod.run('nstat', ['-asz'], { timeoutMs: 10000 });
    const counts = ns.stdout.split('\n').filter((l) => TCP_COUNTERS.test(l) && !/\s0\s/.test(l)).map((l) => l.replace(/\s+/g, ' ').trim());
    out.push(`${pod.name}: nstat: ${counts.join(', ')}${ns.stderr.trim()}`);
  }
  return out.join('\n').slice(0, 12000);
}

/**
 * `pod.run(...)`, and if it is still running after `afterMs`, a snapshot
 * taken then (`snap`): the state of a stalled connection, for the failure
 * message.
 */
export async function runWatched(pod: Pod, cmd: string, args: readonly string[], opts: RunOptions, afterMs: number, snap: () => Promise<string>): Promise<{ r: RunResult; stalled: string }> {
  let stalled: Promise<string> = Promise.resolve('');
  const timer = setTimeout(() => {
    stalled = snap().then((s) => `still running after ${afterMs} ms:\n${s}`, (e: unknown) => `still running after ${afterMs} ms; snapshot failed: ${String(e)}`);
  }, afterMs);
  const r = await pod.run(cmd, args, opts);
  clearTimeout(timer);
  return { r, stalled: await stalled };
}
