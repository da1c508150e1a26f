// BENCHMARKS.md from one run's samples: the machine, the method, the tables
// (median with min–max over the repetitions, ratios of the medians), and the
// findings derived from the figures (where meshlane wins, where it loses, and
// which sockmap setting the figures support).
import type { CniOptions, CniResult } from './cni.js';
import { MODES, MODE_TITLE, type Mode, type NetOptions, type NetResult } from './net.js';
import { fmtNum, fmtRatio, spread, type Spread } from './util.js';
import { BODY_BYTES, TOPOLOGY_TITLE, type MeshOptions, type MeshResult } from './mesh.js';
import { renderMesh, sockmapDefault, targetChecks } from './mesh-report.js';

export interface Machine {
  nproc: string;
  kernel: string;
  cpuModel: string;
  memGiB: string;
  haproxy: string;
  wrk: string;
  iperf3: string;
  iptables: string;
  node: string;
  commit: string;
  dirty: boolean;
  date: string;
  /** 1/5/15-minute load averages when the run started and ended. */
  loadStart: string;
  loadEnd: string;
  nice: string;
}

export interface ReportInput {
  machine: Machine;
  net: NetResult | undefined;
  /** The `both` runs (absent in runs saved before they existed). */
  mesh?: MeshResult | undefined;
  cni: CniResult | undefined;
  netOpts: NetOptions;
  meshOpts?: MeshOptions;
  /** A quick subset (--quick): not for figures. */
  quick?: boolean;
  /** The CNI section of the BENCHMARKS.md this run replaces, kept when the run did not measure the CNI. */
  keptCni?: string | undefined;
  cniOpts: CniOptions;
  final: boolean;
  seconds: number;
  /** BENCH_* variables the run was started with. */
  knobs: string[];
}

type Dir = 'higher' | 'lower';

/** The section of a markdown text from `heading` (a `## ` line) to the next `## ` heading, or undefined. */
export function keptSection(text: string, heading: string): string | undefined {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.trim() === heading);
  if (start < 0) return undefined;
  let end = lines.findIndex((l, i) => i > start && l.startsWith('## '));
  if (end < 0) end = lines.length;
  return lines.slice(start, end).join('\n').trimEnd();
}

function stat(net: NetResult, metric: string, mode: Mode): Spread {
  return spread(net.samples.filter((s) => s.metric === metric && s.mode === mode).map((s) => s.value));
}

function sizeLabel(n: number): string {
  return n >= 1024 ? `${n / 1024} KiB` : `${n} B`;
}

function cell(s: Spread, scale: number, digits: number): string {
  if (s.n === 0) return 'n/a';
  if (s.n === 1) return fmtNum(s.median / scale, digits);
  return `${fmtNum(s.median / scale, digits)} (${fmtNum(s.min / scale, digits)}–${fmtNum(s.max / scale, digits)})`;
}

interface Row {
  label: string;
  metric: string;
  dir: Dir;
  /** Decimals in the table (default: the table's). */
  digits?: number;
}

function table(net: NetResult, rows: Row[], scale: number, digits: number): string {
  const head = `| | ${MODES.map((m) => MODE_TITLE[m]).join(' | ')} | ml off ÷ iptables | ml on ÷ iptables | ml off ÷ limit | ml on ÷ limit | iptables ÷ limit |`;
  const sep = `|---|${MODES.map(() => '---:').join('|')}|---:|---:|---:|---:|---:|`;
  const lines = rows.map((r) => {
    const st = Object.fromEntries(MODES.map((m) => [m, stat(net, r.metric, m)])) as Record<Mode, Spread>;
    const med = (m: Mode): number => st[m].median;
    return `| ${r.label} | ${MODES.map((m) => cell(st[m], scale, r.digits ?? digits)).join(' | ')} | ${fmtRatio(med('ml-off'), med('iptables'))} | ${fmtRatio(med('ml-on'), med('iptables'))} | ${fmtRatio(med('ml-off'), med('limit'))} | ${fmtRatio(med('ml-on'), med('limit'))} | ${fmtRatio(med('iptables'), med('limit'))} |`;
  });
  return [head, sep, ...lines].join('\n');
}

