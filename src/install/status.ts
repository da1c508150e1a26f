// What `meshlane status` reports: the datapath (programs and where they are
// attached, maps and their entry counts, counters), the registered pods, and
// the CNI config. The JSON shape is stable for scripts (version field).
import { existsSync, readdirSync } from 'node:fs';
import { fromMapped16 } from '../bpf/addr.js';
import { pinnedProgram } from '../bpf/readback.js';
import { COUNTERS, POD_F, type CounterName } from '../bpf/layout.js';
import { attachedPrograms } from '../bpf/loader.js';
import { ALL_MAPS, ALL_PROGRAMS, TC_PROGRAMS, UNCOUNTED_MAPS, hooksOfLoaded, pinPaths } from '../bpf/names.js';
import { listPodsByCgroup, mapEntryCount, readCounters, readSettings } from '../bpf/registry.js';
import { listRecords, type AttachmentRecord } from '../node/records.js';
import { readKernelRefusal } from '../node/kernel-refusal.js';
import { ISTIO_CNI_TYPE } from './cniconf/files.js';
import { parseCniConfig } from './cniconf/validity.js';
import { readTotals, totalsPath, type ReconcileTotals } from './reconcile.js';
import { readSockmapRecord, type SockmapRecord } from './sockmap-state.js';
import { probeIstioRules, type IstioRulesProbe, type IstioRulesState } from '../sys/istio-rules.js';
import { errorMessage } from '../describe-error.js';

export const STATUS_VERSION = 1;

/** The programs that intercept a pod's TCP (outbound, same-node inbound, original destination). */
const INTERCEPT_PROGRAMS: readonly string[] = ['ml_connect4', 'ml_connect6', 'ml_sockops', 'ml_getsockopt'];

export interface PodStatus {
  namespace: string;
  name: string;
  containerId: string;
  ipv4?: string;
  ipv6?: string;
  cgroup: string;
  cgroupId: string;
  proxyUid: number;
  dnsCapture: boolean;
  /** The record's registration is in the maps. */
  registered: boolean;
  interception: string;
  /** The pod's netns, from its attachment record. */
  netns: string;
  /** Istio's rules in the pod's netns: its entry chains hooked on nat output/prerouting (iptables with either backend, or Istio's native nftables ruleset). */
  istioRules: IstioRulesState;
  istioRulesDetail: string;
  /** Which interception the pod has now, from the two above and whether the datapath is attached. */
  mode: PodMode;
  /** Registered by the installer's reconcile round (it started while meshlane was not in the chain), not at its ADD. */
  registeredLate?: boolean;
}

/**
 * - `ebpf+iptables`: meshlane's programs take the traffic, Istio's rules are the fallback (beside istio-cni);
 * - `ebpf`: meshlane alone;
 * - `iptables`: Istio's rules only (meshlane's datapath is not attached);
 * - `none`: neither found (not intercepted!);
 * - `ebpf+unknown` / `unknown`: the netns could not be inspected (with / without meshlane's datapath).
 */
export type PodMode = 'ebpf+iptables' | 'ebpf' | 'iptables' | 'none' | 'ebpf+unknown' | 'unknown';

export const POD_MODE_TEXT: Record<PodMode, string> = {
  'ebpf+iptables': 'eBPF + Istio rules fallback',
  ebpf: 'eBPF only',
  iptables: 'Istio rules only (meshlane datapath not attached)',
  none: 'NOT INTERCEPTED (no meshlane datapath, no Istio rules)',
  'ebpf+unknown': 'eBPF; Istio rules unknown',
  unknown: 'meshlane datapath not attached; Istio rules unknown',
};

export interface NodeModeSummary {
  /** `beside-istio-cni`: every pod has Istio's rules; `alone`: none has; `mixed`; `no-pods`; `unknown`. */
  mode: 'beside-istio-cni' | 'alone' | 'mixed' | 'no-pods' | 'unknown';
  podsWithIstioRules: number;
  podsWithoutIstioRules: number;
  podsUnknown: number;
}

