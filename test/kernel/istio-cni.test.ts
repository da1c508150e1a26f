// Beside istio-cni (README.md, "Two ways to run"): pods whose netns hold the
// iptables rules istio-cni writes (Istio's own golden files, fed to iptables-restore as
// istio-cni does), registered by meshlane as well. On the real kernel:
//   1. eBPF attached: meshlane takes every connection at connect() (counters
//      move, Istio's outbound REDIRECT rule is never hit), each connection is
//      accepted exactly once at 15001 and once at the peer's 15006, the proxy's
//      own traffic passes, and SO_ORIGINAL_DST is right, also when Istio's
//      inbound REDIRECT moves the destination to another pod address; a
//      connection only Istio's rules catch still gets conntrack's answer.
//   2. programs detached: the same traffic goes through Istio's rules alone,
//      with the same original destinations, and meshlane's counters stay still;
//      a connection meshlane took before the detach completes.
//   3. re-attached: new connections are meshlane's again, while a connection
//      opened in phase 2 and still sending completes with every byte checked.
//   4. `meshlane status` says, per pod, whether Istio's rules are there.
// IPv4 from the goldens as they are. They hold no ip6tables rules (Istio's
// test ran with IPv6 off), so the IPv6 rules are derived from them the way
// istio-iptables builds its IPv6 set (see v6Counterpart) and marked as such.
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { JsonObject, Pod, SpawnedProcess } from '../../testing/sandbox/node.js';
import { detachDatapath } from '../../src/bpf/loader.js';
import type { InterceptionConfig } from '../../src/bpf/pod-config.js';
import { collectStatus, nodeMode, renderStatus } from '../../src/install/status.js';
import { interceptionFromAnnotations } from '../../src/mesh/index.js';
import { STATE_VERSION, writeRecord } from '../../src/node/records.js';
import { probeIstioRules } from '../../src/sys/istio-rules.js';
import { GOLDEN_ANNOTATIONS, applyGolden, inNetns } from '../helpers/istio-golden.js';
import { requireRoot } from '../helpers/root.js';
import { APP, PROXY, counters, datapathNode, delta, describe, install, register, startInboundProxy, startServer, summary, until, type Counters } from '../helpers/datapath.js';

requireRoot('the istio-cni coexistence test');
/** The goldens used here, with the annotations that produced them. */
const GOLDENS = {
  basic: { file: 'basic.txt.golden', annotations: GOLDEN_ANNOTATIONS['basic.txt.golden'] },
  ports: { file: 'include-exclude-ports.txt.golden', annotations: GOLDEN_ANNOTATIONS['include-exclude-ports.txt.golden'] },
} as const;

const { node, loc, mlpeer, mlproxy } = await datapathNode(t, 'mlkic', 150);
const stateDir = join(node.stateDir, 'meshlane-state');

/** Packets that hit REDIRECT rules of `chain` in the pod's nat table (= connections, nat sees the first packet only). */
async function natHits(pod: Pod, chain: string, family: 4 | 6 = 4): Promise<number> {
  const saved = await inNetns(pod, family === 4 ? 'iptables-save' : 'ip6tables-save', ['-c', '-t', 'nat']);
  let n = 0;
  for (const l of saved.split('\n')) {
    const m = /^\[(\d+):\d+\] -A (\S+) .*-j REDIRECT/.exec(l);
    if (m && m[2] === chain) n += Number(m[1]);
  }
  return n;
}

function config(annotations: Record<string, string>): InterceptionConfig {
  return interceptionFromAnnotations(annotations);
}

function recordFor(pod: Pod, cfg: InterceptionConfig, netns = pod.netnsPath, cgroupId = pod.cgroupId.toString()): void {
  writeRecord(stateDir, {
    version: STATE_VERSION,
    containerId: `ctr${pod.name.replace(/[^a-z0-9]/g, '')}`,
    ifname: 'eth0',
    netns,
    namespace: pod.namespace,
    name: pod.name,
    podUid: pod.uid,
    cgroupPath: pod.cgroupPath,
    cgroupId,
    ipv4: pod.ipv4,
    ipv6: pod.ipv6,
    proxyUid: 1337,
    proxyGid: 1337,
    dnsCapture: false,
    interception: cfg,
    createdAt: new Date().toISOString(),
  });
}

