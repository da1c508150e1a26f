// Cross-node inbound on the real kernel: two sandbox nodes (each its own cgroup
// subtree, pin dir and datapath install) linked by linkNodes(). Pod `s` on
// node 1 is a sidecar pod registered through the real plugin (dist/meshlane
// ADD), which attaches ml_tc_ingress/ml_tc_egress to its eth0. Clients on node
// 2 (a plain pod, a meshed pod through its own proxy, the node netns itself)
// connect to s: captured ports land on s's proxy at 15006 with the original
// destination answered by SO_ORIGINAL_DST, excluded ports and the status port
// reach the app directly, replies carry the original port (the clients'
// connections work and mlpeer verifies every byte). After DEL nothing is left
// on s's eth0.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { execa } from 'execa';
import { execPlugin, type Conflist, type Json } from '../../testing/sandbox/cni-chain.js';
import { meshlaneEntry, primaryResultOf, sandboxPodThroughChain } from '../../testing/sandbox/chain-pod.js';
import { buildTool, linkNodes, type Pod } from '../../testing/sandbox/node.js';
import { distExe, requireBuiltExe, upstreamFixtures } from '../helpers/paths.js';
import { requireRoot } from '../helpers/root.js';
import { readPodConfig } from '../../src/bpf/registry.js';
import { APP, PROXY, counters, datapathNode, delta, describe, hostPort, install, register, startInboundProxy, startProxy, startServer, summary } from '../helpers/datapath.js';

requireRoot('the cross-node inbound test');
requireBuiltExe();

const d1 = await datapathNode(t, 'mlkx1', 140);
const d2 = await datapathNode(t, 'mlkx2', 141);
const { mlpeer, mlproxy } = d1;
const n1 = d1.node;
const n2 = d2.node;
await install(d1.loc);
await install(d2.loc);
await linkNodes(n1, n2);

const s = await n1.addPod({ name: 'server' }); // the meshed pod under test, node 1
const c = await n1.addPod({ name: 'same-node' }); // a meshed pod on node 1 (same-node inbound path)
const m = await n2.addPod({ name: 'meshed-client' }); // a meshed pod on node 2
const u = await n2.addPod({ name: 'plain-client' }); // not meshed, node 2

// ---- the plugin ADD for s, as a runtime would run it after the primary CNI ----
const stateDir = join(n1.stateDir, 'plugin-state');
const native = JSON.parse(readFileSync(join(upstreamFixtures, 'pods', 'istio-sidecar-cni-native.json'), 'utf8')) as { metadata: { annotations: Record<string, string> } };
const annotations = { ...native.metadata.annotations, 'traffic.sidecar.istio.io/excludeInboundPorts': '15020,9090' };
const entry = meshlaneEntry(n1, { stateDir });
const list: Conflist = { cniVersion: '1.0.0', name: 'meshlane-crossnode-test', plugins: [entry] };
/** What the primary CNI returned for s (meshlane is the only plugin run). */
const prevResult = primaryResultOf(s);

async function tcIn(pod: Pod, args: readonly string[]): Promise<string> {
  const r = await execa('nsenter', [`--net=${pod.netnsPath}`, '--', 'tc', ...args]);
  return r.stdout;
}

const chained = await sandboxPodThroughChain(n1, list, [entry], s, { name: 'server', namespace: 'default', annotations }, { binDirs: [join(distExe, '..')], containerId: `crossnode${'0'.repeat(20)}` });
const rt = chained.rt;
const added = chained.result;
let deleted = false;
t.teardown(async () => {
  if (!deleted) await execPlugin('DEL', list, entry, rt, prevResult).catch(() => undefined);
});

await register(n1, c);
await register(n2, m);
const proxyS = await startInboundProxy(s, mlproxy);
const proxyC = await startProxy(c, mlproxy);
const proxyM = await startProxy(m, mlproxy);
const app8080 = await startServer(s, mlpeer, 8080);
const app9090 = await startServer(s, mlpeer, 9090);
const app15021 = await startServer(s, mlpeer, 15021);

