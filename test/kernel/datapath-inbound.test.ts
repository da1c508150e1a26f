// Same-node inbound capture on the real kernel: pods A and B are both
// registered and both run the test proxy. A's proxy (uid 1337) connecting to
// B lands on B's proxy at the inbound listener 15006, which learns the
// original destination (B and the port) and reaches the server from the
// inbound passthrough source (127.0.0.6 / ::6). IPv4 and IPv6.
import t from 'tap';
import { requireRoot } from '../helpers/root.js';
import { APP, PROXY, counters, datapathNode, delta, describe, hostPort, install, register, startInboundProxy, startProxy, startServer, summary, tupleRecords, until } from '../helpers/datapath.js';

requireRoot('the datapath inbound test');
const { node, loc, mlpeer, mlproxy } = await datapathNode(t, 'mlkin', 111);
const a = await node.addPod({ name: 'a' });
const b = await node.addPod({ name: 'b' });
await install(loc);
await register(node, a);
await register(node, b);
const proxyA = await startProxy(a, mlproxy);
const proxyB = await startInboundProxy(b, mlproxy);
const server = await startServer(b, mlpeer, 8080);

const families = [
  { name: 'IPv4', aIp: a.ipv4, bIp: b.ipv4, passthrough: /^127\.0\.0\.6:\d+$/, v: '4' },
  { name: 'IPv6', aIp: a.ipv6, bIp: b.ipv6, passthrough: /^\[::6\]:\d+$/, v: '6' },
] as const;

for (const f of families) {
  const dst = hostPort(f.bIp, 8080);

  t.test(`inbound ${f.name}: A's proxy -> B lands on B's proxy at 15006, which reaches the server`, async (t) => {
    const before = await counters(node);
    // The proxy itself (uid 1337 in A's istio-proxy container) calling B.
    const r = await a.run(mlpeer, ['client', '--connect', dst, '--bytes', '50000', '--half-close', '--timeout-ms', '10000'], PROXY);
    t.equal(r.exitCode, 0, describe(r));
    const s = summary(r);
    t.equal(s['peer'], hostPort(f.bIp, 15006), 'the proxy socket was connected to B\'s inbound listener');
    t.match(String(s['local']), new RegExp(`^${hostPort(f.aIp, 0).slice(0, -1).replace(/[[\].]/g, '\\$&')}\\d+$`), 'source: pod A\'s IP (not rebound)');
    const acc = await proxyB.waitForJson((e) => e['event'] === 'accept' && e['peer'] === s['local'], { timeoutMs: 3000 });
    t.equal(acc['listener'], 15006);
    t.equal(acc['local'], hostPort(f.bIp, 15006));
    t.equal(acc['orig_dst'], dst, 'original destination recoverable at B\'s proxy');
    const close = await proxyB.waitForJson((e) => e['event'] === 'close' && e['peer'] === s['local'], { timeoutMs: 5000 });
    t.equal(close['error'], null);
    t.equal(close['bytes_up'], 50000);
    t.equal(close['bytes_down'], 50000);
    t.match(String(close['upstream_local']), f.passthrough, 'B\'s proxy reaches the app from the passthrough address');
    const srv = await server.waitForJson((e) => e['event'] === 'accept' && e['peer'] === close['upstream_local'], { timeoutMs: 3000 });
    t.equal(srv['local'], dst, 'the server is reached on its own address and port');
    const d = delta(before, await counters(node));
    t.equal(d[`connect${f.v}_redirect_in`], 1, `connect${f.v}_redirect_in +1: ${JSON.stringify(d)}`);
    t.equal(d[`connect${f.v}_pass`], 1, 'B\'s passthrough connection (from the passthrough source, to its own pod) passed');
    t.notOk(d[`connect${f.v}_redirect_out`], 'no outbound redirect');
    t.equal(d.getsockopt_answered, 1);
    for (const k of Object.keys(d)) if (k.startsWith('err_')) t.fail(`error counter ${k} moved: ${JSON.stringify(d)}`);
    t.equal(proxyA.events().filter((e) => e['event'] === 'accept' && e['peer'] === s['local']).length, 0, 'nothing at A\'s own proxy');
  });

  t.test(`inbound ${f.name}: full path app A -> proxy A (15001) -> proxy B (15006) -> server B`, async (t) => {
    const before = await counters(node);
    const r = await a.run(mlpeer, ['client', '--connect', dst, '--bytes', '200000', '--half-close', '--timeout-ms', '10000'], APP);
    t.equal(r.exitCode, 0, describe(r));
    const s = summary(r);
    t.equal(s['peer'], f.v === '4' ? '127.0.0.1:15001' : `[${a.ipv6}]:15001`);
    const outClose = await proxyA.waitForJson((e) => e['event'] === 'close' && e['peer'] === s['local'], { timeoutMs: 5000 });
    t.equal(outClose['listener'], 15001);
    t.equal(outClose['orig_dst'], dst, 'A\'s proxy: original destination B');
    t.equal(outClose['error'], null);
    const up = String(outClose['upstream_local']);
    t.ok(up.startsWith(hostPort(f.aIp, 0).slice(0, -1)), `A's proxy connects from pod A's IP (${up})`);
    const inClose = await proxyB.waitForJson((e) => e['event'] === 'close' && e['peer'] === up, { timeoutMs: 5000 });
    t.equal(inClose['listener'], 15006, 'A\'s proxy\'s upstream landed on B\'s inbound listener');
    t.equal(inClose['orig_dst'], dst, 'B\'s proxy: original destination B');
    t.equal(inClose['error'], null);
    t.equal(inClose['bytes_up'], 200000);
    t.equal(inClose['bytes_down'], 200000);
    await server.waitForJson((e) => e['event'] === 'close' && e['peer'] === inClose['upstream_local'] && e['bytes_in'] === 200000, { timeoutMs: 3000 });
    const d = delta(before, await counters(node));
    t.equal(d[`connect${f.v}_redirect_out`], 1, JSON.stringify(d));
    t.equal(d[`connect${f.v}_redirect_in`], 1);
    t.equal(d.getsockopt_answered, 2, 'both proxies answered');
    t.equal(d.sockops_odst_saved, 2);
    t.equal(await until(() => tupleRecords(node), (n) => n === 0, 3000), 0, 'no 4-tuple record left');
  });
}