// a: client side (basic), b: server side (basic), c: include-exclude-ports,
// d: registered by meshlane but without Istio's rules, e: a plain pod (no mesh).
const a = await node.addPod({ name: 'a' });
const b = await node.addPod({ name: 'b' });
const c = await node.addPod({ name: 'c' });
const d = await node.addPod({ name: 'd' });
const e = await node.addPod({ name: 'e' });
// f: basic rules, and a second address per family that the kernel's REDIRECT picks
// (nf_nat_redirect takes the interface's first address: the primary IPv4, the newest IPv6).
const f = await node.addPod({ name: 'f' });
const fAlt = { v4: '10.213.150.99', v6: 'fd00:213:150::99' };
const basicCfg = config(GOLDENS.basic.annotations);
const portsCfg = config(GOLDENS.ports.annotations);

// Setup at the top level without assertions (tap ends the root test on its
// own once it has asserted and gone idle); checked in the first subtest.
const applied = [...(await applyGolden(a, GOLDENS.basic.file)), ...(await applyGolden(b, GOLDENS.basic.file)), ...(await applyGolden(c, GOLDENS.ports.file)), ...(await applyGolden(f, GOLDENS.basic.file))];
// The pod's own IPv4 becomes a secondary address behind fAlt.v4 (promoted when the original is removed and re-added).
for (const args of [
  ['sysctl', '-qw', 'net.ipv4.conf.eth0.promote_secondaries=1'],
  ['ip', 'addr', 'add', `${fAlt.v4}/24`, 'dev', 'eth0'],
  ['ip', 'addr', 'del', `${f.ipv4}/24`, 'dev', 'eth0'],
  ['ip', 'addr', 'add', `${f.ipv4}/24`, 'dev', 'eth0'],
  ['ip', 'route', 'replace', 'default', 'via', node.gateway4],
  ['ip', '-6', 'addr', 'add', `${fAlt.v6}/64`, 'dev', 'eth0', 'nodad'],
] as const) await inNetns(f, args[0], args.slice(1));

await install(loc);
await register(node, a, basicCfg);
await register(node, b, basicCfg);
await register(node, c, portsCfg);
await register(node, d, basicCfg);
await register(node, f, basicCfg);
for (const [p, cfg] of [[a, basicCfg], [b, basicCfg], [c, portsCfg], [d, basicCfg]] as const) recordFor(p, cfg);

const proxyA = await startInboundProxy(a, mlproxy);
const proxyB = await startInboundProxy(b, mlproxy);
const proxyC = await startInboundProxy(c, mlproxy);
const proxyF = await startInboundProxy(f, mlproxy);
const servers: SpawnedProcess[] = [];
for (const [p, port] of [[b, 8080], [b, 5555], [c, 8080], [c, 1111], [e, 8080], [a, 8080], [f, 8080]] as const) servers.push(await startServer(p, mlpeer, port));
const [srvB, srvB5555, srvC, srvC1111, srvE, srvA, srvF] = servers as [SpawnedProcess, SpawnedProcess, SpawnedProcess, SpawnedProcess, SpawnedProcess, SpawnedProcess, SpawnedProcess];

const accepts = (p: SpawnedProcess, from: number): JsonObject[] => p.events().filter((ev) => ev['event'] === 'accept').slice(from);
/** Where each process's output is now, to wait only for lines after it. */
const mark = (): Map<SpawnedProcess, number> => new Map([proxyA, proxyB, proxyC, proxyF, ...servers].map((p) => [p, p.lines().length]));
const acceptCount = (p: SpawnedProcess): number => p.events().filter((ev) => ev['event'] === 'accept').length;

type Phase = 'ebpf' | 'iptables';

interface Fam {
  v: 4 | 6;
  ip: (p: Pod) => string;
  hp: (p: Pod, port: number) => string;
  /** Where the app's connection lands (the proxy's local end): Istio's REDIRECT in nat OUTPUT goes to loopback; eBPF sends IPv6 to the pod's own address (docs/datapath.md). */
  outboundListener: (phase: Phase, p: Pod) => string;
  passthrough: RegExp;
}
const V4: Fam = { v: 4, ip: (p) => p.ipv4, hp: (p, port) => `${p.ipv4}:${port}`, outboundListener: () => '127.0.0.1:15001', passthrough: /^127\.0\.0\.6:\d+$/ };
const V6: Fam = { v: 6, ip: (p) => p.ipv6, hp: (p, port) => `[${p.ipv6}]:${port}`, outboundListener: (phase, p) => (phase === 'ebpf' ? `[${p.ipv6}]:15001` : '[::1]:15001'), passthrough: /^\[::6\]:\d+$/ };

