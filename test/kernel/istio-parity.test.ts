// Differential test: meshlane alone against Istio's iptables rules, the goldens
// of istio/istio cni/pkg/plugin/testdata being the oracle.
//
// For each REDIRECT-mode golden, two pods on one sandbox node:
//   i-<golden>  the golden's rules restored in its netns (iptables-restore, as
//               istio-cni does; IPv6 rules derived, test/helpers/istio-golden.ts),
//               no meshlane registration;
//   m-<golden>  added by the built `meshlane` through the CNI chain with the
//               annotations Istio's plugin test used to produce that golden
//               (istio/istio cni/pkg/plugin/plugin_dryrun_test.go), no rules.
// Both get the same listeners (testing/tools/mlland.c): the proxy's 15001,
// 15006, 15053 (TCP, and UDP 15053) as the proxy uid/gid, and the "real"
// servers as root (which is no proxy). A plain pod (peer) and the node netns
// (remote addresses 198.51.100.10 and 2001:db8:100::10 on its lo) answer on
// the same ports. Then the same probes from both pods, IPv4 and IPv6: as the
// app (uid/gid 1000), the proxy (its uid and gid), a process with only the
// proxy's gid, TCP and UDP, to loopback, 127.0.0.5, ::6, the pod's own IP,
// the peer, the remote address, excluded and special ports, DNS (UDP and
// TCP 53), from the passthrough source; and inbound from the peer pod to the
// pod's ports. Each probe's landing place is compared: which listener
// (15001 / 15006 / 15053 / the real port), refused or timed out, and for a
// proxy listener the original destination it read (SO_ORIGINAL_DST).
//
// The test fails on any difference that is not in DIFFERENCES below with its
// reason, and on a listed difference that no longer shows.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import t from 'tap';
import { buildTool, type Pod, type SpawnedProcess } from '../../testing/sandbox/node.js';
import { PluginError, execPlugin, type Conflist } from '../../testing/sandbox/cni-chain.js';
import { meshlaneEntry, primaryResultOf, sandboxPodThroughChain, type ChainPod } from '../../testing/sandbox/chain-pod.js';
import { recordPath } from '../../src/node/records.js';
import { requireRoot } from '../helpers/root.js';
import { distExe, requireBuiltExe } from '../helpers/paths.js';
import { addPassthrough6, datapathNode, describe, install } from '../helpers/datapath.js';
import { GOLDEN_ANNOTATIONS, GOLDEN_DIR, SIDECAR_STATUS, applyGolden, inNetns, type Applied } from '../helpers/istio-golden.js';

requireRoot('the Istio parity test');
requireBuiltExe();

const STATUS = SIDECAR_STATUS;
const CUSTOM = { uid: 1000670000, gid: 1000670001 };

interface Golden {
  file: string;
  /** The annotations that produced it (Istio's plugin test), for meshlane's ADD. */
  annotations: Record<string, string>;
  proxy: { uid: number; gid: number };
  dns: boolean;
}

/** The REDIRECT-mode goldens (tproxy and custom-uid-tproxy are TPROXY mode: meshlane refuses TPROXY alone). */
const GOLDENS: Record<string, Golden> = {
  basic: { file: 'basic.txt.golden', annotations: GOLDEN_ANNOTATIONS['basic.txt.golden'], proxy: { uid: 1337, gid: 1337 }, dns: false },
  ip: { file: 'include-exclude-ip.txt.golden', annotations: GOLDEN_ANNOTATIONS['include-exclude-ip.txt.golden'], proxy: { uid: 1337, gid: 1337 }, dns: false },
  ports: { file: 'include-exclude-ports.txt.golden', annotations: GOLDEN_ANNOTATIONS['include-exclude-ports.txt.golden'], proxy: { uid: 1337, gid: 1337 }, dns: false },
  dns: { file: 'dns.txt.golden', annotations: { ...STATUS, 'proxy.istio.io/config': '{"proxyMetadata":{"ISTIO_META_DNS_CAPTURE":"true"}}' }, proxy: { uid: 1337, gid: 1337 }, dns: true },
  drop: { file: 'invalid-drop.txt.golden', annotations: { ...STATUS }, proxy: { uid: 1337, gid: 1337 }, dns: false },
  uid: {
    file: 'custom-uid.txt.golden',
    annotations: { ...STATUS, 'proxy.istio.io/overrides': JSON.stringify({ containers: [{ name: 'istio-proxy', securityContext: { runAsUser: CUSTOM.uid, runAsGroup: CUSTOM.gid } }] }) },
    proxy: CUSTOM,
    dns: false,
  },
  // Not from today's plugin test (no such case upstream any more): an older
  // istio-iptables output for excludeInboundPorts "22" (its ISTIO_INBOUND
  // RETURNs 22 before 15020, 15021, 15090, as istio-cni appends those).
  status: { file: 'status-ports.txt.golden', annotations: { ...STATUS, 'traffic.sidecar.istio.io/excludeInboundPorts': '22' }, proxy: { uid: 1337, gid: 1337 }, dns: false },
};

