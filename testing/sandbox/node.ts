// A sandbox "node" for kernel tests: a cgroup v2 subtree (the node cgroup
// root, where a test attaches the datapath), a bpffs pin dir, a state dir, and
// a netns of its own holding a bridge; pods are netns + veth to that bridge +
// kubelet-style cgroups. Everything is named from one run prefix (the caller's
// file prefix and a run tag, see names.ts and runs.ts), removed by destroy();
// create() first removes what runs that are no longer alive left behind. The
// host netns gets no address, link or route.
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { canonicalAddress, hostAddress, inSubnet, parseSubnet, type Subnet } from './addr.js';
import { ensureBpffs, makePinDir, removePinDir } from './bpffs.js';
import { cgroup2Mount, cgroupId, makeCgroup, removeCgroupTree } from './cgroup.js';
import { addNetns, ip, listLinks, listNetns } from './netns.js';
import { checkFilePrefix, isSandboxName, MAX_POD_INDEX, runPrefixOf, sandboxNames, stateDirOf, type SandboxNames } from './names.js';
import { BPFFS } from './bpffs.js';
import { claimRunPrefix, leasedPrefixes, releaseRunPrefix, runAlive } from './runs.js';
import { Pod, podCgroupRelPath, type PodOptions } from './pod.js';
import { ProcessRegistry, type Placement, type RunOptions, type RunResult, type SpawnedProcess, type SpawnOptions } from './procs.js';
import { buildTool } from './tools.js';

export interface NodeOptions {
  /** The caller's file prefix: 'ml' + 3 of [a-z0-9], one per test file; the node's names add a run tag. */
  prefix: string;
  /** Default 10.213.100.0/24. */
  ipv4Subnet?: string;
  /** Default fd00:213:100::/64. */
  ipv6Subnet?: string;
}

export const DEFAULT_IPV4_SUBNET = '10.213.100.0/24';
export const DEFAULT_IPV6_SUBNET = 'fd00:213:100::/64';
const UID_RE = /^[A-Za-z0-9-]{1,64}$/;
const NAME_RE = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;

function netnsPath(name: string): string {
  return `/var/run/netns/${name}`;
}

async function errorsOf(steps: Array<() => Promise<void> | void>): Promise<unknown[]> {
  const errors: unknown[] = [];
  for (const step of steps) {
    try {
      await step();
    } catch (err) {
      errors.push(err);
    }
  }
  return errors;
}

function throwAll(what: string, errors: unknown[]): void {
  if (errors.length === 0) return;
  const text = errors.map((e) => (e instanceof Error ? e.message : String(e))).join('; ');
  throw new Error(`${what}: ${text}`);
}

/**
 * No IPv6 duplicate address detection in a sandbox netns (set before its
 * interfaces exist), so global and link-local addresses are usable at once.
 */
async function noDad(ns: string): Promise<void> {
  for (const scope of ['all', 'default']) {
    await execa('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-w', `net.ipv6.conf.${scope}.accept_dad=0`]);
  }
}

export class SandboxNode {
  readonly prefix: string;
  readonly names: SandboxNames;
  /** Where cgroup2 is mounted on this machine. */
  readonly cgroup2Mount: string;
  /** The node cgroup root: <cgroup2 mount>/<prefix>. Attach the datapath here. */
  readonly cgroupRoot: string;
  readonly cgroupRootId: bigint;
  /** <root>/kubepods: parent of every pod cgroup. */
  readonly kubepodsCgroup: string;
  /** <root>/system: a cgroup below the root but outside kubepods, for processes of no pod. */
  readonly systemCgroup: string;
  /** /sys/fs/bpf/<prefix> */
  readonly pinDir: string;
  /** <os.tmpdir()>/meshlane-sandbox-<prefix> */
  readonly stateDir: string;
  /** Netns holding the bridge; also where node-level (non-pod) processes run. */
  readonly netns: string;
  readonly netnsPath: string;
  readonly bridge: string;
  readonly subnet4: Subnet;
  readonly subnet6: Subnet;
  /** Bridge addresses (host index 1), the pods' default gateways. */
  readonly gateway4: string;
  readonly gateway6: string;
  readonly #procs: ProcessRegistry;
  readonly #pods = new Map<number, Pod>();
  #destroyed = false;