/**
 * app a -> b:8080 through both proxies: outbound at A's 15001, inbound at B's
 * 15006, passthrough from 127.0.0.6 to the server. Checks each hop once and
 * the original destinations, and returns the counter delta.
 */
async function fullPath(t: Test, phase: Phase, f: Fam = V4): Promise<Partial<Record<string, number>>> {
  const before = await counters(node);
  const acc = { a: acceptCount(proxyA), b: acceptCount(proxyB), c: acceptCount(proxyC) };
  const from = mark();
  const hits = { out: await natHits(a, 'ISTIO_REDIRECT', f.v), inB: await natHits(b, 'ISTIO_IN_REDIRECT', f.v) };
  const dst = f.hp(b, 8080);
  const aPrefix = f.hp(a, 0).slice(0, -1);
  const r = await a.run(mlpeer, ['client', '--connect', dst, '--bytes', '100000', '--half-close', '--timeout-ms', '10000'], APP);
  t.equal(r.exitCode, 0, describe(r));
  const s = summary(r);
  // With eBPF the app's socket is connected to the listener; NAT is invisible to the app.
  t.equal(s['peer'], phase === 'ebpf' ? f.outboundListener(phase, a) : dst, `${phase}: the app socket's peer`);
  t.ok(String(s['local']).startsWith(aPrefix), `source is pod A (${String(s['local'])})`);
  const outClose = await proxyA.waitForJson((ev) => ev['event'] === 'close' && ev['peer'] === s['local'], { timeoutMs: 5000, from: from.get(proxyA) });
  t.equal(outClose['listener'], 15001, 'A\'s proxy took it on the outbound listener');
  t.equal(outClose['local'], f.outboundListener(phase, a));
  t.equal(outClose['orig_dst'], dst, `${phase}: A's proxy gets b:8080 from SO_ORIGINAL_DST`);
  t.equal(outClose['error'], null);
  t.equal(outClose['bytes_up'], 100000);
  const up = String(outClose['upstream_local']);
  t.ok(up.startsWith(aPrefix), `A's proxy connects from pod A (${up})`);
  const inClose = await proxyB.waitForJson((ev) => ev['event'] === 'close' && ev['peer'] === up, { timeoutMs: 5000, from: from.get(proxyB) });
  t.equal(inClose['listener'], 15006, 'B\'s proxy took A\'s proxy connection on the inbound listener');
  t.equal(inClose['local'], f.hp(b, 15006));
  t.equal(inClose['orig_dst'], dst, `${phase}: B's proxy gets b:8080 from SO_ORIGINAL_DST`);
  t.equal(inClose['error'], null);
  t.equal(inClose['bytes_down'], 100000);
  t.match(String(inClose['upstream_local']), f.passthrough, 'B\'s proxy reaches the app from the passthrough address');
  const srv = await srvB.waitForJson((ev) => ev['event'] === 'close' && ev['peer'] === inClose['upstream_local'], { timeoutMs: 3000, from: from.get(srvB) });
  t.equal(srv['local'], dst, 'the server is reached on its own address and port');
  t.equal(srv['bytes_in'], 100000);
  // Exactly once each: no loop, no second interception.
  t.same(accepts(proxyA, acc.a).map((x) => x['listener']), [15001], 'one accept at A (15001), none at A\'s 15006');
  t.same(accepts(proxyB, acc.b).map((x) => x['listener']), [15006], 'one accept at B (15006), none at B\'s 15001');
  t.equal(acceptCount(proxyC), acc.c, 'nothing at C');
  const d = delta(before, await counters(node));
  const outHits = (await natHits(a, 'ISTIO_REDIRECT', f.v)) - hits.out;
  const inHits = (await natHits(b, 'ISTIO_IN_REDIRECT', f.v)) - hits.inB;
  if (phase === 'ebpf') {
    t.equal(d[`connect${f.v}_redirect_out`], 1, `eBPF took the app's connection: ${JSON.stringify(d)}`);
    t.equal(d[`connect${f.v}_redirect_in`], 1, 'eBPF took A\'s proxy connection to B');
    t.equal(d[`connect${f.v}_pass`], 1, 'B\'s passthrough untouched');
    t.equal(d.getsockopt_answered, 2, 'both SO_ORIGINAL_DST answered by meshlane');
    t.notOk(d.getsockopt_miss, 'no miss');
    t.equal(outHits, 0, 'Istio\'s outbound REDIRECT (ISTIO_REDIRECT) was not hit: the connection reached the listener from eBPF');
    // b:15006 still enters ISTIO_INBOUND -> REDIRECT --to-ports 15006 in B: the same address and port, a no-op NAT.
    t.equal(inHits, 1, 'B\'s ISTIO_IN_REDIRECT saw the connection already at 15006 (same address and port)');
    for (const k of Object.keys(d)) if (k.startsWith('err_')) t.fail(`error counter ${k} moved: ${JSON.stringify(d)}`);
  } else {
    t.same(d, {}, 'meshlane\'s counters stay still');
    t.equal(outHits, 1, 'Istio\'s ISTIO_REDIRECT took the app\'s connection');
    t.equal(inHits, 1, 'Istio\'s ISTIO_IN_REDIRECT took A\'s proxy connection');
  }
  return d;
}