export interface StatusReport {
  version: typeof STATUS_VERSION;
  pinDir: string;
  cgroupRoot: string;
  installed: boolean;
  /**
   * `attachedTo`: the cgroup hooks of a cgroup program. `podInterfaces`: for the tc
   * programs, which attach per pod (at CNI ADD, on the pod's interface), how many of
   * the recorded pod interfaces carry them.
   */
  programs: Array<{ name: string; id?: number; pinned: boolean; attachedTo: string[]; podInterfaces?: { attached: number; of: number } }>;
  maps: Array<{ name: string; pinned: boolean; entries?: number }>;
  settings?: { proxyUid: number; proxyGid: number; sockmap: 'off' | 'on' | 'proxy-only' };
  counters?: Record<CounterName, string>;
  pods: PodStatus[];
  /** cgroup ids in the map without an attachment record (left by a failed DEL, or another state dir). */
  orphanCgroupIds: string[];
  problems: string[];
  /** How this node intercepts, from the pods' Istio rules (see PodStatus.istioRules). */
  node: NodeModeSummary;
  /** `istioCni`: the list holding meshlane's entry also holds an istio-cni entry (so it runs beside istio-cni). */
  conflist?: { file?: string; hasEntry: boolean; detail: string; istioCni?: boolean };
  /** The installer refused this node's kernel (in this boot): its one message. */
  kernelRefused?: string;
  /** The installer's reconcile rounds: totals since the state dir was made, and the pods registered late now. */
  reconcile?: ReconcileTotals & { registeredLateNow: number };
  /** The installer's last sockmap decision (requested mode, the one in force, the kernel's faults), when an installer ran here. */
  sockmap?: SockmapRecord;
}

function summary(i: PodStatus['interception'] | Record<string, unknown>): string {
  if (typeof i === 'string') return i;
  const part = (k: string, v: unknown): string => `${k}=${Array.isArray(v) ? (v.length ? v.join(',') : '(none)') : String(v)}`;
  return Object.entries(i).map(([k, v]) => part(k, v)).join(' ');
}

