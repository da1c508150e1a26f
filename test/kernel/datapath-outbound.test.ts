// Outbound capture on the real kernel: an app (uid 1000) in registered pod A
// connects to a server in pod B; the connection lands on A's proxy (uid 1337,
// outbound listener 15001), the proxy learns B's address and port through
// SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST, and the server sees pod A's IP as
// the source. IPv4, IPv6, and an IPv4 destination on an AF_INET6 socket.
import t from 'tap';
import { mapEntryCount } from '../../src/bpf/registry.js';
import { requireRoot } from '../helpers/root.js';
import { APP, counters, datapathNode, delta, describe, hostPort, install, register, startProxy, startServer, summary, tupleRecords, until } from '../helpers/datapath.js';

requireRoot('the datapath outbound test');
const { node, loc, mlpeer, mlproxy } = await datapathNode(t, 'mlkou', 116);
const a = await node.addPod({ name: 'a' });
const b = await node.addPod({ name: 'b' });
await install(loc);
await register(node, a);
const proxyA = await startProxy(a, mlproxy);
const server = await startServer(b, mlpeer, 8080);

const cases = [
  { name: 'IPv4', dst: hostPort(b.ipv4, 8080), listener: '127.0.0.1:15001', srcIp: a.ipv4, proxySees: (l: string) => l, orig: hostPort(b.ipv4, 8080), redirect: 'connect4_redirect_out', upstreamPass: 'connect4_pass' },
  { name: 'IPv6', dst: hostPort(b.ipv6, 8080), listener: `[${a.ipv6}]:15001`, srcIp: a.ipv6, proxySees: (l: string) => l, orig: hostPort(b.ipv6, 8080), redirect: 'connect6_redirect_out', upstreamPass: 'connect6_pass' },
  {
    // An AF_INET6 socket with a v4-mapped destination: connect6 sees it, the
    // proxy's AF_INET listener accepts it and answers SOL_IP/SO_ORIGINAL_DST.
    name: 'IPv4 on an AF_INET6 socket (v4-mapped)', dst: `[::ffff:${b.ipv4}]:8080`, listener: '[::ffff:127.0.0.1]:15001', srcIp: `::ffff:${a.ipv4}`,
    proxySees: (l: string) => l.replace(/^\[::ffff:([0-9.]+)\]/, '$1'), orig: hostPort(b.ipv4, 8080), redirect: 'connect6_redirect_out', upstreamPass: 'connect4_pass',
  },
] as const;

