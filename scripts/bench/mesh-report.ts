// The `both` sections of BENCHMARKS.md from the samples of scripts/bench/mesh.ts:
// absolute latency at the fixed rate, latency added over the baseline (per
// repetition: the mode's figure minus the baseline's of the same repetition)
// and its ratio to Istio iptables' added latency, the connection sweep, max
// requests/s, connection set-up rate, CPU per 1,000 requests, and the targets.
import { BODY_BYTES, MESH_MODES, MESH_MODE_TITLE, TOPOLOGY_TITLE, type MeshMode, type MeshOptions, type MeshResult, type MeshSample, type Topology } from './mesh.js';
import { SPECS } from '../../src/install/options.js';
import { fmtNum, spread, type Spread } from './util.js';

type Dir = 'higher' | 'lower';
const ML: readonly MeshMode[] = ['ml-off', 'ml-proxy-only', 'ml-on'];

/** The installer's default sockmap setting (its option table), as the mode measured for it. */
export function defaultMode(): MeshMode {
  const d = SPECS.find((x) => x.flag === 'sockmap')?.default ?? 'off';
  return d === 'on' ? 'ml-on' : d === 'proxy-only' ? 'ml-proxy-only' : 'ml-off';
}

function values(samples: readonly MeshSample[], topo: Topology, metric: string, mode: MeshMode): Map<number, number> {
  const m = new Map<number, number>();
  for (const s of samples) if (s.topo === topo && s.metric === metric && s.mode === mode && Number.isFinite(s.value)) m.set(s.rep, s.value);
  return m;
}

export function statOf(samples: readonly MeshSample[], topo: Topology, metric: string, mode: MeshMode): Spread {
  return spread([...values(samples, topo, metric, mode).values()]);
}

/** The mode's figure minus the baseline's, repetition by repetition (only repetitions that have both). */
export function addedOf(samples: readonly MeshSample[], topo: Topology, metric: string, mode: MeshMode): Spread {
  const base = values(samples, topo, metric, 'baseline');
  const own = values(samples, topo, metric, mode);
  const out: number[] = [];
  for (const [rep, v] of own) {
    const b = base.get(rep);
    if (b !== undefined) out.push(v - b);
  }
  return spread(out);
}

/** a against b: the ratio of the medians, and whether the difference is clear (≥ min gain, the min–max ranges apart, at least 2 repetitions each). */
export function compare(a: Spread, b: Spread, dir: Dir, minGain = 0.03): { ratio: number; clear: 'better' | 'worse' | undefined } {
  const ratio = a.median / b.median;
  if (a.n === 0 || b.n === 0 || !Number.isFinite(ratio)) return { ratio: Number.NaN, clear: undefined };
  // One repetition has no range: nothing is clear then.
  const apart = a.n >= 2 && b.n >= 2 && (a.min > b.max || a.max < b.min);
  const gain = dir === 'higher' ? ratio - 1 : b.median === 0 ? 0 : 1 - ratio;
  if (!apart || Math.abs(gain) < minGain) return { ratio, clear: undefined };
  return { ratio, clear: gain > 0 ? 'better' : 'worse' };
}

function cell(s: Spread, digits: number): string {
  if (s.n === 0) return 'n/a';
  if (s.n === 1) return fmtNum(s.median, digits);
  return `${fmtNum(s.median, digits)} (${fmtNum(s.min, digits)}–${fmtNum(s.max, digits)})`;
}

function ratioCell(r: { ratio: number; clear: 'better' | 'worse' | undefined }): string {
  if (!Number.isFinite(r.ratio)) return 'n/a';
  return `${r.ratio.toFixed(2)}${r.clear === 'better' ? ' ✓' : r.clear === 'worse' ? ' ✗' : ''}`;
}

interface Row {
  label: string;
  metric: string;
}

function modesIn(r: MeshResult, topo: Topology): MeshMode[] {
  return MESH_MODES.filter((m) => r.samples.some((s) => s.topo === topo && s.mode === m));
}

