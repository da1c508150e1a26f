// The test programs in testing/tools on the real kernel, inside a sandbox node:
// mlpeer (server, client read modes, getsockopt probes) and mlproxy (accept
// events without any interception, then the full path with Istio's iptables
// REDIRECT as the baseline that gives SO_ORIGINAL_DST).
import { existsSync, statSync, utimesSync } from 'node:fs';
import t from 'tap';
import { buildTool, createNode, type JsonObject, type Pod, type SandboxNode } from '../../testing/sandbox/node.js';
import { requireRoot } from '../helpers/root.js';

requireRoot('the sandbox tools test');
const PREFIX = 'mlsbt';
const ENOENT = 2;
const ENOPROTOOPT = 92;
// SO_ORIGINAL_DST without a conntrack entry: ENOENT when conntrack is in the kernel, else no such option.
const NO_ORIG_DST = existsSync('/sys/module/nf_conntrack') ? ENOENT : ENOPROTOOPT;

const mlpeer = await buildTool('mlpeer');
const mlproxy = await buildTool('mlproxy');

let node: SandboxNode | undefined;
t.teardown(async () => {
  await node?.destroy();
});
node = await createNode({ prefix: PREFIX, ipv4Subnet: '10.213.101.0/24', ipv6Subnet: 'fd00:213:101::/64' });
const n = node;
const a: Pod = await n.addPod({ name: 'a' });
const b: Pod = await n.addPod({ name: 'b' });

function summary(stdout: string): JsonObject {
  return JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as JsonObject;
}

t.test('buildTool compiles on demand and only when stale', async (t) => {
  const before = statSync(mlpeer).mtimeMs;
  t.equal(await buildTool('mlpeer'), mlpeer);
  t.equal(statSync(mlpeer).mtimeMs, before, 'fresh binary kept');
  utimesSync(mlpeer, new Date(0), new Date(0));
  await buildTool('mlpeer');
  t.ok(statSync(mlpeer).mtimeMs > 0, 'a binary older than its source is rebuilt');
  await t.rejects(buildTool('nosuchtool'), /no such test program/);
  await t.rejects(buildTool('../etc'), /bad tool name/);
});

t.test('mlpeer: echo, sink and source servers; plain, FIONREAD and splice clients', async (t) => {
  const echo = await b.spawn(mlpeer, ['server', '--port', '7000']);
  const sink = await b.spawn(mlpeer, ['server', '--port', '7001', '--mode', 'sink']);
  const source = await b.spawn(mlpeer, ['server', '--port', '7002', '--mode', 'source', '--bytes', '1000000']);
  t.teardown(() => Promise.all([echo.kill(), sink.kill(), source.kill()]).then(() => undefined));
  for (const s of [echo, sink, source]) await s.waitForJson((e) => e['event'] === 'listening');

  for (const read of ['plain', 'fionread', 'splice']) {
    for (const [bytes, half] of [[1, false], [4 * 1024 * 1024, true]] as const) {
      for (const dst of [`${b.ipv4}:7000`, `[${b.ipv6}]:7000`]) {
        const args = ['client', '--connect', dst, '--bytes', String(bytes), '--read', read, '--timeout-ms', '20000'];
        if (half) args.push('--half-close');
        const r = await a.run(mlpeer, args);
        const s = summary(r.stdout);
        t.equal(r.exitCode, 0, `${read} ${bytes} B${half ? ' half-close' : ''} to ${dst}: ${r.stdout}${r.stderr}`);
        t.equal(s['received'], bytes);
      }
    }
  }
  const send = await a.run(mlpeer, ['client', '--connect', `${b.ipv4}:7001`, '--mode', 'send', '--bytes', '300000']);
  t.equal(send.exitCode, 0, send.stdout);
  const sunk = await sink.waitForJson((e) => e['event'] === 'close');
  t.equal(sunk['bytes_in'], 300000, 'the sink counted what was sent');
  for (const read of ['plain', 'fionread', 'splice']) {
    const recv = await a.run(mlpeer, ['client', '--connect', `[${b.ipv6}]:7002`, '--mode', 'recv', '--bytes', '1000000', '--read', read]);
    t.equal(recv.exitCode, 0, `recv ${read}: ${recv.stdout}`);
  }
  const many = await a.run(mlpeer, ['client', '--connect', `${b.ipv4}:7000`, '--bytes', '10000', '--concurrency', '200']);
  const m = summary(many.stdout);
  t.equal(many.exitCode, 0, many.stdout);
  t.equal(m['connections'], 200);
  t.equal(m['failed'], 0);
  t.equal(m['received'], 2_000_000);
});

