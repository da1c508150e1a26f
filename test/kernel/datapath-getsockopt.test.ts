// cgroup/getsockopt on the real kernel: every getsockopt other than an
// answered SO_ORIGINAL_DST must return exactly what the kernel returns
// without the datapath: return value, errno, optlen and the bytes, for
// replies larger than the page the program sees (SO_GET_FILTER 8 KiB,
// iptables' IPT_SO_GET_INFO/ENTRIES of a 150-rule table, ~30 KB; TCP_INFO
// with a 64 KiB buffer). The same probes run before the datapath is attached,
// and after, in the registered pods' cgroups (app and proxy, root and
// non-root) and in an unregistered cgroup below the attached root.
//
// Unconnected probes run in pod G, whose netns sees no traffic at all, so
// even the packet counters inside IPT_SO_GET_ENTRIES stay the same and every
// byte can be compared. Connected probes run in pod A; there the iptables
// counters move with the test's own packets, so the IPT_SO_GET_ENTRIES
// checksum (only) is left out of the comparison (ret, errno, optlen kept).
import t from 'tap';
import type { JsonObject, Placement, Pod, RunResult } from '../../testing/sandbox/node.js';
import { requireRoot } from '../helpers/root.js';
import { APP, PROXY, counters, datapathNode, delta, describe, hostPort, install, register, startServer } from '../helpers/datapath.js';

requireRoot('the datapath getsockopt test');
const { node, loc, mlpeer } = await datapathNode(t, 'mlkgs', 114);
const a = await node.addPod({ name: 'a' });
const b = await node.addPod({ name: 'b' });
const g = await node.addPod({ name: 'g' });
await startServer(b, mlpeer, 8080);

// A legacy iptables filter table of 150 rules in G's netns: IPT_SO_GET_ENTRIES
// then returns about 30 KB (iptables itself reads ~15 KB on a busy node).
const rules = ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]'];
for (let i = 0; i < 150; i++) rules.push(`-A INPUT -p tcp -s 192.0.2.${i % 250} --dport ${20000 + i} -j ACCEPT`);
rules.push('COMMIT', '');
const restore = await g.run('iptables-legacy-restore', [], { input: rules.join('\n') });
if (restore.exitCode !== 0) throw new Error(`iptables-legacy-restore in pod g: ${describe(restore)}`);

const who = {
  'root in app': { uid: 0, gid: 0, container: 'app' },
  'uid 1000 in app': { ...APP, container: 'app' },
  'proxy uid 1337 in istio-proxy': PROXY,
} as const;

// The connected runs go to B, which this test excludes from A's outbound
// capture after the attach (excludeOutboundIPRanges "*"), so the socket is
// the same kind of connection with and without the datapath and only the
// getsockopt program can make a difference.
const runs: Array<{ name: string; args: string[]; pod: Pod }> = [
  { name: 'unconnected, 16 KiB buffer', args: [], pod: g },
  { name: 'unconnected, 4 KiB buffer', args: ['--buflen', '4096'], pod: g },
  { name: 'unconnected, 64 KiB buffer (IPT_SO_GET_ENTRIES ~30 KB)', args: ['--buflen', '65536'], pod: g },
  { name: 'connected IPv4', args: ['--connect', hostPort(b.ipv4, 8080), '--buflen', '65536'], pod: a },
  { name: 'connected IPv6', args: ['--connect', hostPort(b.ipv6, 8080), '--buflen', '65536'], pod: a },
];

/** The comparable part of a run's probes (see the header). */
function comparable(run: { pod: Pod }, ps: JsonObject[]): JsonObject[] {
  if (run.pod === g) return ps;
  return ps.map((p) => (p['name'] === 'IPT_SO_GET_ENTRIES' ? { ...p, sum: '(counters move)' } : p));
}

async function probes(run: () => Promise<RunResult>): Promise<JsonObject[]> {
  const r = await run();
  if (r.exitCode !== 0) throw new Error(`mlpeer getsockopt: ${describe(r)}`);
  const ev = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as JsonObject;
  return ev['probes'] as JsonObject[];
}

const baseline = new Map<string, JsonObject[]>();
for (const [w, opts] of Object.entries(who)) {
  for (const run of runs) baseline.set(`${w}/${run.name}`, comparable(run, await probes(() => run.pod.run(mlpeer, ['getsockopt', ...run.args], opts))));
}

