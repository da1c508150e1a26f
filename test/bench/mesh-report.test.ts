// The pure parts of the `both` benchmark: mlload's summary, the latency added
// over the baseline (repetition by repetition), the clear-difference rule, the
// targets, and the CNI section carried over from the previous BENCHMARKS.md.
import t from 'tap';
import { addedOf, clearDifferences, compare, defaultMode, noiseFloor, sockmapDefault, statOf, targetChecks, type FigureOptions } from '../../scripts/bench/mesh-report.js';
import type { MeshMode, MeshResult, MeshSample } from '../../scripts/bench/mesh.js';
import { keptSection } from '../../scripts/bench/report.js';
import { parseLoad, spread } from '../../scripts/bench/util.js';

const DONE = '{"event":"done","rate":1000.0,"connections":16,"sent":1300,"completed":1300,"measured":1000,"errors":0,"timeouts":0,"unsent":0,"late_sends":12,"achieved_rps":1000.0,"p50_us":119.0,"p90_us":302.5,"p99_us":1977.2,"p999_us":2894.4,"max_us":2993.8}';

t.test('parseLoad reads the summary line and fails a run with errors, timeouts or unsent requests', async (t) => {
  const r = parseLoad(`noise\n${DONE}\n`);
  t.equal(r.error, undefined);
  t.equal(r.p50Us, 119);
  t.equal(r.p999Us, 2894.4);
  t.equal(r.completed, 1300);
  t.equal(r.lateSends, 12);
  t.match(parseLoad(DONE.replace('"unsent":0', '"unsent":7')).error, /unsent 7/);
  t.match(parseLoad(DONE.replace('"errors":0', '"errors":2').replace('"timeouts":0', '"timeouts":1')).error, /errors 2, timeouts 1/);
  t.match(parseLoad('{"event":"error","what":"connect"}').error, /no summary/);
});

function samples(metric: string, byMode: Partial<Record<MeshMode, number[]>>): MeshSample[] {
  return Object.entries(byMode).flatMap(([mode, vs]) => (vs ?? []).map((value, i) => ({ topo: 'same' as const, metric, mode: mode as MeshMode, rep: i + 1, value })));
}

t.test('added latency is taken repetition by repetition against that repetition\'s baseline', async (t) => {
  const s = samples('p99@16', { baseline: [100, 200, 150], iptables: [300, 420, 330], 'ml-off': [160] });
  t.same(addedOf(s, 'same', 'p99@16', 'iptables'), { min: 180, median: 200, max: 220, n: 3 });
  t.same(addedOf(s, 'same', 'p99@16', 'ml-off'), { min: 60, median: 60, max: 60, n: 1 }, 'only repetitions that have both');
  t.equal(statOf(s, 'same', 'p99@16', 'baseline').median, 150);
});

t.test('a difference is clear only when it is large enough and the ranges are apart', async (t) => {
  const a = spread([10, 11, 12]);
  const b = spread([20, 21, 22]);
  t.same(compare(a, b, 'lower'), { ratio: 11 / 21, clear: 'better' });
  t.same(compare(a, b, 'higher'), { ratio: 11 / 21, clear: 'worse' });
  t.equal(compare(spread([10, 15, 21]), b, 'lower').clear, undefined, 'overlapping ranges');
  t.equal(compare(spread([100, 101]), spread([102, 103]), 'lower').clear, undefined, 'below 3%');
  t.equal(compare(spread([105, 106]), spread([100, 101]), 'higher', 0.1).clear, undefined, 'below the 10% asked');
  t.ok(Number.isNaN(compare(spread([]), b, 'lower').ratio));
  t.equal(compare(spread([10]), spread([20]), 'lower').clear, undefined, 'one repetition each: no range, nothing clear');
});