const families = [
  { name: 'IPv4', sIp: s.ipv4, passthrough: /^127\.0\.0\.6:\d+$/ },
  { name: 'IPv6', sIp: s.ipv6, passthrough: /^\[::6\]:\d+$/ },
] as const;

function noErrors(t: Test, d: Record<string, number>): void {
  for (const k of Object.keys(d)) if (k.startsWith('err_')) t.fail(`error counter ${k} moved: ${JSON.stringify(d)}`);
}

t.test('ADD attached the inbound programs to the pod interface, inside its netns', async (t) => {
  t.same(added, prevResult, 'prevResult handed on unchanged');
  t.match(await tcIn(s, ['qdisc', 'show', 'dev', 'eth0']), /clsact/);
  t.match(await tcIn(s, ['filter', 'show', 'dev', 'eth0', 'ingress']), /ml_tc_ingress/);
  t.match(await tcIn(s, ['filter', 'show', 'dev', 'eth0', 'egress']), /ml_tc_egress/);
  t.ok(await readPodConfig(n1.pinDir, s.ipv4), 'registered in the maps');
  const rec = JSON.parse(readFileSync(join(stateDir, 'attachments', `${rt.containerId}@eth0.json`), 'utf8')) as Json;
  t.same(rec['tc'], { attached: true, addedClsact: true }, 'the record says what DEL must undo');
  await execPlugin('CHECK', list, entry, rt, prevResult);
  t.pass('CHECK passes');
  await execa('nsenter', [`--net=${s.netnsPath}`, '--', 'tc', 'filter', 'del', 'dev', 'eth0', 'egress', 'pref', '15006']);
  await t.rejects(execPlugin('CHECK', list, entry, rt, prevResult), /ml_tc_egress is not attached/, 'CHECK fails when a filter is gone');
  const again = await execPlugin('ADD', list, entry, rt, prevResult);
  t.same(again, prevResult, 'a repeated ADD puts it back');
  t.match(await tcIn(s, ['filter', 'show', 'dev', 'eth0', 'egress']), /ml_tc_egress/);
  await execPlugin('CHECK', list, entry, rt, prevResult);
});