function absTable(r: MeshResult, topo: Topology, rows: Row[], digits: number, dir: Dir, scale = 1): string[] {
  const modes = modesIn(r, topo);
  const ml = ML.filter((m) => modes.includes(m));
  const head = `| | ${modes.map((m) => MESH_MODE_TITLE[m]).join(' | ')} |${ml.map((m) => ` ${short(m)} ÷ iptables |`).join('')}`;
  const sep = `|---|${modes.map(() => '---:').join('|')}|${ml.map(() => '---:|').join('')}`;
  const lines = rows.map((row) => {
    const st = (m: MeshMode): Spread => scaled(statOf(r.samples, topo, row.metric, m), scale);
    return `| ${row.label} | ${modes.map((m) => cell(st(m), digits)).join(' | ')} |${ml.map((m) => ` ${ratioCell(compare(st(m), st('iptables'), dir))} |`).join('')}`;
  });
  return [head, sep, ...lines];
}

function scaled(s: Spread, k: number): Spread {
  return k === 1 ? s : { min: s.min / k, median: s.median / k, max: s.max / k, n: s.n };
}

function short(m: MeshMode): string {
  return m === 'ml-off' ? 'ml off' : m === 'ml-on' ? 'ml on' : m === 'ml-proxy-only' ? 'ml proxy-only' : m;
}

function addedTable(r: MeshResult, topo: Topology, rows: Row[]): string[] {
  const modes: MeshMode[] = modesIn(r, topo).filter((m) => m !== 'baseline');
  const ml = ML.filter((m) => (modes as readonly MeshMode[]).includes(m));
  const head = `| added µs | ${modes.map((m) => MESH_MODE_TITLE[m]).join(' | ')} |${ml.map((m) => ` ${short(m)} ÷ iptables' added |`).join('')}`;
  const sep = `|---|${modes.map(() => '---:').join('|')}|${ml.map(() => '---:|').join('')}`;
  const lines = rows.map((row) => {
    const a = (m: MeshMode): Spread => addedOf(r.samples, topo, row.metric, m);
    return `| ${row.label} | ${modes.map((m) => cell(a(m), 0)).join(' | ')} |${ml.map((m) => ` ${ratioCell(addedRatio(a(m), a('iptables')))} |`).join('')}`;
  });
  return [head, sep, ...lines];
}

/**
 * meshlane's added latency against Istio iptables' added latency. No ratio
 * when iptables added nothing measurable (its median added latency ≤ 0: the
 * baseline's own spread is larger than the sidecars' cost), or meshlane's is
 * negative: a ratio of such numbers means nothing.
 */
export function addedRatio(ml: Spread, ipt: Spread): { ratio: number; clear: 'better' | 'worse' | undefined } {
  if (!(ipt.median > 0) || !(ml.median >= 0)) return { ratio: Number.NaN, clear: undefined };
  return compare(ml, ipt, 'lower');
}

/** The fixed rate against the slowest mode's median max requests/s at 16 connections. */
export function rateHeadroom(r: MeshResult, topo: Topology, rate: number): { mode: MeshMode; rps: number; share: number } | undefined {
  let worst: { mode: MeshMode; rps: number; share: number } | undefined;
  for (const m of MESH_MODES) {
    const s = statOf(r.samples, topo, 'rps@16', m);
    if (s.n === 0) continue;
    if (!worst || s.median < worst.rps) worst = { mode: m, rps: s.median, share: rate / s.median };
  }
  return worst;
}

export interface TargetCheck {
  text: string;
  met: boolean | undefined;
}

export type FigureOptions = Pick<MeshOptions, 'connections' | 'sweep' | 'maxConns' | 'topologies'>;