/** Relative gain of a over b, signed so that positive = a better. */
function gain(a: number, b: number, dir: Dir): number {
  return dir === 'higher' ? a / b - 1 : b / a - 1;
}

function findings(net: NetResult, rows: Row[]): string[] {
  const out: string[] = [];
  const THRESH = 0.03;
  const cmp = (a: Mode, b: Mode): { wins: string[]; losses: string[]; even: string[] } => {
    const wins: string[] = [];
    const losses: string[] = [];
    const even: string[] = [];
    for (const r of rows) {
      const sa = stat(net, r.metric, a);
      const sb = stat(net, r.metric, b);
      if (sa.n === 0 || sb.n === 0) continue;
      const g = gain(sa.median, sb.median, r.dir);
      // Counted as a difference only when the ranges do not overlap as well.
      const separated = r.dir === 'higher' ? (g > 0 ? sa.min > sb.max : sa.max < sb.min) : g > 0 ? sa.max < sb.min : sa.min > sb.max;
      const text = `${r.label} ${fmtRatio(sa.median, sb.median)}×`;
      if (Math.abs(g) < THRESH || !separated) even.push(text);
      else if (g > 0) wins.push(text);
      else losses.push(text);
    }
    return { wins, losses, even };
  };
  const list = (xs: string[]): string => (xs.length === 0 ? 'none' : xs.join('; '));
  for (const [a, b] of [
    ['ml-off', 'iptables'],
    ['ml-on', 'iptables'],
    ['ml-on', 'ml-off'],
  ] as const) {
    const c = cmp(a, b);
    out.push(`**${MODE_TITLE[a]} vs ${MODE_TITLE[b]}** (ratio of the medians, ${MODE_TITLE[a]} ÷ ${MODE_TITLE[b]}: for rates above 1 is better, for latency and CPU below 1 is better; a difference counts when it is ≥ 3% and the min–max ranges do not overlap):`);
    out.push(`  - better: ${list(c.wins)}`);
    out.push(`  - worse (${MODE_TITLE[a]} loses): ${list(c.losses)}`);
    out.push(`  - no clear difference: ${list(c.even)}`);
  }
  return out;
}

/** Sockmap on against off, figure by figure: clear (≥ 3% and ranges apart) wins and losses, and the rest. */
function onVsOff(net: NetResult, rows: Row[]): { wins: string[]; losses: string[]; unclear: string[] } {
  const wins: string[] = [];
  const losses: string[] = [];
  const unclear: string[] = [];
  for (const r of rows) {
    const on = stat(net, r.metric, 'ml-on');
    const off = stat(net, r.metric, 'ml-off');
    if (on.n === 0 || off.n === 0) continue;
    const g = gain(on.median, off.median, r.dir);
    const apart = on.min > off.max || on.max < off.min;
    const text = `${r.label} ${fmtRatio(on.median, off.median)}×`;
    if (Math.abs(g) >= 0.03 && apart) (g > 0 ? wins : losses).push(text);
    else unclear.push(text);
  }
  return { wins, losses, unclear };
}

export function sockmapVerdict(net: NetResult, rows: Row[]): string {
  if (!net.samples.some((x) => x.mode === 'ml-on')) return 'Sockmap on was not measured in these runs (see above): nothing here to weigh against sockmap off.';
  const v = onVsOff(net, rows);
  const lines = [
    'Sockmap on ÷ sockmap off, ratio of the medians (rates: above 1 is better; latency and CPU: below 1 is better). Clear = ≥ 3% and the min–max ranges apart:',
    '',
    `- clearly better with sockmap on: ${v.wins.join('; ') || 'nothing'}`,
    `- clearly worse with sockmap on: ${v.losses.join('; ') || 'nothing'}`,
    `- within the noise: ${v.unclear.join('; ') || 'nothing'}`,
    '',
  ];
  if (v.losses.length > 0) {
    lines.push(
      `What these figures support: keep the installer default **\`--sockmap off\`**. Sockmap on is clearly worse on ${v.losses.length} figure(s) above${v.wins.length > 0 ? ` while it is clearly better on ${v.wins.length}` : ''}, so it is not the faster choice across the board; it stays available (\`--sockmap on\`) for workloads whose own measurements show the gain.`,
    );
  } else if (v.wins.length > 0) {
    lines.push('What these figures support: sockmap **on** is clearly better on some figures and clearly worse on none; these figures alone would support making it the default.');
  } else {
    lines.push('What these figures support: no clear difference either way; keep the simpler path, **`--sockmap off`**, as the default.');
  }
  return lines.join('\n');
}