for (const f of families) {
  const dst = hostPort(f.sIp, 8080);

  t.test(`${f.name}: plain pod on node 2 -> s:8080 lands on s's proxy at 15006 with the original destination`, async (t) => {
    const before = await counters(n1);
    const r = await u.run(mlpeer, ['client', '--connect', dst, '--bytes', '50000', '--half-close', '--timeout-ms', '10000'], APP);
    t.equal(r.exitCode, 0, describe(r));
    const sm = summary(r);
    t.equal(sm['peer'], dst, 'the client is connected to the port it asked for (replies restored)');
    const acc = await proxyS.waitForJson((e) => e['event'] === 'accept' && e['peer'] === sm['local'], { timeoutMs: 3000 });
    t.equal(acc['listener'], 15006);
    t.equal(acc['local'], hostPort(f.sIp, 15006));
    t.equal(acc['orig_dst'], dst, 'SO_ORIGINAL_DST at s\'s proxy');
    const close = await proxyS.waitForJson((e) => e['event'] === 'close' && e['peer'] === sm['local'], { timeoutMs: 5000 });
    t.equal(close['error'], null);
    t.equal(close['bytes_up'], 50000);
    t.equal(close['bytes_down'], 50000);
    t.match(String(close['upstream_local']), f.passthrough, 'the proxy reaches the app from the passthrough address, not steered again');
    await app8080.waitForJson((e) => e['event'] === 'accept' && e['peer'] === close['upstream_local'], { timeoutMs: 3000 });
    const d = delta(before, await counters(n1));
    t.equal(d.tc_in_redirected, 1, JSON.stringify(d));
    t.equal(d.tc_out_restored, 1);
    t.equal(d.getsockopt_answered, 1);
    noErrors(t, d);
  });

  t.test(`${f.name}: the node netns of node 2 (no pod, no mesh) -> s:8080 lands on s's proxy`, async (t) => {
    const r = await n2.run(mlpeer, ['client', '--connect', dst, '--bytes', '3000', '--half-close', '--timeout-ms', '10000']);
    t.equal(r.exitCode, 0, describe(r));
    const sm = summary(r);
    const acc = await proxyS.waitForJson((e) => e['event'] === 'accept' && e['peer'] === sm['local'], { timeoutMs: 3000 });
    t.equal(acc['orig_dst'], dst);
  });

  t.test(`${f.name}: meshed app on node 2 -> its proxy (15001) -> s:8080 -> s's proxy (15006) -> app`, async (t) => {
    const r = await m.run(mlpeer, ['client', '--connect', dst, '--bytes', '100000', '--half-close', '--timeout-ms', '10000'], APP);
    t.equal(r.exitCode, 0, describe(r));
    const sm = summary(r);
    const out = await proxyM.waitForJson((e) => e['event'] === 'close' && e['peer'] === sm['local'], { timeoutMs: 5000 });
    t.equal(out['listener'], 15001);
    t.equal(out['orig_dst'], dst, 'm\'s proxy: original destination s:8080');
    t.equal(out['error'], null);
    const inb = await proxyS.waitForJson((e) => e['event'] === 'close' && e['peer'] === out['upstream_local'], { timeoutMs: 5000 });
    t.equal(inb['listener'], 15006, 'm\'s proxy\'s upstream crossed nodes and landed on s\'s inbound listener');
    t.equal(inb['orig_dst'], dst);
    t.equal(inb['bytes_up'], 100000);
    t.equal(inb['bytes_down'], 100000);
  });

  t.test(`${f.name}: same-node proxy -> s (already at 15006 from connect) is left alone by tc`, async (t) => {
    const before = await counters(n1);
    const r = await c.run(mlpeer, ['client', '--connect', dst, '--bytes', '2000', '--half-close', '--timeout-ms', '10000'], PROXY);
    t.equal(r.exitCode, 0, describe(r));
    const sm = summary(r);
    t.equal(sm['peer'], hostPort(f.sIp, 15006));
    const acc = await proxyS.waitForJson((e) => e['event'] === 'accept' && e['peer'] === sm['local'], { timeoutMs: 3000 });
    t.equal(acc['orig_dst'], dst);
    void proxyC;
    const d = delta(before, await counters(n1));
    t.notOk(d.tc_in_redirected, `not steered a second time: ${JSON.stringify(d)}`);
    t.notOk(d.tc_out_restored, 'replies keep 15006');
    noErrors(t, d);
  });

  for (const [port, app, what] of [[9090, app9090, 'an excluded inbound port'], [15021, app15021, 'the status port']] as const) {
    t.test(`${f.name}: ${what} (${port}) reaches the app directly`, async (t) => {
      const before = await counters(n1);
      const target = hostPort(f.sIp, port);
      const r = await u.run(mlpeer, ['client', '--connect', target, '--bytes', '20000', '--half-close', '--timeout-ms', '10000'], APP);
      t.equal(r.exitCode, 0, describe(r));
      const sm = summary(r);
      const acc = await app.waitForJson((e) => e['event'] === 'accept' && e['peer'] === sm['local'], { timeoutMs: 3000 });
      t.equal(acc['local'], target, 'the app saw the client itself');
      t.equal(proxyS.events().filter((e) => e['event'] === 'accept' && e['peer'] === sm['local']).length, 0, 'nothing at the proxy');
      const d = delta(before, await counters(n1));
      t.equal(d.tc_in_excluded, 1, JSON.stringify(d));
      t.notOk(d.tc_in_redirected);
    });
  }

  t.test(`${f.name}: reply path for 1 B and 4 MB, bytes verified`, async (t) => {
    for (const bytes of [1, 4 * 1024 * 1024]) {
      const r = await u.run(mlpeer, ['client', '--connect', dst, '--bytes', String(bytes), '--half-close', '--timeout-ms', '20000'], APP);
      t.equal(r.exitCode, 0, describe(r));
      const sm = summary(r);
      t.equal(sm['received'], bytes, `${bytes} B echoed back intact`);
      const close = await proxyS.waitForJson((e) => e['event'] === 'close' && e['peer'] === sm['local'], { timeoutMs: 10000 });
      t.equal(close['bytes_up'], bytes, 'through the proxy');
    }
  });
}