export async function collectStatus(pinDir: string, cgroupRoot: string, stateDir: string): Promise<StatusReport> {
  const p = pinPaths(pinDir);
  const problems: string[] = [];
  const report: StatusReport = {
    version: STATUS_VERSION,
    pinDir,
    cgroupRoot,
    installed: false,
    programs: [],
    maps: [],
    pods: [],
    orphanCgroupIds: [],
    problems,
    node: { mode: 'no-pods', podsWithIstioRules: 0, podsWithoutIstioRules: 0, podsUnknown: 0 },
  };
  const attached = existsSync(cgroupRoot) ? await attachedPrograms(cgroupRoot).catch((e: unknown) => {
    problems.push(`cannot list programs on ${cgroupRoot}: ${errorMessage(e)}`);
    return [];
  }) : [];
  /** A read that failed: the report leaves that figure out and names the failure in its problems. */
  const cannot = (what: string) => (e: unknown): undefined => {
    problems.push(`cannot ${what}: ${errorMessage(e)}`);
    return undefined;
  };
  const pinnedProgs = existsSync(p.progs) ? readdirSync(p.progs) : [];
  // The compat build's own cgroup programs (ml_sock_create, kernels before 5.15) count where it was loaded: they are pinned then.
  const compat = hooksOfLoaded(pinnedProgs).map((x) => x.name).filter((n) => !ALL_PROGRAMS.includes(n));
  for (const name of [...ALL_PROGRAMS, ...compat]) {
    const pinned = pinnedProgs.includes(name);
    let id: number | undefined;
    try {
      id = pinned ? pinnedProgram(p.prog(name)).id : undefined;
    } catch (e) {
      problems.push(`cannot read the pinned program ${p.prog(name)}: ${errorMessage(e)}`);
    }
    const attachedTo = attached.filter((a) => a.name === name).map((a) => `${cgroupRoot} (${a.attach_type}${a.id !== id ? `, id ${a.id}` : ''})`);
    report.programs.push({ name, ...(id !== undefined ? { id } : {}), pinned, attachedTo });
  }
  for (const name of ALL_MAPS) {
    const pinned = existsSync(p.map(name));
    const entries = pinned && !UNCOUNTED_MAPS.has(name) ? await mapEntryCount(pinDir, name).catch(cannot(`count the entries of ${p.map(name)}`)) : undefined;
    report.maps.push({ name, pinned, ...(entries !== undefined ? { entries } : {}) });
  }
  // Installed = every map pinned and every cgroup program attached once (the sk_msg program sits
  // on the sockhash and the tc programs on pod interfaces, so neither is on the cgroup).
  const cgroupProgs = new Set(hooksOfLoaded(pinnedProgs).map((x) => x.name));
  report.installed = report.maps.every((m) => m.pinned) && report.programs.filter((x) => cgroupProgs.has(x.name)).every((x) => x.attachedTo.length === 1);
  // What takes a pod's TCP traffic: connect4/6, sockops and getsockopt attached.
  const intercepting = report.programs.filter((x) => INTERCEPT_PROGRAMS.includes(x.name)).every((x) => x.attachedTo.length === 1);
  if (report.maps.every((m) => m.pinned)) {
    const s = await readSettings(pinDir).catch(cannot(`read the settings map in ${pinDir}`));
    if (s) {
      const on = (s.flags & 1) !== 0;
      report.settings = { proxyUid: s.proxy_uid || 1337, proxyGid: s.proxy_gid, sockmap: on ? ((s.flags & 2) !== 0 ? 'proxy-only' : 'on') : 'off' };
    }
    const c = await readCounters(pinDir).catch(cannot(`read the counters map in ${pinDir}`));
    if (c) report.counters = Object.fromEntries(COUNTERS.map((k) => [k, c[k].toString()])) as Record<CounterName, string>;
    const inMaps = (await listPodsByCgroup(pinDir).catch(cannot(`list the registered pods in ${pinDir}`))) ?? [];
    const { records, problems: recProblems } = listRecords(stateDir);
    problems.push(...recProblems);
    const tcNames = new Set(TC_PROGRAMS.map((x) => x.name));
    const podInterfaces = { attached: records.filter((r) => r.tc?.attached === true).length, of: records.length };
    for (const prog of report.programs) if (tcNames.has(prog.name)) prog.podInterfaces = podInterfaces;
    const probes = probeAll(records);
    for (const [i, r] of records.entries()) {
      const entry = inMaps.find((m) => m.cgroupId.toString() === r.cgroupId);
      const registered = entry !== undefined && (entry.pod.flags & POD_F.MESHED) !== 0;
      const probe = probes[i] ?? { state: 'unknown', hooked: [], detail: 'not probed' };
      report.pods.push({
        namespace: r.namespace,
        name: r.name,
        containerId: r.containerId,
        ...(r.ipv4 ? { ipv4: r.ipv4 } : {}),
        ...(r.ipv6 ? { ipv6: r.ipv6 } : {}),
        cgroup: r.cgroupPath,
        cgroupId: r.cgroupId,
        proxyUid: r.proxyUid,
        dnsCapture: r.dnsCapture,
        registered,
        interception: summary(r.interception as unknown as Record<string, unknown>),
        netns: r.netns,
        istioRules: probe.state,
        istioRulesDetail: probe.detail,
        mode: podMode(intercepting && registered, probe.state),
        ...(r.registeredBy === 'reconcile' ? { registeredLate: true } : {}),
      });
    }
    for (const m of inMaps) {
      if (!records.some((r) => r.cgroupId === m.cgroupId.toString())) {
        report.orphanCgroupIds.push(m.cgroupId.toString());
        problems.push(`cgroup ${m.cgroupId} is registered (${fromMapped16(m.pod.ip4)}) but has no attachment record in ${stateDir}`);
      }
    }
  }
  report.node = nodeMode(report.pods);
  const refusal = readKernelRefusal(stateDir);
  if (refusal) report.kernelRefused = refusal.message;
  const sockmap = readSockmapRecord(stateDir);
  if (sockmap) {
    report.sockmap = sockmap;
    if (report.settings && report.settings.sockmap !== sockmap.effective) {
      problems.push(`the settings map says sockmap ${report.settings.sockmap}, the installer's last decision (${sockmap.at}) was ${sockmap.effective}`);
    }
  }
  if (existsSync(totalsPath(stateDir))) report.reconcile = { ...readTotals(stateDir), registeredLateNow: report.pods.filter((p) => p.registeredLate).length };
  return report;
}