for (const c of cases) {
  t.test(`outbound ${c.name}: app -> proxy 15001 -> server, original destination and pod source kept`, async (t) => {
    const before = await counters(node);
    const r = await a.run(mlpeer, ['client', '--connect', c.dst, '--bytes', '100000', '--half-close', '--timeout-ms', '10000'], APP);
    const s = summary(r);
    t.equal(r.exitCode, 0, `client: ${describe(r)}`);
    t.equal(s['peer'], c.listener, 'the app socket was connected to the outbound listener');
    const local = String(s['local']);
    t.ok(local.startsWith(hostPort(c.srcIp, 0).slice(0, -1)), `the app socket is bound to pod A's IP (${local})`);

    const peerAtProxy = c.proxySees(local);
    const acc = await proxyA.waitForJson((e) => e['event'] === 'accept' && e['peer'] === peerAtProxy, { timeoutMs: 3000 });
    t.equal(acc['listener'], 15001, 'accepted on the outbound listener');
    t.equal(acc['orig_dst'], c.orig, 'SO_ORIGINAL_DST gives B and the port the app asked for');
    t.equal(acc['errno'], 0);
    const close = await proxyA.waitForJson((e) => e['event'] === 'close' && e['peer'] === peerAtProxy, { timeoutMs: 5000 });
    t.equal(close['error'], null, 'the proxy relayed without error');
    t.equal(close['bytes_up'], 100000);
    t.equal(close['bytes_down'], 100000);
    const upstream = String(close['upstream_local']);
    const srvAcc = await server.waitForJson((e) => e['event'] === 'accept' && e['peer'] === upstream, { timeoutMs: 3000 });
    const srcIp = upstream.replace(/^\[?(.*?)\]?:\d+$/, '$1');
    t.equal(srcIp, c.orig.startsWith('[') ? a.ipv6 : a.ipv4, 'the server sees pod A\'s IP as the source');
    t.equal(srvAcc['local'], c.orig, 'the server is reached on the address and port the app asked for');

    const d = delta(before, await counters(node));
    t.equal(d[c.redirect], 1, `${c.redirect} +1 (${JSON.stringify(d)})`);
    t.equal(d[c.upstreamPass], 1, `the proxy's own connection to B (not a meshed pod) passed: ${c.upstreamPass} +1`);
    t.equal(d.getsockopt_answered, 1, 'SO_ORIGINAL_DST answered once');
    t.equal(d.sockops_odst_saved, 1, 'cookie record turned into a 4-tuple record');
    t.notOk(d.getsockopt_miss, 'no getsockopt miss');
    for (const k of Object.keys(d)) if (k.startsWith('err_')) t.fail(`error counter ${k} moved: ${JSON.stringify(d)}`);
    t.equal(await until(() => tupleRecords(node), (n) => n === 0, 3000), 0, 'the 4-tuple record is gone after the close');
  });
}

t.test('outbound: a socket the app bound itself keeps its source; still captured and answered', async (t) => {
  const before = await counters(node);
  const r = await a.run(mlpeer, ['client', '--connect', hostPort(b.ipv4, 8080), '--bind', '127.0.0.1', '--bytes', '1000', '--timeout-ms', '10000'], APP);
  t.equal(r.exitCode, 0, describe(r));
  const s = summary(r);
  t.equal(s['peer'], '127.0.0.1:15001');
  t.match(String(s['local']), /^127\.0\.0\.1:\d+$/, 'no second bind');
  const acc = await proxyA.waitForJson((e) => e['event'] === 'accept' && e['peer'] === s['local'], { timeoutMs: 3000 });
  t.equal(acc['orig_dst'], hostPort(b.ipv4, 8080), 'loopback tuple (netns cookie in the key) answered');
  const d = delta(before, await counters(node));
  t.equal(d.connect4_redirect_out, 1);
  t.notOk(d.err_bind, 'no bind attempted on a bound socket');
});

t.test('outbound: a redirected connect that is refused (no proxy listening) leaves no record behind', async (t) => {
  const c = await node.addPod({ name: 'c' });
  await register(node, c);
  const before = await counters(node);
  for (const dst of [hostPort(b.ipv4, 8080), hostPort(b.ipv6, 8080)]) {
    const r = await c.run(mlpeer, ['client', '--connect', dst, '--bytes', '10', '--timeout-ms', '3000'], APP);
    t.equal(r.exitCode, 1, 'the app gets an error, as without a sidecar listening');
    t.match(r.stdout, /Connection refused/, describe(r));
  }
  const d = delta(before, await counters(node));
  t.equal(d.connect4_redirect_out, 1, JSON.stringify(d));
  t.equal(d.connect6_redirect_out, 1);
  t.equal(d.sockops_connect_failed, 2, 'both cookie records dropped when the connect failed');
  t.equal(await until(() => mapEntryCount(node.pinDir, 'ml_odst_ck'), (n) => n === 0, 2000), 0, 'ml_odst_ck empty');
  t.equal(await tupleRecords(node), 0, 'ml_odst_tup empty');
});

