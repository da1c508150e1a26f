// Two sandbox nodes linked by linkNodes(): pods of node 1 reach pods of node 2
// over IPv4 and IPv6 through both node netns (the server sees the client pod's
// own address: routed, not NATed), linkNodes turns forwarding on in the node
// netns (pods keep what a new netns inherits), and unlink()/destroy() leave
// nothing behind.
import t from 'tap';
import { execa } from 'execa';
import { listLinks, listNetns } from '../../testing/sandbox/netns.js';
import { buildTool, createNode, linkNodes, type SandboxNode } from '../../testing/sandbox/node.js';
import { requireRoot } from '../helpers/root.js';

requireRoot('the sandbox link test');
const mlpeer = await buildTool('mlpeer');
let n1: SandboxNode | undefined;
let n2: SandboxNode | undefined;
t.teardown(async () => {
  await n1?.destroy();
  await n2?.destroy();
});
n1 = await createNode({ prefix: 'mlsl1', ipv4Subnet: '10.213.102.0/24', ipv6Subnet: 'fd00:213:102::/64' });
n2 = await createNode({ prefix: 'mlsl2', ipv4Subnet: '10.213.103.0/24', ipv6Subnet: 'fd00:213:103::/64' });
const node1 = n1;
const node2 = n2;
const a = await node1.addPod({ name: 'a' });
const b = await node2.addPod({ name: 'b' });

async function sysctlIn(ns: string, key: string): Promise<string> {
  const r = await execa('ip', ['netns', 'exec', ns, 'sysctl', '-n', key]);
  return r.stdout.trim();
}

t.test('refuses to link nodes with the same subnets', async (t) => {
  const twin = await createNode({ prefix: 'mlsl3', ipv4Subnet: '10.213.102.0/24', ipv6Subnet: 'fd00:213:104::/64' });
  t.teardown(() => twin.destroy());
  await t.rejects(linkNodes(node1, twin), /share a pod subnet/);
});

t.test('pods of two linked nodes reach each other, v4 and v6, with their own addresses', async (t) => {
  const link = await linkNodes(node1, node2);
  t.equal(await sysctlIn(node1.netns, 'net.ipv4.ip_forward'), '1');
  t.equal(await sysctlIn(node2.netns, 'net.ipv6.conf.all.forwarding'), '1');
  const srv = await b.spawn(mlpeer, ['server', '--port', '8080', '--idle-timeout-ms', '20000', '--lifetime-ms', '60000'], { uid: 1000, gid: 1000 });
  await srv.waitForJson((e) => e['event'] === 'listening');
  for (const dst of [`${b.ipv4}:8080`, `[${b.ipv6}]:8080`]) {
    const r = await a.run(mlpeer, ['client', '--connect', dst, '--bytes', '100000', '--timeout-ms', '10000']);
    t.equal(r.exitCode, 0, `${dst}: ${r.stdout} ${r.stderr}`);
    const s = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as Record<string, unknown>;
    const acc = await srv.waitForJson((e) => e['event'] === 'accept' && e['peer'] === s['local'], { timeoutMs: 3000 });
    t.ok(acc, `the server saw pod a's own address (${String(s['local'])})`);
  }
  // The node netns of node 2 (a "plain" host of another node) reaches pod a too.
  const asrv = await a.spawn(mlpeer, ['server', '--port', '8081', '--idle-timeout-ms', '20000', '--lifetime-ms', '60000']);
  await asrv.waitForJson((e) => e['event'] === 'listening');
  const r = await node2.run(mlpeer, ['client', '--connect', `${a.ipv4}:8081`, '--bytes', '1000', '--timeout-ms', '10000']);
  t.equal(r.exitCode, 0, r.stdout + r.stderr);
  await link.unlink();
  t.notOk((await node1.ip(['-o', 'link', 'show'])).includes(link.ifA), 'unlink removed the pair');
  const r2 = await a.run(mlpeer, ['client', '--connect', `${b.ipv4}:8080`, '--bytes', '10', '--timeout-ms', '1000']);
  t.not(r2.exitCode, 0, 'no path after unlink');
  await link.unlink(); // idempotent
});

t.test('destroy leaves no link, netns or host interface', async (t) => {
  await linkNodes(node1, node2);
  await node1.destroy();
  await node2.destroy();
  const ns = await listNetns();
  t.notOk(ns.some((x) => x.startsWith('mlsbxl')), 'no netns left');
  t.notOk((await listLinks()).some((l) => l.startsWith('mlsbxl')), 'nothing in the host netns');
});
