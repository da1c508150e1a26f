// From a sidecar pod to its entries in the maps and its attachment record, and
// back: the core that the plugin's ADD/DEL/CHECK/GC and the installer share.
import { CniError, CniErrorCode } from '../cni/errors.js';
import { podCg, podConfig } from '../bpf/layout.js';
import { ConfigLimitError, encodePodConfig } from '../bpf/pod-config.js';
import { podCgValue, readPodByCgroup, readPodConfig, registerPod, unregisterPod, type PodRegistration } from '../bpf/registry.js';
import { POD_F } from '../bpf/layout.js';
import type { Logger } from '../log/logger.js';
import { AnnotationError, dnsCapture, parseInterceptionAnnotations, proxyIdentity, type PodInfo } from '../mesh/index.js';
import { findPodCgroup } from '../sys/pod-cgroup.js';
import { NativeModuleError } from '../sys/native.js';
import { SyscallError } from '../sys/syscall-error.js';
import { attachInbound, detachInbound, inboundFilters, inboundProgramsPinned } from '../bpf/inbound.js';
import { TC_PROGRAMS } from '../bpf/names.js';
import type { NodePaths } from './paths.js';
import { datapathInstalled } from './datapath.js';
import { PluginErrorCode } from './errors.js';
import { CorruptRecordError, STATE_VERSION, readRecord, removeRecord, writeRecord, type AttachmentRecord } from './records.js';
import { errorMessage, isSystemError } from '../describe-error.js';

/** The pod interface one registration is for: what the runtime names in CNI_* (or the CRI says). */
export interface Attachment {
  containerId: string;
  ifname: string;
  netns: string;
  log: Logger;
}

export function buildRecord(
  at: Attachment,
  conf: NodePaths,
  pod: PodInfo,
  who: { namespace: string; name: string; uid: string },
  ips: { ipv4: string | undefined; ipv6: string | undefined },
): AttachmentRecord {
  let interception;
  try {
    const parsed = parseInterceptionAnnotations(pod.annotations);
    interception = parsed.config;
    for (const note of parsed.notes) at.log.warn(note, { pod: `${who.namespace}/${who.name}` });
    encodePodConfig(interception); // the limits of the maps, checked before anything is written
  } catch (err) {
    if (err instanceof AnnotationError || err instanceof ConfigLimitError || err instanceof RangeError) {
      throw new CniError(
        PluginErrorCode.InvalidAnnotation,
        `pod ${who.namespace}/${who.name}: ${err.message}`,
        'fix the annotation; meshlane does not start a sidecar pod whose interception it cannot apply',
      );
    }
    throw err;
  }
  const cg = findPodCgroup(conf.cgroupRoot, who.uid);
  if (!cg) {
    throw new CniError(
      PluginErrorCode.PodCgroupNotFound,
      `the cgroup of pod ${who.namespace}/${who.name} (uid ${who.uid}) is not under ${conf.cgroupRoot}`,
      'kubelet creates it before the sandbox; check cgroup_root in the meshlane plugin config (the cgroup v2 mount kubelet uses)',
    );
  }
  const identity = proxyIdentity(pod);
  const rec: AttachmentRecord = {
    version: STATE_VERSION,
    containerId: at.containerId,
    ifname: at.ifname,
    netns: at.netns,
    namespace: who.namespace,
    name: who.name,
    podUid: who.uid,
    cgroupPath: cg.path,
    cgroupId: cg.id.toString(),
    proxyUid: identity.uid,
    proxyGid: identity.gid,
    dnsCapture: dnsCapture(pod, conf.dnsCapture),
    interception,
    createdAt: new Date().toISOString(),
  };
  if (ips.ipv4) rec.ipv4 = ips.ipv4;
  if (ips.ipv6) rec.ipv6 = ips.ipv6;
  return rec;
}

export function registrationOf(rec: AttachmentRecord): PodRegistration {
  return {
    cgroupId: BigInt(rec.cgroupId),
    ipv4: rec.ipv4,
    ipv6: rec.ipv6,
    extraFlags: rec.dnsCapture ? POD_F.DNS_CAPTURE : 0,
    proxyUid: rec.proxyUid,
    proxyGid: rec.proxyGid,
    config: encodePodConfig(rec.interception),
  };
}