t.test('outbound: pods of every QoS class (pod cgroup at different depths) are found', async (t) => {
  for (const qos of ['guaranteed', 'burstable', 'besteffort'] as const) {
    const p = await node.addPod({ name: `q-${qos}`, qos });
    await register(node, p);
    const proxy = await startProxy(p, mlproxy);
    const r = await p.run(mlpeer, ['client', '--connect', hostPort(b.ipv6, 8080), '--bytes', '100', '--timeout-ms', '5000'], APP);
    const s = summary(r);
    t.equal(r.exitCode, 0, `${qos} (pod cgroup level ${p.cgroupLevel}): ${describe(r)}`);
    t.equal(s['peer'], `[${p.ipv6}]:15001`, `${qos}: captured (IPv6: the pod's own address, docs/datapath.md)`);
    const acc = await proxy.waitForJson((e) => e['event'] === 'accept' && e['peer'] === s['local'], { timeoutMs: 3000 });
    t.equal(acc['orig_dst'], hostPort(b.ipv6, 8080));
    await proxy.kill();
    await node.removePod(p);
  }
});

// A server that answers an EOF with its own only after a pause: by then the
// app has closed its socket (a TIME_WAIT socket in the kernel), so the ACK of
// the proxy's FIN comes from the kernel's control socket, not from the app's.
const LATE_CLOSE_SERVER = `import socket, sys, threading, time, json
fam = socket.AF_INET6 if sys.argv[1] == '6' else socket.AF_INET
l = socket.socket(fam, socket.SOCK_STREAM); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
if fam == socket.AF_INET6: l.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
l.bind(('::' if fam == socket.AF_INET6 else '0.0.0.0', int(sys.argv[2]))); l.listen(64)
print(json.dumps({'event': 'listening'}), flush=True)
def serve(c):
    while c.recv(65536): pass
    time.sleep(0.5); c.close()
while True:
    c, _ = l.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
`;
const APP_CLOSES_FIRST = `import socket, sys
fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
for i in range(int(sys.argv[3])):
    s = socket.socket(fam, socket.SOCK_STREAM); s.settimeout(5); s.connect((sys.argv[1], int(sys.argv[2]))); s.sendall(b'z' * 100); s.close()
`;

t.test('outbound: the app closes first, the server half a second later: no proxy socket left in LAST-ACK', async (t) => {
  // With IPv6 to [::1]:15001 and the pod's address as the source, the kernel
  // lost the ACK the app's TIME_WAIT socket sends for the proxy's FIN: the
  // proxy's socket stayed in LAST-ACK for minutes and a later connection that
  // got the same port stalled in SYN-SENT against it. Hence IPv6 goes to the
  // pod's own address (docs/datapath.md, "IPv6 outbound listener address").
  const servers = [await b.spawn('python3', ['-c', LATE_CLOSE_SERVER, '4', '8093'], APP), await b.spawn('python3', ['-c', LATE_CLOSE_SERVER, '6', '8093'], APP)];
  t.teardown(() => Promise.all(servers.map((s) => s.kill())).then(() => undefined));
  for (const s of servers) await s.waitForJson((e) => e['event'] === 'listening');
  for (const [f, ip] of [['IPv4', b.ipv4], ['IPv6', b.ipv6]] as const) {
    const orig = hostPort(ip, 8093);
    const closed = (): number => proxyA.events().filter((e) => e['event'] === 'close' && e['orig_dst'] === orig).length;
    const r = await a.run('python3', ['-c', APP_CLOSES_FIRST, ip, '8093', '5'], { ...APP, timeoutMs: 30000 });
    t.equal(r.exitCode, 0, `${f}: ${describe(r)}`);
    // The proxy closes 0.5 s after the app; its FIN is ACKed within a round trip.
    t.equal(await until(async () => closed(), (n) => n === 5, 5000), 5, `${f}: A's proxy closed all 5 connections`);
    const lastAck = await until(async () => (await a.run('ss', ['-tanH', 'state', 'last-ack'])).stdout.trim(), (out) => out === '', 3000, 200);
    t.equal(lastAck, '', `${f}: no socket of A's proxy waits in LAST-ACK for the app's final ACK`);
  }
});