function rowSets(o: NetOptions): { rpsRows: Row[]; latRows: Row[]; cpsRows: Row[]; tputRows: Row[]; cpuRows: Row[]; allRows: Row[] } {
  const rpsRows: Row[] = o.connections.map((c) => ({ label: `${c} connections`, metric: `rps@${c}`, dir: 'higher' }));
  const latRows: Row[] = o.connections.flatMap((c) => [
    { label: `p50, ${c} conns`, metric: `p50@${c}`, dir: 'lower' as Dir },
    { label: `p99, ${c} conns`, metric: `p99@${c}`, dir: 'lower' as Dir },
  ]);
  const cpsRows: Row[] = [{ label: 'connections/s', metric: 'cps', dir: 'higher' }];
  const tputRows: Row[] = o.sizes.map((s) => ({ label: `${sizeLabel(s)} writes`, metric: `tput@${s}`, dir: 'higher' }));
  const cpuReqRows: Row[] = o.connections.map((c) => ({ label: `per request, ${c} conns`, metric: `cpureq@${c}`, dir: 'lower' }));
  const cpuConnRows: Row[] = [{ label: 'per connection (Connection: close)', metric: 'cpuconn', dir: 'lower' }];
  const cpuMibRows: Row[] = o.sizes.map((s) => ({ label: `per MiB, ${sizeLabel(s)} writes`, metric: `cpumib@${s}`, dir: 'lower', digits: 0 }));
  const cpuRows = [...cpuReqRows, ...cpuConnRows, ...cpuMibRows];
  const allRows = [
    ...rpsRows.map((x) => ({ ...x, label: `req/s at ${x.label}` })),
    ...latRows.map((x) => ({ ...x, label: `latency ${x.label}` })),
    ...cpsRows,
    ...tputRows.map((x) => ({ ...x, label: `throughput ${x.label}` })),
    ...cpuRows.map((x) => ({ ...x, label: `CPU ${x.label}` })),
  ];
  return { rpsRows, latRows, cpsRows, tputRows, cpuRows, allRows };
}

function summaryRows(o: NetOptions): Row[] {
  return rowSets(o).allRows;
}

/** One line per comparison: how many figures are clearly better / worse. */
function summaryLines(net: NetResult, rows: Row[]): string[] {
  const out: string[] = [];
  const pairs: Array<[Mode, Mode]> = [
    ['ml-off', 'iptables'],
    ['ml-on', 'iptables'],
    ['ml-on', 'ml-off'],
    ['ml-off', 'limit'],
    ['ml-on', 'limit'],
    ['iptables', 'limit'],
  ];
  for (const [a, b] of pairs) {
    const better: string[] = [];
    const worse: string[] = [];
    for (const r of rows) {
      const sa = stat(net, r.metric, a);
      const sb = stat(net, r.metric, b);
      if (sa.n === 0 || sb.n === 0) continue;
      const g = gain(sa.median, sb.median, r.dir);
      const apart = sa.min > sb.max || sa.max < sb.min;
      if (Math.abs(g) < 0.03 || !apart) continue;
      (g > 0 ? better : worse).push(`${r.label} ${fmtRatio(sa.median, sb.median)}×`);
    }
    out.push(`- ${MODE_TITLE[a]} against ${MODE_TITLE[b]}: clearly better on ${better.length} of ${rows.length} figures${better.length ? ` (${better.join('; ')})` : ''}; clearly worse on ${worse.length}${worse.length ? ` (${worse.join('; ')})` : ''}; the rest within the noise.`);
  }
  return out;
}

