// DNS capture on the real kernel: UDP to port 53 from an app of a
// pod with DNS capture lands on the proxy's DNS listener (a test DNS server as
// uid 1337 on 127.0.0.1:15053 and [::1]:15053 in the pod's istio-proxy
// container), and the resolver sees the reply coming from the server it
// asked. With sendto() (sendmsg4/6 + recvmsg4/6) and with connect() + send()
// (glibc's way: connect4/6 + recvmsg4/6), IPv4, IPv6 and IPv4 on an AF_INET6
// socket. A pod without DNS capture, the proxy's own DNS and a process outside
// any pod are untouched: they reach the real server (a test DNS server on
// another pod's IP:53). As in Istio's dns golden, a resolver on loopback
// (127.0.0.53-style) is captured too, and TCP to port 53 goes to the DNS
// listener's port (not to 15001).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { buildTool, type Pod, type RunResult, type SpawnedProcess } from '../../testing/sandbox/node.js';
import { DEFAULT_INTERCEPTION, encodePodConfig } from '../../src/bpf/pod-config.js';
import { POD_F } from '../../src/bpf/layout.js';
import { registerPod, writeSettings } from '../../src/bpf/registry.js';
import { requireRoot } from '../helpers/root.js';
import { APP, PROXY, counters, datapathNode, delta, describe, hostPort, install, until } from '../helpers/datapath.js';

requireRoot('the datapath DNS capture test');
const { node, loc } = await datapathNode(t, 'mlkdn', 130);
const mldns = await buildTool('mldns');

// Answers tell who answered: the proxy's DNS listener or a real server.
const PROXY_A = '192.0.2.150';
const PROXY_AAAA = '2001:db8::150';
const REAL_A = '192.0.2.53';
const REAL_AAAA = '2001:db8::53';

const a = await node.addPod({ name: 'a' }); // meshed, DNS capture
const b = await node.addPod({ name: 'b' }); // meshed, no DNS capture
const r = await node.addPod({ name: 'r' }); // not meshed: the "real" DNS server
await install(loc);
const config = encodePodConfig(DEFAULT_INTERCEPTION);
await registerPod(node.pinDir, { cgroupId: a.cgroupId, ipv4: a.ipv4, ipv6: a.ipv6, extraFlags: POD_F.DNS_CAPTURE, config });
await registerPod(node.pinDir, { cgroupId: b.cgroupId, ipv4: b.ipv4, ipv6: b.ipv6, config });

async function dnsServer(pod: Pod, binds: string[], answers: [string, string], who: { uid: number; gid: number; container?: string }): Promise<SpawnedProcess> {
  const args = ['server', ...binds.flatMap((x) => ['--bind', x]), '--a', answers[0], '--aaaa', answers[1], '--lifetime-ms', '120000'];
  const s = await pod.spawn(mldns, args, who);
  await s.waitForJson((e) => e['event'] === 'listening', { timeoutMs: 5000 });
  return s;
}

// The proxy's DNS listener in A (and one in B, which must stay unused), the real server in R.
const listenerA = await dnsServer(a, ['127.0.0.1:15053', '[::1]:15053'], [PROXY_A, PROXY_AAAA], PROXY);
const listenerB = await dnsServer(b, ['127.0.0.1:15053', '[::1]:15053'], [PROXY_A, PROXY_AAAA], PROXY);
const real = await dnsServer(r, [hostPort(r.ipv4, 53), hostPort(r.ipv6, 53)], [REAL_A, REAL_AAAA], { uid: 0, gid: 0 });
// A stub resolver on A's loopback (like 127.0.0.53): Istio's rules capture what is sent to it.
const stubA = await dnsServer(a, ['127.0.0.1:53', '[::1]:53'], [REAL_A, REAL_AAAA], { uid: 0, gid: 0 });

interface QueryOut {
  ok: boolean;
  from: string | null;
  peer: string | null;
  local: string;
  answer: string | null;
  error: string | null;
}