/**
 * Differences between Istio's rules and meshlane that stay, keyed
 * "<golden>|<who>|<family>|<probe>", each with its reason. A key with `*`
 * for the golden applies to every golden.
 */
const DIFFERENCES: Record<string, string> = {
  'status|proxy|*|tcp self:15008':
    'status-ports is an older istio-iptables output without the "! --dport 15008" exception (HBONE came later): it sends the proxy\'s own-IP call to 15008 to 15006; today\'s rules (basic) and meshlane leave 15008 alone',
  '*|inbound|*|tcp self:15006':
    'a connection from outside straight to the inbound listener lands on 15006 in both; Istio\'s REDIRECT to the same port still makes a conntrack entry, so SO_ORIGINAL_DST answers the listener\'s own address, while meshlane rewrites nothing, keeps no record, and the kernel has no answer (no conntrack in the pod netns). Envoy\'s virtualInbound treats both as a connection to itself',
  'ports|inbound|*|tcp self:15001':
    'with includeInboundPorts 1111,2222 a connection from outside to 15001 is not captured and reaches the outbound listener directly in both; Istio\'s conntrack (the netns has nat rules) answers SO_ORIGINAL_DST with the address asked, meshlane has nothing to answer',
};

/** The listed reason for a key: exact, or a pattern whose `*` segments match anything. */
function listedReason(key: string): string | undefined {
  const parts = key.split('|');
  for (const [pattern, reason] of Object.entries(DIFFERENCES)) {
    const ps = pattern.split('|');
    if (ps.length === parts.length && ps.every((p, i) => p === '*' || p === parts[i])) return reason;
  }
  return undefined;
}

// ---------------------------------------------------------------------------

const { node, loc } = await datapathNode(t, 'mlkip', 153);
const mlland = await buildTool('mlland');
await install(loc);

const REMOTE4 = '198.51.100.10';
const REMOTE6 = '2001:db8:100::10';
await node.ip(['addr', 'add', `${REMOTE4}/32`, 'dev', 'lo']);
await node.ip(['-6', 'addr', 'add', `${REMOTE6}/128`, 'dev', 'lo', 'nodad']);
await node.ip(['link', 'set', 'lo', 'up']);

/** The "real" servers: every port a probe asks for, TCP and UDP. */
const APP_TCP = [22, 53, 80, 1111, 3333, 5555, 8080, 15002, 15008, 15020, 15021, 15090];
const APP_UDP = [53, 5555, 15020];
const listenArgs = (tcp: number[], udp: number[]): string[] => ['listen', ...tcp.flatMap((p) => ['--tcp', String(p)]), ...udp.flatMap((p) => ['--udp', String(p)]), '--lifetime-ms', '600000'];

async function listening(p: Promise<SpawnedProcess>): Promise<SpawnedProcess> {
  const s = await p;
  await s.waitForJson((e) => e['event'] === 'listening', { timeoutMs: 5000 });
  return s;
}

const stateDir = join(node.stateDir, 'plugin-state');
const entry = meshlaneEntry(node, { stateDir });
const list: Conflist = { cniVersion: '1.0.0', name: 'meshlane-parity-test', plugins: [entry] };

const peer = await node.addPod({ name: 'peer' });
await listening(peer.spawn(mlland, listenArgs(APP_TCP, APP_UDP), { uid: 0, gid: 0 }));
await listening(node.spawn(mlland, listenArgs(APP_TCP, APP_UDP), { uid: 0, gid: 0 }));