function podMode(ebpf: boolean, rules: IstioRulesState): PodMode {
  if (rules === 'unknown') return ebpf ? 'ebpf+unknown' : 'unknown';
  if (ebpf) return rules === 'present' ? 'ebpf+iptables' : 'ebpf';
  return rules === 'present' ? 'iptables' : 'none';
}

export function nodeMode(pods: readonly Pick<PodStatus, 'istioRules'>[]): NodeModeSummary {
  const podsWithIstioRules = pods.filter((p) => p.istioRules === 'present').length;
  const podsWithoutIstioRules = pods.filter((p) => p.istioRules === 'absent').length;
  const podsUnknown = pods.length - podsWithIstioRules - podsWithoutIstioRules;
  let mode: NodeModeSummary['mode'];
  if (pods.length === 0) mode = 'no-pods';
  else if (podsWithIstioRules > 0 && podsWithoutIstioRules > 0) mode = 'mixed';
  else if (podsWithIstioRules > 0) mode = 'beside-istio-cni';
  else if (podsWithoutIstioRules > 0) mode = 'alone';
  else mode = 'unknown';
  return { mode, podsWithIstioRules, podsWithoutIstioRules, podsUnknown };
}

/** Read every record's netns (in-process and synchronous: a few syscalls per pod). */
function probeAll(records: readonly AttachmentRecord[]): IstioRulesProbe[] {
  return records.map((r) => probeIstioRules(r.netns));
}

const NODE_MODE_TEXT: Record<NodeModeSummary['mode'], string> = {
  'beside-istio-cni': 'beside istio-cni (eBPF first, Istio rules as the fallback in every pod)',
  alone: 'meshlane alone (no Istio rules in any pod)',
  mixed: 'mixed (some pods have Istio rules, some do not)',
  'no-pods': 'no registered pods',
  unknown: 'unknown (no pod netns could be inspected)',
};

/** Does this CNI config file list an istio-cni plugin (whose rules are then in every sidecar pod's netns)? */
export function hasIstioCniEntry(fileName: string, bytes: Uint8Array): boolean {
  const p = parseCniConfig(fileName, bytes);
  if (!p.ok) return false;
  const plugins = Array.isArray(p.doc['plugins']) ? (p.doc['plugins'] as unknown[]) : [p.doc];
  return plugins.some((x) => x !== null && typeof x === 'object' && (x as Record<string, unknown>)['type'] === ISTIO_CNI_TYPE);
}

function whereAttached(p: StatusReport['programs'][number]): string {
  if (p.attachedTo.length) return `, attached to ${p.attachedTo.join('; ')}`;
  if (p.name === 'ml_redirect') return ', on the sockhash';
  if (TC_PROGRAMS.some((t) => t.name === p.name)) {
    const i = p.podInterfaces;
    return i ? `, per pod: on ${i.attached} of ${i.of} pod interface${i.of === 1 ? '' : 's'}` : ', per pod (attached at CNI ADD)';
  }
  return ', NOT attached';
}