function parse(res: RunResult): QueryOut {
  const last = res.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(last) as QueryOut;
  } catch {
    return { ok: false, from: null, peer: null, local: '?', answer: null, error: `unparsed: ${res.stdout} ${res.stderr}` };
  }
}

async function query(pod: Pod, server: string, opts: { mode: 'sendto' | 'connect'; type: 'A' | 'AAAA'; family?: '6'; who: { uid: number; gid: number; container?: string }; timeoutMs?: number }): Promise<{ res: RunResult; out: QueryOut }> {
  const args = ['query', '--server', server, '--mode', opts.mode, '--type', opts.type, '--timeout-ms', String(opts.timeoutMs ?? 3000), ...(opts.family ? ['--family', opts.family] : [])];
  const res = await pod.run(mldns, args, { ...opts.who, timeoutMs: 10000 });
  return { res, out: parse(res) };
}

/** The server's query events since `mark` (index into its events). */
function queriesSince(s: SpawnedProcess, mark: number): Record<string, unknown>[] {
  return s.events().slice(mark).filter((e) => e['event'] === 'query');
}

const servers = { listenerA, listenerB, real, stubA };
function marks(): Record<keyof typeof servers, number> {
  return { listenerA: listenerA.events().length, listenerB: listenerB.events().length, real: real.events().length, stubA: stubA.events().length };
}
type Got = Record<keyof typeof servers, Record<string, unknown>[]>;
function gotNow(m: Record<keyof typeof servers, number>): Got {
  return {
    listenerA: queriesSince(listenerA, m.listenerA),
    listenerB: queriesSince(listenerB, m.listenerB),
    real: queriesSince(real, m.real),
    stubA: queriesSince(stubA, m.stubA),
  };
}
/**
 * Queries each server got since the marks. A server prints its query event
 * before it replies, so once the client has its answer the line is written;
 * wait (bounded) until the test has read it from the pipe.
 */
async function got(m: Record<keyof typeof servers, number>, expect: Partial<Record<keyof typeof servers, number>>): Promise<Got> {
  return until(
    async () => gotNow(m),
    (g) => Object.entries(expect).every(([k, n]) => g[k as keyof typeof servers].length >= (n ?? 0)),
    2000,
    20,
  );
}

const families = [
  { name: 'IPv4', server: hostPort(r.ipv4, 53), shown: hostPort(r.ipv4, 53), type: 'A', proxyAnswer: PROXY_A, realAnswer: REAL_A, listener: '127.0.0.1:15053', family: undefined, cnt: '4' },
  { name: 'IPv6', server: hostPort(r.ipv6, 53), shown: hostPort(r.ipv6, 53), type: 'AAAA', proxyAnswer: PROXY_AAAA, realAnswer: REAL_AAAA, listener: '[::1]:15053', family: undefined, cnt: '6' },
  // An AF_INET6 socket to a v4-mapped server: the kernel hands sendmsg to the
  // IPv4 path (sendmsg4), connect to connect6; the listener is reached over IPv4.
  { name: 'IPv4 on an AF_INET6 socket', server: hostPort(r.ipv4, 53), shown: `[::ffff:${r.ipv4}]:53`, type: 'A', proxyAnswer: PROXY_A, realAnswer: REAL_A, listener: '127.0.0.1:15053', family: '6', cnt: '6' },
] as const;

