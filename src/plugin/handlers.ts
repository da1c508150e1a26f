// What the plugin does for each CNI command (DESIGN.md, "The CNI plugin").
//
// Failure policy: a pod the mesh owns never starts without its interception
// (ADD fails, the runtime retries); a pod the mesh does not own is never held
// back: its ADD hands prevResult on and touches nothing.
import { CniError, CniErrorCode } from '../cni/errors.js';
import { sandboxIps } from '../cni/result.js';
import type { CniHandlers, CniRequest } from '../cni/skel.js';
import { validAttachments } from '../cni/gc.js';
import { K8S_ARGS } from '../cni/env.js';
import { isPodUid } from '../sys/pod-cgroup.js';
import { acquireLock, LockTimeoutError } from '../sys/lock.js';
import { mkdirp } from '../sys/mkdirp.js';
import { preloadNative } from '../sys/native.js';
import { probeIstioRules } from '../sys/istio-rules.js';
import { parsePluginConfig, type PluginConfig } from './config.js';
import { datapathInstalled } from '../node/datapath.js';
import { readKernelRefusal } from '../node/kernel-refusal.js';
import { stateLockPath } from '../node/state-lock.js';
import { PluginErrorCode, tryAgainLater } from '../node/errors.js';
import { lookupPod } from './pod-source.js';
import { AnnotationError, interceptionMode } from '../mesh/index.js';
import { buildRecord, registrationMatches, registerAttachment, unregisterAttachment } from '../node/registration.js';
import { CorruptRecordError, listRecords, readRecord, recordsPossible, removeRecord } from '../node/records.js';
import { errorMessage } from '../describe-error.js';

const LOCK_TIMEOUT_MS = 20_000;

function lockPath(conf: PluginConfig): string {
  mkdirp(conf.stateDir, 0o700);
  return stateLockPath(conf.stateDir);
}

function stateError(conf: PluginConfig, err: unknown): CniError {
  return new CniError(
    PluginErrorCode.StateDir,
    `cannot use the state dir ${conf.stateDir}: ${errorMessage(err)}`,
    'the state dir must be a writable host directory (state_dir in the plugin config)',
  );
}

async function locked<T>(conf: PluginConfig, body: () => Promise<T>): Promise<T> {
  let release: () => void;
  try {
    release = await acquireLock(lockPath(conf), LOCK_TIMEOUT_MS);
  } catch (err) {
    if (err instanceof LockTimeoutError) throw tryAgainLater(err.message);
    throw stateError(conf, err); // no lock file possible there (a read-only or odd state_dir)
  }
  try {
    return await body();
  } finally {
    release();
  }
}

function podName(req: CniRequest): { namespace: string; name: string; uid: string | undefined } | undefined {
  const namespace = req.args.get(K8S_ARGS.namespace);
  const name = req.args.get(K8S_ARGS.name);
  if (!namespace || !name) return undefined;
  return { namespace, name, uid: req.args.get(K8S_ARGS.uid) };
}

/**
 * A TPROXY pod beside istio-cni: istio-cni ran before meshlane in the chain
 * and its rules (mangle TPROXY, nat ISTIO_OUTPUT) are in the pod's netns;
 * meshlane cannot do TPROXY, so it leaves the pod to them, untouched. "Beside
 * istio-cni" is read from the pod's own netns (Istio's chains hooked in its
 * nat table), so a pod is passed through only when it really is intercepted;
 * alone (no rules there) the ADD goes on and refuses TPROXY (code 100). The
 * nat tables are read in-process (src/sys/istio-rules.ts): no tool of the host.
 */
async function tproxyBesideIstioCni(req: CniRequest, annotations: Record<string, string>): Promise<boolean> {
  let mode;
  try {
    mode = interceptionMode(annotations);
  } catch (err) {
    if (!(err instanceof AnnotationError)) throw err;
    return false; // an invalid value: the registration refuses it with the annotation named
  }
  if (mode !== 'TPROXY') return false;
  const probe = probeIstioRules(req.netns);
  if (probe.state !== 'present') {
    req.log.info('TPROXY pod without Istio\'s rules in its netns: refusing it (meshlane alone cannot do TPROXY)', { istioRules: probe.state, detail: probe.detail });
    return false;
  }
  req.log.info('TPROXY pod beside istio-cni: passing it through untouched, Istio\'s rules in its netns intercept it', { detail: probe.detail });
  return true;
}

