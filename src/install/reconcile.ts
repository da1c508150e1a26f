// The installer's reconcile round: ask the node's runtime which pod sandboxes
// run, plan (node/reconcile-plan.ts), then register the sidecar pods that
// started while meshlane was not in the chain and drop the records of pods
// that are gone. Registration is the plugin's own (node/registration.ts),
// under the plugin's lock, so a CNI ADD or DEL running at the same time and a
// round never interleave their writes.
//
// The source of truth is the runtime's CRI socket (containerd, CRI-O): it
// knows each sandbox's id (the CNI_CONTAINERID the runtime's own DEL and GC
// will name), netns and IPs, and needs no Kubernetes API permission.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { criClient, CriError, DEFAULT_CRI_SOCKETS, type CriClient } from '../cri/client.js';
import { netnsFromInfo } from '../cri/messages.js';
import { errorMessage } from '../describe-error.js';
import type { Logger } from '../log/logger.js';
import { isIPv4, isIPv6 } from 'node:net';
import type { NodePaths } from '../node/paths.js';
import { planReconcile, registrationTarget, POD_IFNAME, type Drop, type Registration } from '../node/reconcile-plan.js';
import { listRecords, readRecord, removeRecord } from '../node/records.js';
import { buildRecord, detachAttachment, registerAttachment, unregisterAttachment } from '../node/registration.js';
import { stateLockPath } from '../node/state-lock.js';
import { writeFileAtomic } from '../sys/atomic-write.js';
import { withLock } from '../sys/lock.js';
import { mkdirp } from '../sys/mkdirp.js';
import { isSystemError } from '../describe-error.js';
import { isJsonObject } from '../json/value.js';

const LOCK_TIMEOUT_MS = 20_000;

/** What the rounds did since the state dir was made (kept in <state dir>/reconcile.json for `meshlane status`). */
export interface ReconcileTotals {
  /** Sidecar pods registered by a round, not at their CNI ADD. */
  lateRegistrations: number;
  /** Records (and their map entries) of gone pods removed by a round. */
  staleRemoved: number;
  /** Failed attempts (registration or removal); each is retried next round. */
  failures: number;
  lastRound?: string;
  /** Why the last round could not ask the runtime, if it could not. */
  runtimeProblem?: string;
}

export interface RoundReport {
  registered: string[];
  dropped: string[];
  skipped: string[];
  failed: string[];
  runtime: 'asked' | 'unavailable' | 'none';
}

export function totalsPath(stateDir: string): string {
  return join(stateDir, 'reconcile.json');
}

export function readTotals(stateDir: string): ReconcileTotals {
  const zero: ReconcileTotals = { lateRegistrations: 0, staleRemoved: 0, failures: 0 };
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(totalsPath(stateDir), 'utf8'));
  } catch (err) {
    // Not written yet, unreadable or not JSON: the totals start again from zero.
    if (!isSystemError(err) && !(err instanceof SyntaxError)) throw err;
    return zero;
  }
  if (!isJsonObject(doc)) return zero;
  const v = doc as Partial<ReconcileTotals>;
  const n = (x: unknown): number => (typeof x === 'number' && Number.isSafeInteger(x) && x >= 0 ? x : 0);
  const out: ReconcileTotals = { lateRegistrations: n(v.lateRegistrations), staleRemoved: n(v.staleRemoved), failures: n(v.failures) };
  if (typeof v.lastRound === 'string') out.lastRound = v.lastRound;
  if (typeof v.runtimeProblem === 'string') out.runtimeProblem = v.runtimeProblem;
  return out;
}

/** The CRI socket to use: the one given ("none" turns the runtime off), else the first default that exists. */
export function chooseCriSocket(given: string | undefined, exists: (p: string) => boolean = existsSync): string | undefined {
  if (given === 'none') return undefined;
  if (given) return given;
  return DEFAULT_CRI_SOCKETS.find((p) => exists(p));
}

export interface ReconcilerOptions {
  paths: NodePaths;
  excludeNamespaces: readonly string[];
  /** undefined: no runtime to ask; only records of gone pod cgroups are dropped. */
  criSocket: string | undefined;
  log: Logger;
  unknownGraceMs?: number;
}

const podName = (ns: string, name: string): string => `${ns}/${name}`;

export class Reconciler {
  private readonly cri: CriClient | undefined;
  private readonly log: Logger;
  totals: ReconcileTotals;

  constructor(private readonly opts: ReconcilerOptions) {
    this.cri = opts.criSocket ? criClient(opts.criSocket) : undefined;
    this.log = opts.log;
    this.totals = readTotals(opts.paths.stateDir);
    if (!this.cri) this.totals.runtimeProblem = 'no CRI socket given or found';
  }

  close(): void {
    this.cri?.close();
  }