/** Every figure of a topology, with the direction that is better: what the clear-difference counts run over. */
export function figureRows(o: FigureOptions, topo: Topology): Array<Row & { dir: Dir }> {
  const c = o.connections;
  const lat = (k: number, ps: readonly (readonly [string, string])[]): Array<Row & { dir: Dir }> => ps.map(([p, label]) => ({ label: `${label} latency, ${k} conns`, metric: `${p}@${k}`, dir: 'lower' }));
  const rows = lat(c, [['p50', 'p50'], ['p90', 'p90'], ['p99', 'p99'], ['p999', 'p99.9']]);
  if (topo === 'same') for (const k of o.sweep) if (k !== c) rows.push(...lat(k, [['p50', 'p50'], ['p99', 'p99'], ['p999', 'p99.9']]));
  for (const k of o.maxConns) rows.push({ label: `max requests/s, ${k} conns`, metric: `rps@${k}`, dir: 'higher' });
  rows.push({ label: 'connections/s', metric: 'cps', dir: 'higher' });
  for (const [metric, what] of [['cpuproxy', 'proxies'], ['cpuapp', 'apps'], ['cputotal', 'total']] as const) rows.push({ label: `CPU per 1,000 requests (${what})`, metric, dir: 'lower' });
  return rows;
}

/** a against b over every figure of the topology both have: what is clearly better, clearly worse (with the ratio), how many were compared, and every ratio of the medians. */
export function clearDifferences(r: MeshResult, topo: Topology, a: MeshMode, b: MeshMode, o: FigureOptions): { better: string[]; worse: string[]; compared: number; ratios: number[] } {
  const better: string[] = [];
  const worse: string[] = [];
  const ratios: number[] = [];
  let compared = 0;
  for (const row of figureRows(o, topo)) {
    const [sa, sb] = [statOf(r.samples, topo, row.metric, a), statOf(r.samples, topo, row.metric, b)];
    if (sa.n === 0 || sb.n === 0) continue;
    compared++;
    const cmp = compare(sa, sb, row.dir);
    if (Number.isFinite(cmp.ratio)) ratios.push(cmp.ratio);
    if (cmp.clear === 'better') better.push(`${row.label} ${cmp.ratio.toFixed(2)}×`);
    if (cmp.clear === 'worse') worse.push(`${row.label} ${cmp.ratio.toFixed(2)}×`);
  }
  return { better, worse, compared, ratios };
}

function measured(r: MeshResult, topo: Topology, m: MeshMode): boolean {
  return r.samples.some((s) => s.topo === topo && s.mode === m);
}

/** The targets, for the `same` topology, per meshlane mode, and the default against Istio iptables in every topology. */
export function targetChecks(r: MeshResult, o: FigureOptions): TargetCheck[] {
  const out: TargetCheck[] = [];
  const topo: Topology = 'same';
  const c = o.connections;
  for (const m of ML) {
    if (!r.samples.some((s) => s.topo === topo && s.mode === m)) continue;
    const t = MESH_MODE_TITLE[m];
    const [am, ai] = [addedOf(r.samples, topo, `p99@${c}`, m), addedOf(r.samples, topo, `p99@${c}`, 'iptables')];
    const add = addedRatio(am, ai);
    out.push({ text: `${t}: added p99 at the fixed rate ÷ Istio iptables' added p99 = ${fmtR(add.ratio)} (target ≤ 0.80)${Number.isFinite(add.ratio) ? clearNote(add, am, ai) : `: meshlane added ${fmtNum(am.median)} µs, Istio iptables ${fmtNum(ai.median)} µs (medians)`}`, met: Number.isFinite(add.ratio) ? add.ratio <= 0.8 : undefined });
    for (const [metric, what] of [['cpuproxy', 'proxies'], ['cputotal', 'proxies + apps']] as const) {
      const [cm, ci] = [statOf(r.samples, topo, metric, m), statOf(r.samples, topo, metric, 'iptables')];
      const cpu = compare(cm, ci, 'lower');
      out.push({ text: `${t}: CPU per 1,000 requests (${what}) ÷ Istio iptables' = ${fmtR(cpu.ratio)} (target ≤ 0.90)${clearNote(cpu, cm, ci)}`, met: Number.isFinite(cpu.ratio) ? cpu.ratio <= 0.9 : undefined });
    }
    for (const k of [16, 64]) {
      const a = statOf(r.samples, topo, `rps@${k}`, m);
      const b = statOf(r.samples, topo, `rps@${k}`, 'iptables');
      if (a.n === 0 || b.n === 0) continue;
      const cmp = compare(a, b, 'higher', 0.1);
      out.push({ text: `${t}: max requests/s at ${k} connections ÷ Istio iptables = ${fmtR(cmp.ratio)} (target ≥ 1.10, ranges apart)${cmp.clear === 'better' ? ', clearly' : a.n < 2 || b.n < 2 ? ', one repetition: no range' : ', not clearly'}`, met: cmp.clear === 'better' });
    }
  }
  // The default against Istio iptables, every figure of every topology measured.
  const d = defaultMode();
  const parts: string[] = [];
  let worse = 0;
  let any = false;
  for (const topo of o.topologies) {
    if (!measured(r, topo, d) || !measured(r, topo, 'iptables')) continue;
    any = true;
    const diff = clearDifferences(r, topo, d, 'iptables', o);
    worse += diff.worse.length;
    parts.push(`${TOPOLOGY_TITLE[topo]}: clearly worse on ${diff.worse.length} of ${diff.compared} figures${diff.worse.length ? ` (${diff.worse.join('; ')})` : ''}, clearly better on ${diff.better.length}${diff.better.length ? ` (${diff.better.join('; ')})` : ''}`);
  }
  if (any) out.push({ text: `the default (${MESH_MODE_TITLE[d]}) is clearly worse than Istio iptables on no figure: ${parts.join('; ')}`, met: worse === 0 });
  return out;
}