t.test('inbound: 100 concurrent connections through both proxies, v4 and v6', async (t) => {
  for (const f of families) {
    const r = await a.run(mlpeer, ['client', '--connect', hostPort(f.bIp, 8080), '--bytes', '10000', '--concurrency', '100', '--timeout-ms', '20000'], APP);
    const s = summary(r);
    t.equal(r.exitCode, 0, describe(r));
    t.equal(s['failed'], 0);
    t.equal(s['received'], 1_000_000);
  }
  t.equal(await until(() => tupleRecords(node), (n) => n === 0, 3000), 0, 'no 4-tuple record left');
});

t.test('inbound: an AF_INET6 proxy socket to B\'s IPv4 (v4-mapped) lands on B\'s 15006 and is answered', async (t) => {
  const dst = `[::ffff:${b.ipv4}]:8080`;
  const r = await a.run(mlpeer, ['client', '--connect', dst, '--bytes', '3000', '--half-close', '--timeout-ms', '10000'], PROXY);
  t.equal(r.exitCode, 0, describe(r));
  const s = summary(r);
  t.equal(s['peer'], `[::ffff:${b.ipv4}]:15006`);
  const peerAtB = String(s['local']).replace(/^\[::ffff:([0-9.]+)\]/, '$1');
  const acc = await proxyB.waitForJson((e) => e['event'] === 'accept' && e['peer'] === peerAtB, { timeoutMs: 3000 });
  t.equal(acc['orig_dst'], hostPort(b.ipv4, 8080), 'B\'s AF_INET listener answers SO_ORIGINAL_DST with the IPv4 destination');
});