t.test('mlpeer client failures are reported, bounded, non-zero', async (t) => {
  const sink = await b.spawn(mlpeer, ['server', '--port', '7003', '--mode', 'sink']);
  t.teardown(() => sink.kill());
  await sink.waitForJson((e) => e['event'] === 'listening');
  // An echo client against a sink never gets its bytes back: it must time out.
  const started = Date.now();
  const r = await a.run(mlpeer, ['client', '--connect', `${b.ipv4}:7003`, '--bytes', '100', '--read', 'fionread', '--timeout-ms', '500']);
  t.equal(r.exitCode, 1);
  const s = summary(r.stdout);
  t.equal(s['ok'], false);
  t.match(String((s['errors'] as string[])[0]), /^timeout/);
  t.ok(Date.now() - started < 5000, 'within its timeout');
  const refused = await a.run(mlpeer, ['client', '--connect', `${b.ipv4}:7999`, '--timeout-ms', '2000']);
  t.equal(refused.exitCode, 1);
  t.match(refused.stdout, /Connection refused/);
  const bad = await a.run(mlpeer, ['client', '--connect', 'nonsense']);
  t.equal(bad.exitCode, 2);
});

t.test('mlpeer getsockopt reports what the kernel answers', async (t) => {
  const srv = await b.spawn(mlpeer, ['server', '--port', '7004']);
  t.teardown(() => srv.kill());
  await srv.waitForJson((e) => e['event'] === 'listening');
  for (const args of [[], ['--connect', `${b.ipv4}:7004`], ['--connect', `[${b.ipv6}]:7004`]]) {
    const r = await a.run(mlpeer, ['getsockopt', ...args]);
    t.equal(r.exitCode, 0, r.stderr);
    const out = summary(r.stdout);
    const probes = new Map((out['probes'] as JsonObject[]).map((p) => [String(p['name']), p]));
    const tcpInfo = probes.get('TCP_INFO');
    t.equal(tcpInfo?.['ret'], 0);
    t.ok(Number(tcpInfo?.['optlen']) >= 104 && Number(tcpInfo?.['optlen']) < 16384, 'TCP_INFO: the kernel sizes the reply');
    const filter = probes.get('SO_GET_FILTER');
    t.equal(filter?.['ret'], 0);
    t.equal(filter?.['optlen'], 1024, 'SO_GET_FILTER: 1024 instructions = 8 KiB, more than a page');
    const orig = probes.get(out['family'] === 6 ? 'IP6T_SO_ORIGINAL_DST' : 'SO_ORIGINAL_DST');
    t.equal(orig?.['ret'], -1);
    t.equal(orig?.['errno'], NO_ORIG_DST, 'no original destination without interception');
    const info = probes.get('IPT_SO_GET_INFO');
    t.ok(info, 'iptables info probe ran');
    if (info?.['ret'] === 0) {
      t.equal(info['optlen'], 84, 'struct ipt_getinfo');
      const entries = probes.get('IPT_SO_GET_ENTRIES');
      t.equal(entries?.['ret'], 0);
      t.equal(entries?.['optlen'], entries?.['buflen'], 'IPT_SO_GET_ENTRIES: exactly the size the info announced');
    } else {
      t.ok([ENOPROTOOPT, ENOENT].includes(Number(info?.['errno'])), `no legacy iptables: errno ${String(info?.['errno'])}`);
    }
  }
});

t.test('mlproxy without interception: accepts on every address, no original destination', async (t) => {
  const proxy = await a.spawn(mlproxy, [], { uid: 1337, gid: 1337, container: 'istio-proxy' });
  t.teardown(() => proxy.kill());
  const listening = await proxy.waitForJson((e) => e['event'] === 'listening');
  t.same(listening['ports'], [15001, 15006]);
  for (const dst of ['127.0.0.1:15001', '[::1]:15001', `${a.ipv4}:15006`, `[${a.ipv6}]:15006`]) {
    const r = await a.run(mlpeer, ['client', '--connect', dst, '--bytes', '10', '--timeout-ms', '3000']);
    t.equal(r.exitCode, 1, 'the proxy closes a connection it cannot route');
    t.match(r.stdout, /early EOF|reset/);
    const acc = await proxy.waitForJson((e) => e['event'] === 'accept' && e['local'] === dst);
    t.equal(acc['orig_dst'], null, `${dst}: orig_dst null`);
    t.equal(acc['errno'], NO_ORIG_DST, `${dst}: errno ${String(acc['errno'])} from getsockopt`);
    const close = await proxy.waitForJson((e) => e['event'] === 'close' && e['local'] === dst);
    t.match(String(close['error']), /no original destination/);
  }
});