interface Pair { name: string; g: Golden; i: Pod; m: Pod; chained: ChainPod; applied: Applied[] }
const pairs: Pair[] = [];
const chainedPods: Array<{ c: ChainPod; pod: Pod }> = [];
t.teardown(async () => {
  for (const { c, pod } of chainedPods) await execPlugin('DEL', list, entry, c.rt, primaryResultOf(pod)).catch(() => undefined);
});

for (const [name, g] of Object.entries(GOLDENS)) {
  const i = await node.addPod({ name: `i-${name}` });
  const m = await node.addPod({ name: `m-${name}` });
  for (const p of [i, m]) {
    await addPassthrough6(p);
    await listening(p.spawn(mlland, listenArgs([15001, 15006], []), { ...g.proxy, container: 'istio-proxy' }));
    // istio-agent's DNS proxy listens on localhost only (so its replies match conntrack's reverse NAT).
    await listening(p.spawn(mlland, [...listenArgs([15053], [15053]), '--bind4', '127.0.0.1', '--bind6', '::1'], { ...g.proxy, container: 'istio-proxy' }));
    await listening(p.spawn(mlland, listenArgs(APP_TCP, APP_UDP), { uid: 0, gid: 0 }));
  }
  const applied = await applyGolden(i, g.file);
  const chained = await sandboxPodThroughChain(node, list, [entry], m, { annotations: g.annotations }, { binDirs: [dirname(distExe)], containerId: `parity${name}${'0'.repeat(16)}` });
  chainedPods.push({ c: chained, pod: m });
  pairs.push({ name, g, i, m, chained, applied });
}

// ---------------------------------------------------------------------------
// Probes. A template names addresses symbolically so that the two pods' probes
// compare: self (the probing pod's IP), peer, remote.

