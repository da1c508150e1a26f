// Leftovers of a run that never reached destroy() (a killed test) are removed
// by the next createNode of the same file prefix; a run that is still alive
// keeps every name it made (two test runs on one machine), and cleanup touches
// only names of the sandbox's own scheme.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import t from 'tap';
import { addNetns, ip, listNetns } from '../../testing/sandbox/netns.js';
import { cleanupPrefix, createNode, removeStaleRuns } from '../../testing/sandbox/node.js';
import { LEASE_DIR } from '../../testing/sandbox/runs.js';
import { repoRoot } from '../helpers/paths.js';
import { requireRoot } from '../helpers/root.js';

requireRoot('the sandbox cleanup test');
const PREFIX = 'mlsbc';

interface ChildRun {
  child: ChildProcessWithoutNullStreams;
  made: { prefix: string; netns: string[]; cgroupRoot: string; pinDir: string; stateDir: string; pinned: string; pid: number };
}

const children: ChildRun[] = [];
const bystanders: string[] = [];
t.teardown(async () => {
  for (const c of children) if (c.child.exitCode === null) c.child.kill('SIGKILL');
  await removeStaleRuns(PREFIX);
  const netns = await listNetns();
  for (const b of bystanders) if (netns.includes(b)) await ip(['netns', 'del', b]);
});

/** Another run of this file prefix, in its own process. */
async function childRun(): Promise<ChildRun> {
  // node itself (not the tsx wrapper, which would outlive a kill of its child): the run is this process.
  const child = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'test', 'helpers', 'sandbox-run-child.ts'), PREFIX], { cwd: repoRoot, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const lines = createInterface({ input: child.stdout });
  const first = await Promise.race([
    (async () => {
      for await (const l of lines) return l;
      return undefined;
    })(),
    once(child, 'exit').then(() => undefined),
  ]);
  if (!first) throw new Error(`the child run failed: ${stderr}`);
  const run = { child, made: JSON.parse(first) as ChildRun['made'] };
  children.push(run);
  return run;
}

function alive(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

t.test('a new node removes what a killed run left, and only that', async (t) => {
  const crashed = await childRun();
  const m = crashed.made;
  t.match(m.prefix, new RegExp(`^${PREFIX}[a-z0-9]{3}$`), 'the run prefix is the file prefix and a run tag');
  // A netns that starts with the dead run's prefix but is not of the scheme: never ours to remove.
  const bystander = `${m.prefix}keep`;
  bystanders.push(bystander);
  await addNetns(bystander);
  crashed.child.kill('SIGKILL');
  await once(crashed.child, 'exit');
  t.ok(existsSync(m.cgroupRoot) && existsSync(m.pinned), 'the killed run left its cgroups and pins');

  const fresh = await createNode({ prefix: PREFIX });
  t.teardown(() => fresh.destroy());
  t.not(fresh.prefix, m.prefix, 'a run of its own');
  t.notOk(alive(m.pid), 'the old process is gone');
  t.notOk(existsSync(m.cgroupRoot), 'the old cgroup subtree is gone');
  t.notOk(existsSync(m.pinDir), 'the old pins are gone');
  t.notOk(existsSync(m.stateDir), 'the old state dir is gone');
  t.notOk(existsSync(join(LEASE_DIR, m.prefix)), 'the old lease is gone');
  const netns = await listNetns();
  for (const ns of m.netns) t.notOk(netns.includes(ns), `the old netns ${ns} is gone`);
  t.ok(netns.includes(fresh.netns), 'the new node netns exists');
  t.ok(netns.includes(bystander), 'a netns outside the naming scheme was left alone');
  await fresh.destroy();
  t.notOk(existsSync(fresh.cgroupRoot));
  t.ok((await listNetns()).includes(bystander), 'destroy leaves it alone too');
});

t.test('a run that is alive keeps its sandbox while another run of the same file starts', async (t) => {
  const other = await childRun();
  const m = other.made;
  const mine = await createNode({ prefix: PREFIX });
  t.teardown(() => mine.destroy());
  t.not(mine.prefix, m.prefix);
  t.ok(existsSync(m.cgroupRoot) && existsSync(m.pinned) && existsSync(m.stateDir), "the other run's cgroups, pins and state are kept");
  t.ok(alive(m.pid), "the other run's process still runs");
  const netns = await listNetns();
  for (const ns of m.netns) t.ok(netns.includes(ns), `the other run's netns ${ns} is kept`);
  t.same(await removeStaleRuns(PREFIX), [], 'a stale sweep finds nothing to remove');
  await mine.destroy();
  t.ok(existsSync(m.cgroupRoot), "destroying this run's node leaves the other's alone");
  other.child.stdin.write('destroy\n');
  await once(other.child, 'exit');
  t.equal(other.child.exitCode, 0, 'the other run destroyed its own node');
  t.notOk(existsSync(m.cgroupRoot) || existsSync(join(LEASE_DIR, m.prefix)), 'and it is gone');
});

t.test('bad prefixes are refused before anything is touched', async (t) => {
  await t.rejects(createNode({ prefix: 'x' }), /bad sandbox prefix/);
  await t.rejects(createNode({ prefix: 'mlsbxclean' }), /bad sandbox prefix/, 'a file prefix is 5 characters');
  await t.rejects(cleanupPrefix('../../etc'), /bad sandbox prefix/);
  await t.rejects(createNode({ prefix: 'mlsbd', ipv4Subnet: 'fd00::/64' }), /must be IPv4/);
});