/** A's proxy (uid 1337) to b:8080 directly: inbound lands on B's 15006 once. */
async function proxyToPeer(t: Test, phase: Phase, f: Fam = V4): Promise<void> {
  const accB = acceptCount(proxyB);
  const from = mark();
  const r = await a.run(mlpeer, ['client', '--connect', f.hp(b, 8080), '--bytes', '5000', '--half-close', '--timeout-ms', '10000'], PROXY);
  t.equal(r.exitCode, 0, describe(r));
  const s = summary(r);
  t.equal(s['peer'], phase === 'ebpf' ? f.hp(b, 15006) : f.hp(b, 8080), `${phase}: the proxy socket's peer`);
  const acc = await proxyB.waitForJson((ev) => ev['event'] === 'accept' && ev['peer'] === s['local'], { timeoutMs: 3000, from: from.get(proxyB) });
  t.equal(acc['listener'], 15006);
  t.equal(acc['orig_dst'], f.hp(b, 8080));
  await proxyB.waitForJson((ev) => ev['event'] === 'close' && ev['peer'] === s['local'], { timeoutMs: 5000, from: from.get(proxyB) });
  t.equal(acceptCount(proxyB) - accB, 1, 'reached 15006 once');
}

/** Pod c (include-exclude-ports): the port rules agree with Istio's. */
async function portRules(t: Test, phase: Phase): Promise<Counters> {
  const before = await counters(node);
  // Outbound 5555 is excluded for c: neither eBPF nor ISTIO_OUTPUT touches it; it reaches b:5555,
  // where B's Istio rules (basic: every inbound port) send it to B's proxy.
  const accC = acceptCount(proxyC);
  const from = mark();
  const r1 = await c.run(mlpeer, ['client', '--connect', `${b.ipv4}:5555`, '--bytes', '3000', '--half-close', '--timeout-ms', '10000'], APP);
  t.equal(r1.exitCode, 0, describe(r1));
  const s1 = summary(r1);
  t.equal(s1['peer'], `${b.ipv4}:5555`, 'c -> b:5555 not sent to C\'s proxy');
  const acc1 = await proxyB.waitForJson((ev) => ev['event'] === 'accept' && ev['peer'] === s1['local'], { timeoutMs: 3000, from: from.get(proxyB) });
  t.equal(acc1['listener'], 15006, 'B\'s iptables sent it to B\'s proxy');
  t.equal(acc1['orig_dst'], `${b.ipv4}:5555`, 'conntrack\'s original destination reaches the proxy (meshlane leaves the kernel\'s answer)');
  await srvB5555.waitForJson((ev) => ev['event'] === 'close' && ev['bytes_in'] === 3000, { timeoutMs: 5000, from: from.get(srvB5555) });
  // Outbound 8080 from c: captured at C's 15001.
  const r2 = await c.run(mlpeer, ['client', '--connect', `${b.ipv4}:8080`, '--bytes', '3000', '--half-close', '--timeout-ms', '10000'], APP);
  t.equal(r2.exitCode, 0, describe(r2));
  const acc2 = await proxyC.waitForJson((ev) => ev['event'] === 'accept' && ev['peer'] === summary(r2)['local'], { timeoutMs: 3000, from: from.get(proxyC) });
  t.equal(acc2['listener'], 15001);
  t.equal(acc2['orig_dst'], `${b.ipv4}:8080`);
  t.equal(acceptCount(proxyC) - accC, 1, 'exactly one accept at C');
  // Inbound to c: 1111 is in includeInboundPorts (-> C's 15006), 8080 is not (straight to the server).
  const r3 = await a.run(mlpeer, ['client', '--connect', `${c.ipv4}:1111`, '--bytes', '3000', '--half-close', '--timeout-ms', '10000'], PROXY);
  t.equal(r3.exitCode, 0, describe(r3));
  const acc3 = await proxyC.waitForJson((ev) => ev['event'] === 'accept' && ev['peer'] === summary(r3)['local'], { timeoutMs: 3000, from: from.get(proxyC) });
  t.equal(acc3['listener'], 15006);
  t.equal(acc3['orig_dst'], `${c.ipv4}:1111`);
  await srvC1111.waitForJson((ev) => ev['event'] === 'close' && ev['bytes_in'] === 3000 && /^127\.0\.0\.6:/.test(String(ev['peer'])), { timeoutMs: 5000, from: from.get(srvC1111) });
  const accC2 = acceptCount(proxyC);
  const r4 = await a.run(mlpeer, ['client', '--connect', `${c.ipv4}:8080`, '--bytes', '3000', '--half-close', '--timeout-ms', '10000'], PROXY);
  t.equal(r4.exitCode, 0, describe(r4));
  const s4 = summary(r4);
  t.equal(s4['peer'], `${c.ipv4}:8080`);
  await srvC.waitForJson((ev) => ev['event'] === 'accept' && ev['peer'] === s4['local'], { timeoutMs: 3000, from: from.get(srvC) });
  t.equal(acceptCount(proxyC), accC2, 'c:8080 (not an included inbound port) bypasses C\'s proxy');
  const dd = delta(before, await counters(node));
  if (phase === 'ebpf') {
    t.equal(dd.connect4_excluded, 2, `c -> b:5555 and proxy -> c:8080 excluded by the rules: ${JSON.stringify(dd)}`);
    t.equal(dd.connect4_redirect_out, 1, 'c -> b:8080 taken by eBPF');
    // A's proxy -> c:1111 (eBPF to C's 15006); C's and B's proxies' own upstreams pass.
    t.equal(dd.connect4_redirect_in, 2, 'proxy -> c:1111, and C\'s proxy -> b:8080, both to the peer\'s 15006');
    t.equal(dd.getsockopt_miss, 1, 'b:5555 (Istio\'s rules only) asked, not ours: kernel answer kept');
  } else {
    t.same(dd, {}, 'meshlane\'s counters stay still');
  }
  return before;
}