type Fam = 4 | 6;
interface Addrs { self: string; peer: string; remote: string; lo: string; lo5?: string; passthrough: string }
function addrs(pod: Pod, f: Fam): Addrs {
  return f === 4
    ? { self: pod.ipv4, peer: peer.ipv4, remote: REMOTE4, lo: '127.0.0.1', lo5: '127.0.0.5', passthrough: '127.0.0.6' }
    : { self: pod.ipv6, peer: peer.ipv6, remote: REMOTE6, lo: '::1', passthrough: '::6' };
}
const hp = (ip: string, port: number): string => (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`);

/** Outbound probe templates: "<proto> <where>:<port>[ <source>]", where/source are Addrs keys. */
const OUTBOUND = [
  'tcp remote:80', 'tcp remote:5555', 'tcp remote:15020', 'tcp remote:53',
  'tcp peer:8080', 'tcp peer:5555', 'tcp peer:53',
  'tcp self:8080', 'tcp self:15008', 'tcp self:15020', 'tcp self:53',
  'tcp lo:8080', 'tcp lo:53', 'tcp lo5:8080', 'tcp lo5:53', 'tcp passthrough:15002', 'tcp passthrough:8080',
  'tcp self:8080 passthrough', 'tcp lo5:8080 lo',
  'udp remote:53', 'udp peer:53', 'udp lo:53', 'udp lo5:53', 'udp self:53', 'udp remote:5555', 'udp remote:15020',
];
/** Inbound: from the peer pod (uid 1000) to the pod's ports. */
const INBOUND_PORTS = [8080, 1111, 3333, 22, 15001, 15006, 15008, 15020, 15021, 15090];

function concrete(tpl: string, a: Addrs): string | undefined {
  const m = /^(tcp|udp) (\w+):(\d+)(?: (\w+))?$/.exec(tpl);
  if (!m) throw new Error(`bad template ${tpl}`);
  const where = a[m[2] as keyof Addrs];
  const src = m[4] ? a[m[4] as keyof Addrs] : undefined;
  if (where === undefined || (m[4] && src === undefined)) return undefined; // no such address in this family
  return `${m[1]} ${hp(where, Number(m[3]))}${src ? ` ${src}` : ''}`;
}

interface Outcome { result: string; listener?: number; orig?: string | null; from?: string }
const PROXY_PORTS = new Set([15001, 15006, 15053]);

/** The outcome with the probing pod's own addresses made symbolic. */
function normalize(line: Record<string, unknown>, a: Addrs, udp: boolean): Outcome {
  const sym = (v: unknown): string | null => {
    if (v === null || v === undefined) return null;
    const m = /^\[?(.*?)\]?:(\d+)$/.exec(String(v));
    if (!m) return String(v);
    const k = (['self', 'peer', 'remote'] as const).find((x) => a[x] === m[1]);
    return `${k ?? m[1]}:${m[2]}`;
  };
  const result = String(line['result']);
  if (result !== 'land') return { result };
  const listener = Number(line['listener']);
  const o: Outcome = { result, listener };
  if (PROXY_PORTS.has(listener) && !udp) o.orig = sym(line['orig_dst']);
  if (udp) o.from = sym(line['peer']) ?? undefined;
  return o;
}

async function probe(pod: Pod, who: { uid: number; gid: number }, specs: string[]): Promise<Record<string, unknown>[]> {
  if (specs.length === 0) return [];
  const r = await pod.run(mlland, ['probe', '--timeout-ms', '800', ...specs], { ...who, timeoutMs: 60_000 });
  const lines = r.stdout.trim().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  if (lines.length !== specs.length) throw new Error(`mlland probe gave ${lines.length} of ${specs.length} answers: ${describe(r)}`);
  return lines;
}

interface Row { key: string; istio: Outcome; meshlane: Outcome }

async function outboundRows(p: Pair, whoName: string, who: { uid: number; gid: number }, f: Fam): Promise<Row[]> {
  const ai = addrs(p.i, f);
  const am = addrs(p.m, f);
  const tpls = OUTBOUND.filter((tpl) => concrete(tpl, ai) !== undefined);
  const [ri, rm] = [await probe(p.i, who, tpls.map((x) => concrete(x, ai) as string)), await probe(p.m, who, tpls.map((x) => concrete(x, am) as string))];
  return tpls.map((tpl, k) => ({ key: `${p.name}|${whoName}|${f}|${tpl}`, istio: normalize(ri[k] ?? {}, ai, tpl.startsWith('udp')), meshlane: normalize(rm[k] ?? {}, am, tpl.startsWith('udp')) }));
}

async function inboundRows(p: Pair, f: Fam): Promise<Row[]> {
  const target = (pod: Pod): string => (f === 4 ? pod.ipv4 : pod.ipv6);
  const ai = addrs(p.i, f);
  const am = addrs(p.m, f);
  const ri = await probe(peer, { uid: 1000, gid: 1000 }, INBOUND_PORTS.map((port) => `tcp ${hp(target(p.i), port)}`));
  const rm = await probe(peer, { uid: 1000, gid: 1000 }, INBOUND_PORTS.map((port) => `tcp ${hp(target(p.m), port)}`));
  return INBOUND_PORTS.map((port, k) => ({ key: `${p.name}|inbound|${f}|tcp self:${port}`, istio: normalize(ri[k] ?? {}, ai, false), meshlane: normalize(rm[k] ?? {}, am, false) }));
}

const fmt = (o: Outcome): string => JSON.stringify(o);

const seenDifferences = new Set<string>();
const allRows: Row[] = [];

for (const p of pairs) {
  t.test(`${p.g.file}: Istio's rules and meshlane land every probe in the same place`, async (t) => {
    for (const a of p.applied) t.equal(a.inNetns, a.golden, `IPv${a.family}: all ${a.golden} nat rules of ${a.file} restored in ${a.pod}`);
    const whos: Array<[string, { uid: number; gid: number }]> = [
      ['app', { uid: 1000, gid: 1000 }],
      ['proxy', p.g.proxy],
      ['gid', { uid: 1000, gid: p.g.proxy.gid }],
    ];
    if (p.g.proxy.uid !== 1337) whos.push(['1337', { uid: 1337, gid: 1337 }]); // not the proxy of this pod
    const rows: Row[] = [];
    for (const f of [4, 6] as const) {
      for (const [name, who] of whos) rows.push(...(await outboundRows(p, name, who, f)));
      rows.push(...(await inboundRows(p, f)));
    }
    allRows.push(...rows);
    let same = 0;
    for (const r of rows) {
      const equal = fmt(r.istio) === fmt(r.meshlane);
      const reason = listedReason(r.key);
      if (equal) {
        same++;
        if (reason) t.fail(`${r.key}: listed as a difference but both land ${fmt(r.istio)}; remove it from DIFFERENCES`);
        continue;
      }
      if (reason) {
        for (const pattern of Object.keys(DIFFERENCES)) if (listedReason(r.key) === DIFFERENCES[pattern]) seenDifferences.add(pattern);
        t.pass(`${r.key}: listed difference (istio ${fmt(r.istio)}, meshlane ${fmt(r.meshlane)}): ${reason}`);
      } else {
        t.fail(`${r.key}: istio ${fmt(r.istio)}, meshlane ${fmt(r.meshlane)}`);
      }
    }
    t.ok(same > 0, `${same} of ${rows.length} probes land in the same place`);
    // The comparison means something: both pods intercept, in both directions.
    const landed = (port: number): boolean => rows.some((r) => r.istio.listener === port && r.meshlane.listener === port);
    t.ok(landed(15001), 'some probe reached 15001 in both pods');
    t.ok(landed(15006), 'some probe reached 15006 in both pods');
    if (p.g.dns) t.ok(landed(15053), 'some probe reached the DNS listener in both pods');
    t.ok(rows.some((r) => r.istio.result === 'land' && !PROXY_PORTS.has(r.istio.listener ?? 0)), 'and some reached the real destination');
  });
}