for (const f of families) {
  for (const mode of ['sendto', 'connect'] as const) {
    t.test(`DNS capture ${f.name}, ${mode}: the app's query reaches the proxy's listener, the reply comes from the server asked`, async (t) => {
      const m = marks();
      const before = await counters(node);
      const { res, out } = await query(a, f.server, { mode, type: f.type, family: f.family, who: APP });
      t.equal(res.exitCode, 0, `query: ${describe(res)}`);
      t.equal(out.answer, f.proxyAnswer, 'answered by the proxy\'s DNS listener');
      t.equal(out.from, f.shown, 'the reply appears to come from the server the resolver asked');
      if (mode === 'connect') t.equal(out.peer, f.family === '6' ? '[::ffff:127.0.0.1]:15053' : f.listener, 'the socket is connected to the listener');
      const g = await got(m, { listenerA: 1 });
      t.equal(g.listenerA.length, 1, 'one query at A\'s listener');
      t.equal(g.listenerA[0]?.['local'], f.listener, `reached at ${f.listener}`);
      t.equal(g.real.length, 0, 'nothing at the real server');
      t.equal(g.listenerB.length + g.stubA.length, 0, 'nothing anywhere else');
      const d = delta(before, await counters(node));
      t.equal(d.dns_redirected, 1, `dns_redirected +1 (${JSON.stringify(d)})`);
      t.equal(d.dns_reply_rewritten, 1, 'dns_reply_rewritten +1');
      t.notOk(d.err_dns_record, 'no record error');
      if (mode === 'connect') t.notOk(d[`connect${f.cnt}_pass` as const], 'the UDP connect counted as DNS, not as a connect pass');
      for (const k of Object.keys(d)) if (k.startsWith('err_')) t.fail(`error counter ${k} moved: ${JSON.stringify(d)}`);
    });
  }
}

for (const f of families) {
  for (const mode of ['sendto', 'connect'] as const) {
    t.test(`DNS untouched ${f.name}, ${mode}: pod without capture, the proxy's own DNS, a process outside any pod`, async (t) => {
      const who = [
        { name: 'app of pod B (no DNS capture)', pod: b, as: APP, src: f.cnt === '6' && f.family === undefined ? b.ipv6 : b.ipv4 },
        { name: 'proxy of pod A (uid 1337)', pod: a, as: PROXY, src: f.cnt === '6' && f.family === undefined ? a.ipv6 : a.ipv4 },
      ];
      for (const w of who) {
        const m = marks();
        const before = await counters(node);
        const { res, out } = await query(w.pod, f.server, { mode, type: f.type, family: f.family, who: w.as });
        t.equal(res.exitCode, 0, `${w.name}: ${describe(res)}`);
        t.equal(out.answer, f.realAnswer, `${w.name}: answered by the real server`);
        t.equal(out.from, f.shown, `${w.name}: reply from the real server`);
        const g = await got(m, { real: 1 });
        t.equal(g.real.length, 1, `${w.name}: the real server got the query`);
        const client = String(g.real[0]?.['client'] ?? '');
        t.equal(client.replace(/^\[?(.*?)\]?:\d+$/, '$1'), w.src, `${w.name}: the real server sees the pod's IP`);
        t.equal(g.listenerA.length + g.listenerB.length, 0, `${w.name}: no DNS listener involved`);
        const d = delta(before, await counters(node));
        t.notOk(d.dns_redirected, `${w.name}: dns_redirected unchanged (${JSON.stringify(d)})`);
        t.notOk(d.dns_reply_rewritten, `${w.name}: no reply rewritten`);
        // dns_pass counts every UDP sendmsg left alone in the node cgroup: the
        // real server's reply (pod R is below the node root) is one of them.
        if (mode === 'sendto') t.equal(d.dns_pass, 2, `${w.name}: dns_pass +2 (the query and the real server's reply)`);
        else {
          t.equal(d[`connect${f.cnt}_pass` as const], 1, `${w.name}: the UDP connect passed as before`);
          // send() on a connected socket runs no sendmsg hook, except on an
          // AF_INET6 socket connected to a v4-mapped address: the kernel hands
          // it to udp_sendmsg with the peer as an explicit address (sendmsg4 runs).
          const expected = f.family === '6' ? 2 : 1;
          t.equal(d.dns_pass, expected, `${w.name}: dns_pass +${expected} (the real server's reply${f.family === '6' ? ' and the v4-mapped send()' : ''})`);
        }
      }
      // A process in the node netns, outside any pod's cgroup.
      const m = marks();
      const res = await node.run(mldns, ['query', '--server', f.family ? `[::ffff:${r.ipv4}]:53` : f.server, '--mode', mode, '--type', f.type, '--timeout-ms', '3000'], { ...APP, timeoutMs: 10000 });
      const out = parse(res);
      t.equal(out.answer, f.realAnswer, `outside any pod: answered by the real server (${describe(res)})`);
      t.equal((await got(m, { real: 1 })).real.length, 1, 'outside any pod: the real server got the query');
    });
  }
}

