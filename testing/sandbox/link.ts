// Two sandbox nodes joined by a wire: a veth pair between their node netns
// (the netns that hold each node's bridge), a transit address on each end, and
// routes to the other node's pod subnets, with forwarding on in the two node
// netns only. Pods keep their default routes via their own node's bridge, so
// a packet from a pod of node A to a pod of node B goes pod A -> bridge A ->
// node netns A -> wire -> node netns B -> bridge B -> pod B: it really crosses
// nodes, as between two Kubernetes nodes with routed pod CIDRs.
//
// Nothing is made in the host netns: the veth pair is created inside A's node
// netns with its peer moved straight into B's. Destroying either node (its
// netns) removes the pair; unlink() removes it and the routes earlier.
import { execa } from 'execa';
import { ip } from './netns.js';
import type { SandboxNode } from './node.js';

export interface LinkOptions {
  /** Transit IPv4 addresses of the two ends (a /30). Default 169.254.213.1 / .2. */
  ipv4?: [string, string];
  /** Transit IPv6 addresses of the two ends (a /126). Default fd00:213:ffff::1 / ::2. */
  ipv6?: [string, string];
}

export interface NodeLink {
  a: SandboxNode;
  b: SandboxNode;
  /** Link name in A's node netns (`<A prefix>xl`) and in B's (`<B prefix>xl`). */
  ifA: string;
  ifB: string;
  ipv4: [string, string];
  ipv6: [string, string];
  /** Remove the routes and the veth pair (idempotent). */
  unlink(): Promise<void>;
}

async function sysctl(ns: string, settings: readonly string[]): Promise<void> {
  // As node.ts does for its sysctls: net.* under /proc/sys is the writer's netns.
  const r = await execa('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-w', ...settings], { reject: false });
  if (r.exitCode !== 0) throw new Error(`sysctl ${settings.join(' ')} in ${ns} failed: ${r.stderr.trim()}`);
}

export async function linkNodes(a: SandboxNode, b: SandboxNode, opts: LinkOptions = {}): Promise<NodeLink> {
  if (a.prefix === b.prefix) throw new Error('linkNodes needs two different nodes');
  if (a.subnet4.cidr === b.subnet4.cidr || a.subnet6.cidr === b.subnet6.cidr) {
    throw new Error(`nodes '${a.prefix}' and '${b.prefix}' share a pod subnet: give them different ones to link them`);
  }
  const ipv4 = opts.ipv4 ?? ['169.254.213.1', '169.254.213.2'];
  const ipv6 = opts.ipv6 ?? ['fd00:213:ffff::1', 'fd00:213:ffff::2'];
  const ifA = a.names.extra('l');
  const ifB = b.names.extra('l');
  const unlink = async (): Promise<void> => {
    // Deleting one end removes the pair (and the routes through it).
    await ip(['-n', a.netns, 'link', 'del', ifA]).catch(() => undefined);
    await ip(['-n', b.netns, 'link', 'del', ifB]).catch(() => undefined);
  };
  await unlink();
  try {
    await ip(['-n', a.netns, 'link', 'add', 'name', ifA, 'type', 'veth', 'peer', 'name', ifB, 'netns', b.netns]);
    const ends = [
      { node: a, dev: ifA, v4: ipv4[0], v6: ipv6[0], peer: b, via4: ipv4[1], via6: ipv6[1] },
      { node: b, dev: ifB, v4: ipv4[1], v6: ipv6[1], peer: a, via4: ipv4[0], via6: ipv6[0] },
    ];
    for (const e of ends) {
      await sysctl(e.node.netns, ['net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
      await ip(['-n', e.node.netns, 'addr', 'add', `${e.v4}/30`, 'dev', e.dev]);
      await ip(['-n', e.node.netns, '-6', 'addr', 'add', `${e.v6}/126`, 'dev', e.dev, 'nodad']);
      await ip(['-n', e.node.netns, 'link', 'set', e.dev, 'up']);
    }
    for (const e of ends) {
      await ip(['-n', e.node.netns, 'route', 'replace', e.peer.subnet4.cidr, 'via', e.via4, 'dev', e.dev]);
      await ip(['-n', e.node.netns, '-6', 'route', 'replace', e.peer.subnet6.cidr, 'via', e.via6, 'dev', e.dev]);
    }
  } catch (err) {
    await unlink();
    throw err;
  }
  return { a, b, ifA, ifB, ipv4, ipv6, unlink };
}