/**
 * The bench's own noise, where two modes run the same datapath: across two
 * nodes `proxy-only` has no proxy<->proxy socket pair on one node, so when its
 * verification counted no socket added to the sockhash it runs exactly what
 * `off` runs, and the spread of their ratios is what noise alone gives.
 */
export function noiseFloor(r: MeshResult, o: FigureOptions): { min: number; max: number; figures: number; clear: number } | undefined {
  const topo: Topology = 'cross';
  const v = r.verification[`${topo}/ml-proxy-only`];
  if (v === undefined || !/sockhash added 0,/.test(v) || !measured(r, topo, 'ml-off')) return undefined;
  const { better, worse, ratios } = clearDifferences(r, topo, 'ml-proxy-only', 'ml-off', o);
  if (ratios.length === 0) return undefined;
  return { min: Math.min(...ratios), max: Math.max(...ratios), figures: ratios.length, clear: better.length + worse.length };
}

/**
 * Which sockmap setting the figures support, per topology: a mode that
 * bypasses TCP/IP is worth it where it is clearly better than sockmap off on
 * some figure and clearly worse on none. For BENCHMARKS.md: a line per mode
 * and topology compared (none when no sockmap mode was measured), and the verdict.
 */
export function sockmapDefault(r: MeshResult, o: FigureOptions): { lines: string[]; verdict: string } {
  const L: string[] = [];
  const supported = new Map<Topology, MeshMode[]>();
  for (const topo of o.topologies) {
    if (!measured(r, topo, 'ml-off')) continue;
    const ok: MeshMode[] = [];
    for (const m of ['ml-proxy-only', 'ml-on'] as const) {
      if (!measured(r, topo, m)) continue;
      const diff = clearDifferences(r, topo, m, 'ml-off', o);
      const verdict = diff.better.length > 0 && diff.worse.length === 0;
      if (verdict) ok.push(m);
      L.push(`- ${TOPOLOGY_TITLE[topo]}, ${MESH_MODE_TITLE[m]} against sockmap off: clearly better on ${diff.better.length} of ${diff.compared} figures${diff.better.length ? ` (${diff.better.join('; ')})` : ''}; clearly worse on ${diff.worse.length}${diff.worse.length ? ` (${diff.worse.join('; ')})` : ''}: ${verdict ? 'worth it here' : 'no case for it here'}.`);
    }
    supported.set(topo, ok);
  }
  const d = defaultMode();
  const everywhere = (m: MeshMode): boolean => supported.size > 0 && [...supported.values()].every((ms) => ms.includes(m));
  const somewhere = (['ml-proxy-only', 'ml-on'] as const).filter((m) => [...supported.values()].some((ms) => ms.includes(m)));
  let verdict: string;
  if (d !== 'ml-off' && everywhere(d)) verdict = `The installer's default, ${MESH_MODE_TITLE[d]}, is what these figures support in every topology measured.`;
  else if (d === 'ml-off' && somewhere.length === 0) verdict = `These figures support the installer's default, **sockmap off**: no sockmap mode was clearly better than off on any figure without being clearly worse on another, in any topology measured. A sockmap mode also depends on kernel behaviour that off never touches (the installer's probe refuses it where the known faults show), so it has to earn its place. \`--sockmap proxy-only\` stays available for workloads whose own measurements show a gain.`;
  else if (d === 'ml-off') verdict = `The installer's default is **sockmap off**. ${somewhere.map((m) => MESH_MODE_TITLE[m]).join(' and ')} was clearly better than off, and clearly worse on nothing, in: ${[...supported.entries()].filter(([, ms]) => ms.length > 0).map(([topo, ms]) => `${TOPOLOGY_TITLE[topo]} (${ms.map((m) => MESH_MODE_TITLE[m]).join(', ')})`).join('; ')}; the setting is per node and covers every topology, so it is a choice for nodes whose traffic is mostly of that kind, not the default.`;
  else verdict = `The installer's default, ${MESH_MODE_TITLE[d]}, is **not** supported by these figures in every topology measured: see the lines above.`;
  return { lines: L, verdict };
}

