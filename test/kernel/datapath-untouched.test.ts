// What the datapath must never touch, on the real kernel, with the programs
// attached to the node cgroup root: a process in a cgroup that is not a
// registered pod (below the root or in an unregistered pod), loopback and
// own-IP traffic of a registered pod's app, the proxy uid's traffic to
// 127.0.0.1 and to destinations that are not meshed pods on this node. (The
// proxy uid's own-IP traffic is not left alone: Istio sends it to the proxy's
// inbound listener; checked at the end, and in istio-parity.test.ts.) Checked at the socket
// (the peer the client got is the one it asked for), at the server (source
// address), at the proxies (no accept) and with the counters.
import t from 'tap';
import type { Placement, Pod, RunResult, SpawnedProcess } from '../../testing/sandbox/node.js';
import { requireRoot } from '../helpers/root.js';
import { APP, PROXY, counters, datapathNode, delta, describe, hostPort, install, register, startInboundProxy, startProxy, startServer, summary } from '../helpers/datapath.js';

requireRoot('the datapath "never touched" test');
const { node, loc, mlpeer, mlproxy } = await datapathNode(t, 'mlknt', 112);
const a = await node.addPod({ name: 'a' });
const b = await node.addPod({ name: 'b' });
const c = await node.addPod({ name: 'c' }); // never registered
await install(loc);
await register(node, a);
await register(node, b);
const proxyA = await startInboundProxy(a, mlproxy);
const proxyB = await startInboundProxy(b, mlproxy);
const proxyC = await startProxy(c, mlproxy);
const servers: Record<string, SpawnedProcess> = {
  a: await startServer(a, mlpeer, 9000),
  b: await startServer(b, mlpeer, 8080),
  c: await startServer(c, mlpeer, 8080),
};
// A server outside any pod: the node netns (the bridge's gateway addresses).
const nodeServer = await node.spawn(mlpeer, ['server', '--port', '9100', '--idle-timeout-ms', '20000', '--lifetime-ms', '300000'], APP);
await nodeServer.waitForJson((e) => e['event'] === 'listening');

const proxies = [proxyA, proxyB, proxyC];

interface Case {
  name: string;
  run: () => Promise<RunResult>;
  dst: string;
  /** The server that must see the connection, and the source IP it must see. */
  server: SpawnedProcess;
  srcIp: string;
  family: '4' | '6';
}

function inPlace(place: Placement, dst: string, uid: { uid: number; gid: number }): () => Promise<RunResult> {
  return () => node.runIn(place, mlpeer, ['client', '--connect', dst, '--bytes', '2000', '--half-close', '--timeout-ms', '8000'], uid);
}
function inPod(pod: Pod, dst: string, who: typeof APP | typeof PROXY): () => Promise<RunResult> {
  return () => pod.run(mlpeer, ['client', '--connect', dst, '--bytes', '2000', '--half-close', '--timeout-ms', '8000'], who);
}

const cases: Case[] = [];
for (const v of ['4', '6'] as const) {
  const ip = (p: Pod): string => (v === '4' ? p.ipv4 : p.ipv6);
  const lo = v === '4' ? '127.0.0.1' : '::1';
  const gw = v === '4' ? node.gateway4 : node.gateway6;
  const unregisteredInA: Placement = { netnsPath: a.netnsPath, cgroupDir: node.systemCgroup };
  cases.push(
    { name: `IPv${v}: a process in an unregistered cgroup below the root (in A's netns) -> meshed pod B`, run: inPlace(unregisteredInA, hostPort(ip(b), 8080), APP), dst: hostPort(ip(b), 8080), server: servers.b!, srcIp: ip(a), family: v },
    { name: `IPv${v}: uid 1337 in an unregistered cgroup -> meshed pod B`, run: inPlace(unregisteredInA, hostPort(ip(b), 8080), { uid: 1337, gid: 1337 }), dst: hostPort(ip(b), 8080), server: servers.b!, srcIp: ip(a), family: v },
    { name: `IPv${v}: an app in an unregistered pod C -> meshed pod B`, run: inPod(c, hostPort(ip(b), 8080), APP), dst: hostPort(ip(b), 8080), server: servers.b!, srcIp: ip(c), family: v },
    { name: `IPv${v}: an app in registered pod A -> loopback`, run: inPod(a, hostPort(lo, 9000), APP), dst: hostPort(lo, 9000), server: servers.a!, srcIp: lo, family: v },
    { name: `IPv${v}: an app in registered pod A -> its own pod IP`, run: inPod(a, hostPort(ip(a), 9000), APP), dst: hostPort(ip(a), 9000), server: servers.a!, srcIp: ip(a), family: v },
    { name: `IPv${v}: A's proxy uid -> loopback`, run: inPod(a, hostPort(lo, 9000), PROXY), dst: hostPort(lo, 9000), server: servers.a!, srcIp: lo, family: v },
    { name: `IPv${v}: A's proxy uid -> the node (not a pod)`, run: inPod(a, hostPort(gw, 9100), PROXY), dst: hostPort(gw, 9100), server: nodeServer, srcIp: ip(a), family: v },
    { name: `IPv${v}: A's proxy uid -> unregistered pod C`, run: inPod(a, hostPort(ip(c), 8080), PROXY), dst: hostPort(ip(c), 8080), server: servers.c!, srcIp: ip(a), family: v },
  );
}

