// What the reconcile loop should do, from what the node's runtime says runs on
// it and the attachment records meshlane holds. Pure: the caller gathers the
// inputs (runtime, records, which pod cgroups exist) and carries the plan out.
//
// - register: a ready sandbox of a sidecar pod (the same rules as the plugin's
//   ADD) with no record: meshlane was not in the chain when it started. The
//   list decides from the annotations; registrationTarget() then checks the
//   runtime's detail of that one sandbox (netns, IPs, host network).
// - drop: a record whose pod is gone (its pod cgroup no longer exists, or the
//   runtime no longer has its sandbox ready): the DEL that would have removed
//   it never came, because the pod's cached CNI config had no meshlane entry.
//   A record the runtime does not know is dropped only after a grace period,
//   since the plugin writes it during RunPodSandbox, before the runtime lists
//   the sandbox.
// A registration is never dropped for a pod that still runs: when the runtime
// cannot be asked, only records whose pod cgroup is gone are dropped, and a
// record that shares its pod cgroup with a live one only loses its record and
// tc filters, never the live pod's map entries.
import { decideSidecar, PodInputError, podInfoFromAnnotations, type PodInfo } from '../mesh/index.js';
import type { AttachmentRecord } from './records.js';

/** The interface kubelet's runtimes name the pod's network (CNI_IFNAME). */
export const POD_IFNAME = 'eth0';
/** How old a record the runtime does not list must be before it counts as stale. */
export const DEFAULT_UNKNOWN_GRACE_MS = 120_000;

/** A sandbox as the runtime lists it (CRI ListPodSandbox). */
export interface ObservedSandbox {
  id: string;
  namespace: string;
  name: string;
  uid: string;
  ready: boolean;
  annotations: Record<string, string>;
}

/** What the runtime says of one sandbox in detail (CRI PodSandboxStatus). */
export interface SandboxDetail {
  ready: boolean;
  hostNetwork: boolean;
  /** The pod's IPs on eth0. */
  ips: string[];
  /** The sandbox's netns path; undefined when the runtime did not say. */
  netns: string | undefined;
}

export interface ReconcileInput {
  /** undefined: the runtime could not be asked this round. */
  sandboxes: readonly ObservedSandbox[] | undefined;
  records: readonly AttachmentRecord[];
  /** Does this pod cgroup directory still exist? */
  cgroupExists: (path: string) => boolean;
  excludeNamespaces: readonly string[];
  now: number;
  unknownGraceMs?: number;
}

/** A sidecar pod to register, once its detail (registrationTarget) allows it. */
export interface Registration {
  sandbox: ObservedSandbox;
  pod: PodInfo;
}

/** What the registration of one candidate needs from the runtime's detail, or why it cannot go on. */
export function registrationTarget(detail: SandboxDetail): { netns: string; ips: string[] } | { skip: string } {
  if (!detail.ready) return { skip: 'its sandbox is no longer ready' };
  if (detail.hostNetwork) return { skip: 'it runs in the node network namespace (hostNetwork), which istio-cni leaves alone too' };
  if (!detail.netns) return { skip: 'the runtime does not say where its network namespace is' };
  if (detail.ips.length === 0) return { skip: 'the runtime reports no IP for it' };
  return { netns: detail.netns, ips: detail.ips };
}

export type DropReason = 'pod cgroup gone' | 'sandbox not ready' | 'sandbox unknown to the runtime';

export interface Drop {
  record: AttachmentRecord;
  reason: DropReason;
  /** Another live record has the same pod cgroup: remove only the record and its tc filters. */
  keepMaps: boolean;
}

export interface Skip {
  sandbox: Pick<ObservedSandbox, 'id' | 'namespace' | 'name'>;
  reason: string;
}

export interface ReconcilePlan {
  register: Registration[];
  drop: Drop[];
  /** Sidecar pods (or pods that may be) meshlane leaves alone this round, and why. */
  skipped: Skip[];
}

function staleReason(rec: AttachmentRecord, byId: ReadonlyMap<string, ObservedSandbox> | undefined, input: ReconcileInput): DropReason | undefined {
  if (!input.cgroupExists(rec.cgroupPath)) return 'pod cgroup gone';
  if (!byId) return undefined;
  const sb = byId.get(rec.containerId);
  if (sb) return sb.ready ? undefined : 'sandbox not ready';
  const created = Date.parse(rec.createdAt);
  const grace = input.unknownGraceMs ?? DEFAULT_UNKNOWN_GRACE_MS;
  // A record of unreadable age is treated as new: the cgroup check removes it once the pod is gone.
  return Number.isFinite(created) && input.now - created > grace ? 'sandbox unknown to the runtime' : undefined;
}

export function planReconcile(input: ReconcileInput): ReconcilePlan {
  const byId = input.sandboxes ? new Map(input.sandboxes.map((s) => [s.id, s])) : undefined;
  const drop: Drop[] = [];
  const live: AttachmentRecord[] = [];
  for (const rec of input.records) {
    const reason = staleReason(rec, byId, input);
    if (reason) drop.push({ record: rec, reason, keepMaps: false });
    else live.push(rec);
  }
  const liveCgroups = new Set(live.map((r) => r.cgroupId));
  for (const d of drop) d.keepMaps = liveCgroups.has(d.record.cgroupId);

  const register: Registration[] = [];
  const skipped: Skip[] = [];
  const recorded = new Set(input.records.map((r) => `${r.containerId}@${r.ifname}`));
  const livePods = new Set(live.map((r) => r.podUid));
  for (const sb of input.sandboxes ?? []) {
    if (!sb.ready || recorded.has(`${sb.id}@${POD_IFNAME}`)) continue;
    if (!sb.namespace || !sb.name || !sb.uid) continue; // not a Kubernetes pod
    let pod: PodInfo;
    try {
      pod = podInfoFromAnnotations(sb.namespace, sb.name, sb.annotations);
    } catch (err) {
      if (!(err instanceof PodInputError)) throw err;
      skipped.push({ sandbox: sb, reason: `its annotations cannot be read: ${err.message}` });
      continue;
    }
    const decision = decideSidecar(pod, { excludeNamespaces: input.excludeNamespaces });
    if (decision.meshed === false) continue;
    if (decision.meshed === 'unknown') {
      skipped.push({ sandbox: sb, reason: `its annotations do not decide (${decision.reason}); its next CNI ADD will` });
      continue;
    }
    if (livePods.has(sb.uid)) {
      skipped.push({ sandbox: sb, reason: 'its pod is registered under another sandbox' });
      continue;
    }
    register.push({ sandbox: sb, pod: { ...pod, uid: sb.uid } });
  }
  return { register, drop, skipped };
}