/** What a user can do about a failed syscall, by errno. */
const ERRNO_HINTS: Readonly<Record<string, string>> = {
  E2BIG: 'the map is full: too many pods registered on this node (see meshlane status)',
  ENOENT: 'a pin of the datapath is gone: check that meshlane install (the DaemonSet) runs on this node',
  EPERM: 'the plugin needs root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN) as container runtimes run it',
  EACCES: 'the plugin needs root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN) as container runtimes run it',
  ENOMEM: 'the kernel is out of memory for BPF (memlock or cgroup memory limit)',
};

function syscallCause(err: unknown): SyscallError | undefined {
  for (let e: unknown = err; e instanceof Error; e = e.cause) if (e instanceof SyscallError) return e;
  return undefined;
}

/**
 * The CNI error for a failure of the datapath's syscalls while doing `what` for
 * the pod: the operation, the map or interface and errno's name in msg, a hint in
 * details. A native module that cannot be loaded is an I/O failure (code 5).
 */
export function datapathFailure(err: unknown, what: string, pod: string, fallbackDetails?: string): CniError {
  if (err instanceof CniError) return err;
  const message = errorMessage(err);
  if (err instanceof NativeModuleError) {
    return new CniError(CniErrorCode.IoFailure, `cannot ${what} pod ${pod}: ${message}`, 'the CNI bin dir holding meshlane must be writable by the runtime and not mounted noexec');
  }
  const sc = syscallCause(err);
  if (sc) return new CniError(PluginErrorCode.RegistrationFailed, `cannot ${what} pod ${pod}: ${message}`, ERRNO_HINTS[sc.code]);
  return new CniError(PluginErrorCode.RegistrationFailed, `cannot ${what} pod ${pod}${fallbackDetails ? ` ${fallbackDetails}` : ''}`, message);
}

/** Record first (so DEL can undo a half-done ADD), then the maps; on failure both are rolled back. */
export async function registerAttachment(conf: NodePaths, rec: AttachmentRecord, log: Logger): Promise<void> {
  // A repeated ADD keeps what an earlier one added (the clsact qdisc DEL must remove).
  let earlier: AttachmentRecord | undefined;
  try {
    earlier = readRecord(conf.stateDir, rec.containerId, rec.ifname);
  } catch (err) {
    // An unreadable or corrupt earlier record is overwritten below; anything else is a bug.
    if (!(err instanceof CorruptRecordError) && !isSystemError(err)) throw err;
    earlier = undefined;
  }
  if (earlier?.tc && earlier.netns === rec.netns) rec.tc = { attached: false, addedClsact: earlier.tc.addedClsact };
  try {
    writeRecord(conf.stateDir, rec);
  } catch (err) {
    throw new CniError(PluginErrorCode.StateDir, `cannot write the attachment record in ${conf.stateDir}: ${errorMessage(err)}`, 'state_dir must be a writable host directory');
  }
  const reg = registrationOf(rec);
  try {
    await registerPod(conf.bpfPinDir, reg);
  } catch (err) {
    log.error('registration failed; rolling back', { error: errorMessage(err) });
    await unregisterPod(conf.bpfPinDir, reg).catch((e: unknown) => log.error('rollback of the maps failed', { error: errorMessage(e) }));
    removeRecord(conf.stateDir, rec.containerId, rec.ifname);
    throw datapathFailure(err, 'register', `${rec.namespace}/${rec.name}`, `in the BPF maps under ${conf.bpfPinDir}`);
  }
  // Cross-node inbound: tc programs on the pod interface. A failure undoes the whole ADD.
  try {
    if (!inboundProgramsPinned(conf.bpfPinDir)) {
      throw new Error(`the inbound programs are not pinned in ${conf.bpfPinDir}/progs (an older datapath is installed; meshlane install replaces it)`);
    }
    const res = await attachInbound(conf.bpfPinDir, { netnsPath: rec.netns, ifname: rec.ifname });
    rec.tc = { attached: true, addedClsact: res.addedClsact || (rec.tc?.addedClsact ?? false) };
    writeRecord(conf.stateDir, rec);
  } catch (err) {
    log.error('attaching the inbound programs failed; rolling back', { error: errorMessage(err) });
    await detachInbound({ netnsPath: rec.netns, ifname: rec.ifname }, rec.tc?.addedClsact ?? false).catch((e: unknown) => log.error('rollback of the tc filters failed', { error: errorMessage(e) }));
    await unregisterPod(conf.bpfPinDir, reg).catch((e: unknown) => log.error('rollback of the maps failed', { error: errorMessage(e) }));
    removeRecord(conf.stateDir, rec.containerId, rec.ifname);
    throw datapathFailure(err, `attach the inbound programs to ${rec.ifname} of`, `${rec.namespace}/${rec.name}`);
  }
}