t.test('DNS to a resolver on loopback port 53 in a pod with capture goes to the DNS listener (Istio: ISTIO_OUTPUT_DNS precedes -d 127.0.0.1 -j RETURN)', async (t) => {
  for (const [server, type, answer] of [['127.0.0.1:53', 'A', PROXY_A], ['[::1]:53', 'AAAA', PROXY_AAAA]] as const) {
    for (const mode of ['sendto', 'connect'] as const) {
      const m = marks();
      const before = await counters(node);
      const { res, out } = await query(a, server, { mode, type, who: APP });
      t.equal(res.exitCode, 0, describe(res));
      t.equal(out.answer, answer, `${server} ${mode}: the DNS listener answered`);
      t.equal(out.from, server, 'the reply shows the resolver asked');
      const g = await got(m, { listenerA: 1 });
      t.equal(g.listenerA.length, 1, `${server} ${mode}: the listener got it`);
      t.equal(g.stubA.length, 0, 'not the stub');
      const d = delta(before, await counters(node));
      t.equal(d.dns_redirected, 1, JSON.stringify(d));
    }
  }
});

t.test('DNS capture: only port 53, and the listener port follows ml_settings.dns_port', async (t) => {
  // UDP to another port of the real server: untouched (no server there, so no answer).
  const before = await counters(node);
  const { out } = await query(a, hostPort(r.ipv4, 5353), { mode: 'sendto', type: 'A', who: APP, timeoutMs: 500 });
  t.equal(out.ok, false, 'nobody answers on 5353');
  let d = delta(before, await counters(node));
  t.notOk(d.dns_redirected, `port 5353 not captured (${JSON.stringify(d)})`);
  t.equal(d.dns_pass, 1);

  // A custom DNS port: the listener moves, the capture follows.
  await writeSettings(node.pinDir, { proxy_uid: 0, proxy_gid: 0, outbound_port: 0, inbound_port: 0, dns_port: 15054, flags: 0 });
  t.teardown(() => writeSettings(node.pinDir, { proxy_uid: 0, proxy_gid: 0, outbound_port: 0, inbound_port: 0, dns_port: 0, flags: 0 }));
  const custom = await dnsServer(a, ['127.0.0.1:15054', '[::1]:15054'], ['192.0.2.154', '2001:db8::154'], PROXY);
  t.teardown(() => custom.kill());
  const before2 = await counters(node);
  for (const [server, type, answer] of [[hostPort(r.ipv4, 53), 'A', '192.0.2.154'], [hostPort(r.ipv6, 53), 'AAAA', '2001:db8::154']] as const) {
    const { res, out: o } = await query(a, server, { mode: 'connect', type, who: APP });
    t.equal(o.answer, answer, `answered on 15054: ${describe(res)}`);
    t.equal(o.from, server, 'reply from the server asked');
  }
  d = delta(before2, await counters(node));
  t.equal(d.dns_redirected, 2);
  t.equal(d.dns_reply_rewritten, 2);
});

