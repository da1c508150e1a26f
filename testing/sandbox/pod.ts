// A sandbox pod: a netns with lo and eth0 (a veth whose other end is a port of
// the node's bridge), and a pod-level cgroup laid out like kubelet's cgroupfs
// driver, with one child cgroup per container for its processes.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { cgroupId, cgroupLevel, makeCgroup } from './cgroup.js';
import type { Placement, ProcessRegistry, RunOptions, RunResult, SpawnedProcess, SpawnOptions } from './procs.js';

export type Qos = 'besteffort' | 'burstable' | 'guaranteed';

export interface PodOptions {
  name: string;
  /** Default "default". */
  namespace?: string;
  /** Pod UID (names the pod cgroup); default a random UUID. */
  uid?: string;
  /** Default "besteffort". */
  qos?: Qos;
  /** Default: the node's IPv4 subnet, host index = pod index + 1. */
  ipv4?: string;
  /** Default: the node's IPv6 subnet, host index = pod index + 1. */
  ipv6?: string;
}

export interface PodSpawnOptions extends SpawnOptions {
  /** Container cgroup under the pod cgroup (made when missing); default "app". */
  container?: string;
}

export interface PodRunOptions extends RunOptions {
  container?: string;
}

export const DEFAULT_CONTAINER = 'app';
const CONTAINER_RE = /^[a-z0-9][a-z0-9_.-]{0,62}$/;

/** kubelet (cgroupfs driver): kubepods/pod<uid> for Guaranteed, kubepods/<qos>/pod<uid> otherwise. */
export function podCgroupRelPath(qos: Qos, uid: string): string {
  return qos === 'guaranteed' ? join('kubepods', `pod${uid}`) : join('kubepods', qos, `pod${uid}`);
}

export interface PodInit {
  index: number;
  name: string;
  namespace: string;
  uid: string;
  qos: Qos;
  netns: string;
  netnsPath: string;
  nodeVeth: string;
  ipv4: string;
  ipv6: string;
  ipv4PrefixLen: number;
  ipv6PrefixLen: number;
  cgroupPath: string;
  cgroup2Mount: string;
}

export class Pod {
  readonly index: number;
  readonly name: string;
  readonly namespace: string;
  readonly uid: string;
  readonly qos: Qos;
  /** Netns name (ip netns) and path (/var/run/netns/<name>). */
  readonly netns: string;
  readonly netnsPath: string;
  /** Interface name inside the pod. */
  readonly ifname = 'eth0';
  /** Node-side end of the veth (a bridge port inside the node netns). */
  readonly nodeVeth: string;
  readonly ipv4: string;
  readonly ipv6: string;
  readonly ipv4PrefixLen: number;
  readonly ipv6PrefixLen: number;
  /** Pod-level cgroup (what the CNI plugin registers). */
  readonly cgroupPath: string;
  /** Inode number of the pod cgroup dir = its cgroup id. */
  readonly cgroupId: bigint;
  /** Depth of the pod cgroup below the cgroup2 root (for bpf_get_current_ancestor_cgroup_id). */
  readonly cgroupLevel: number;
  readonly #procs: ProcessRegistry;

  constructor(init: PodInit, procs: ProcessRegistry) {
    this.index = init.index;
    this.name = init.name;
    this.namespace = init.namespace;
    this.uid = init.uid;
    this.qos = init.qos;
    this.netns = init.netns;
    this.netnsPath = init.netnsPath;
    this.nodeVeth = init.nodeVeth;
    this.ipv4 = init.ipv4;
    this.ipv6 = init.ipv6;
    this.ipv4PrefixLen = init.ipv4PrefixLen;
    this.ipv6PrefixLen = init.ipv6PrefixLen;
    this.cgroupPath = makeCgroup(init.cgroupPath);
    this.cgroupId = cgroupId(this.cgroupPath);
    this.cgroupLevel = cgroupLevel(init.cgroup2Mount, this.cgroupPath);
    this.#procs = procs;
    this.containerCgroup(DEFAULT_CONTAINER);
  }

  /** The container cgroup `<pod cgroup>/<name>`, made when missing. */
  containerCgroup(name: string = DEFAULT_CONTAINER): string {
    if (!CONTAINER_RE.test(name)) throw new Error(`bad container name '${name}'`);
    const dir = join(this.cgroupPath, name);
    if (!existsSync(dir)) makeCgroup(dir);
    return dir;
  }

  containerCgroupId(name: string = DEFAULT_CONTAINER): bigint {
    return cgroupId(this.containerCgroup(name));
  }

  placement(container: string = DEFAULT_CONTAINER): Placement {
    return { netnsPath: this.netnsPath, cgroupDir: this.containerCgroup(container) };
  }

  /** A long-running process in this pod's netns and container cgroup, as uid/gid (default 0). */
  spawn(cmd: string, args: readonly string[] = [], opts: PodSpawnOptions = {}): Promise<SpawnedProcess> {
    return this.#procs.spawn(this.placement(opts.container), cmd, args, opts);
  }

  /** A process that runs to completion (default timeout 30 s). */
  run(cmd: string, args: readonly string[] = [], opts: PodRunOptions = {}): Promise<RunResult> {
    return this.#procs.run(this.placement(opts.container), cmd, args, opts);
  }
}