async function add(req: CniRequest) {
  const conf = parsePluginConfig(req.config);
  if (!req.prevResult) {
    throw new CniError(
      CniErrorCode.InvalidNetworkConfig,
      'meshlane is a chained plugin and got no prevResult: list it after the plugin that creates the pod interface',
    );
  }
  const prev = req.prevResult;
  const who = podName(req);
  if (!who) {
    req.log.info('not a Kubernetes pod (no K8S_POD_NAMESPACE/K8S_POD_NAME): passing through');
    return prev;
  }
  if (conf.excludeNamespaces.includes(who.namespace)) {
    req.log.info('namespace excluded: passing through', { namespace: who.namespace });
    return prev;
  }
  const lookup = await lookupPod(conf, req.config, who.namespace, who.name, req.log);
  if (lookup.decision.meshed !== true) {
    req.log.info('not a sidecar pod: passing through', { reason: lookup.decision.reason, source: lookup.source });
    return prev;
  }
  if (await tproxyBesideIstioCni(req, lookup.pod.annotations)) return prev;
  if (!datapathInstalled(conf.bpfPinDir)) {
    const refusal = readKernelRefusal(conf.stateDir);
    if (refusal) {
      throw tryAgainLater(
        `the sidecar pod ${who.namespace}/${who.name} cannot be intercepted on this node: ${refusal.message}`,
        'meshlane install refused this node\'s kernel; the pod waits (the runtime retries ADD) until the node runs a kernel meshlane supports',
      );
    }
    throw tryAgainLater(
      `the meshlane datapath is not installed on this node (no maps in ${conf.bpfPinDir}); the sidecar pod ${who.namespace}/${who.name} must wait for it`,
      'meshlane install (the DaemonSet) loads it; the runtime retries ADD',
    );
  }
  if (!who.uid || !isPodUid(who.uid)) {
    throw new CniError(PluginErrorCode.PodCgroupNotFound, `no valid K8S_POD_UID in CNI_ARGS for ${who.namespace}/${who.name}: meshlane finds the pod cgroup by it`);
  }
  const ips = sandboxIps(prev, req.ifname);
  const ipv4 = ips.find((i) => i.family === 4)?.address;
  const ipv6 = ips.find((i) => i.family === 6)?.address;
  if (!ipv4 && !ipv6) {
    throw new CniError(PluginErrorCode.NoPodIp, `the previous plugin's result has no IP for ${who.namespace}/${who.name}: nothing to register`);
  }
  const record = buildRecord(req, conf, lookup.pod, { ...who, uid: who.uid }, { ipv4, ipv6 });
  preloadNative(); // outside the lock, which every CNI call of the node waits for
  await locked(conf, () => registerAttachment(conf, record, req.log));
  req.log.info('registered', { ipv4, ipv6, cgroup: record.cgroupPath, cgroupId: record.cgroupId, source: lookup.source });
  return prev;
}

async function del(req: CniRequest) {
  const conf = parsePluginConfig(req.config);
  if (!recordsPossible(conf.stateDir)) {
    // ADD writes its record before anything else: without a records dir it registered nothing.
    req.log.debug('no attachment records on this node: nothing to remove', { stateDir: conf.stateDir });
    return;
  }
  preloadNative();
  await locked(conf, async () => {
    let rec;
    try {
      rec = readRecord(conf.stateDir, req.containerId, req.ifname);
    } catch (err) {
      if (err instanceof CorruptRecordError) {
        req.log.warn('unreadable attachment record removed; nothing else to undo', { error: err.message });
        removeRecord(conf.stateDir, req.containerId, req.ifname);
        return;
      }
      throw stateError(conf, err);
    }
    if (!rec) {
      req.log.debug('no attachment record: nothing to remove');
      return;
    }
    await unregisterAttachment(conf, rec, req.log);
    req.log.info('unregistered', { ipv4: rec.ipv4, ipv6: rec.ipv6, cgroupId: rec.cgroupId });
  });
}

async function check(req: CniRequest) {
  const conf = parsePluginConfig(req.config);
  const rec = readRecord(conf.stateDir, req.containerId, req.ifname);
  if (!rec) {
    const who = podName(req);
    if (!who || conf.excludeNamespaces.includes(who.namespace)) return;
    const lookup = await lookupPod(conf, req.config, who.namespace, who.name, req.log);
    if (lookup.decision.meshed === true) {
      throw new CniError(PluginErrorCode.CheckMismatch, `the sidecar pod ${who.namespace}/${who.name} has no meshlane registration`);
    }
    return;
  }
  const problem = await registrationMatches(conf, rec);
  if (problem) throw new CniError(PluginErrorCode.CheckMismatch, `the registration of ${rec.namespace}/${rec.name} differs from what ADD wrote: ${problem}`);
}

async function gc(req: CniRequest) {
  const conf = parsePluginConfig(req.config);
  const valid = validAttachments(req.config);
  if (!valid) {
    req.log.info('GC without cni.dev/valid-attachments: nothing removed');
    return;
  }
  const keep = new Set(valid.map((a) => `${a.containerID}@${a.ifname}`));
  preloadNative();
  await locked(conf, async () => {
    const { records, problems } = listRecords(conf.stateDir);
    for (const p of problems) req.log.warn('unreadable attachment record skipped', { error: p });
    for (const rec of records) {
      if (keep.has(`${rec.containerId}@${rec.ifname}`)) continue;
      await unregisterAttachment(conf, rec, req.log);
      req.log.info('garbage-collected a stale attachment', { containerId: rec.containerId, pod: `${rec.namespace}/${rec.name}` });
    }
  });
}

async function status(req: CniRequest) {
  const conf = parsePluginConfig(req.config);
  if (!datapathInstalled(conf.bpfPinDir)) {
    const refusal = readKernelRefusal(conf.stateDir);
    if (refusal) throw new CniError(CniErrorCode.PluginNotAvailable, refusal.message, 'meshlane install refused this node\'s kernel');
    throw new CniError(CniErrorCode.PluginNotAvailable, `the meshlane datapath is not installed on this node (no maps in ${conf.bpfPinDir})`, 'meshlane install (the DaemonSet) loads it');
  }
}

export const handlers: CniHandlers = { add, del, check, gc, status };
