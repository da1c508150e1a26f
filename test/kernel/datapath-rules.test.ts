// Istio's include/exclude rules on the real kernel, table-driven, IPv4 and
// IPv6. Outbound: the config of pod A (an app in A, uid 1000, connects to the
// unregistered server pods S and T). Inbound: the config of pod B (A's proxy
// uid connects to B). A connection is "captured" when it shows up at the
// proxy (15001 for outbound, B's 15006 for inbound) with its original
// destination, and "not captured" when the server accepts it straight from
// the client; the counters must say the same (redirect vs excluded).
import t, { type Test } from 'tap';
import type { Pod, SpawnedProcess } from '../../testing/sandbox/node.js';
import type { InterceptionConfig } from '../../src/bpf/pod-config.js';
import { requireRoot } from '../helpers/root.js';
import { APP, PROXY, counters, datapathNode, delta, describe, hostPort, install, register, startInboundProxy, startProxy, startServer, summary } from '../helpers/datapath.js';

requireRoot('the datapath rules test');
const OCTET = 113;
const { node, loc, mlpeer, mlproxy } = await datapathNode(t, 'mlkru', OCTET);
const a = await node.addPod({ name: 'a' });
const b = await node.addPod({ name: 'b' });
const s = await node.addPod({ name: 's' });
const tt = await node.addPod({ name: 't' });
await install(loc);
await register(node, a);
await register(node, b);
const proxyA = await startProxy(a, mlproxy);
const proxyB = await startInboundProxy(b, mlproxy);

const OUT_PORTS = [8080, 8081];
const IN_PORTS = [8080, 8081, 8082, 15008, 15020, 15021, 15090];
const servers = new Map<string, SpawnedProcess>();
for (const [pod, ports] of [[s, OUT_PORTS], [tt, OUT_PORTS], [b, IN_PORTS]] as const) {
  for (const port of ports) servers.set(`${pod.name}:${port}`, await startServer(pod, mlpeer, port));
}

type Fam = '4' | '6';
type Expect = boolean | Record<Fam, boolean>;
const ip = (p: Pod, f: Fam): string => (f === '4' ? p.ipv4 : p.ipv6);
const host = (p: Pod, f: Fam): string => (f === '4' ? `${p.ipv4}/32` : `${p.ipv6}/128`);
const subnet = (f: Fam): string => (f === '4' ? `10.213.${OCTET}.0/24` : `fd00:213:${OCTET}::/64`);
const both = (fn: (f: Fam) => string): string[] => [fn('4'), fn('6')];

/** Connect and say where the connection went; checks every witness agrees. */
async function probe(t: Test, dir: 'out' | 'in', dst: Pod, port: number, f: Fam, want: boolean, label: string): Promise<void> {
  const before = await counters(node);
  const target = hostPort(ip(dst, f), port);
  const r = await a.run(mlpeer, ['client', '--connect', target, '--bytes', '1000', '--half-close', '--timeout-ms', '8000'], dir === 'out' ? APP : PROXY);
  const sum = summary(r);
  const what = `${label}: ${dir === 'out' ? 'app A' : 'proxy A'} -> ${target} ${want ? 'captured' : 'not captured'}`;
  if (r.exitCode !== 0) {
    t.fail(`${what}: client failed: ${describe(r)}`);
    return;
  }
  const local = String(sum['local']);
  const d = delta(before, await counters(node));
  const redirect = d[`connect${f}_redirect_${dir}`] ?? 0;
  const excluded = d[`connect${f}_excluded`] ?? 0;
  if (want) {
    const listener = dir === 'out' ? (f === '4' ? '127.0.0.1:15001' : `[${a.ipv6}]:15001`) : hostPort(ip(dst, f), 15006);
    const proxy = dir === 'out' ? proxyA : proxyB;
    const acc = await proxy.waitForJson((e) => e['event'] === 'accept' && e['peer'] === local, { timeoutMs: 3000 }).catch(() => undefined);
    t.ok(sum['peer'] === listener && acc?.['orig_dst'] === target && redirect === 1 && excluded === 0,
      `${what} (peer ${String(sum['peer'])}, proxy orig_dst ${String(acc?.['orig_dst'])}, counters ${JSON.stringify(d)})`);
  } else {
    const srv = servers.get(`${dst.name}:${port}`);
    const acc = await srv?.waitForJson((e) => e['event'] === 'accept' && e['peer'] === local, { timeoutMs: 3000 }).catch(() => undefined);
    t.ok(sum['peer'] === target && acc?.['local'] === target && redirect === 0 && excluded === 1,
      `${what} (peer ${String(sum['peer'])}, server saw ${String(acc?.['peer'])}, counters ${JSON.stringify(d)})`);
  }
}