t.test('outbound from the meshed pod is not steered inbound: its replies arrive on "captured" ephemeral ports', async (t) => {
  const remote = await startServer(u, mlpeer, 8090);
  for (const f of [{ ip: u.ipv4, v: '4' }, { ip: u.ipv6, v: '6' }] as const) {
    const dst = hostPort(f.ip, 8090);
    const before = await counters(n1);
    // The proxy's own upstream connection (uid 1337), as it makes for every outbound request.
    const r0 = await s.run(mlpeer, ['client', '--connect', dst, '--bytes', '200000', '--half-close', '--timeout-ms', '10000'], PROXY);
    t.equal(r0.exitCode, 0, `proxy uid -> node 2: ${describe(r0)}`);
    t.equal(summary(r0)['peer'], dst, 'direct, not redirected');
    // The app, through its proxy's outbound listener.
    const r1 = await s.run(mlpeer, ['client', '--connect', dst, '--bytes', '200000', '--half-close', '--timeout-ms', '10000'], APP);
    t.equal(r1.exitCode, 0, `app -> 15001 -> node 2: ${describe(r1)}`);
    const out = await proxyS.waitForJson((e) => e['event'] === 'close' && e['listener'] === 15001 && e['peer'] === summary(r1)['local'], { timeoutMs: 5000 });
    t.equal(out['orig_dst'], dst);
    t.equal(out['bytes_down'], 200000);
    const d = delta(before, await counters(n1));
    t.notOk(d.tc_in_redirected, `IPv${f.v}: nothing steered to 15006 (${JSON.stringify(d)})`);
    t.ok((d.tc_in_pass ?? 0) > 0, 'the replies passed');
    noErrors(t, d);
  }
  await remote.kill('SIGTERM', 1000);
});

t.test('200 concurrent connections from node 2 through s\'s proxy, v4 and v6', async (t) => {
  for (const f of families) {
    const before = await counters(n1);
    const r = await u.run(mlpeer, ['client', '--connect', hostPort(f.sIp, 8080), '--bytes', '10000', '--concurrency', '200', '--timeout-ms', '30000'], APP);
    const sm = summary(r);
    t.equal(r.exitCode, 0, describe(r));
    t.equal(sm['failed'], 0);
    t.equal(sm['received'], 2_000_000);
    const d = delta(before, await counters(n1));
    t.ok((d.tc_in_redirected ?? 0) >= 200, `${f.name}: every connection steered (${JSON.stringify(d)})`);
    noErrors(t, d);
  }
});

// ---- header parsing, byte for byte: the pinned programs run on crafted frames (BPF_PROG_TEST_RUN) ----

const IPV4_ETH = 0x0800;
const IPV6_ETH = 0x86dd;
const CLIENT4 = '10.213.141.77';
const CLIENT6 = 'fd00:213:141::77';

function addrBytes(ip: string): Buffer {
  if (!ip.includes(':')) return Buffer.from(ip.split('.').map(Number));
  const [h = '', tl] = ip.split('::');
  const head = h ? h.split(':') : [];
  const tail = tl ? tl.split(':') : [];
  const groups = [...head, ...Array<string>(8 - head.length - tail.length).fill('0'), ...tail];
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), i * 2));
  return b;
}