/** The proxy's own traffic to a pod outside the mesh is untouched (uid 1337). */
async function proxyOwnTraffic(t: Test, phase: Phase): Promise<void> {
  const before = await counters(node);
  const accA = acceptCount(proxyA);
  const from = mark();
  const r = await a.run(mlpeer, ['client', '--connect', `${e.ipv4}:8080`, '--bytes', '2000', '--half-close', '--timeout-ms', '10000'], PROXY);
  t.equal(r.exitCode, 0, describe(r));
  const s = summary(r);
  t.equal(s['peer'], `${e.ipv4}:8080`);
  await srvE.waitForJson((ev) => ev['event'] === 'accept' && ev['peer'] === s['local'], { timeoutMs: 3000, from: from.get(srvE) });
  t.equal(acceptCount(proxyA), accA, 'not captured by its own proxy');
  const dd = delta(before, await counters(node));
  t.same(dd, phase === 'ebpf' ? { connect4_pass: 1 } : {}, `${phase}: ${JSON.stringify(dd)}`);
}

async function statusOf(t: Test, expectInstalled: boolean): Promise<Awaited<ReturnType<typeof collectStatus>>> {
  const st = await collectStatus(node.pinDir, node.cgroupRoot, stateDir);
  t.equal(st.installed, expectInstalled, `datapath ${expectInstalled ? '' : 'not '}installed`);
  return st;
}