export function renderReport(r: ReportInput): string {
  const m = r.machine;
  const o = r.netOpts;
  const L: string[] = [];
  L.push('# Benchmarks');
  L.push('');
  L.push(`Written by \`npm run bench\` (scripts/bench/) on ${m.date}${r.final ? '' : ' — **partial: the run did not finish**'}; the whole run took ${r.seconds.toFixed(0)} s.`);
  const knobs = r.knobs;
  L.push(`Command: \`${knobs.length > 0 ? `${knobs.join(' ')} ` : ''}npm run bench\`. Numbers are from one machine in one run; compare the modes with each other, not with other machines.`);
  L.push('');
  if (r.quick) {
    L.push('**A quick subset (`--quick`): short runs (by default one repetition, one topology, no CNI). For development, not for figures.**');
    L.push('');
  }
  if (r.mesh && r.meshOpts) {
    L.push('## Summary: both sidecars');
    L.push('');
    L.push(`Client and server pod each with a sidecar, against no sidecars (the baseline), at a fixed ${fmtNum(r.meshOpts.rate)} requests/s over ${r.meshOpts.connections} connections; the targets, measured on one node (details below):`);
    L.push('');
    for (const t of targetChecks(r.mesh, r.meshOpts)) L.push(`- ${t.met === undefined ? 'n/a' : t.met ? 'met' : '**not met**'}: ${t.text}`);
    for (const [k, v] of Object.entries(r.mesh.refused)) L.push(`- ${k}: not measured, the installer did not run this mode: ${v}`);
    L.push('');
    const sd = sockmapDefault(r.mesh, r.meshOpts);
    if (sd.lines.length > 0) L.push(sd.verdict, '');
  }
  if (r.net) {
    const rows = summaryRows(r.netOpts);
    L.push('## Summary: client sidecar only');
    L.push('');
    L.push('Ratios of the medians (rates: above 1 is better; latency and CPU cost: below 1 is better); "clearly" = at least 3% and the min–max ranges of the repetitions do not overlap. Details, all figures and the method below.');
    L.push('');
    for (const l of summaryLines(r.net, rows)) L.push(l);
    for (const [mode, why] of Object.entries(r.netOpts.skip ?? {})) L.push(`- ${MODE_TITLE[mode as Mode]}: not measured: the installer would not run it on this kernel (\`meshlane sockmap-probe\`): ${why}`);
    L.push('');
    L.push(sockmapVerdict(r.net, rows).split('\n').slice(-1)[0] ?? '');
    L.push('');
  }
  L.push('## Machine');
  L.push('');
  L.push(`- ${m.nproc} CPUs: ${m.cpuModel}; ${m.memGiB} GiB RAM; kernel ${m.kernel} (a VM)`);
  L.push(`- ${m.haproxy}`);
  L.push(`- ${m.wrk}; ${m.iperf3}; ${m.iptables}; Node ${m.node}; testing/tools/mlload (open-loop load, built with the machine's cc)`);
  L.push(`- load average (1/5/15 min) at the start ${m.loadStart}, at the end ${m.loadEnd}${m.nice !== '0' ? `; the bench ran at nice ${m.nice}` : ''}: other work on this machine shares the ${m.nproc} CPUs, which widens the min–max ranges`);
  L.push(`- meshlane commit ${m.commit}${m.dirty ? ' with uncommitted changes in src/ or bpf/' : ''}; dist/meshlane and dist/bpf/meshlane.o as built`);
  L.push('');
  L.push('## Method');
  L.push('');
  if (r.meshOpts) {
    const mo = r.meshOpts;
    L.push('### Both sidecars (client and server pod meshed)');
    L.push('');
    L.push(`- **Topologies**: ${mo.topologies.map((t) => TOPOLOGY_TITLE[t]).join('; ')}. *Same node*: both pods on one sandbox node; meshlane steers the client sidecar's connect to the server pod's 15006 (cgroup/connect4), Istio's rules REDIRECT it in the server pod's PREROUTING. *Across two nodes*: the client pod on a second sandbox node (prefix \`mlbnx\`), the two node netns linked by a veth pair (testing/sandbox linkNodes: routed, no NAT); the server pod's inbound is meshlane's tc program on its eth0 (attached by its CNI ADD) or Istio's PREROUTING REDIRECT.`);
    L.push(`- **Pods**: the server pod runs HAProxy as the app (uid 1000, \`http-request return\` with a ${mo.connections > 0 ? '1 KiB' : ''} body, one thread) on :8080; each pod has a sidecar, HAProxy (\`mode tcp\`, one thread, uid 1337 in the pod's \`istio-proxy\` container): 15001 outbound and 15006 inbound, each connecting to the original destination read with SO_ORIGINAL_DST, the inbound one from 127.0.0.6 as Envoy's inbound passthrough does (istio-cni's rules and meshlane leave 127.0.0.6 alone), and fixed frontends for the limit (client 127.0.0.1:15002 → server sidecar :15007 → app). The load generator runs as uid 1000 in the client pod's \`app\` container. A fresh pair of pods for every mode and repetition.`);
    L.push(`- **Modes** (the order rotates between repetitions): *baseline* (no sidecar: the app connects to the server app); *explicit proxies (limit)* (both sidecars, no interception: the proxy hops without redirect cost); *Istio iptables* (istio-cni's \`basic.txt.golden\` restored in both pods' netns, as for the client-only runs below); *meshlane, sockmap off / proxy-only / on*: \`dist/meshlane install --once --sockmap <mode>\` on every node (the node installer, against the sandbox node's cgroup root, pin dir and a CNI config dir of its own), then both pods through the CNI chain: the meshlane entry the installer wrote, ADD run as a runtime runs it (testing/sandbox/chain-pod.ts) with the pod annotations of \`fixtures/pods/istio-sidecar-cni-native.json\`; DEL at the end. When the installer leaves another sockmap setting than asked (a kernel it finds unsafe for it), that mode is reported as not measured. The installer runs for every meshlane mode in the first repetition; later, whenever the datapath is not attached (after a mode without meshlane), and from one meshlane mode to the next the bench writes the settings the installer wrote for that mode (an installer pass reloads the whole object: seconds that measure nothing).`);
    L.push(`- **Verification per mode**: one request through sidecars that log each connection: the client sidecar's \`outbound\` frontend must show destination = the server's address and port, and the server sidecar's \`inbound\` frontend the same original destination (both read with SO_ORIGINAL_DST; the accepted sockets' own ends are 15001 and 15006), the 1 KiB body must arrive; in the meshlane modes the datapath counters over the run must show both hops steered (connect4 to the peer's 15006 on one node, the tc redirect across nodes), getsockopt answers, and sk_msg redirects exactly when the mode has them.`);
    L.push(`- **Fixed-rate latency**: testing/tools/mlload, an open-loop client: request k is due at start + k / rate, on connection k mod C (keep-alive, HTTP/1.1 GET, no pipelining); a request whose connection is still busy is sent when it frees up, and its latency still counts from its due time, so a stall counts in every request it delayed (no coordinated omission). ${fmtNum(mo.rate)} requests/s, ${mo.connections} connections, ${mo.loadSeconds} s after ${mo.warmupMs} ms of warm-up; p50, p90, p99, p99.9 (nearest rank). The rate is Istio's own (1,000 requests/s, 16 connections, 1 KiB payload), not scaled down: each topology's results say what share of the slowest mode's max requests/s it is, so the latency is the data path's and not a queue's; a run with errors, or with requests still unsent or unanswered 5 s after the end, fails. Sweep: the same rate over ${mo.sweep.join(', ')} connections, ${(mo.sweepMs / 1000).toFixed(1)} s each (same node only).`);
    L.push(`- **Added latency**: per repetition, the mode's percentile minus the baseline's in the same repetition; the ratio to Istio iptables is of the medians of those. ✓ / ✗ in a ratio column: a clear difference (≥ 3% and the min–max ranges over the repetitions apart).`);
    L.push(`- **Max requests/s**: wrk (closed loop) at ${mo.maxConns.join(', ')} connections, ${mo.wrkSeconds} s each. **Connection set-up rate**: wrk -c 16 with \`Connection: close\`, ${mo.connSeconds} s.`);
    L.push('- **CPU per 1,000 requests**: over the fixed-rate run, cgroup v2 `cpu.stat` usage_usec of the two `istio-proxy` containers (the proxies) and of the two `app` containers (the load generator and the server), divided by the requests completed. This kernel has no IRQ time accounting: softirq network work is charged to the task it runs in.');
    L.push(`- **Repetitions**: ${mo.reps}; modes interleaved (every repetition runs every mode, in a rotated order). The load average before and after the run is under Machine.`);
    L.push('- **Caveats**: the sidecars are HAProxy in `mode tcp` (a byte relay), not Envoy (HTTP parsing, filters): the proxy\'s own cost is smaller than Envoy\'s, so the interception\'s share of the added latency and CPU is larger here than in a real mesh. Which legs a sockmap mode bypasses: of the three TCP connections of a request (app → client sidecar, client sidecar → server sidecar, server sidecar → app), `proxy-only` puts the middle one in the sockhash and `on` the first two (on one node; across nodes only the first, since the middle one crosses the wire); the third, the server sidecar\'s passthrough from 127.0.0.6 to the pod\'s own address, is a connection meshlane does not redirect and never joins the sockhash in any mode. The sidecars and the server run one thread each and share 2 CPUs with the load generator.');
    L.push('');
    L.push('### Client sidecar only (server without a sidecar)');
    L.push('');
  }
  L.push(`- A sandbox node (testing/sandbox, prefix \`mlbnc\` + a run tag): its own cgroup v2 subtree, bpffs pin dir and netns; pods are netns on a bridge in the node's netns, with kubelet-style cgroups. All traffic stays inside these netns; everything is removed at the end (and on failure).`);
  L.push(`- **Server pod**: HAProxy as the HTTP server (\`http-request return status 200\`, 2-byte body, one thread, keep-alive) on :8080, and a fresh one-shot \`iperf3 -s -1\` on :5201 for each throughput test (a long-lived iperf3 server was seen to stay busy after a test and stall the next), all uid 1000. HAProxy was chosen because it is fast, is C, and needs no other package; nginx is not installed.`);
  L.push(`- **Client pod**: the sidecar is HAProxy (one thread, \`mode tcp\`) as uid 1337 in the pod's \`istio-proxy\` cgroup: \`bind 0.0.0.0:15001\` → \`server orig 0.0.0.0:0\` (HAProxy reads the original destination with \`getsockopt(SO_ORIGINAL_DST)\` on the accepted socket and connects there), plus two explicit frontends with fixed servers (127.0.0.1:15002 → server:8080, 127.0.0.1:15003 → server:5201). The app (wrk, iperf3 client, curl) runs as uid 1000 in the pod's \`app\` cgroup. The same HAProxy binary and configuration in every mode.`);
  L.push(`- **Modes** (a fresh client pod for every mode and repetition; the order of the modes rotates between repetitions):`);
  L.push(`  - *explicit proxy (limit)*: the app connects to the proxy's explicit frontends; no interception installed (no nat rules, no meshlane program attached). The proxy hop without any redirect cost.`);
  L.push(`  - *Istio iptables*: istio-cni's \`basic.txt.golden\` (nat table: ISTIO_INBOUND, ISTIO_REDIRECT, ISTIO_IN_REDIRECT, ISTIO_OUTPUT with the uid/gid 1337 exemption; the dry-run text turned into \`iptables-restore\` input: \`* nat\` → \`*nat\`, \`-N X\` → \`:X - [0:0]\`) restored with \`nsenter --net=<client netns> -- iptables-restore\`; the app connects to the server's address, REDIRECT sends it to 15001; no meshlane program attached.`);
  L.push(`  - *meshlane, sockmap off / on*: dist/bpf/meshlane.o installed on the node cgroup root (installDatapath), the client pod registered with the default interception (registerPod + encodePodConfig(DEFAULT_INTERCEPTION)), settings flags 0 or SET_F.SOCKMAP_REDIRECT. The server pod is not registered in any mode (only the client side's outbound is intercepted).`);
  L.push(`- **Verification per mode**: before the measured runs, a HAProxy with a connection log serves one curl request; the run fails unless the log line shows frontend \`outbound\` (the 15001 listener) with destination (\`%fi:%fp\`) = the server pod's address and port and \`server <server pod IP>:8080\` (the accepted socket's own address is 127.0.0.1:15001, so HAProxy can only have learnt the server's address through SO_ORIGINAL_DST), or frontend \`explicit_http\` for the limit. The 15001 frontend refuses a connection whose destination is still port 15001 (\`tcp-request connection reject if { dst_port 15001 }\`, as Envoy refuses to connect to itself), so a missing original destination fails instead of looping. In the meshlane modes the datapath counters must show getsockopt answers, and sk_msg redirects exactly when sockmap is on.`);
  L.push(`- **Requests**: \`wrk -t min(2,c) -c c -d ${o.wrkSeconds}s --latency\` for c = ${o.connections.join(', ')} (HTTP/1.1 keep-alive, GET /): requests/s, p50 and p99 latency (wrk's latency distribution; note wrk's coordinated-omission caveat).`);
  L.push(`- **Connection set-up rate**: \`wrk -c 10 -d ${o.connSeconds}s -H "Connection: close"\`: every request is a new app→proxy and proxy→server connection (connect, interception, SO_ORIGINAL_DST, accept, close); reported as connections/s.`);
  L.push(`- **CPU cost**: for every wrk and iperf3 run, the CPU time the client and server pod cgroups used (cgroup v2 \`cpu.stat\` usage_usec; this kernel has no IRQ time accounting, so softirq network work is charged to the task it runs in), per request, per connection, per MiB.`);
  L.push(`- **Throughput**: \`iperf3 -c <server> -t ${o.iperfSeconds} -l <size>\` (one stream, app → proxy → server; the limit uses the explicit frontend) for ${o.sizes.map(sizeLabel).join(', ')} writes; the receiver's bits/s.`);
  L.push(`- **Repetitions**: ${o.reps}. Cells are *median (min–max)* over the repetitions; ratios are of the medians. For latency a ratio below 1 is better; for everything else above 1 is better.`);
  L.push(`- **CPU budget**: the app, the proxy and the server share ${m.nproc} CPUs, as on a busy node; nothing is pinned. Absolute figures are low for that reason; the comparison is what counts.`);
  L.push(`- **CNI**: \`dist/meshlane\` executed as a runtime does (config on stdin, CNI_* env, \`execa\` from Node, timed from spawn to exit), **meshlane alone with a synthetic prevResult** (what bridge + host-local would hand on: eth0 and the pod's two addresses; their own cost is not meshlane's), for the native-sidecar pod of \`fixtures/pods/istio-sidecar-cni-native.json\` (decided from its annotations through runtimeConfig, no API server). ${r.cniOpts.runs} × (ADD then DEL) with 1 pod registered and ${r.cniOpts.runs} × with 999 synthetic pods pre-registered in one bpftool batch (1,000 registered during each ADD), the two cases alternating in blocks of 50 so that a change of load does not land on one of them. Beside them: \`CNI_COMMAND=VERSION dist/meshlane\` and an empty SEA executable (\`console.log\` only, built with @yao-pkg/pkg in SEA mode as scripts/build.mjs builds dist/meshlane, same Node 22.23.3 base) over ${r.cniOpts.startupRuns} runs each, and \`/bin/true\` for the cost of spawning from Node.`);
  L.push('- **Caveats**: sockmap on bypasses only the app ↔ sidecar leg (both ends in the client pod); the sidecar → server leg is plain TCP over the veth and bridge in every mode, and a sidecar ↔ sidecar leg (SOCKMAP_PROXY_ONLY) is not measured here (the server has no sidecar; see the both-sidecars runs). The sidecar runs one HAProxy thread, so at 10 and 100 connections the proxy is the bottleneck in every mode. wrk is a closed loop: its p99 on a shared 2-CPU VM is dominated by scheduling. Short runs (seconds) on a VM: differences below ~10% are within the noise unless the min–max ranges are clearly apart.');
  if (o.reps < 3 || o.wrkSeconds < 3) L.push(`- **Shortened run**: ${o.reps} repetition(s), ${o.wrkSeconds} s per wrk run (BENCH_* variables); the ranges are less reliable.`);
  L.push('');

  if (r.mesh && r.meshOpts) L.push(...renderMesh(r.mesh, r.meshOpts));
  const net = r.net;
  const { rpsRows, latRows, cpsRows, tputRows, cpuRows, allRows } = rowSets(o);
  if (net) {
    L.push('## Results: client sidecar only (server without a sidecar)');
    L.push('');
    L.push('### Requests/s (wrk, keep-alive)');
    L.push('');
    L.push(table(net, rpsRows, 1, 0));
    L.push('');
    L.push('### Latency (µs, wrk)');
    L.push('');
    L.push(table(net, latRows, 1, 0));
    L.push('');
    L.push('### Connection set-up rate (connections/s)');
    L.push('');
    L.push(table(net, cpsRows, 1, 0));
    L.push('');
    L.push('### Throughput (Gbit/s, iperf3, one stream)');
    L.push('');
    L.push(table(net, tputRows, 1e9, 2));
    L.push('');
    L.push('### CPU cost (µs of CPU, client pod + server pod cgroups)');
    L.push('');
    L.push('cgroup v2 `cpu.stat` usage of the two pod cgroups (app, sidecar and server processes, and the kernel network work done in their context) over each run, divided by the requests, connections or MiB received. Less sensitive to other load on the machine than the rates above.');
    L.push('');
    L.push(table(net, cpuRows, 1, 1));
    L.push('');
    L.push('### What the verification saw (first repetition)');
    L.push('');
    for (const mode of MODES) if (net.verification[mode]) L.push(`- ${MODE_TITLE[mode]}: \`${net.verification[mode].split('\n')[0]}\`${net.verification[mode].split('\n').slice(1).map((l) => `; ${l.trim()}`).join('')}`);
    L.push('');
    L.push('### Findings (derived from the figures above)');
    L.push('');
    for (const f of findings(net, allRows)) L.push(f.startsWith('  ') ? f : `- ${f}`);
    L.push('');
    L.push('### The sockmap default');
    L.push('');
    L.push(sockmapVerdict(net, allRows));
    L.push('');
    if (net.errors.length > 0) {
      L.push('### Errors during the run');
      L.push('');
      for (const e of net.errors) L.push(`- ${e}`);
      L.push('');
    }
  }
  const cni = r.cni;
  if (!cni && r.keptCni) {
    L.push(r.keptCni);
    L.push('');
  }
  if (cni) {
    L.push('## Results: CNI');
    L.push('');
    L.push('| | runs | p50 (ms) | p99 (ms) | min (ms) | max (ms) |');
    L.push('|---|---:|---:|---:|---:|---:|');
    for (const t of cni.timings) L.push(`| ${t.label} | ${t.runs} | ${t.p50Ms.toFixed(1)} | ${t.p99Ms.toFixed(1)} | ${t.minMs.toFixed(1)} | ${t.maxMs.toFixed(1)} |`);
    L.push('');
    if (cni.paired && cni.paired.length > 0) {
      L.push('Each call paired with the bare SEA start run just before it (ratio of each pair, then the median; targets: VERSION ≤ 1.10, ADD and DEL ≤ 1.30):');
      L.push('');
      L.push('| call / bare SEA start | pairs | median ratio | p10 | p90 | call p50 (ms) | bare p50 (ms) |');
      L.push('|---|---:|---:|---:|---:|---:|---:|');
      for (const p of cni.paired) L.push(`| ${p.label} | ${p.pairs} | ${p.median.toFixed(2)} | ${p.p10.toFixed(2)} | ${p.p90.toFixed(2)} | ${p.aMs.toFixed(1)} | ${p.bMs.toFixed(1)} |`);
      L.push('');
    }
    for (const n of cni.notes) L.push(`- ${n}`);
    for (const e of cni.errors) L.push(`- error: ${e}`);
    L.push('');
  }
  return `${L.join('\n')}\n`;
}