  async round(now = Date.now()): Promise<RoundReport> {
    const report: RoundReport = { registered: [], dropped: [], skipped: [], failed: [], runtime: this.cri ? 'asked' : 'none' };
    let sandboxes;
    if (this.cri) {
      try {
        sandboxes = await this.cri.listPodSandboxes();
        delete this.totals.runtimeProblem;
      } catch (err) {
        if (!(err instanceof CriError)) throw err;
        report.runtime = 'unavailable';
        if (this.totals.runtimeProblem !== err.message) this.log.warn('cannot list the pod sandboxes; only records of gone pod cgroups are checked', { error: err.message });
        this.totals.runtimeProblem = err.message;
      }
    }
    const { records, problems } = listRecords(this.opts.paths.stateDir);
    for (const p of problems) this.log.warn('unreadable attachment record left alone', { problem: p });
    const plan = planReconcile({
      sandboxes: sandboxes?.map((s) => ({ id: s.id, namespace: s.namespace, name: s.name, uid: s.uid, ready: s.state === 'ready', annotations: s.annotations })),
      records,
      cgroupExists: (p) => existsSync(p),
      excludeNamespaces: this.opts.excludeNamespaces,
      now,
      ...(this.opts.unknownGraceMs !== undefined ? { unknownGraceMs: this.opts.unknownGraceMs } : {}),
    });
    for (const s of plan.skipped) {
      report.skipped.push(`${podName(s.sandbox.namespace, s.sandbox.name)}: ${s.reason}`);
      this.log.debug('sidecar pod left for its next CNI ADD', { pod: podName(s.sandbox.namespace, s.sandbox.name), sandbox: s.sandbox.id, reason: s.reason });
    }
    for (const d of plan.drop) await this.drop(d, report);
    for (const r of plan.register) await this.register(r, report);
    this.totals.lateRegistrations += report.registered.length;
    this.totals.staleRemoved += report.dropped.length;
    this.totals.failures += report.failed.length;
    this.totals.lastRound = new Date(now).toISOString();
    this.saveTotals();
    return report;
  }

  private saveTotals(): void {
    try {
      mkdirp(this.opts.paths.stateDir, 0o700);
      writeFileAtomic(totalsPath(this.opts.paths.stateDir), `${JSON.stringify(this.totals)}\n`, 0o600);
    } catch (err) {
      this.log.warn('cannot save the reconcile totals', { error: errorMessage(err) });
    }
  }

  /** One failed registration or removal: counted, logged, retried by the next round. */
  private failed(report: RoundReport, what: string, pod: string, sandbox: string, err: unknown): void {
    report.failed.push(`${pod}: ${errorMessage(err)}`);
    this.log.error(`${what}; retrying next round`, { pod, sandbox, error: errorMessage(err) });
  }

  private locked<T>(body: () => Promise<T>): Promise<T> {
    mkdirp(this.opts.paths.stateDir, 0o700);
    return withLock(stateLockPath(this.opts.paths.stateDir), LOCK_TIMEOUT_MS, body);
  }

  private async drop(d: Drop, report: RoundReport): Promise<void> {
    const rec = d.record;
    const who = podName(rec.namespace, rec.name);
    try {
      const done = await this.locked(async () => {
        // A DEL may have come since the list: then there is nothing left to do.
        if (!readRecord(this.opts.paths.stateDir, rec.containerId, rec.ifname)) return false;
        if (d.keepMaps) {
          await detachAttachment(rec, this.log).catch((err: unknown) => this.log.warn('detaching the inbound programs of a stale record failed', { pod: who, error: errorMessage(err) }));
          removeRecord(this.opts.paths.stateDir, rec.containerId, rec.ifname);
        } else {
          await unregisterAttachment(this.opts.paths, rec, this.log);
        }
        return true;
      });
      if (!done) return;
      report.dropped.push(who);
      this.log.info('removed the registration of a gone pod', { pod: who, sandbox: rec.containerId, reason: d.reason, keptMaps: d.keepMaps });
    } catch (err) {
      this.failed(report, 'cannot remove the registration of a gone pod', who, rec.containerId, err);
    }
  }

  private async register(r: Registration, report: RoundReport): Promise<void> {
    const sb = r.sandbox;
    const who = podName(sb.namespace, sb.name);
    const cri = this.cri;
    if (!cri) return;
    try {
      const st = await cri.podSandboxStatus(sb.id);
      const where = netnsFromInfo(st.info);
      const target = registrationTarget({
        ready: st.state === 'ready',
        hostNetwork: st.hostNetwork,
        ips: st.ips,
        netns: where === undefined ? undefined : 'path' in where ? where.path : `/proc/${where.pid}/ns/net`,
      });
      if ('skip' in target) {
        report.skipped.push(`${who}: ${target.skip}`);
        this.log.info('sidecar pod not registered late', { pod: who, sandbox: sb.id, reason: target.skip });
        return;
      }
      const at = { containerId: sb.id, ifname: POD_IFNAME, netns: target.netns, log: this.log };
      const ips = { ipv4: target.ips.find((ip) => isIPv4(ip)), ipv6: target.ips.find((ip) => isIPv6(ip)) };
      const done = await this.locked(async () => {
        // An ADD may have come since the list (the entry is back in the chain): it did the work.
        if (readRecord(this.opts.paths.stateDir, sb.id, POD_IFNAME)) return false;
        const rec = buildRecord(at, this.opts.paths, r.pod, { namespace: sb.namespace, name: sb.name, uid: sb.uid }, ips);
        rec.registeredBy = 'reconcile';
        await registerAttachment(this.opts.paths, rec, this.log);
        return true;
      });
      if (!done) return;
      report.registered.push(who);
      this.log.info('registered a sidecar pod that started while meshlane was not in the chain', { pod: who, sandbox: sb.id, netns: target.netns, ...ips });
    } catch (err) {
      this.failed(report, 'cannot register a sidecar pod late', who, sb.id, err);
    }
  }
}