void t.test('istio-cni\'s rules are in the pods\' netns, and meshlane\'s config says the same', async (t) => {
  for (const r of applied) {
    const what = r.family === 4 ? r.file : `the IPv6 counterpart of ${r.file}`;
    t.equal(r.inNetns, r.golden, `${r.pod}: all ${r.golden} rules of ${what} are in its netns`);
    t.same(r.hooked, ['ISTIO_INBOUND', 'ISTIO_OUTPUT'], `${r.pod} (IPv${r.family}): ISTIO_OUTPUT and ISTIO_INBOUND hooked`);
  }
  t.equal(basicCfg.includeInboundPorts, '*', 'basic: every inbound port');
  t.same(portsCfg.includeInboundPorts, [1111, 2222], 'include-exclude-ports: inbound 1111,2222 only');
  t.same(portsCfg.excludeOutboundPorts, [5555, 6666], 'include-exclude-ports: the same outbound ports the golden RETURNs');
});

void t.test('phase 1: eBPF attached on top of Istio\'s rules', async (t) => {
  for (const f of [V4, V6]) {
    await t.test(`IPv${f.v} app a -> b:8080: intercepted once at each end, original destinations right`, (t) => fullPath(t, 'ebpf', f));
    await t.test(`IPv${f.v} A's proxy -> b:8080 lands on B's 15006 once`, (t) => proxyToPeer(t, 'ebpf', f));
  }
  await t.test('include/exclude ports (c) agree with Istio\'s rules', (t) => portRules(t, 'ebpf'));
  await t.test('the proxy\'s own traffic out of the mesh is untouched', (t) => proxyOwnTraffic(t, 'ebpf'));
  for (const fam of [V4, V6]) {
    await t.test(`IPv${fam.v}: a pod with two addresses, where Istio's REDIRECT moves meshlane's pod:15006 to another address`, async (t) => {
      const alt = fam.v === 4 ? `${fAlt.v4}:15006` : `[${fAlt.v6}]:15006`;
      const before = await counters(node);
      const from = mark();
      const r = await a.run(mlpeer, ['client', '--connect', fam.hp(f, 8080), '--bytes', '3000', '--half-close', '--timeout-ms', '10000'], PROXY);
      t.equal(r.exitCode, 0, describe(r));
      const s = summary(r);
      t.equal(s['peer'], fam.hp(f, 15006), 'meshlane sent A\'s proxy to f:15006');
      const acc = await proxyF.waitForJson((ev) => ev['event'] === 'accept' && ev['peer'] === s['local'], { timeoutMs: 3000, from: from.get(proxyF) });
      t.equal(acc['listener'], 15006);
      t.equal(acc['local'], alt, 'Istio\'s ISTIO_IN_REDIRECT moved it to the interface\'s first address');
      t.equal(acc['orig_dst'], fam.hp(f, 8080), 'still the original destination (not conntrack\'s f:15006, which would send the proxy to itself)');
      const close = await proxyF.waitForJson((ev) => ev['event'] === 'close' && ev['peer'] === s['local'], { timeoutMs: 5000, from: from.get(proxyF) });
      t.equal(close['error'], null);
      await srvF.waitForJson((ev) => ev['event'] === 'close' && ev['peer'] === close['upstream_local'] && ev['bytes_in'] === 3000, { timeoutMs: 3000, from: from.get(srvF) });
      const dd = delta(before, await counters(node));
      t.equal(dd[`connect${fam.v}_redirect_in`], 1, JSON.stringify(dd));
      t.equal(dd.getsockopt_answered, 1, 'answered by meshlane');
      t.notOk(dd.getsockopt_miss);
    });
  }
  await t.test('the proxy calling its own pod IP: meshlane sends it to its own 15006 first (Istio\'s uid rule), Istio\'s rules leave it alone', async (t) => {
    // ISTIO_OUTPUT: -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT.
    // meshlane does it at connect() (-> 127.0.0.1:15006); Istio's rules then see 127.0.0.1 and RETURN.
    const before = await counters(node);
    const from = mark();
    const r = await a.run(mlpeer, ['client', '--connect', `${a.ipv4}:8080`, '--bytes', '2000', '--half-close', '--timeout-ms', '10000'], PROXY);
    t.equal(r.exitCode, 0, describe(r));
    const s = summary(r);
    t.equal(s['peer'], '127.0.0.1:15006', 'redirected by meshlane at connect()');
    const acc = await proxyA.waitForJson((ev) => ev['event'] === 'accept' && ev['peer'] === s['local'], { timeoutMs: 3000, from: from.get(proxyA) });
    t.equal(acc['listener'], 15006);
    t.equal(acc['orig_dst'], `${a.ipv4}:8080`, 'meshlane\'s answer');
    const close = await proxyA.waitForJson((ev) => ev['event'] === 'close' && ev['peer'] === s['local'], { timeoutMs: 5000, from: from.get(proxyA) });
    t.match(String(close['upstream_local']), /^127\.0\.0\.6:/);
    await srvA.waitForJson((ev) => ev['event'] === 'close' && ev['peer'] === close['upstream_local'], { timeoutMs: 3000, from: from.get(srvA) });
    const dd = delta(before, await counters(node));
    t.equal(dd.connect4_redirect_in, 1, `own-pod call redirected once: ${JSON.stringify(dd)}`);
    t.equal(dd.connect4_pass, 1, 'the passthrough passed');
    t.equal(dd.getsockopt_answered, 1, 'answered by meshlane');
    t.notOk(dd.getsockopt_miss, 'no miss');
  });
  await t.test('100 concurrent connections through both proxies', async (t) => {
    const before = await counters(node);
    const r = await a.run(mlpeer, ['client', '--connect', `${b.ipv4}:8080`, '--bytes', '10000', '--concurrency', '100', '--timeout-ms', '20000'], APP);
    t.equal(r.exitCode, 0, describe(r));
    const dd = delta(before, await counters(node));
    t.equal(dd.connect4_redirect_out, 100);
    t.equal(dd.connect4_redirect_in, 100);
    t.equal(dd.getsockopt_answered, 200);
  });
  await t.test('status: per pod, Istio rules present / absent / unknown', async (t) => {
    // A record whose netns is gone (e.g. the pod was deleted while status ran).
    recordFor({ ...e, name: 'gone', namespace: 'default', uid: 'gone-uid' } as Pod, basicCfg, '/var/run/netns/mlkistio-no-such-netns', '1');
    const st = await statusOf(t, true);
    const byName = new Map(st.pods.map((p) => [p.name, p]));
    for (const n of ['a', 'b', 'c']) {
      t.equal(byName.get(n)?.istioRules, 'present', `${n}: Istio rules present (${byName.get(n)?.istioRulesDetail})`);
      t.equal(byName.get(n)?.mode, 'ebpf+iptables');
    }
    t.equal(byName.get('d')?.istioRules, 'absent', `d: no Istio rules (${byName.get('d')?.istioRulesDetail})`);
    t.equal(byName.get('d')?.mode, 'ebpf');
    t.equal(byName.get('gone')?.istioRules, 'unknown');
    t.match(byName.get('gone')?.istioRulesDetail, /gone/);
    t.same(st.node, { mode: 'mixed', podsWithIstioRules: 3, podsWithoutIstioRules: 1, podsUnknown: 1 });
    const text = renderStatus(st);
    t.match(text, /node mode: mixed .*Istio rules present in 3 of 5 pods, unknown in 1/);
    t.match(text, /default\/a .*\n\s+mode: eBPF \+ Istio rules fallback; Istio rules present \(ISTIO_INBOUND\+ISTIO_OUTPUT hooked/);
    t.match(text, /default\/d .*\n\s+mode: eBPF only; Istio rules absent/);
    t.same(nodeMode(st.pods.filter((p) => p.istioRules === 'present')).mode, 'beside-istio-cni');
    t.same(nodeMode(st.pods.filter((p) => p.istioRules === 'absent')).mode, 'alone');
    const probeE = probeIstioRules(e.netnsPath);
    t.equal(probeE.state, 'absent', 'a pod netns without any rules: absent');
    t.same(await inNetns(e, 'cat', ['/proc/net/ip_tables_names']).catch(() => ''), '', 'probing created no legacy table in the netns');
  });
});

let longClient: SpawnedProcess | undefined;
let longEbpf: SpawnedProcess | undefined;
const LONG_BYTES = 400_000;
const longArgs = ['client', '--connect', `${b.ipv4}:8080`, '--bytes', String(LONG_BYTES), '--chunk', '10000', '--pause-ms', '80', '--half-close', '--timeout-ms', '30000'];

/** The long client's summary once it exits (bounded). */
async function finished(p: SpawnedProcess): Promise<{ code: number | undefined; s: JsonObject }> {
  const exit = await Promise.race([p.exited, new Promise<undefined>((res) => setTimeout(() => res(undefined), 20_000).unref())]);
  return { code: exit?.exitCode, s: summary({ exitCode: exit?.exitCode, signal: undefined, stdout: p.lines().join('\n'), stderr: p.stderr(), timedOut: false }) };
}

void t.test('phase 2: meshlane detached, Istio\'s rules alone', async (t) => {
  // A connection meshlane took, still sending while the programs go away (what an uninstall does to live connections).
  const before = await counters(node);
  longEbpf = await a.spawn(mlpeer, longArgs, APP);
  await until(counters.bind(null, node), (c) => c.sockops_odst_saved > before.sockops_odst_saved, 3000);
  const detached = await detachDatapath(loc);
  t.ok(detached.length >= 4, `programs detached: ${detached.join(', ')}`);
  t.ok(longEbpf.running, 'the connection meshlane took is still sending after the detach');
  for (const f of [V4, V6]) {
    await t.test(`IPv${f.v} app a -> b:8080 through Istio's rules: same hops, conntrack's original destinations`, (t) => fullPath(t, 'iptables', f));
    await t.test(`IPv${f.v} A's proxy -> b:8080 lands on B's 15006 once`, (t) => proxyToPeer(t, 'iptables', f));
  }
  await t.test('include/exclude ports (c) by Istio\'s rules alone', (t) => portRules(t, 'iptables'));
  await t.test('the proxy\'s own traffic is untouched', (t) => proxyOwnTraffic(t, 'iptables'));
  await t.test('a connection meshlane took before the detach completes with every byte', async (t) => {
    if (!longEbpf) return t.fail('no client');
    const { code, s } = await finished(longEbpf);
    t.equal(code, 0, `exit 0: ${JSON.stringify(s)}`);
    t.equal(s['peer'], '127.0.0.1:15001', 'it had been redirected by eBPF');
    t.equal(s['received'], LONG_BYTES, 'every byte echoed back and checked');
  });
  await t.test('status: Istio rules only', async (t) => {
    const st = await statusOf(t, false);
    t.equal(st.pods.find((p) => p.name === 'a')?.mode, 'iptables');
    t.match(renderStatus(st), /default\/a .*\n\s+mode: Istio rules only/);
  });
  await t.test('a long connection opened now (through Istio\'s rules) is under way', async (t) => {
    const from = proxyA.lines().length;
    // 40 chunks of 10 kB, 80 ms apart: about 3 s, across the re-attach below.
    longClient = await a.spawn(mlpeer, longArgs, APP);
    const acc = await proxyA.waitForJson((ev) => ev['event'] === 'accept' && ev['orig_dst'] === `${b.ipv4}:8080`, { timeoutMs: 3000, from });
    t.equal(acc['listener'], 15001, 'accepted by A\'s proxy via Istio\'s REDIRECT');
  });
});

void t.test('phase 3: re-attached: new connections are meshlane\'s again, the open one is undisturbed', async (t) => {
  const before = await counters(node);
  await install(loc);
  t.ok(longClient?.running, 'the long connection is still sending when meshlane is back');
  await t.test('IPv4 app a -> b:8080: eBPF again', (t) => fullPath(t, 'ebpf', V4));
  await t.test('IPv6 app a -> b:8080: eBPF again', (t) => fullPath(t, 'ebpf', V6));
  await t.test('the connection opened during the iptables-only phase completes with every byte', async (t) => {
    if (!longClient) return t.fail('no long client');
    const { code, s } = await finished(longClient);
    t.equal(code, 0, `the client exits 0: ${JSON.stringify(s)}`);
    t.equal(s['ok'], true);
    t.equal(s['peer'], `${b.ipv4}:8080`, 'it had gone through Istio\'s REDIRECT');
    t.equal(s['received'], LONG_BYTES, 'every byte echoed back and checked');
    const close = await proxyA.waitForJson((ev) => ev['event'] === 'close' && ev['peer'] === s['local'], { timeoutMs: 3000 });
    t.equal(close['orig_dst'], `${b.ipv4}:8080`);
    t.equal(close['bytes_up'], LONG_BYTES);
    t.equal(close['error'], null);
  });
  const dd = delta(before, await counters(node));
  t.equal(dd.connect4_redirect_out, 1, `only the new connections went through eBPF: ${JSON.stringify(dd)}`);
  t.equal(dd.connect6_redirect_out, 1);
});
