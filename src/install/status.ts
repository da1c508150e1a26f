// What `meshlane status` reports: the datapath (programs and where they are
// attached, maps and their entry counts, counters), the registered pods, and
// the CNI config. The JSON shape is stable for scripts (version field).
import { existsSync, readdirSync } from 'node:fs';
import { fromMapped16 } from '../bpf/addr.js';
import { progShow } from '../bpf/bpftool.js';
import { COUNTERS, POD_F, type CounterName } from '../bpf/layout.js';
import { attachedPrograms } from '../bpf/loader.js';
import { ALL_MAPS, ALL_PROGRAMS, pinPaths } from '../bpf/names.js';
import { listPodsByCgroup, mapEntryCount, readCounters, readSettings } from '../bpf/registry.js';
import { listRecords } from '../plugin/state.js';

export const STATUS_VERSION = 1;

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
}

export interface StatusReport {
  version: typeof STATUS_VERSION;
  pinDir: string;
  cgroupRoot: string;
  installed: boolean;
  programs: Array<{ name: string; id?: number; pinned: boolean; attachedTo: string[] }>;
  maps: Array<{ name: string; pinned: boolean; entries?: number }>;
  settings?: { proxyUid: number; proxyGid: number; sockmap: 'off' | 'on' | 'proxy-only' };
  counters?: Record<CounterName, string>;
  pods: PodStatus[];
  /** cgroup ids in the map without an attachment record (left by a failed DEL, or another state dir). */
  orphanCgroupIds: string[];
  problems: string[];
  conflist?: { file?: string; hasEntry: boolean; detail: string };
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
  };
  const attached = existsSync(cgroupRoot) ? await attachedPrograms(cgroupRoot).catch((e: unknown) => {
    problems.push(`cannot list programs on ${cgroupRoot}: ${(e as Error).message}`);
    return [];
  }) : [];
  const pinnedProgs = existsSync(p.progs) ? readdirSync(p.progs) : [];
  for (const name of ALL_PROGRAMS) {
    const pinned = pinnedProgs.includes(name);
    const id = pinned ? (await progShow(p.prog(name)).catch(() => undefined))?.id : undefined;
    const attachedTo = attached.filter((a) => a.name === name).map((a) => `${cgroupRoot} (${a.attach_type}${a.id !== id ? `, id ${a.id}` : ''})`);
    report.programs.push({ name, ...(id !== undefined ? { id } : {}), pinned, attachedTo });
  }
  for (const name of ALL_MAPS) {
    const pinned = existsSync(p.map(name));
    const entries = pinned ? await mapEntryCount(pinDir, name).catch(() => undefined) : undefined;
    report.maps.push({ name, pinned, ...(entries !== undefined ? { entries } : {}) });
  }
  report.installed = report.maps.every((m) => m.pinned) && report.programs.filter((x) => x.name !== 'ml_redirect').every((x) => x.attachedTo.length === 1);
  if (report.maps.every((m) => m.pinned)) {
    const s = await readSettings(pinDir).catch(() => undefined);
    if (s) {
      const on = (s.flags & 1) !== 0;
      report.settings = { proxyUid: s.proxy_uid || 1337, proxyGid: s.proxy_gid, sockmap: on ? ((s.flags & 2) !== 0 ? 'proxy-only' : 'on') : 'off' };
    }
    const c = await readCounters(pinDir).catch(() => undefined);
    if (c) report.counters = Object.fromEntries(COUNTERS.map((k) => [k, c[k].toString()])) as Record<CounterName, string>;
    const inMaps = await listPodsByCgroup(pinDir).catch(() => []);
    const { records, problems: recProblems } = listRecords(stateDir);
    problems.push(...recProblems);
    for (const r of records) {
      const entry = inMaps.find((m) => m.cgroupId.toString() === r.cgroupId);
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
        registered: entry !== undefined && (entry.pod.flags & POD_F.MESHED) !== 0,
        interception: summary(r.interception as unknown as Record<string, unknown>),
      });
    }
    for (const m of inMaps) {
      if (!records.some((r) => r.cgroupId === m.cgroupId.toString())) {
        report.orphanCgroupIds.push(m.cgroupId.toString());
        problems.push(`cgroup ${m.cgroupId} is registered (${fromMapped16(m.pod.ip4)}) but has no attachment record in ${stateDir}`);
      }
    }
  }
  return report;
}

export function renderStatus(r: StatusReport): string {
  const lines: string[] = [];
  lines.push(`datapath: ${r.installed ? 'installed' : 'NOT installed'} (pins ${r.pinDir}, cgroup ${r.cgroupRoot})`);
  if (r.conflist) lines.push(`CNI config: ${r.conflist.hasEntry ? 'chained' : 'NOT chained'}${r.conflist.file ? ` in ${r.conflist.file}` : ''} (${r.conflist.detail})`);
  if (r.settings) lines.push(`settings: proxy uid ${r.settings.proxyUid}, gid ${r.settings.proxyGid || '-'}, sockmap ${r.settings.sockmap}`);
  lines.push('', 'programs:');
  for (const p of r.programs) {
    lines.push(`  ${p.name.padEnd(14)} ${p.pinned ? `pinned (id ${p.id ?? '?'})` : 'not pinned'}${p.attachedTo.length ? `, attached to ${p.attachedTo.join('; ')}` : p.name === 'ml_redirect' ? ', on the sockhash' : ', NOT attached'}`);
  }
  lines.push('', 'maps:');
  for (const m of r.maps) lines.push(`  ${m.name.padEnd(14)} ${m.pinned ? `${m.entries ?? '?'} entries` : 'not pinned'}`);
  lines.push('', `pods (${r.pods.length}):`);
  for (const p of r.pods) {
    lines.push(`  ${p.namespace}/${p.name}  ${[p.ipv4, p.ipv6].filter(Boolean).join(' ')}  ${p.registered ? 'registered' : 'NOT REGISTERED'}  proxy uid ${p.proxyUid}${p.dnsCapture ? ', DNS capture' : ''}`);
    lines.push(`    cgroup ${p.cgroup} (id ${p.cgroupId})`);
    lines.push(`    ${p.interception}`);
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