t.test('the baseline covers large replies', async (t) => {
  const root = baseline.get('root in app/unconnected, 64 KiB buffer (IPT_SO_GET_ENTRIES ~30 KB)') ?? [];
  const entries = root.find((p) => p['name'] === 'IPT_SO_GET_ENTRIES');
  t.equal(entries?.['ret'], 0, 'IPT_SO_GET_ENTRIES works without the datapath');
  t.ok(Number(entries?.['optlen']) > 16384, `IPT_SO_GET_ENTRIES reply is ${String(entries?.['optlen'])} bytes (> 4 pages)`);
  const filter = root.find((p) => p['name'] === 'SO_GET_FILTER');
  t.equal(filter?.['optlen'], 1024, 'SO_GET_FILTER: 1024 instructions = 8 KiB');
  const tcpInfo = root.find((p) => p['name'] === 'TCP_INFO');
  t.ok(Number(tcpInfo?.['optlen']) > 0 && Number(tcpInfo?.['optlen']) < 65536, 'TCP_INFO sized by the kernel');
});

t.test('after the attach: byte-identical answers in every cgroup below the root', async (t) => {
  await install(loc);
  await register(node, a, { excludeOutboundCidrs: '*' });
  await register(node, g);
  const before = await counters(node);
  for (const [w, opts] of Object.entries(who)) {
    for (const run of runs) {
      const got = comparable(run, await probes(() => run.pod.run(mlpeer, ['getsockopt', ...run.args], opts)));
      t.same(got, baseline.get(`${w}/${run.name}`), `${w}, ${run.name}: same as without the datapath`);
    }
  }
  for (const run of runs) {
    const unregistered: Placement = { netnsPath: run.pod.netnsPath, cgroupDir: node.systemCgroup };
    const got = comparable(run, await probes(() => node.runIn(unregistered, mlpeer, ['getsockopt', ...run.args], { uid: 0, gid: 0 })));
    t.same(got, baseline.get(`root in app/${run.name}`), `unregistered cgroup below the root, ${run.name}: same`);
  }
  const d = delta(before, await counters(node));
  t.notOk(d.getsockopt_answered, `no SO_ORIGINAL_DST answered for sockets meshlane did not redirect: ${JSON.stringify(d)}`);
  t.notOk(d.err_buffer, 'no buffer errors');
  t.ok((d.getsockopt_miss ?? 0) > 0, 'the program did see the SO_ORIGINAL_DST probes (miss: kernel answer kept)');
  t.notOk(d.connect4_redirect_out || d.connect6_redirect_out, 'the connected probes were not redirected');
});

t.test('a redirected app socket: every probe but SO_RCVBUF identical, SO_ORIGINAL_DST of the client socket untouched', async (t) => {
  // Now capture A's outbound: the probe socket lands on a (proxy-less) 15001
  // listener run by the test as uid 1337. The connecting side asks
  // SO_ORIGINAL_DST of its own socket: no record for that view, kernel answer.
  await register(node, a, {});
  const listener = await a.spawn(mlpeer, ['server', '--port', '15001', '--idle-timeout-ms', '5000', '--lifetime-ms', '60000'], PROXY);
  t.teardown(() => listener.kill().then(() => undefined));
  await listener.waitForJson((e) => e['event'] === 'listening');
  const before = await counters(node);
  for (const run of runs.filter((r) => r.name.startsWith('connected'))) {
    const got = comparable(run, await probes(() => a.run(mlpeer, ['getsockopt', ...run.args], who['uid 1000 in app'])));
    const base = baseline.get(`uid 1000 in app/${run.name}`) ?? [];
    // SO_RCVBUF depends on the route's MSS (lo vs veth), not on getsockopt.
    const strip = (ps: JsonObject[]): JsonObject[] => ps.filter((p) => p['name'] !== 'SO_RCVBUF');
    t.same(strip(got), strip(base), `${run.name}: same as without the datapath`);
  }
  const d = delta(before, await counters(node));
  t.equal((d.connect4_redirect_out ?? 0) + (d.connect6_redirect_out ?? 0), 2, `both probe sockets were redirected: ${JSON.stringify(d)}`);
  t.notOk(d.getsockopt_answered, 'the app side of a redirected connection gets no answer');
});
