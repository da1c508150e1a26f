// One pod through the CNI chain of a sandbox node, as kubelet and the runtime
// make it: the pod cgroup first (kubelet), then the sandbox netns, then every
// plugin of the conflist in order with the previous result as prevResult
// (libcni), run inside the node's netns so host-side links stay out of the host.
// DEL runs in reverse with the cached result. Or, for a pod the node already
// made (node.addPod: netns, veth, cgroups), only the plugins given, after a
// prevResult as the primary CNI would have returned it.
//
// meshlaneEntry() is the conflist entry the installer writes (src/install/entry.ts),
// for the node's paths: tests chain the plugin exactly as a node does.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { pluginEntry } from '../../src/install/entry.js';
import { INSTALL_FLAGS, parseOptions } from '../../src/install/options.js';
import { execPlugin, type Conflist, type Json, type Runtime } from './cni-chain.js';
import { addNetns } from './netns.js';
import type { SandboxNode } from './node.js';
import type { Pod } from './pod.js';
import type { Placement } from './procs.js';

export interface EntryPaths {
  /** The plugin's state dir (attachment records). */
  stateDir: string;
  /** Default: <node state dir>/meshlane.log. */
  logFile?: string;
  /** Default: a path with no kubeconfig (the plugin must decide from annotations). */
  kubeconfig?: string;
  logLevel?: 'error' | 'warn' | 'info' | 'debug';
}

/** The entry `meshlane install` writes for this node's pins and cgroup root, plus `extra` fields. */
export function meshlaneEntry(node: SandboxNode, paths: EntryPaths, extra: Json = {}): Json {
  const opts = parseOptions(
    [
      '--pin-dir', node.pinDir,
      '--cgroup-root', node.cgroupRoot,
      '--state-dir', paths.stateDir,
      '--kubeconfig', paths.kubeconfig ?? join(node.stateDir, 'no-such-kubeconfig'),
      '--log-file', paths.logFile ?? join(node.stateDir, 'meshlane.log'),
      '--log-level', paths.logLevel ?? 'debug',
    ],
    {},
    INSTALL_FLAGS,
  );
  return { ...pluginEntry(opts, node.cgroupRoot), kube_api_timeout_seconds: 2, ...extra };
}

export interface PodMeta {
  namespace: string;
  name: string;
  uid: string;
  annotations?: Record<string, string> | undefined;
}

export interface ChainPodOptions {
  /** Directories searched for plugin binaries (CNI_PATH). */
  binDirs: string[];
  containerId: string;
  /** Default eth0. */
  ifname?: string;
  /** CNI_ARGS; default the K8S_POD_* of the pod. */
  args?: Record<string, string>;
  /** runtimeConfig offered for the capabilities; default the pod's annotations (containerd's). */
  capabilityArgs?: Json;
  /** kubelet's pod cgroup, made before the sandbox (default true). */
  makeCgroup?: boolean;
}

export interface ChainPod {
  rt: Runtime;
  /** <node cgroup root>/kubepods/besteffort/pod<uid> */
  cgroupDir: string;
  netnsPath: string;
  /** Each plugin's ADD result, in chain order. */
  results: Json[];
  /** The chain's result, as libcni caches it. */
  result: Json;
  /** DEL through the chain in reverse with `cached` (default the ADD result; undefined: none, as containerd's second DEL). Throws the first failure after running every plugin. */
  del(cached?: Json | undefined): Promise<void>;
  /** CHECK through the chain with the cached result. */
  check(): Promise<void>;
  /** Where a process of `container` runs: the pod's netns and <pod cgroup>/<container> (made on first use), as the runtime places it. */
  place(container: string): Placement;
}

/** The runtime's side of a CNI call for `pod` in `netnsPath`: K8S_POD_* args and the annotations in runtimeConfig, as containerd passes them. */
function runtimeFor(node: SandboxNode, netnsPath: string, pod: PodMeta, opts: ChainPodOptions): Runtime {
  return {
    containerId: opts.containerId,
    netns: netnsPath,
    ifname: opts.ifname ?? 'eth0',
    args: opts.args ?? { IgnoreUnknown: '1', K8S_POD_NAMESPACE: pod.namespace, K8S_POD_NAME: pod.name, K8S_POD_UID: pod.uid },
    binDirs: opts.binDirs,
    capabilityArgs: opts.capabilityArgs ?? { 'io.kubernetes.cri.pod-annotations': pod.annotations ?? {} },
    runInNetns: node.netns,
  };
}