export function renderStatus(r: StatusReport): string {
  const lines: string[] = [];
  lines.push(`datapath: ${r.installed ? 'installed' : 'NOT installed'} (pins ${r.pinDir}, cgroup ${r.cgroupRoot})`);
  if (r.kernelRefused) lines.push(`kernel: REFUSED by meshlane install: ${r.kernelRefused}`);
  if (r.conflist) lines.push(`CNI config: ${r.conflist.hasEntry ? 'chained' : 'NOT chained'}${r.conflist.file ? ` in ${r.conflist.file}` : ''}${r.conflist.istioCni ? ' after istio-cni' : ''} (${r.conflist.detail})`);
  const n = r.node;
  lines.push(`node mode: ${NODE_MODE_TEXT[n.mode]}${r.pods.length ? `; Istio rules present in ${n.podsWithIstioRules} of ${r.pods.length} pods${n.podsUnknown ? `, unknown in ${n.podsUnknown}` : ''}` : ''}`);
  if (r.settings) lines.push(`settings: proxy uid ${r.settings.proxyUid}, gid ${r.settings.proxyGid || '-'}, sockmap ${r.settings.sockmap}`);
  if (r.sockmap) {
    const s = r.sockmap;
    if (s.requested === 'off') lines.push('sockmap: off (as configured; the kernel was not probed)');
    else {
      lines.push(`sockmap: ${s.effective}${s.effective !== s.requested ? ` (${s.requested} REFUSED)` : ''}; modes this kernel passed the sockmap probe for: ${s.allowed.join(', ')}${s.faults.length ? `; faults: ${s.faults.join(', ')}` : ''}`);
      lines.push(`  ${s.message}`);
    }
  }
  lines.push('', 'programs:');
  for (const p of r.programs) lines.push(`  ${p.name.padEnd(14)} ${p.pinned ? `pinned (id ${p.id ?? '?'})` : 'not pinned'}${whereAttached(p)}`);
  lines.push('', 'maps:');
  const count = (m: StatusReport['maps'][number]): string => (m.entries !== undefined ? `${m.entries} entries` : UNCOUNTED_MAPS.has(m.name) ? 'per-socket storage (not counted)' : '? entries (see problems)');
  for (const m of r.maps) lines.push(`  ${m.name.padEnd(14)} ${m.pinned ? count(m) : 'not pinned'}`);
  lines.push('', `pods (${r.pods.length}):`);
  for (const p of r.pods) {
    lines.push(`  ${p.namespace}/${p.name}  ${[p.ipv4, p.ipv6].filter(Boolean).join(' ')}  ${p.registered ? 'registered' : 'NOT REGISTERED'}  proxy uid ${p.proxyUid}${p.dnsCapture ? ', DNS capture' : ''}`);
    lines.push(`    mode: ${POD_MODE_TEXT[p.mode]}; Istio rules ${p.istioRules} (${p.istioRulesDetail})${p.registeredLate ? '; registered late by the installer' : ''}`);
    lines.push(`    cgroup ${p.cgroup} (id ${p.cgroupId})`);
    lines.push(`    ${p.interception}`);
  }
  if (r.reconcile) {
    const c = r.reconcile;
    lines.push('', `reconcile: ${c.lateRegistrations} pod(s) registered late (started while meshlane was out of the CNI chain; ${c.registeredLateNow} still running), ${c.staleRemoved} stale registration(s) removed, ${c.failures} failure(s)${c.lastRound ? `; last round ${c.lastRound}` : '; no round yet'}${c.runtimeProblem ? `; runtime: ${c.runtimeProblem}` : ''}`);
  }
  if (r.counters) {
    lines.push('', 'counters:');
    const nonzero = Object.entries(r.counters).filter(([, v]) => v !== '0');
    if (nonzero.length === 0) lines.push('  (all zero)');
    for (const [k, v] of nonzero) lines.push(`  ${k.padEnd(26)} ${v}`);
  }
  if (r.problems.length) lines.push('', 'problems:', ...r.problems.map((p) => `  ${p}`));
  return `${lines.join('\n')}\n`;
}