interface RuleCase {
  name: string;
  config: Partial<InterceptionConfig>;
  checks: Array<[Pod, number, Expect]>;
}

// Full lists (32 entries, ML_MAX_PORTS / ML_MAX_CIDRS) with the entry that matters last.
const fillerPorts = Array.from({ length: 31 }, (_, i) => 9001 + i);
const fillerCidrs = Array.from({ length: 15 }, (_, i) => [`10.99.${i}.0/24`, `fd99:${i + 1}::/64`]).flat();

const outbound: RuleCase[] = [
  { name: 'defaults: includeOutboundIPRanges "*"', config: {}, checks: [[s, 8080, true], [tt, 8081, true]] },
  { name: 'includeOutboundIPRanges empty list captures nothing', config: { includeOutboundCidrs: [] }, checks: [[s, 8080, false], [tt, 8081, false]] },
  { name: 'includeOutboundIPRanges = S only', config: { includeOutboundCidrs: both((f) => host(s, f)) }, checks: [[s, 8080, true], [tt, 8080, false]] },
  { name: 'includeOutboundIPRanges = the pod subnets', config: { includeOutboundCidrs: both(subnet) }, checks: [[s, 8080, true], [tt, 8081, true]] },
  { name: 'includeOutboundIPRanges IPv4 only: IPv6 not captured', config: { includeOutboundCidrs: [subnet('4')] }, checks: [[s, 8080, { 4: true, 6: false }]] },
  { name: 'includeOutboundIPRanges ::/0 does not capture IPv4', config: { includeOutboundCidrs: ['::/0'] }, checks: [[s, 8080, { 4: false, 6: true }]] },
  { name: 'includeOutboundIPRanges 0.0.0.0/0 does not capture IPv6', config: { includeOutboundCidrs: ['0.0.0.0/0'] }, checks: [[s, 8080, { 4: true, 6: false }]] },
  { name: 'excludeOutboundIPRanges = S', config: { excludeOutboundCidrs: both((f) => host(s, f)) }, checks: [[s, 8080, false], [tt, 8080, true]] },
  { name: 'excludeOutboundIPRanges = the pod subnets', config: { excludeOutboundCidrs: both(subnet) }, checks: [[s, 8080, false], [tt, 8081, false]] },
  { name: 'excludeOutboundIPRanges "*" (beats includeOutboundPorts)', config: { excludeOutboundCidrs: '*', includeOutboundPorts: [8081] }, checks: [[s, 8080, false], [tt, 8081, false]] },
  { name: 'includeOutboundPorts with an empty range list', config: { includeOutboundCidrs: [], includeOutboundPorts: [8081] }, checks: [[s, 8081, true], [s, 8080, false]] },
  { name: 'includeOutboundPorts captures outside the included ranges', config: { includeOutboundCidrs: both((f) => host(tt, f)), includeOutboundPorts: [8081] }, checks: [[s, 8081, true], [s, 8080, false], [tt, 8080, true]] },
  { name: 'excludeOutboundPorts', config: { excludeOutboundPorts: [8081] }, checks: [[s, 8081, false], [s, 8080, true], [tt, 8081, false]] },
  { name: 'exclusion beats inclusion: the same port in include and exclude', config: { includeOutboundCidrs: [], includeOutboundPorts: [8081], excludeOutboundPorts: [8081] }, checks: [[s, 8081, false]] },
  { name: 'exclusion beats inclusion: the same range in include and exclude', config: { includeOutboundCidrs: both((f) => host(s, f)), excludeOutboundCidrs: both((f) => host(s, f)) }, checks: [[s, 8080, false]] },
  { name: 'exclusion beats inclusion: excluded range beats included port', config: { includeOutboundPorts: [8081], excludeOutboundCidrs: both((f) => host(s, f)) }, checks: [[s, 8081, false], [tt, 8081, true]] },
  { name: 'exclusion beats inclusion: excluded port beats included range', config: { includeOutboundCidrs: both((f) => host(s, f)), excludeOutboundPorts: [8080] }, checks: [[s, 8080, false], [s, 8081, true]] },
  { name: 'full lists: the 32nd excluded port', config: { excludeOutboundPorts: [...fillerPorts, 8081] }, checks: [[s, 8081, false], [s, 8080, true]] },
  { name: 'full lists: the 32nd included port', config: { includeOutboundCidrs: [], includeOutboundPorts: [...fillerPorts, 8081] }, checks: [[s, 8081, true], [s, 8080, false]] },
  { name: 'full lists: the 31st and 32nd included ranges', config: { includeOutboundCidrs: [...fillerCidrs, ...both((f) => host(s, f))] }, checks: [[s, 8080, true], [tt, 8080, false]] },
  { name: 'full lists: the 31st and 32nd excluded ranges', config: { excludeOutboundCidrs: [...fillerCidrs, ...both((f) => host(s, f))] }, checks: [[s, 8080, false], [tt, 8080, true]] },
];