t.test('the targets: added p99, CPU and max requests/s against Istio iptables', async (t) => {
  const s: MeshSample[] = [
    ...samples('p99@16', { baseline: [100, 100, 100], iptables: [300, 300, 300], 'ml-off': [250, 260, 240], 'ml-on': [200, 210, 190] }),
    ...samples('cpuproxy', { iptables: [100, 100, 100], 'ml-off': [95, 95, 95], 'ml-on': [80, 85, 82] }),
    ...samples('cputotal', { iptables: [200, 200, 200], 'ml-off': [190, 190, 190], 'ml-on': [170, 175, 172] }),
    ...samples('rps@16', { iptables: [1000, 1010, 990], 'ml-off': [1050, 1060, 1040], 'ml-on': [1200, 1250, 1190] }),
    ...samples('rps@64', { iptables: [1000, 1300, 990], 'ml-off': [1050, 1060, 1040], 'ml-on': [1200, 1250, 1190] }),
  ];
  const r: MeshResult = { samples: s, verification: {}, refused: {}, lateShare: {}, errors: [] };
  const checks = targetChecks(r, FIG);
  const find = (re: RegExp): boolean | undefined => checks.find((c) => re.test(c.text))?.met;
  t.equal(find(/sockmap off: added p99/), true, 'ml off: added 150 against 200: 0.75 ≤ 0.80');
  t.equal(find(/sockmap on: added p99/), true, 'ml on: 100 against 200');
  t.equal(find(/sockmap off: CPU per 1,000 requests \(proxies\)/), false, 'ml off: 0.95 > 0.90');
  t.equal(find(/sockmap on: CPU per 1,000 requests \(proxies\)/), true, 'ml on: 0.82');
  t.equal(find(/sockmap on: CPU per 1,000 requests \(proxies \+ apps\)/), true);
  t.equal(find(/sockmap off: max requests\/s at 16/), false, 'ml off: 1.05 < 1.10');
  t.equal(find(/sockmap on: max requests\/s at 16/), true, 'ml on: 1.24, ranges apart');
  t.equal(find(/sockmap on: max requests\/s at 64/), false, 'ml on at 64: the iptables range reaches 1,300: not clearly');
  t.notOk(checks.some((c) => /proxy-only/.test(c.text)), 'no line for a mode that has no samples');
  t.equal(find(/the default \(meshlane, sockmap off\) is clearly worse than Istio iptables on no figure/), true, 'ml off is nowhere clearly worse');
});

const FIG: FigureOptions = { connections: 16, sweep: [1, 64], maxConns: [16, 64], topologies: ['same'] };

t.test('the default against Istio iptables: one figure clearly worse fails the target and is named', async (t) => {
  t.equal(defaultMode(), 'ml-off', "the installer's option table says off");
  const s: MeshSample[] = [
    ...samples('cps', { iptables: [1000, 1010, 990], 'ml-off': [800, 810, 790] }),
    ...samples('p50@16', { iptables: [300, 310, 290], 'ml-off': [200, 205, 210] }),
    ...samples('p99@64', { iptables: [300, 900, 190], 'ml-off': [200, 205, 210] }),
  ];
  const r: MeshResult = { samples: s, verification: {}, refused: {}, lateShare: {}, errors: [] };
  const d = clearDifferences(r, 'same', 'ml-off', 'iptables', FIG);
  t.has(d, { better: ['p50 latency, 16 conns 0.68×'], worse: ['connections/s 0.80×'], compared: 3 }, 'p99 at 64: ranges overlap, neither');
  const check = targetChecks(r, FIG).find((c) => /the default/.test(c.text));
  t.equal(check?.met, false);
  t.match(check?.text, /clearly worse on 1 of 3 figures \(connections\/s 0\.80×\)/);
});