t.test('mlproxy with the iptables baseline: outbound (v4, v6) and inbound from 127.0.0.6', async (t) => {
  const c = await n.addPod({ name: 'ipt-client' });
  const d = await n.addPod({ name: 'ipt-server' });
  const ipt = async (pod: Pod, cmd: string, args: string[]): Promise<void> => {
    const r = await pod.run(cmd, ['-w', '5', '-t', 'nat', ...args]);
    t.equal(r.exitCode, 0, `${cmd} ${args.join(' ')} in ${pod.name}: ${r.stderr}`);
  };
  // Outbound in c, as istio-iptables does: the proxy's own traffic (uid 1337) returns, the app's goes to 15001.
  for (const [cmd, dst] of [['iptables', d.ipv4], ['ip6tables', d.ipv6]] as const) {
    await ipt(c, cmd, ['-A', 'OUTPUT', '-p', 'tcp', '-m', 'owner', '--uid-owner', '1337', '-j', 'RETURN']);
    await ipt(c, cmd, ['-A', 'OUTPUT', '-p', 'tcp', '-d', dst, '--dport', '8080', '-j', 'REDIRECT', '--to-ports', '15001']);
    // Inbound in d: everything to 8080 goes to 15006.
    await ipt(d, cmd, ['-A', 'PREROUTING', '-p', 'tcp', '--dport', '8080', '-j', 'REDIRECT', '--to-ports', '15006']);
  }
  const server = await d.spawn(mlpeer, ['server', '--port', '8080'], { uid: 1000, gid: 1000 });
  const proxyC = await c.spawn(mlproxy, [], { uid: 1337, gid: 1337, container: 'istio-proxy' });
  const proxyD = await d.spawn(mlproxy, ['--inbound-src', '127.0.0.6'], { uid: 1337, gid: 1337, container: 'istio-proxy' });
  t.teardown(() => Promise.all([server.kill(), proxyC.kill(), proxyD.kill()]).then(() => undefined));
  for (const p of [server, proxyC, proxyD]) await p.waitForJson((e) => e['event'] === 'listening');

  const cases = [
    { dst: `${d.ipv4}:8080`, local: '127.0.0.1:15001', inboundPeer: /^127\.0\.0\.6:/ },
    { dst: `[${d.ipv6}]:8080`, local: '[::1]:15001', inboundPeer: new RegExp(`^\\[${d.ipv6}\\]:`) },
  ];
  for (const cs of cases) {
    const r = await c.run(mlpeer, ['client', '--connect', cs.dst, '--bytes', '1000000', '--half-close', '--timeout-ms', '20000']);
    t.equal(r.exitCode, 0, `${cs.dst}: ${r.stdout}`);
    const out = await proxyC.waitForJson((e) => e['event'] === 'close' && e['orig_dst'] === cs.dst);
    t.equal(out['listener'], 15001);
    t.equal(out['local'], cs.local, 'redirected to the outbound listener');
    t.equal(out['bytes_up'], 1000000);
    t.equal(out['bytes_down'], 1000000);
    t.equal(out['error'], null);
    const inb = await proxyD.waitForJson((e) => e['event'] === 'close' && e['orig_dst'] === cs.dst);
    t.equal(inb['listener'], 15006);
    t.match(String(inb['upstream_local']), cs.inboundPeer, 'inbound passthrough source');
    const acc = await server.waitForJson((e) => e['event'] === 'accept' && cs.inboundPeer.test(String(e['peer'])));
    t.equal(acc['local'], cs.dst, 'the app is reached on its own address and port');
  }
  // An original destination that is the proxy itself is refused, not looped.
  await ipt(c, 'iptables', ['-A', 'OUTPUT', '-p', 'tcp', '-d', '127.0.0.2', '--dport', '15006', '-j', 'REDIRECT', '--to-ports', '15001']);
  const loop = await c.run(mlpeer, ['client', '--connect', '127.0.0.2:15006', '--bytes', '10', '--timeout-ms', '3000']);
  t.equal(loop.exitCode, 1);
  const refused = await proxyC.waitForJson((e) => e['event'] === 'close' && e['orig_dst'] === '127.0.0.2:15006');
  t.match(String(refused['error']), /original destination is this proxy/);
  t.equal(proxyC.events().filter((e) => e['event'] === 'accept' && e['orig_dst'] === '127.0.0.2:15006').length, 1, 'one accept, no loop');

  const many = await c.run(mlpeer, ['client', '--connect', `${d.ipv4}:8080`, '--bytes', '20000', '--concurrency', '200', '--timeout-ms', '30000']);
  t.equal(many.exitCode, 0, `200 concurrent connections through two proxies: ${many.stdout}`);
});