const inbound: RuleCase[] = [
  { name: 'defaults: includeInboundPorts "*"; 15008/15020/15021/15090 never', config: {}, checks: [[b, 8080, true], [b, 8081, true], [b, 15008, false], [b, 15020, false], [b, 15021, false], [b, 15090, false]] },
  { name: 'includeInboundPorts list', config: { includeInboundPorts: [8080] }, checks: [[b, 8080, true], [b, 8081, false]] },
  { name: 'includeInboundPorts empty list captures no inbound', config: { includeInboundPorts: [] }, checks: [[b, 8080, false], [b, 8081, false]] },
  { name: 'excludeInboundPorts', config: { excludeInboundPorts: [8081] }, checks: [[b, 8080, true], [b, 8081, false]] },
  { name: 'the status port is excluded (15021 as well)', config: { statusPort: 8082 }, checks: [[b, 8082, false], [b, 8080, true], [b, 15021, false]] },
  { name: 'always-excluded ports stay excluded when listed in includeInboundPorts', config: { includeInboundPorts: [8080, 8082, 15020, 15021, 15090], statusPort: 8082 }, checks: [[b, 8080, true], [b, 8082, false], [b, 15020, false], [b, 15021, false], [b, 15090, false]] },
  { name: 'exclusion beats inclusion: a port in include and exclude', config: { includeInboundPorts: [8080, 8081], excludeInboundPorts: [8081] }, checks: [[b, 8080, true], [b, 8081, false]] },
  { name: 'full lists: the 32nd included port', config: { includeInboundPorts: [...fillerPorts, 8080] }, checks: [[b, 8080, true], [b, 8081, false]] },
  { name: 'full lists: the 32nd excluded port', config: { excludeInboundPorts: [...fillerPorts, 8081] }, checks: [[b, 8081, false], [b, 8080, true]] },
];

for (const [dir, table] of [['out', outbound], ['in', inbound]] as const) {
  for (const rc of table) {
    t.test(`${dir === 'out' ? 'outbound' : 'inbound'} rule: ${rc.name}`, async (t) => {
      await register(node, dir === 'out' ? a : b, rc.config);
      for (const f of ['4', '6'] as const) {
        for (const [pod, port, exp] of rc.checks) {
          const want = typeof exp === 'boolean' ? exp : exp[f];
          await probe(t, dir, pod, port, f, want, `IPv${f}`);
        }
      }
      await register(node, dir === 'out' ? a : b, {});
    });
  }
}