/** What the clear-difference rule said, in words. */
function clearNote(c: { clear: 'better' | 'worse' | undefined }, a: Spread, b: Spread): string {
  if (c.clear) return `, clearly ${c.clear}`;
  return a.n < 2 || b.n < 2 ? ', one repetition: no range' : ', ranges overlap';
}

function fmtR(x: number): string {
  return Number.isFinite(x) ? x.toFixed(2) : 'n/a';
}

/** The sections of BENCHMARKS.md for the `both` runs. */
export function renderMesh(r: MeshResult, o: MeshOptions): string[] {
  const L: string[] = [];
  const c = o.connections;
  const latRows = (k: number): Row[] => [
    { label: `p50, ${k} conns`, metric: `p50@${k}` },
    { label: `p90, ${k} conns`, metric: `p90@${k}` },
    { label: `p99, ${k} conns`, metric: `p99@${k}` },
    { label: `p99.9, ${k} conns`, metric: `p999@${k}` },
  ];
  L.push('## Results: both sidecars (client and server pod meshed) against no sidecars');
  L.push('');
  L.push(`Fixed rate: ${fmtNum(o.rate)} requests/s over ${c} keep-alive connections, GET with a ${BODY_BYTES / 1024} KiB response, ${o.loadSeconds} s measured after ${o.warmupMs} ms of warm-up (testing/tools/mlload: open loop, latency from each request's due time). Cells: *median (min–max)* over ${o.reps} repetition(s). In the ratio columns ✓ / ✗ mark a clear difference (≥ 3% and the min–max ranges apart; ✓ = meshlane better); without a mark the ranges overlap.`);
  L.push('');
  const checks = targetChecks(r, o);
  if (checks.length > 0) {
    L.push('### Targets (both sidecars, same node)');
    L.push('');
    for (const t of checks) L.push(`- ${t.met === undefined ? 'n/a' : t.met ? 'met' : '**not met**'}: ${t.text}`);
    L.push('');
  }
  for (const topo of o.topologies) {
    if (!r.samples.some((s) => s.topo === topo)) continue;
    L.push(`### ${TOPOLOGY_TITLE[topo]}`);
    L.push('');
    const slowest = rateHeadroom(r, topo, o.rate);
    if (slowest) L.push(`The fixed rate is ${(slowest.share * 100).toFixed(0)}% of the lowest max requests/s at 16 connections measured here (${MESH_MODE_TITLE[slowest.mode]}, median ${fmtNum(slowest.rps)}): every mode sustains it${slowest.share > 0.5 ? ' — **but with less than 2× headroom: the latency includes queueing**' : ''}.`, '');
    L.push(`Latency at ${fmtNum(o.rate)} requests/s, ${c} connections (µs):`);
    L.push('');
    L.push(...absTable(r, topo, latRows(c), 0, 'lower'));
    L.push('');
    L.push("Latency added over the baseline (µs; per repetition, the mode's figure minus the baseline's of the same repetition); the ratio columns are meshlane's added latency ÷ Istio iptables' added latency:");
    L.push('');
    L.push(...addedTable(r, topo, latRows(c)));
    L.push('');
    const sweep = o.sweep.filter((k) => k !== c);
    if (topo === 'same' && sweep.length > 0) {
      const ks = [...new Set([...o.sweep, c])].sort((a, b) => a - b);
      L.push(`Connection sweep at the same rate (${(o.sweepMs / 1000).toFixed(1)} s each after 250 ms of warm-up; ${c} connections from the run above), latency added over the baseline (µs):`);
      L.push('');
      L.push(...addedTable(r, topo, ks.flatMap((k) => [{ label: `p50, ${k} conns`, metric: `p50@${k}` }, { label: `p99, ${k} conns`, metric: `p99@${k}` }, { label: `p99.9, ${k} conns`, metric: `p999@${k}` }])));
      L.push('');
    }
    L.push(`Max requests/s (wrk, closed loop, ${o.wrkSeconds} s, same 1 KiB responses):`);
    L.push('');
    L.push(...absTable(r, topo, o.maxConns.map((k) => ({ label: `${k} connections`, metric: `rps@${k}` })), 0, 'higher'));
    L.push('');
    L.push(`Connection set-up rate (wrk -c 16 -H "Connection: close", ${o.connSeconds} s; every request a new connection through both sidecars), connections/s:`);
    L.push('');
    L.push(...absTable(r, topo, [{ label: 'connections/s', metric: 'cps' }], 0, 'higher'));
    L.push('');
    L.push(`CPU per 1,000 requests at the fixed rate (ms of CPU; cgroup v2 cpu.stat of the two \`istio-proxy\` containers and of the two \`app\` containers — the load generator and the server):`);
    L.push('');
    L.push(...absTable(r, topo, [
      { label: 'proxies', metric: 'cpuproxy' },
      { label: 'apps', metric: 'cpuapp' },
      { label: 'total', metric: 'cputotal' },
    ], 1, 'lower', 1000));
    L.push('');
    const late = Object.entries(r.lateShare).filter(([k, v]) => k.startsWith(`${topo}/`) && v > 0.01);
    if (late.length > 0) L.push(`Requests sent more than 1 ms after they were due (their connection still busy; their latency counts from the due time): ${late.map(([k, v]) => `${k.slice(topo.length + 1)} up to ${(v * 100).toFixed(1)}%`).join('; ')}.`, '');
  }
  const sd = sockmapDefault(r, o);
  if (sd.lines.length > 0) {
    L.push('### The sockmap default (both sidecars)');
    L.push('');
    L.push('Each sockmap mode against sockmap off over every figure above (ratio of the medians; "clearly" = at least 3% and the min–max ranges apart):');
    L.push('');
    L.push(...sd.lines, '', sd.verdict, '');
  }
  const noise = noiseFloor(r, o);
  if (noise) {
    L.push('### The noise of this bench');
    L.push('');
    L.push(`Across two nodes, \`proxy-only\` put no socket into the sockhash (its verification above: the proxy-to-proxy connection crosses the wire), so it ran the same datapath as sockmap off. Their ratios over the ${noise.figures} figures of that topology, ${noise.min.toFixed(2)} to ${noise.max.toFixed(2)} (${noise.clear} of them a clear difference by the rule above), are what this machine's noise alone gives between two identical modes: read every ratio in this file against that spread, the p99 and p99.9 ones above all.`);
    L.push('');
  }
  L.push('### What the verification saw (first repetition)');
  L.push('');
  for (const [k, v] of Object.entries(r.verification)) L.push(`- ${k}: \`${v.split('\n')[0] ?? ''}\`${v.split('\n').slice(1).map((l) => `; ${l.trim()}`).join('')}`);
  for (const [k, v] of Object.entries(r.refused)) L.push(`- ${k}: **not measured: the installer did not run this mode**: ${v}`);
  L.push('');
  if (r.errors.length > 0) {
    L.push('### Errors during the `both` runs');
    L.push('');
    for (const e of r.errors) L.push(`- ${e}`);
    L.push('');
  }
  return L;
}
