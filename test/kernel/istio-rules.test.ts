// Reading Istio's rules out of a pod's netns in-process (src/sys/istio-rules.ts:
// nf_tables over nfnetlink, legacy x_tables through getsockopt), held against
// the tools' own reading: each of Istio's goldens restored with
// iptables-nft-restore or iptables-legacy-restore (and the IPv6 counterpart
// with ip6tables), then `*-save -t nat` parsed as text (test/helpers/nat-save.ts)
// gives the hooked chains and the number of Istio rules the probe must find.
import { readFileSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { createNode, type Pod, type SandboxNode } from '../../testing/sandbox/node.js';
import { probeIstioRules } from '../../src/sys/istio-rules.js';
import { GOLDEN_DIR, inNetns, v6Counterpart } from '../helpers/istio-golden.js';
import { upstreamFixtures } from '../helpers/paths.js';
import { parseNatSave, parseNftJson } from '../helpers/nat-save.js';
import { requireRoot } from '../helpers/root.js';

requireRoot('the Istio rules reader test');

let node: SandboxNode | undefined;
t.teardown(async () => {
  await node?.destroy();
});
node = await createNode({ prefix: 'mlkir', ipv4Subnet: '10.213.170.0/24', ipv6Subnet: 'fd00:213:170::/64' });
const n = node;

const GOLDENS = ['basic.txt.golden', 'tproxy.txt.golden', 'dns.txt.golden', 'include-exclude-ip.txt.golden', 'status-ports.txt.golden'];
const BACKENDS = [
  { name: 'nft', v4: 'iptables-nft', v6: 'ip6tables-nft' },
  { name: 'legacy', v4: 'iptables-legacy', v6: 'ip6tables-legacy' },
] as const;

let podCount = 0;
async function freshPod(): Promise<Pod> {
  return n.addPod({ name: `r${podCount++}` });
}

/** What `<tool>-save -t nat` shows in the pod's netns, read as text. */
async function oracle(pod: Pod, tool: string): Promise<ReturnType<typeof parseNatSave>> {
  return parseNatSave(await inNetns(pod, `${tool}-save`, ['-t', 'nat']));
}

for (const b of BACKENDS) {
  for (const golden of GOLDENS) {
    t.test(`${golden} through ${b.name}: the same hooks and rule count as ${b.v4}-save`, async (t) => {
      const pod = await freshPod();
      const text = readFileSync(join(GOLDEN_DIR, golden), 'utf8');
      await inNetns(pod, `${b.v4}-restore`, ['--noflush'], text);
      await inNetns(pod, `${b.v6}-restore`, ['--noflush'], v6Counterpart(text));
      const want4 = await oracle(pod, b.v4);
      const want6 = await oracle(pod, b.v6);
      t.ok(want4.hooked.length > 0, `the golden hooks Istio's chains (${want4.hooked.join('+')})`);
      const probe = probeIstioRules(pod.netnsPath);
      t.equal(probe.state, 'present', probe.detail);
      const expected = [...want4.hooked.map((h) => `${h}@${b.v4}`), ...want6.hooked.map((h) => `${h}@${b.v6}`)].sort();
      t.same([...probe.hooked].sort(), expected, 'hooked chains per family and backend');
      for (const [tool, want] of [[b.v4, want4], [b.v6, want6]] as const) {
        t.match(probe.detail, `${want.hooked.join('+')} hooked (${want.istioRules} rules) in ${tool} nat`, `${tool}: ${want.istioRules} rules in Istio's chains, as ${tool}-save shows`);
      }
    });
  }

  t.test(`${b.name}: Istio's chains without the hook, and a foreign jump, are not Istio's rules`, async (t) => {
    const pod = await freshPod();
    // Istio's chains exist, but OUTPUT jumps to a chain of someone else, and PREROUTING to nothing.
    const rules = ['*nat', ':ISTIO_OUTPUT - [0:0]', ':ISTIO_REDIRECT - [0:0]', ':OTHER - [0:0]', '-A ISTIO_OUTPUT -j ISTIO_REDIRECT', '-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001', '-A OUTPUT -j OTHER', '-A OTHER -j RETURN', 'COMMIT', ''].join('\n');
    await inNetns(pod, `${b.v4}-restore`, ['--noflush'], rules);
    const want = await oracle(pod, b.v4);
    t.same(want.hooked, [], 'the tools agree: nothing hooked');
    const probe = probeIstioRules(pod.netnsPath);
    t.equal(probe.state, 'absent', probe.detail);
    t.match(probe.detail, `Istio chains without a hook in ${b.v4} nat`);
  });

  t.test(`${b.name}: a goto (-g) counts as a hook too`, async (t) => {
    const pod = await freshPod();
    await inNetns(pod, `${b.v4}-restore`, ['--noflush'], ['*nat', ':ISTIO_OUTPUT - [0:0]', '-A ISTIO_OUTPUT -p tcp -j REDIRECT --to-ports 15001', '-A OUTPUT -p tcp -g ISTIO_OUTPUT', 'COMMIT', ''].join('\n'));
    const probe = probeIstioRules(pod.netnsPath);
    t.equal(probe.state, 'present', probe.detail);
    t.same(probe.hooked, [`ISTIO_OUTPUT@${b.v4}`]);
  });
}

// Istio's native nftables backend: one inet ruleset (table inet istio-proxy-nat, chains istio-output / istio-inbound).
const NFT_GOLDEN_DIR = join(upstreamFixtures, 'istio-nftables-golden');
for (const golden of ['tproxy.golden', 'inbound-ports-include.golden']) {
  t.test(`Istio's native nftables ruleset ${golden}: the same hooks and rule count as nft -j list ruleset`, async (t) => {
    const pod = await freshPod();
    await inNetns(pod, 'nft', ['-f', '-'], readFileSync(join(NFT_GOLDEN_DIR, golden), 'utf8'));
    const want = parseNftJson(await inNetns(pod, 'nft', ['-j', 'list', 'ruleset']));
    t.same(want.map((x) => `${x.family} ${x.table}`), ['inet istio-proxy-nat'], 'one nat table, Istio\'s');
    const [nat] = want;
    if (!nat) return;
    t.ok(nat.hooked.includes('istio-output'), `the golden hooks istio-output (${nat.hooked.join('+')})`);
    const probe = probeIstioRules(pod.netnsPath);
    t.equal(probe.state, 'present', probe.detail);
    t.same(probe.hooked, nat.hooked.map((h) => `${h}@nftables`), 'hooked chains, as nft lists them');
    t.match(probe.detail, `${nat.hooked.join('+')} hooked (${nat.istioRules} rules) in nftables inet istio-proxy-nat`, `${nat.istioRules} rules in Istio's chains`);
  });
}

t.test('an nftables table of someone else with a nat output chain is not Istio\'s', async (t) => {
  const pod = await freshPod();
  await inNetns(pod, 'nft', ['-f', '-'], 'add table inet other\nadd chain inet other output { type nat hook output priority -100 ; }\nadd chain inet other istio-lookalike\nadd rule inet other output jump istio-lookalike\n');
  const probe = probeIstioRules(pod.netnsPath);
  t.equal(probe.state, 'absent', probe.detail);
  t.match(probe.detail, 'Istio chains without a hook in nftables inet other');
});

t.test('a netns without rules: absent, and reading it created no legacy table there', async (t) => {
  // The legacy modules loaded (a table in another pod), so that asking for a table could create one.
  const other = await freshPod();
  await inNetns(other, 'iptables-legacy-restore', ['--noflush'], '*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n');
  await inNetns(other, 'ip6tables-legacy-restore', ['--noflush'], '*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n');
  const pod = await freshPod();
  t.equal(await inNetns(pod, 'cat', ['/proc/net/ip_tables_names']), '', 'legacy IPv4 tables possible, none in the pod');
  t.equal(await inNetns(pod, 'cat', ['/proc/net/ip6_tables_names']), '', 'legacy IPv6 tables possible, none in the pod');
  const probe = probeIstioRules(pod.netnsPath);
  t.equal(probe.state, 'absent', probe.detail);
  t.same(probe.hooked, []);
  t.equal(await inNetns(pod, 'cat', ['/proc/net/ip_tables_names']), '', 'no legacy IPv4 table created');
  t.equal(await inNetns(pod, 'cat', ['/proc/net/ip6_tables_names']), '', 'no legacy IPv6 table created');
});

t.test('a dormant nftables table hooks nothing', async (t) => {
  const pod = await freshPod();
  await inNetns(pod, 'nft', ['-f', '-'], readFileSync(join(NFT_GOLDEN_DIR, 'inbound-ports-include.golden'), 'utf8'));
  t.equal(probeIstioRules(pod.netnsPath).state, 'present');
  await inNetns(pod, 'nft', ['add', 'table', 'inet', 'istio-proxy-nat', '{ flags dormant ; }']);
  const probe = probeIstioRules(pod.netnsPath);
  t.equal(probe.state, 'absent', probe.detail);
});

t.test('a legacy filter table only (no nat): absent, and no nat table created', async (t) => {
  const pod = await freshPod();
  await inNetns(pod, 'iptables-legacy-restore', ['--noflush'], '*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 9 -j DROP\nCOMMIT\n');
  t.equal((await inNetns(pod, 'cat', ['/proc/net/ip_tables_names'])).trim(), 'filter');
  const probe = probeIstioRules(pod.netnsPath);
  t.equal(probe.state, 'absent', probe.detail);
  t.equal((await inNetns(pod, 'cat', ['/proc/net/ip_tables_names'])).trim(), 'filter', 'still no nat table');
});

t.test('no netns, a gone one, a path that is not a netns: unknown, saying why', async (t) => {
  t.same(probeIstioRules(undefined), { state: 'unknown', hooked: [], detail: 'no netns recorded' });
  const gone = probeIstioRules(`/var/run/netns/${n.names.extra('gone')}`);
  t.equal(gone.state, 'unknown');
  t.match(gone.detail, /is gone/);
  const notNs = probeIstioRules('/proc/self/status');
  t.equal(notNs.state, 'unknown');
  t.match(notNs.detail, /cannot enter the netns \/proc\/self\/status: setns\(CLONE_NEWNET\) .*EINVAL/);
});

t.test('the probe leaves the process in its own netns', async (t) => {
  const pod = await freshPod();
  const before = readlinkSync('/proc/thread-self/ns/net');
  t.not(statSync(pod.netnsPath).ino, statSync('/proc/thread-self/ns/net').ino, 'the pod\'s netns is another one than ours (a stay in it would show)');
  probeIstioRules(pod.netnsPath);
  t.equal(readlinkSync('/proc/thread-self/ns/net'), before, 'the same netns as before');
  probeIstioRules('/proc/self/status');
  t.equal(readlinkSync('/proc/thread-self/ns/net'), before, 'and after a failed setns');
});