t.test('every listed difference showed up', async (t) => {
  for (const pattern of Object.keys(DIFFERENCES)) t.ok(seenDifferences.has(pattern), `${pattern}: seen`);
  t.comment(`${allRows.length} probes compared; listed differences seen: ${[...seenDifferences].join(', ')}`);
});

// ---------------------------------------------------------------------------
// What istio-cni refuses, meshlane refuses; what meshlane cannot do beside
// istio-cni, it leaves to Istio's rules.

async function addFails(name: string, annotations: Record<string, string>): Promise<{ code: number; msg: string }> {
  const pod = await node.addPod({ name });
  const err = await sandboxPodThroughChain(node, list, [entry], pod, { annotations }, { binDirs: [dirname(distExe)], containerId: `parity${name.replace(/-/g, '')}${'0'.repeat(16)}` }).then(
    (c) => {
      chainedPods.push({ c, pod });
      return undefined;
    },
    (e: unknown) => e,
  );
  if (!(err instanceof PluginError)) throw new Error(`ADD of ${name} did not fail as the plugin: ${String(err)}`);
  return JSON.parse(err.stdout) as { code: number; msg: string };
}

t.test('excludeOutboundIPRanges "*" is refused at ADD (code 100), as istio-cni refuses it', async (t) => {
  const e = await addFails('x-star', { ...STATUS, 'traffic.sidecar.istio.io/excludeOutboundIPRanges': '*' });
  t.equal(e.code, 100);
  t.match(e.msg, /excludeOutboundIPRanges: "\*" is not valid here: "\*" is not a CIDR/);
});

t.test('TPROXY: beside istio-cni (its rules in the pod netns) passed through untouched, with a log line; alone refused', async (t) => {
  const tpAnnotations = { ...STATUS, 'sidecar.istio.io/interceptionMode': 'TPROXY' };
  const beside = await node.addPod({ name: 'x-tproxy' });
  await inNetns(beside, 'iptables-restore', ['--noflush'], readFileSync(join(GOLDEN_DIR, 'tproxy.txt.golden'), 'utf8'));
  const c = await sandboxPodThroughChain(node, list, [entry], beside, { annotations: tpAnnotations }, { binDirs: [dirname(distExe)], containerId: `parityxtproxy${'0'.repeat(16)}` });
  chainedPods.push({ c, pod: beside });
  t.strictSame(c.result, primaryResultOf(beside), 'prevResult handed on unchanged');
  t.notOk(existsSync(recordPath(stateDir, `parityxtproxy${'0'.repeat(16)}`, 'eth0')), 'no attachment record: nothing registered');
  const log = readFileSync(join(node.stateDir, 'meshlane.log'), 'utf8');
  t.match(log, /TPROXY pod beside istio-cni: passing it through untouched/, 'the log says so');
  const alone = await addFails('x-tproxy2', tpAnnotations);
  t.equal(alone.code, 100, 'alone: refused');
  t.match(alone.msg, /interceptionMode: "TPROXY" is not supported by meshlane yet/);
});