/** Remove the tc filters ADD attached to the pod interface (a gone netns or interface is fine). */
export async function detachAttachment(rec: AttachmentRecord, log: Logger): Promise<void> {
  if (!rec.netns) return; // DEL without a netns: the interface is gone with it
  const removed = await detachInbound({ netnsPath: rec.netns, ifname: rec.ifname }, rec.tc?.addedClsact ?? false);
  if (removed.length > 0) log.info('inbound programs detached', { removed, ifname: rec.ifname });
}

/** The tc filters (best effort), the maps, then the record. With the datapath gone there is nothing in the maps to remove. */
export async function unregisterAttachment(conf: NodePaths, rec: AttachmentRecord, log: Logger): Promise<void> {
  try {
    await detachAttachment(rec, log);
  } catch (err) {
    // DEL must not keep a pod from going away; the pod's netns goes with it.
    log.warn('detaching the inbound programs failed; going on with DEL', { error: errorMessage(err), netns: rec.netns, ifname: rec.ifname });
  }
  if (datapathInstalled(conf.bpfPinDir)) {
    try {
      await unregisterPod(conf.bpfPinDir, { cgroupId: BigInt(rec.cgroupId), ipv4: rec.ipv4, ipv6: rec.ipv6 });
    } catch (err) {
      throw datapathFailure(err, 'unregister', `${rec.namespace}/${rec.name}`, `from the BPF maps under ${conf.bpfPinDir}`);
    }
  } else {
    log.info('the datapath is not installed: only the record is removed');
  }
  removeRecord(conf.stateDir, rec.containerId, rec.ifname);
}

const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b));

/** undefined when the maps hold exactly what the record says; else what differs. */
export async function registrationMatches(conf: NodePaths, rec: AttachmentRecord): Promise<string | undefined> {
  try {
    return await compareRegistration(conf, rec);
  } catch (err) {
    throw datapathFailure(err, 'check', `${rec.namespace}/${rec.name}`);
  }
}

async function compareRegistration(conf: NodePaths, rec: AttachmentRecord): Promise<string | undefined> {
  if (!datapathInstalled(conf.bpfPinDir)) return `the datapath is not installed (no maps in ${conf.bpfPinDir})`;
  const reg = registrationOf(rec);
  const cg = await readPodByCgroup(conf.bpfPinDir, reg.cgroupId);
  if (!cg) return `no entry for cgroup ${rec.cgroupId}`;
  if (!same(podCg.encode(cg), podCg.encode(podCgValue(reg)))) return `the entry for cgroup ${rec.cgroupId} differs`;
  const want = podConfig.encode(reg.config);
  for (const ip of [rec.ipv4, rec.ipv6]) {
    if (!ip) continue;
    const got = await readPodConfig(conf.bpfPinDir, ip);
    if (!got) return `no config for ${ip}`;
    if (!same(podConfig.encode(got), want)) return `the config for ${ip} differs`;
  }
  if (rec.tc?.attached && rec.netns) {
    const filters = await inboundFilters({ netnsPath: rec.netns, ifname: rec.ifname }).catch((err: unknown) => {
      throw new Error(`cannot list the tc filters on ${rec.ifname} in ${rec.netns}: ${errorMessage(err)}`);
    });
    for (const want of TC_PROGRAMS) {
      if (!filters.some((f) => f.direction === want.direction && f.progName === want.name)) {
        return `${want.name} is not attached to ${rec.ifname} (${want.direction}) in ${rec.netns}`;
      }
    }
  }
  return undefined;
}