function csum(buf: Buffer, seed = 0): number {
  let sum = seed;
  for (let i = 0; i + 1 < buf.length; i += 2) sum += buf.readUInt16BE(i);
  if (buf.length % 2) sum += (buf[buf.length - 1] ?? 0) << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

function tcpHeader(sport: number, dport: number, flags: number): Buffer {
  const t = Buffer.alloc(20);
  t.writeUInt16BE(sport, 0);
  t.writeUInt16BE(dport, 2);
  t.writeUInt32BE(0x01020304, 4);
  t[12] = 5 << 4;
  t[13] = flags;
  t.writeUInt16BE(64240, 14);
  return t;
}

/** Pseudo-header sum for the TCP checksum (the final source and destination). */
function pseudo(src: Buffer, dst: Buffer, len: number): number {
  const p = Buffer.alloc(src.length === 4 ? 12 : 40);
  if (src.length === 4) {
    src.copy(p, 0); dst.copy(p, 4); p[9] = 6; p.writeUInt16BE(len, 10);
  } else {
    src.copy(p, 0); dst.copy(p, 16); p.writeUInt32BE(len, 32); p[39] = 6;
  }
  return csum(p);
}

function withChecksum(tcp: Buffer, src: Buffer, dst: Buffer): Buffer {
  tcp.writeUInt16BE(0, 16);
  tcp.writeUInt16BE(~csum(tcp, pseudo(src, dst, tcp.length)) & 0xffff, 16);
  return tcp;
}

function tcpChecksumOk(tcp: Buffer, src: Buffer, dst: Buffer): boolean {
  return csum(tcp, pseudo(src, dst, tcp.length)) === 0xffff;
}

function eth(type: number): Buffer {
  const e = Buffer.alloc(14);
  e.writeUInt16BE(type, 12);
  return e;
}

interface Frame { frame: Buffer; l4: number; src: Buffer; dst: Buffer }

function frame4(src: string, dst: string, tcp: Buffer, opts: { options?: Buffer; fragOff?: number } = {}): Frame {
  const options = opts.options ?? Buffer.alloc(0);
  const ip = Buffer.alloc(20 + options.length);
  ip[0] = 0x40 | ((20 + options.length) / 4);
  ip.writeUInt16BE(ip.length + tcp.length, 2);
  ip.writeUInt16BE(opts.fragOff ?? 0x4000, 6);
  ip[8] = 64;
  ip[9] = 6;
  const s = addrBytes(src);
  const d = addrBytes(dst);
  s.copy(ip, 12);
  d.copy(ip, 16);
  options.copy(ip, 20);
  ip.writeUInt16BE(~csum(ip) & 0xffff, 10);
  withChecksum(tcp, s, d);
  return { frame: Buffer.concat([eth(IPV4_ETH), ip, tcp]), l4: 14 + ip.length, src: s, dst: d };
}

/** exts: [next-header value of this extension, its bytes (next header byte filled in)] */
function frame6(src: string, dst: string, tcp: Buffer, exts: Array<[number, Buffer]> = [], finalNh = 6): Frame {
  const s = addrBytes(src);
  const d = addrBytes(dst);
  const chain: Buffer[] = [];
  exts.forEach(([, bytes], i) => {
    const next = exts[i + 1];
    bytes[0] = next ? next[0] : finalNh;
    chain.push(bytes);
  });
  const extLen = chain.reduce((n, b) => n + b.length, 0);
  const ip = Buffer.alloc(40);
  ip[0] = 0x60;
  ip.writeUInt16BE(extLen + tcp.length, 4);
  ip[6] = exts[0] ? exts[0][0] : finalNh;
  ip[7] = 64;
  s.copy(ip, 8);
  d.copy(ip, 24);
  withChecksum(tcp, s, d);
  return { frame: Buffer.concat([eth(IPV6_ETH), ip, ...chain, tcp]), l4: 14 + 40 + extLen, src: s, dst: d };
}

const ext8 = (): Buffer => Buffer.from([0, 0, 1, 4, 0, 0, 0, 0]);
const routing = (segLeft: number): Buffer => Buffer.from([0, 0, 0, segLeft, 0, 0, 0, 0]);

const workDir = join(n1.stateDir, 'frames');
mkdirSync(workDir, { recursive: true });
let frameSeq = 0;

async function runProg(prog: 'ml_tc_ingress' | 'ml_tc_egress', f: Frame): Promise<Buffer> {
  frameSeq += 1;
  const fin = join(workDir, `in${frameSeq}`);
  const fout = join(workDir, `out${frameSeq}`);
  writeFileSync(fin, f.frame);
  await execa('bpftool', ['prog', 'run', 'pinned', join(n1.pinDir, 'progs', prog), 'data_in', fin, 'data_out', fout]);
  return readFileSync(fout);
}

const SYN = 0x02;
const SYNACK = 0x12;

t.test('parsing: IPv4 with options and IPv6 with extension headers are steered with a valid checksum', async (t) => {
  const cases: Array<{ name: string; f: Frame; client: string }> = [
    { name: 'IPv4, no options', f: frame4(CLIENT4, s.ipv4, tcpHeader(40001, 8080, SYN)), client: CLIENT4 },
    { name: 'IPv4, 4 bytes of options (ihl 6)', f: frame4(CLIENT4, s.ipv4, tcpHeader(40002, 8080, SYN), { options: Buffer.from([1, 1, 1, 0]) }), client: CLIENT4 },
    { name: 'IPv4, 40 bytes of options (ihl 15)', f: frame4(CLIENT4, s.ipv4, tcpHeader(40003, 8080, SYN), { options: Buffer.alloc(40, 1) }), client: CLIENT4 },
    { name: 'IPv6, no extension header', f: frame6(CLIENT6, s.ipv6, tcpHeader(40004, 8080, SYN)), client: CLIENT6 },
    { name: 'IPv6, hop-by-hop + destination options', f: frame6(CLIENT6, s.ipv6, tcpHeader(40005, 8080, SYN), [[0, ext8()], [60, ext8()]]), client: CLIENT6 },
    { name: 'IPv6, routing header with no segments left', f: frame6(CLIENT6, s.ipv6, tcpHeader(40006, 8080, SYN), [[43, routing(0)]]), client: CLIENT6 },
  ];
  for (const c of cases) {
    const out = await runProg('ml_tc_ingress', c.f);
    t.equal(out.length, c.f.frame.length, `${c.name}: same length`);
    const tcp = out.subarray(c.f.l4);
    t.equal(tcp.readUInt16BE(2), 15006, `${c.name}: dport -> 15006`);
    t.ok(tcpChecksumOk(tcp, c.f.src, c.f.dst), `${c.name}: TCP checksum valid`);
    const expect = Buffer.from(c.f.frame);
    expect.writeUInt16BE(15006, c.f.l4 + 2);
    expect.writeUInt16BE(tcp.readUInt16BE(16), c.f.l4 + 16);
    t.ok(out.equals(expect), `${c.name}: nothing else changed`);
    // The reply (SYN-ACK from 15006) gets its original source port back.
    const sport = c.f.frame.readUInt16BE(c.f.l4);
    const reply = c.client.includes(':') ? frame6(s.ipv6, c.client, tcpHeader(15006, sport, SYNACK)) : frame4(s.ipv4, c.client, tcpHeader(15006, sport, SYNACK));
    const rout = await runProg('ml_tc_egress', reply);
    const rtcp = rout.subarray(reply.l4);
    t.equal(rtcp.readUInt16BE(0), 8080, `${c.name}: the reply's source port is 8080 again`);
    t.ok(tcpChecksumOk(rtcp, reply.src, reply.dst), `${c.name}: reply checksum valid`);
  }
});

t.test('parsing: only SYNs start a flow; other packets need a flow record with their port', async (t) => {
  const cases: Array<{ name: string; f: Frame }> = [
    { name: 'IPv4 SYN-ACK to the pod (reply to its own connect)', f: frame4(CLIENT4, s.ipv4, tcpHeader(8090, 42001, SYNACK)) },
    { name: 'IPv4 ACK to a captured port without a flow', f: frame4(CLIENT4, s.ipv4, tcpHeader(42002, 8080, 0x10)) },
    { name: 'IPv6 ACK to a captured port without a flow', f: frame6(CLIENT6, s.ipv6, tcpHeader(42003, 8080, 0x10)) },
  ];
  // A flow 42004 -> 8080, then an ACK from the same client port to another port: not that flow.
  await runProg('ml_tc_ingress', frame4(CLIENT4, s.ipv4, tcpHeader(42004, 8080, SYN)));
  cases.push({ name: 'IPv4 ACK from a flow\'s client port to another port', f: frame4(CLIENT4, s.ipv4, tcpHeader(42004, 8081, 0x10)) });
  for (const c of cases) {
    const out = await runProg('ml_tc_ingress', c.f);
    t.ok(out.equals(c.f.frame), `${c.name}: untouched`);
  }
  const ack = frame4(CLIENT4, s.ipv4, tcpHeader(42004, 8080, 0x10));
  const out = await runProg('ml_tc_ingress', ack);
  t.equal(out.readUInt16BE(ack.l4 + 2), 15006, 'the ACK of the steered flow follows its SYN');
  t.ok(tcpChecksumOk(out.subarray(ack.l4), ack.src, ack.dst));
});

t.test('parsing: fragments, AH, routing with segments left, truncated TCP pass untouched and are counted', async (t) => {
  const cases: Array<{ name: string; f: Frame; unsupported: boolean }> = [
    { name: 'IPv4 first fragment (MF)', f: frame4(CLIENT4, s.ipv4, tcpHeader(41001, 8080, SYN), { fragOff: 0x2000 }), unsupported: true },
    { name: 'IPv4 later fragment', f: frame4(CLIENT4, s.ipv4, tcpHeader(41002, 8080, SYN), { fragOff: 0x0010 }), unsupported: true },
    { name: 'IPv6 fragment header', f: frame6(CLIENT6, s.ipv6, tcpHeader(41003, 8080, SYN), [[44, Buffer.from([0, 0, 0, 1, 0, 0, 0, 9])]]), unsupported: true },
    { name: 'IPv6 routing header, 1 segment left', f: frame6(CLIENT6, s.ipv6, tcpHeader(41004, 8080, SYN), [[43, routing(1)]]), unsupported: true },
    { name: 'IPv6 AH', f: frame6(CLIENT6, s.ipv6, tcpHeader(41005, 8080, SYN), [[51, Buffer.from([0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])]]), unsupported: true },
    { name: 'IPv6, 7 destination options headers', f: frame6(CLIENT6, s.ipv6, tcpHeader(41006, 8080, SYN), Array.from({ length: 7 }, () => [60, ext8()] as [number, Buffer])), unsupported: true },
    { name: 'IPv6 hop-by-hop then ICMPv6 (MLD-like)', f: frame6(CLIENT6, s.ipv6, tcpHeader(41007, 8080, SYN), [[0, ext8()]], 58), unsupported: false },
  ];
  const truncated = frame4(CLIENT4, s.ipv4, tcpHeader(41008, 8080, SYN));
  cases.push({ name: 'IPv4, TCP header cut short', f: { ...truncated, frame: truncated.frame.subarray(0, truncated.l4 + 10) }, unsupported: true });
  for (const c of cases) {
    const before = await counters(n1);
    const out = await runProg('ml_tc_ingress', c.f);
    t.ok(out.equals(c.f.frame), `${c.name}: untouched`);
    const d = delta(before, await counters(n1));
    if (c.unsupported) t.equal(d.tc_unsupported, 1, `${c.name}: counted as unsupported ${JSON.stringify(d)}`);
    else {
      t.ok((d.tc_in_pass ?? 0) >= 1, `${c.name}: passed as not TCP ${JSON.stringify(d)}`);
      t.notOk(d.tc_unsupported, `${c.name}: not counted as unsupported`);
    }
  }
});

t.test('real traffic with IP options and IPv6 extension headers crosses nodes to the proxy', async (t) => {
  const mlopts = await buildTool('mlopts');
  // Bulk transfers with IPv4 options and with a hop-by-hop header; a destination
  // options header only in a small exchange: on this kernel, forwarded IPv6 TCP
  // bulk transfers with a destination options header stall now and then even
  // with no meshlane anywhere (seen 3 in 12 between two linked plain sandbox
  // nodes), so it would make this test flaky for a reason that is not ours.
  for (const [dst, flags, bytes] of [
    [hostPort(s.ipv4, 8080), ['--ip-options'], 300000],
    [hostPort(s.ipv6, 8080), ['--hopopts'], 300000],
    [hostPort(s.ipv6, 8080), ['--dstopts'], 1000],
    [hostPort(s.ipv6, 8080), ['--hopopts', '--dstopts'], 1000],
  ] as const) {
    const before = await counters(n1);
    // root: IPV6_HOPOPTS / IPV6_DSTOPTS need CAP_NET_RAW (u is not meshed, its uid does not matter).
    const r = await u.run(mlopts, ['--connect', dst, '--bytes', String(bytes), ...flags]);
    t.equal(r.exitCode, 0, `${flags.join(' ')}: ${describe(r)}`);
    const sm = summary(r);
    t.equal(sm['peer'], dst);
    const acc = await proxyS.waitForJson((e) => e['event'] === 'accept' && e['peer'] === sm['local'], { timeoutMs: 3000 });
    t.equal(acc['orig_dst'], dst, `${flags.join(' ')}: at s's proxy with the original destination`);
    const d = delta(before, await counters(n1));
    t.equal(d.tc_in_redirected, 1, JSON.stringify(d));
    t.notOk(d.tc_unsupported);
  }
});

t.test('DEL removes the filters and the clsact qdisc ADD added; traffic then reaches the app directly', async (t) => {
  await execPlugin('DEL', list, entry, rt, prevResult);
  deleted = true;
  t.equal((await tcIn(s, ['filter', 'show', 'dev', 'eth0', 'ingress'])).trim(), '', 'no ingress filter');
  t.equal((await tcIn(s, ['filter', 'show', 'dev', 'eth0', 'egress'])).trim(), '', 'no egress filter');
  t.notMatch(await tcIn(s, ['qdisc', 'show', 'dev', 'eth0']), /clsact/, 'no clsact qdisc');
  t.notOk(await readPodConfig(n1.pinDir, s.ipv4), 'unregistered');
  await execPlugin('DEL', list, entry, rt, prevResult);
  t.pass('a repeated DEL succeeds');
  const r = await u.run(mlpeer, ['client', '--connect', hostPort(s.ipv4, 8080), '--bytes', '1000', '--half-close', '--timeout-ms', '10000'], APP);
  t.equal(r.exitCode, 0, describe(r));
  const sm = summary(r);
  await app8080.waitForJson((e) => e['event'] === 'accept' && e['peer'] === sm['local'], { timeoutMs: 3000 });
  t.pass('the app is reached directly');
});

t.test('uninstall detaches the inbound programs of every pod that still has a record', async (t) => {
  const again = await execPlugin('ADD', list, entry, rt, prevResult);
  t.same(again, prevResult);
  deleted = false;
  t.match(await tcIn(s, ['filter', 'show', 'dev', 'eth0', 'ingress']), /ml_tc_ingress/, 'attached again by a new ADD');
  const scratch = join(n1.stateDir, 'uninstall');
  for (const d of ['net.d', 'bin']) mkdirSync(join(scratch, d), { recursive: true });
  const u1 = await execa(distExe, [
    'uninstall',
    '--cni-net-dir', join(scratch, 'net.d'),
    '--cni-bin-dir', join(scratch, 'bin'),
    '--cgroup-root', n1.cgroupRoot,
    '--pin-dir', n1.pinDir,
    '--state-dir', stateDir,
    '--kubeconfig', join(scratch, 'kubeconfig'),
  ], { reject: false });
  t.equal(u1.exitCode, 0, u1.stderr);
  t.match(u1.stderr, /still have meshlane attachment records/, 'the pod still needs its DEL');
  t.equal((await tcIn(s, ['filter', 'show', 'dev', 'eth0', 'ingress'])).trim(), '', 'no ingress filter');
  t.equal((await tcIn(s, ['filter', 'show', 'dev', 'eth0', 'egress'])).trim(), '', 'no egress filter');
  t.notMatch(await tcIn(s, ['qdisc', 'show', 'dev', 'eth0']), /clsact/, 'no clsact qdisc');
  await execPlugin('DEL', list, entry, rt, prevResult);
  deleted = true;
  t.pass('the pod\'s DEL after uninstall succeeds');
});
