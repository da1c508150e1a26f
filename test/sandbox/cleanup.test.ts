// Leftovers of a run that never reached destroy() (a killed test) are removed
// by the next createNode with the same prefix, and cleanup touches only names
// of the sandbox's own scheme.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { addNetns, ip, listNetns } from '../../scripts/sandbox/netns.js';
import { cleanupPrefix, createNode } from '../../scripts/sandbox/node.js';
import { requireRoot } from '../helpers/root.js';

requireRoot('the sandbox cleanup test');
const PREFIX = 'mlsbxclean';
// A netns whose name starts with the prefix but is not of the scheme: never ours to remove.
const BYSTANDER = `${PREFIX}keep`;

function alive(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

t.teardown(async () => {
  await cleanupPrefix(PREFIX);
  if ((await listNetns()).includes(BYSTANDER)) await ip(['netns', 'del', BYSTANDER]);
});

t.test('a new node removes what a crashed run left, and only that', async (t) => {
  if ((await listNetns()).includes(BYSTANDER)) await ip(['netns', 'del', BYSTANDER]);
  await addNetns(BYSTANDER);

  const crashed = await createNode({ prefix: PREFIX });
  const pod = await crashed.addPod({ name: 'left-behind' });
  const proc = await pod.spawn('sleep', ['60']);
  // An extra pin, as a datapath under test would leave.
  const pinned = join(crashed.pinDir, 'some_map');
  await import('node:fs').then((fs) => fs.mkdirSync(pinned));
  // No destroy(): the run "crashed". A fresh node with the same prefix starts clean.
  const fresh = await createNode({ prefix: PREFIX });
  t.teardown(() => fresh.destroy());
  t.notOk(alive(proc.pid), 'the old process was killed');
  t.notOk(existsSync(pod.cgroupPath), 'the old pod cgroup is gone');
  t.notOk(existsSync(pinned), 'the old pins are gone');
  const netns = await listNetns();
  t.notOk(netns.includes(pod.netns), 'the old pod netns is gone');
  t.ok(netns.includes(fresh.netns), 'the new node netns exists');
  t.ok(netns.includes(BYSTANDER), 'a netns outside the naming scheme was left alone');
  t.same(fresh.pods, []);
  await fresh.destroy();
  t.notOk(existsSync(fresh.cgroupRoot));
  t.ok((await listNetns()).includes(BYSTANDER), 'destroy leaves it alone too');
});

t.test('bad prefixes are refused before anything is touched', async (t) => {
  await t.rejects(createNode({ prefix: 'x' }), /bad sandbox prefix/);
  await t.rejects(cleanupPrefix('../../etc'), /bad sandbox prefix/);
  await t.rejects(createNode({ prefix: 'mlsbxbad', ipv4Subnet: 'fd00::/64' }), /must be IPv4/);
});