/** ADD through `plugins` in order after `prev`: each one's result; on a failure the earlier ones get their DEL, then it throws. */
export async function chainAddEach(list: Conflist, plugins: readonly Json[], rt: Runtime, prev: Json | undefined): Promise<Json[]> {
  const results: Json[] = [];
  let last = prev;
  for (const [i, p] of plugins.entries()) {
    try {
      const r = await execPlugin('ADD', list, p, rt, last);
      if (!r) throw new Error(`${String(p['type'])} ADD printed no result`);
      results.push(r);
      last = r;
    } catch (err) {
      for (const q of plugins.slice(0, i).reverse()) await execPlugin('DEL', list, q, rt, last).catch(() => undefined);
      throw err;
    }
  }
  return results;
}

function chainPod(list: Conflist, plugins: readonly Json[], rt: Runtime, cgroupDir: string, netnsPath: string, results: Json[], first: Json | undefined): ChainPod {
  const result = results[results.length - 1] ?? first ?? {};
  return {
    rt,
    cgroupDir,
    netnsPath,
    results,
    result,
    async del(cached: Json | undefined = result) {
      let failure: unknown;
      for (const p of [...plugins].reverse()) {
        try {
          await execPlugin('DEL', list, p, rt, cached);
        } catch (err) {
          failure ??= err;
        }
      }
      if (failure) throw failure;
    },
    async check() {
      for (const p of plugins) await execPlugin('CHECK', list, p, rt, result);
    },
    place(container: string): Placement {
      const dir = join(cgroupDir, container);
      mkdirSync(dir, { recursive: true });
      return { netnsPath, cgroupDir: dir };
    },
  };
}

export interface PodSandbox {
  rt: Runtime;
  cgroupDir: string;
  netnsPath: string;
}

/** What kubelet and the runtime make before any plugin runs: the pod cgroup, a fresh netns (`node.names.extra(netnsTag)`), the CNI_* of the pod. */
export async function podSandbox(node: SandboxNode, pod: PodMeta, netnsTag: string, opts: ChainPodOptions): Promise<PodSandbox> {
  const cgroupDir = join(node.cgroupRoot, 'kubepods', 'besteffort', `pod${pod.uid}`);
  if (opts.makeCgroup !== false) mkdirSync(cgroupDir, { recursive: true });
  const netnsPath = await addNetns(node.names.extra(netnsTag));
  return { rt: runtimeFor(node, netnsPath, pod, opts), cgroupDir, netnsPath };
}

/** A new pod (podSandbox) through the whole chain's ADD. */
export async function podThroughChain(node: SandboxNode, list: Conflist, pod: PodMeta, netnsTag: string, opts: ChainPodOptions): Promise<ChainPod> {
  const sb = await podSandbox(node, pod, netnsTag, opts);
  const results = await chainAddEach(list, list.plugins, sb.rt, undefined);
  return chainPod(list, list.plugins, sb.rt, sb.cgroupDir, sb.netnsPath, results, undefined);
}

/** The result a primary CNI returns for a pod the node made: its eth0 in its netns, both addresses. */
export function primaryResultOf(pod: Pod, cniVersion = '1.0.0'): Json {
  return {
    cniVersion,
    interfaces: [{ name: 'eth0', sandbox: pod.netnsPath }],
    ips: [
      { address: `${pod.ipv4}/${pod.ipv4PrefixLen}`, interface: 0 },
      { address: `${pod.ipv6}/${pod.ipv6PrefixLen}`, interface: 0 },
    ],
  };
}

/** A pod the node made (node.addPod), chained from `plugins` on: the earlier plugins' result is primaryResultOf(pod). */
export async function sandboxPodThroughChain(node: SandboxNode, list: Conflist, plugins: readonly Json[], pod: Pod, meta: Omit<PodMeta, 'uid' | 'namespace' | 'name'> & Partial<PodMeta>, opts: ChainPodOptions): Promise<ChainPod> {
  const m: PodMeta = { namespace: meta.namespace ?? pod.namespace, name: meta.name ?? pod.name, uid: meta.uid ?? pod.uid, annotations: meta.annotations };
  const rt = runtimeFor(node, pod.netnsPath, m, opts);
  const prev = primaryResultOf(pod, list.cniVersion);
  const results = await chainAddEach(list, plugins, rt, prev);
  return chainPod(list, plugins, rt, pod.cgroupPath, pod.netnsPath, results, prev);
}
