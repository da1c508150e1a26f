// Shared pieces of the datapath kernel tests (test/kernel/datapath-*.test.ts),
// kept here because tap runs every file in test/kernel/:
// a sandbox node with the datapath attached to its cgroup root, pods
// registered as the CNI plugin would, the test proxy as uid 1337 in the
// pod's istio-proxy container, apps as uid 1000, and counter deltas.
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Test } from 'tap';
import { buildTool, createNode, type JsonObject, type Pod, type RunResult, type SandboxNode, type SpawnedProcess } from '../../testing/sandbox/node.js';
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