t.test('the sockmap default: a mode must be clearly better somewhere and clearly worse nowhere', async (t) => {
  const base = (proxyOnlyCps: number[]): MeshResult => ({
    samples: [
      ...samples('p50@16', { 'ml-off': [300, 310, 290], 'ml-proxy-only': [200, 205, 210] }),
      ...samples('cps', { 'ml-off': [1000, 1010, 990], 'ml-proxy-only': proxyOnlyCps }),
    ],
    verification: {},
    refused: {},
    lateShare: {},
    errors: [],
  });
  const good = sockmapDefault(base([1000, 1005, 995]), FIG);
  t.match(good.lines[0], /proxy-only against sockmap off: clearly better on 1 of 2 figures \(p50 latency, 16 conns 0\.68×\); clearly worse on 0: worth it here/);
  t.match(good.verdict, /installer's default is \*\*sockmap off\*\*\. meshlane, sockmap proxy-only was clearly better/);
  const bad = sockmapDefault(base([700, 705, 710]), FIG);
  t.match(bad.lines[0], /clearly worse on 1 \(connections\/s 0\.70×\): no case for it here/);
  t.match(bad.verdict, /These figures support the installer's default, \*\*sockmap off\*\*/);
  t.same(sockmapDefault({ samples: samples('cps', { 'ml-off': [1, 2] }), verification: {}, refused: {}, lateShare: {}, errors: [] }, FIG).lines.length, 0, 'no other mode measured: no lines but the verdict');
});

t.test('keptSection: the CNI section of the previous report, up to the next section', async (t) => {
  const md = '# Benchmarks\n\n## Results: data path\n\nx\n\n## Results: CNI\n\nFrom a separate run.\n\n| a |\n\n## Later\n\ny\n';
  t.equal(keptSection(md, '## Results: CNI'), '## Results: CNI\n\nFrom a separate run.\n\n| a |');
  t.equal(keptSection('## Results: CNI\nlast\n', '## Results: CNI'), '## Results: CNI\nlast');
  t.equal(keptSection(md, '## Nothing'), undefined);
});

t.test('no ratio of added latencies when Istio iptables added nothing measurable', async (t) => {
  const { addedRatio } = await import('../../scripts/bench/mesh-report.js');
  t.ok(Number.isNaN(addedRatio(spread([50]), spread([-10, -5, 3])).ratio), 'iptables\' median added ≤ 0');
  t.ok(Number.isNaN(addedRatio(spread([-20]), spread([100])).ratio), 'meshlane below the baseline');
  t.same(addedRatio(spread([40, 50, 60]), spread([100, 110, 120])), { ratio: 0.45454545454545453, clear: 'better' });
});

t.test('sockmapDecision: the installer\'s --once document says which sockmap mode it runs', async (t) => {
  const { sockmapDecision } = await import('../../scripts/bench/mesh.js');
  t.same(sockmapDecision('{"datapath":true,"sockmap":{"requested":"on","effective":"off","message":"refused: FIONREAD"}}'), { effective: 'off', message: 'refused: FIONREAD' });
  t.equal(sockmapDecision('{"datapath":true}'), undefined, 'an installer without the probe');
  t.equal(sockmapDecision('not json'), undefined);
});

t.test('the noise floor: proxy-only against off across nodes, only when nothing joined the sockhash', async (t) => {
  const cross = (metric: string, byMode: Partial<Record<MeshMode, number[]>>): MeshSample[] => samples(metric, byMode).map((x) => ({ ...x, topo: 'cross' as const }));
  const s = [...cross('cps', { 'ml-off': [1000, 1010, 990], 'ml-proxy-only': [1100, 1120, 1090] }), ...cross('p50@16', { 'ml-off': [300, 310, 290], 'ml-proxy-only': [270, 330, 300] })];
  const r = (v: string): MeshResult => ({ samples: s, verification: { 'cross/ml-proxy-only': v }, refused: {}, lateShare: {}, errors: [] });
  const n = noiseFloor(r("client sidecar: ...; meshlane counters over the run: redirect out 5, getsockopt answered 10, miss 0, sockhash added 0, sk_msg redirected 0"), { ...FIG, topologies: ['cross'] });
  t.same(n, { min: 1, max: 1100 / 1000, figures: 2, clear: 1 });
  t.equal(noiseFloor(r('... sockhash added 12, sk_msg redirected 300'), FIG), undefined, 'sockets in the sockhash: not the same datapath');
});