  private constructor(prefix: string, names: SandboxNames, mount: string, subnet4: Subnet, subnet6: Subnet, pinDir: string, procs: ProcessRegistry) {
    this.prefix = prefix;
    this.names = names;
    this.cgroup2Mount = mount;
    this.cgroupRoot = join(mount, names.dirName);
    this.kubepodsCgroup = join(this.cgroupRoot, 'kubepods');
    this.systemCgroup = join(this.cgroupRoot, 'system');
    for (const d of [this.kubepodsCgroup, join(this.kubepodsCgroup, 'besteffort'), join(this.kubepodsCgroup, 'burstable'), this.systemCgroup]) {
      makeCgroup(d);
    }
    this.cgroupRootId = cgroupId(this.cgroupRoot);
    this.pinDir = pinDir;
    this.stateDir = names.stateDir;
    this.netns = names.nodeNetns;
    this.netnsPath = netnsPath(names.nodeNetns);
    this.bridge = names.bridge;
    this.subnet4 = subnet4;
    this.subnet6 = subnet6;
    this.gateway4 = hostAddress(subnet4, 1);
    this.gateway6 = hostAddress(subnet6, 1);
    this.#procs = procs;
  }

  /** Make a sandbox node under a fresh run prefix (removing what dead runs of this file prefix left first). */
  static async create(opts: NodeOptions): Promise<SandboxNode> {
    if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
      throw new Error('a sandbox node needs root (it makes netns, cgroups and bpffs pins)');
    }
    checkFilePrefix(opts.prefix);
    const subnet4 = parseSubnet(opts.ipv4Subnet ?? DEFAULT_IPV4_SUBNET);
    const subnet6 = parseSubnet(opts.ipv6Subnet ?? DEFAULT_IPV6_SUBNET);
    if (subnet4.family !== 4 || subnet6.family !== 6) throw new Error('ipv4Subnet must be IPv4 and ipv6Subnet IPv6');
    const mount = cgroup2Mount();
    const mlexec = await buildTool('mlexec');
    await removeStaleRuns(opts.prefix);
    const prefix = claimRunPrefix(opts.prefix);
    const names = sandboxNames(prefix);
    try {
      makeCgroup(join(mount, names.dirName));
      await ensureBpffs();
      const pinDir = makePinDir(names.dirName);
      mkdirSync(names.stateDir, { recursive: true, mode: 0o700 });
      const node = new SandboxNode(prefix, names, mount, subnet4, subnet6, pinDir, new ProcessRegistry(mlexec));
      await node.#makeBridge();
      return node;
    } catch (err) {
      await SandboxNode.cleanupPrefix(prefix)
        .then(() => releaseRunPrefix(prefix))
        .catch(() => undefined);
      throw err;
    }
  }

  async #makeBridge(): Promise<void> {
    const ns = this.netns;
    await addNetns(ns);
    await noDad(ns);
    await ip(['-n', ns, 'link', 'add', 'name', this.bridge, 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0']);
    await ip(['-n', ns, 'addr', 'add', `${this.gateway4}/${this.subnet4.prefixLen}`, 'dev', this.bridge]);
    await ip(['-n', ns, '-6', 'addr', 'add', `${this.gateway6}/${this.subnet6.prefixLen}`, 'dev', this.bridge, 'nodad']);
    await ip(['-n', ns, 'link', 'set', this.bridge, 'up']);
  }

  /**
   * Remove everything a sandbox with this prefix may have left: processes in
   * its cgroup subtree (by PID), the pin dir, the cgroup subtree, its netns
   * and links (exact names of the scheme only), the state dir.
   */
  static async cleanupPrefix(prefix: string): Promise<void> {
    const names = sandboxNames(prefix);
    let mount: string | undefined;
    try {
      mount = cgroup2Mount();
    } catch {
      mount = undefined;
    }
    const errors = await errorsOf([
      () => (mount === undefined ? undefined : removeCgroupTree(join(mount, names.dirName))),
      () => removePinDir(names.dirName),
      async () => {
        for (const ns of await listNetns()) {
          if (isSandboxName(prefix, ns)) await ip(['netns', 'del', ns]).catch(async (err: unknown) => {
            if ((await listNetns()).includes(ns)) throw err; // gone meanwhile (another cleanup) is fine
          });
        }
      },
      async () => {
        for (const link of await listLinks()) {
          if (isSandboxName(prefix, link)) await ip(['link', 'del', link]).catch(async (err: unknown) => {
            if ((await listLinks()).includes(link)) throw err; // a veth goes with its peer's netns
          });
        }
      },
      () => rmSync(names.stateDir, { recursive: true, force: true }),
    ]);
    throwAll(`cleanup of sandbox '${prefix}'`, errors);
  }

  get pods(): readonly Pod[] {
    return [...this.#pods.values()];
  }

  /** A pod: netns <prefix>p<i> with eth0 on the bridge, and its kubelet-style cgroups. */
  async addPod(opts: PodOptions): Promise<Pod> {
    if (this.#destroyed) throw new Error('the node is destroyed');
    if (!NAME_RE.test(opts.name)) throw new Error(`bad pod name '${opts.name}'`);
    const namespace = opts.namespace ?? 'default';
    if (!NAME_RE.test(namespace)) throw new Error(`bad namespace '${namespace}'`);
    const uid = opts.uid ?? randomUUID();
    if (!UID_RE.test(uid)) throw new Error(`bad pod uid '${uid}'`);
    const qos = opts.qos ?? 'besteffort';
    let index = 1;
    while (this.#pods.has(index)) index++;
    if (index > MAX_POD_INDEX) throw new Error(`at most ${MAX_POD_INDEX} pods per sandbox node`);
    const ipv4 = canonicalAddress(opts.ipv4 ?? hostAddress(this.subnet4, index + 1));
    const ipv6 = canonicalAddress(opts.ipv6 ?? hostAddress(this.subnet6, index + 1));
    if (!inSubnet(this.subnet4, ipv4) || !inSubnet(this.subnet6, ipv6)) {
      throw new Error(`pod addresses ${ipv4}, ${ipv6} must be inside ${this.subnet4.cidr} and ${this.subnet6.cidr}`);
    }
    const used = [this.gateway4, this.gateway6, ...this.pods.flatMap((p) => [p.ipv4, p.ipv6])];
    if (used.includes(ipv4) || used.includes(ipv6)) throw new Error(`address ${ipv4} or ${ipv6} already in use on this node`);
    if (this.pods.some((p) => p.uid === uid)) throw new Error(`pod uid ${uid} already in use`);

    const ns = this.names.podNetns(index);
    const veth = this.names.podVeth(index);
    const cgroupPath = join(this.cgroupRoot, podCgroupRelPath(qos, uid));
    try {
      const nsPath = await addNetns(ns);
      await noDad(ns);
      await ip(['-n', this.netns, 'link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      await ip(['-n', this.netns, 'link', 'set', veth, 'master', this.bridge, 'up']);
      await ip(['-n', ns, 'addr', 'add', `${ipv4}/${this.subnet4.prefixLen}`, 'dev', 'eth0']);
      await ip(['-n', ns, '-6', 'addr', 'add', `${ipv6}/${this.subnet6.prefixLen}`, 'dev', 'eth0', 'nodad']);
      await ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
      await ip(['-n', ns, 'route', 'add', 'default', 'via', this.gateway4, 'dev', 'eth0']);
      await ip(['-n', ns, '-6', 'route', 'add', 'default', 'via', this.gateway6, 'dev', 'eth0']);
      await this.#waitLowerUp(ns, 'eth0');
      const pod = new Pod(
        {
          index, name: opts.name, namespace, uid, qos, netns: ns, netnsPath: nsPath, nodeVeth: veth,
          ipv4, ipv6, ipv4PrefixLen: this.subnet4.prefixLen, ipv6PrefixLen: this.subnet6.prefixLen,
          cgroupPath, cgroup2Mount: this.cgroup2Mount,
        },
        this.#procs,
      );
      this.#pods.set(index, pod);
      return pod;
    } catch (err) {
      await errorsOf([
        () => removeCgroupTree(cgroupPath),
        () => ip(['-n', this.netns, 'link', 'del', veth]).then(() => undefined),
        () => ip(['netns', 'del', ns]).then(() => undefined),
      ]);
      throw err;
    }
  }

  async #waitLowerUp(ns: string, dev: string): Promise<void> {
    for (let i = 0; i < 100; i++) {
      const out = await ip(['-n', ns, '-o', 'link', 'show', 'dev', dev]);
      if (/[<,]LOWER_UP[,>]/.test(out)) return;
      await sleep(20);
    }
    throw new Error(`${dev} in netns ${ns} did not come up within 2 s`);
  }

  /** Kill the pod's processes (by PID), remove its cgroups, veth and netns. */
  async removePod(pod: Pod): Promise<void> {
    const errors = await errorsOf([
      () => removeCgroupTree(pod.cgroupPath),
      async () => {
        await ip(['-n', this.netns, 'link', 'del', pod.nodeVeth]).catch(() => undefined);
      },
      async () => {
        if ((await listNetns()).includes(pod.netns)) await ip(['netns', 'del', pod.netns]);
      },
    ]);
    this.#pods.delete(pod.index);
    throwAll(`removing pod ${pod.name}`, errors);
  }

  /** Node-level placement: the node netns and <root>/system (below the root, in no pod). */
  placement(): Placement {
    return { netnsPath: this.netnsPath, cgroupDir: this.systemCgroup };
  }

  /** A long-running process in the node netns and <root>/system cgroup. */
  spawn(cmd: string, args: readonly string[] = [], opts: SpawnOptions = {}): Promise<SpawnedProcess> {
    return this.#procs.spawn(this.placement(), cmd, args, opts);
  }

  run(cmd: string, args: readonly string[] = [], opts: RunOptions = {}): Promise<RunResult> {
    return this.#procs.run(this.placement(), cmd, args, opts);
  }

  /** A process in any placement (e.g. a pod's netns but a cgroup outside the node root). */
  spawnIn(place: Placement, cmd: string, args: readonly string[] = [], opts: SpawnOptions = {}): Promise<SpawnedProcess> {
    return this.#procs.spawn(place, cmd, args, opts);
  }

  runIn(place: Placement, cmd: string, args: readonly string[] = [], opts: RunOptions = {}): Promise<RunResult> {
    return this.#procs.run(place, cmd, args, opts);
  }

  /** Run a command of `ip` inside the node netns (e.g. ['link', 'show']). */
  ip(args: readonly string[]): Promise<string> {
    return ip(['-n', this.netns, ...args]);
  }

  /** Kill every process started here (by PID), then remove all the node made. Safe to call twice. */
  async destroy(): Promise<void> {
    this.#destroyed = true;
    const errors = await errorsOf([() => this.#procs.killAll()]);
    this.#pods.clear();
    const cleanup = await errorsOf([() => SandboxNode.cleanupPrefix(this.prefix)]);
    // The lease goes last, and only when nothing is left: a later run removes what stays.
    if (cleanup.length === 0) releaseRunPrefix(this.prefix);
    errors.push(...cleanup);
    throwAll(`destroying sandbox node '${this.prefix}'`, errors);
  }
}

function dirEntries(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/**
 * Remove what runs that are no longer alive left behind: every leased run
 * prefix whose owner is gone, and every name of this file prefix's scheme
 * (netns, links, cgroup dirs, pin dirs, state dirs) whose run holds no live lease.
 * A live run's names are never touched.
 */
export async function removeStaleRuns(filePrefix: string): Promise<string[]> {
  checkFilePrefix(filePrefix);
  const stale = new Set(leasedPrefixes().filter((l) => !l.alive).map((l) => l.prefix));
  let mount: string | undefined;
  try {
    mount = cgroup2Mount();
  } catch {
    mount = undefined;
  }
  const stateDirPrefix = stateDirOf('');
  const names = [
    ...(await listNetns()),
    ...(await listLinks()),
    ...(mount ? dirEntries(mount) : []),
    ...dirEntries(BPFFS),
    ...dirEntries(tmpdir()).map((d) => join(tmpdir(), d)).filter((d) => d.startsWith(stateDirPrefix)).map((d) => d.slice(stateDirPrefix.length)),
  ];
  for (const name of names) {
    const p = runPrefixOf(filePrefix, name);
    if (p && !runAlive(p)) stale.add(p);
  }
  for (const p of stale) {
    await SandboxNode.cleanupPrefix(p);
    releaseRunPrefix(p);
  }
  return [...stale];
}

export function createNode(opts: NodeOptions): Promise<SandboxNode> {
  return SandboxNode.create(opts);
}

export function cleanupPrefix(prefix: string): Promise<void> {
  return SandboxNode.cleanupPrefix(prefix);
}

/** Run `body` with a fresh node and always destroy it afterwards. */
export async function withNode<T>(opts: NodeOptions, body: (node: SandboxNode) => Promise<T>): Promise<T> {
  const node = await createNode(opts);
  try {
    return await body(node);
  } finally {
    await node.destroy();
  }
}

export { Pod } from './pod.js';
export type { PodOptions, PodSpawnOptions, PodRunOptions, Qos } from './pod.js';
export type { Placement, RunOptions, RunResult, SpawnOptions, ExitInfo, JsonObject, WaitOptions } from './procs.js';
export { SpawnedProcess } from './procs.js';
export { buildTool } from './tools.js';
export { linkNodes, type LinkOptions, type NodeLink } from './link.js';