for (const cs of cases) {
  t.test(`never touched: ${cs.name}`, async (t) => {
    const before = await counters(node);
    const marks = proxies.map((p) => p.lines().length);
    const r = await cs.run();
    t.equal(r.exitCode, 0, describe(r));
    const s = summary(r);
    t.equal(s['peer'], cs.dst, 'connected to exactly what it asked for');
    const local = String(s['local']);
    t.equal(local.replace(/^\[?(.*?)\]?:\d+$/, '$1'), cs.srcIp, 'source not rebound');
    const acc = await cs.server.waitForJson((e) => e['event'] === 'accept' && e['peer'] === local, { timeoutMs: 3000 });
    t.equal(acc['local'], cs.dst, 'the server got it directly');
    const d = delta(before, await counters(node));
    t.equal(d[`connect${cs.family}_pass`], 1, `connect${cs.family}_pass +1 and nothing else: ${JSON.stringify(d)}`);
    t.same(d, { [`connect${cs.family}_pass`]: 1 }, 'no other counter moved');
    proxies.forEach((p, i) => {
      const accepted = p.lines().slice(marks[i]).filter((l) => l.includes('"event":"accept"'));
      t.same(accepted, [], `nothing at proxy ${['A', 'B', 'C'][i]}`);
    });
  });
}

t.test('never touched: UDP of a registered app (connect on a datagram socket)', async (t) => {
  const before = await counters(node);
  // python3 is on the CI machine image (Debian); a connected UDP socket goes through connect4/6.
  const r = await a.run('python3', ['-c', `import socket
for fam, dst in ((socket.AF_INET, ('${b.ipv4}', 8080)), (socket.AF_INET6, ('${b.ipv6}', 8080))):
    s = socket.socket(fam, socket.SOCK_DGRAM); s.connect(dst); print(s.getpeername()[0], s.getpeername()[1]); s.close()`], APP);
  t.equal(r.exitCode, 0, describe(r));
  t.same(r.stdout.trim().split('\n'), [`${b.ipv4} 8080`, `${b.ipv6} 8080`], 'UDP peers unchanged');
  const d = delta(before, await counters(node));
  t.same(d, { connect4_pass: 1, connect6_pass: 1 }, 'counted as passed, nothing else');
});

for (const v of ['4', '6'] as const) {
  t.test(`IPv${v}: A's proxy uid -> its own pod IP is not left alone: its own inbound listener, original destination kept`, async (t) => {
    // ISTIO_OUTPUT: -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT
    const own = hostPort(v === '4' ? a.ipv4 : a.ipv6, 9000);
    const before = await counters(node);
    const from = proxyA.lines().length;
    const r = await inPod(a, own, PROXY)();
    t.equal(r.exitCode, 0, describe(r));
    const s = summary(r);
    t.equal(s['peer'], v === '4' ? '127.0.0.1:15006' : '[::1]:15006', 'connected to the inbound listener on loopback, as REDIRECT in nat OUTPUT does');
    const acc = await proxyA.waitForJson((e) => e['event'] === 'accept' && e['peer'] === s['local'], { timeoutMs: 3000, from });
    t.equal(acc['listener'], 15006);
    t.equal(acc['orig_dst'], own, 'SO_ORIGINAL_DST: the pod IP and port asked for');
    const close = await proxyA.waitForJson((e) => e['event'] === 'close' && e['peer'] === s['local'], { timeoutMs: 5000, from });
    t.equal(close['error'], null, 'the proxy reached the app from the passthrough address (not steered again)');
    const d = delta(before, await counters(node));
    t.equal(d[`connect${v}_redirect_in`], 1, `redirected once: ${JSON.stringify(d)}`);
    t.equal(d[`connect${v}_pass`], 1, 'the passthrough connection passed');
    t.equal(d.getsockopt_answered, 1, 'answered by meshlane');
    t.notOk(Object.keys(d).some((k) => k.startsWith('err_')), 'no error counter moved');
  });
}