t.test('DNS capture sends TCP to port 53 to the DNS listener\'s port, as Istio\'s dns golden (-p tcp --dport 53 -j REDIRECT --to-ports 15053)', async (t) => {
  const mlpeer = await buildTool('mlpeer');
  // A TCP listener on 127.0.0.1:15053 as the proxy (mldns is UDP only): it echoes, and reads SO_ORIGINAL_DST.
  const tcp = await a.spawn(mlpeer, ['server', '--port', '15053', '--family', '4', '--bind4', '127.0.0.1', '--idle-timeout-ms', '20000', '--lifetime-ms', '120000'], PROXY);
  t.teardown(() => tcp.kill());
  await tcp.waitForJson((e) => e['event'] === 'listening');
  for (const [dst, app] of [[hostPort(r.ipv4, 53), APP], ['127.0.0.53:53', APP]] as const) {
    const before = await counters(node);
    const res = await a.run(mlpeer, ['client', '--connect', dst, '--bytes', '10', '--half-close', '--timeout-ms', '3000'], app);
    t.equal(res.exitCode, 0, describe(res));
    const d = delta(before, await counters(node));
    t.equal(d.dns_redirected, 1, `${dst}: TCP 53 redirected to the DNS listener (${JSON.stringify(d)})`);
    t.notOk(d.connect4_redirect_out, 'not to 15001');
  }
  // The proxy's own TCP 53 is its upstream: untouched (no server there: refused, not redirected).
  const before = await counters(node);
  await a.run(mlpeer, ['client', '--connect', hostPort(r.ipv4, 53), '--bytes', '10', '--timeout-ms', '2000'], PROXY);
  const d = delta(before, await counters(node));
  t.notOk(d.dns_redirected, `the proxy's TCP 53 is not captured: ${JSON.stringify(d)}`);
});

t.test('glibc\'s resolver (getent, connected UDP socket, A and AAAA in parallel) in a pod with capture gets the proxy\'s answers', async (t) => {
  // /etc/resolv.conf replaced in a private mount namespace of the one command.
  const dir = mkdtempSync(join(tmpdir(), 'mlkdns-resolv-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const [label, ns, pod, expect] of [
    ['IPv4 nameserver, pod with capture', r.ipv4, a, [PROXY_A, PROXY_AAAA]],
    ['IPv6 nameserver, pod with capture', r.ipv6, a, [PROXY_A, PROXY_AAAA]],
    ['IPv4 nameserver, pod without capture', r.ipv4, b, [REAL_A, REAL_AAAA]],
  ] as const) {
    const conf = join(dir, `resolv-${ns.replace(/[:.]/g, '_')}.conf`);
    writeFileSync(conf, `nameserver ${ns}\noptions timeout:2 attempts:1\n`);
    const m = marks();
    const before = await counters(node);
    // uid 0 (an application, not the proxy): unshare and mount need it.
    const res = await pod.run('unshare', ['-m', 'sh', '-c', `mount --bind "$0" /etc/resolv.conf && exec getent ahosts svc.test`, conf], { uid: 0, gid: 0, timeoutMs: 15000 });
    t.equal(res.exitCode, 0, `${label}: getent ${describe(res)}`);
    for (const ip of expect) t.match(res.stdout, new RegExp(`^${ip.replace(/\./g, '\\.')}\\s`, 'm'), `${label}: ${ip} resolved`);
    const g = await got(m, pod === a ? { listenerA: 2 } : { real: 2 });
    const d = delta(before, await counters(node));
    if (pod === a) {
      t.ok(g.listenerA.length >= 2, `${label}: the queries reached A's DNS listener (${g.listenerA.length})`);
      t.equal(g.real.length, 0, `${label}: nothing at the real server`);
      t.ok((d.dns_reply_rewritten ?? 0) >= 2, `${label}: replies shown as from ${ns} (${JSON.stringify(d)})`);
    } else {
      t.ok(g.real.length >= 2, `${label}: the queries reached the real server`);
      t.equal(g.listenerB.length, 0, `${label}: not B's listener`);
      t.notOk(d.dns_redirected, `${label}: nothing redirected`);
    }
  }
});
