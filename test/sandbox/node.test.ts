// The sandbox node on the real kernel: layout, reachability between pods over
// IPv4 and IPv6, processes really in the pod's container cgroup and uid, and
// a destroy that leaves nothing behind.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { listLinks, listNetns } from '../../testing/sandbox/netns.js';
import { buildTool, createNode, type Pod, type SandboxNode } from '../../testing/sandbox/node.js';
import { processCgroup } from '../../testing/sandbox/cgroup.js';
import { requireRoot } from '../helpers/root.js';

requireRoot('the sandbox node test');
const PREFIX = 'mlsbn';
const mlpeer = await buildTool('mlpeer');

function statusIds(pid: number): { uid: string; gid: string } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return {
    uid: /^Uid:\s+(\d+)/m.exec(status)?.[1] ?? '?',
    gid: /^Gid:\s+(\d+)/m.exec(status)?.[1] ?? '?',
  };
}

function netnsInode(pid: number | 'self'): bigint {
  return statSync(`/proc/${pid}/ns/net`, { bigint: true }).ino;
}

let node: SandboxNode | undefined;
t.teardown(async () => {
  await node?.destroy();
});

node = await createNode({ prefix: PREFIX });
const n = node;
const a: Pod = await n.addPod({ name: 'client-a', namespace: 'team', uid: '0c0ffee0-aaaa-4000-8000-000000000001' });
const b: Pod = await n.addPod({ name: 'server-b', qos: 'guaranteed', uid: '0c0ffee0-bbbb-4000-8000-000000000002' });
const c: Pod = await n.addPod({ name: 'burst-c', qos: 'burstable' });

t.test('layout: cgroups, pin dir, state dir, netns, addresses', async (t) => {
  t.equal(n.cgroupRoot, join(n.cgroup2Mount, n.prefix));
  t.ok(readFileSync('/proc/mounts', 'utf8').includes(` ${n.cgroup2Mount} cgroup2 `), 'the cgroup2 mount was detected');
  t.ok(existsSync(join(n.cgroupRoot, 'cgroup.procs')), 'the node root is a cgroup');
  t.equal(n.cgroupRootId, statSync(n.cgroupRoot, { bigint: true }).ino);
  t.equal(a.cgroupPath, join(n.cgroupRoot, 'kubepods/besteffort/pod0c0ffee0-aaaa-4000-8000-000000000001'));
  t.equal(b.cgroupPath, join(n.cgroupRoot, 'kubepods/pod0c0ffee0-bbbb-4000-8000-000000000002'));
  t.equal(c.cgroupPath, join(n.cgroupRoot, `kubepods/burstable/pod${c.uid}`));
  t.match(c.uid, /^[0-9a-f-]{36}$/, 'a random UUID by default');
  t.equal(typeof a.cgroupId, 'bigint');
  t.equal(a.cgroupId, statSync(a.cgroupPath, { bigint: true }).ino, 'cgroup id = inode of the pod cgroup');
  t.not(a.cgroupId, b.cgroupId);
  t.equal(a.cgroupLevel, n.cgroupRoot.split('/').length - n.cgroup2Mount.split('/').length + 3);
  t.ok(existsSync(join(a.cgroupPath, 'app', 'cgroup.procs')), 'default container cgroup');
  t.equal(n.pinDir, `/sys/fs/bpf/${n.prefix}`);
  t.ok(existsSync(n.pinDir));
  t.match(readFileSync('/proc/mounts', 'utf8'), / \/sys\/fs\/bpf bpf /, 'bpffs mounted');
  t.ok(existsSync(n.stateDir));

  const netns = await listNetns();
  for (const ns of [n.netns, a.netns, b.netns, c.netns]) t.ok(netns.includes(ns), `netns ${ns}`);
  t.same([a.ipv4, b.ipv4, c.ipv4], ['10.213.100.2', '10.213.100.3', '10.213.100.4']);
  t.same([a.ipv6, b.ipv6, c.ipv6], ['fd00:213:100::2', 'fd00:213:100::3', 'fd00:213:100::4']);
  const addrs = await n.ip(['-o', 'addr', 'show', 'dev', n.bridge]);
  t.match(addrs, /10\.213\.100\.1\/24/, 'gateway v4 on the bridge, inside the node netns');
  t.match(addrs, /fd00:213:100::1\/64/, 'gateway v6 on the bridge');
  const hostLinks = await listLinks();
  t.same(hostLinks.filter((l) => l.startsWith(n.prefix)), [], 'no link of the sandbox in the host netns');
  const hostAddrs = readFileSync('/proc/net/if_inet6', 'utf8');
  t.notMatch(hostAddrs, /fd000213010/, 'no sandbox IPv6 address in the host netns');

  const r = await a.run('ip', ['-o', 'addr', 'show', 'dev', 'eth0']);
  t.equal(r.exitCode, 0);
  t.match(r.stdout, /inet 10\.213\.100\.2\/24/);
  t.match(r.stdout, /inet6 fd00:213:100::2\/64/);
  t.notMatch(r.stdout, /tentative|dadfailed/, 'IPv6 addresses usable at once (no DAD)');
  const routes = await a.run('ip', ['route', 'show', 'default']);
  t.match(routes.stdout, /default via 10\.213\.100\.1 dev eth0/);
  const routes6 = await a.run('ip', ['-6', 'route', 'show', 'default']);
  t.match(routes6.stdout, /default via fd00:213:100::1 dev eth0/);
  const lo = await a.run('ip', ['-o', 'link', 'show', 'dev', 'lo']);
  t.match(lo.stdout, /[<,]UP[,>]/, 'lo up');
});

t.test('pod A reaches a server in pod B over IPv4 and IPv6, seen with its own address', async (t) => {
  const srv = await b.spawn(mlpeer, ['server', '--port', '8080'], { uid: 1000, gid: 1000 });
  t.teardown(() => srv.kill());
  await srv.waitForJson((e) => e['event'] === 'listening');
  for (const [dst, src] of [[`${b.ipv4}:8080`, a.ipv4], [`[${b.ipv6}]:8080`, `[${a.ipv6}]`]] as const) {
    const r = await a.run(mlpeer, ['client', '--connect', dst, '--bytes', '65536', '--half-close']);
    t.equal(r.exitCode, 0, `client to ${dst}: ${r.stdout} ${r.stderr}`);
    const sum = JSON.parse(r.stdout) as Record<string, unknown>;
    t.equal(sum['ok'], true);
    t.equal(sum['received'], 65536);
    t.ok(String(sum['local']).startsWith(`${src}:`), `client local address ${String(sum['local'])}`);
    const acc = await srv.waitForJson((e) => e['event'] === 'accept' && String(e['peer']).startsWith(`${src}:`));
    t.equal(acc['local'], dst, 'server accepted on the pod address');
  }
});

t.test('spawned processes are in the container cgroup, netns and uid asked for', async (t) => {
  const p = await a.spawn('sleep', ['30'], { uid: 1337, gid: 1337, container: 'istio-proxy' });
  t.teardown(() => p.kill());
  // The cgroup move happens before exec: poll briefly for /proc to show sleep.
  let comm = '';
  for (let i = 0; i < 100 && comm !== 'sleep'; i++) {
    comm = readFileSync(`/proc/${p.pid}/comm`, 'utf8').trim();
    if (comm !== 'sleep') await new Promise((r) => setTimeout(r, 10));
  }
  t.equal(comm, 'sleep', 'the PID held is the program itself (no wrapper left)');
  t.equal(processCgroup(p.pid), `/${n.prefix}/kubepods/besteffort/pod${a.uid}/istio-proxy`, '0:: line of /proc/<pid>/cgroup');
  t.ok(readFileSync(join(a.cgroupPath, 'istio-proxy', 'cgroup.procs'), 'utf8').split('\n').includes(String(p.pid)));
  t.same(statusIds(p.pid), { uid: '1337', gid: '1337' });
  t.equal(netnsInode(p.pid), statSync(a.netnsPath, { bigint: true }).ino, 'in the pod netns');
  t.not(netnsInode(p.pid), netnsInode('self'));
  const groups = /^Groups:[ \t]*(.*)$/m.exec(readFileSync(`/proc/${p.pid}/status`, 'utf8'))?.[1]?.trim();
  t.equal(groups, '', 'supplementary groups cleared');

  // A process that itself reads its cgroup: created in the cgroup before exec.
  const self = await b.run('cat', ['/proc/self/cgroup'], { uid: 4242, gid: 4243 });
  t.match(self.stdout, new RegExp(`^0::/${n.prefix}/kubepods/pod${b.uid}/app$`, 'm'));
  const id = await b.run('id', ['-u'], { uid: 4242, gid: 4243 });
  t.equal(id.stdout.trim(), '4242');

  const exit = await p.kill();
  t.equal(exit.signal, 'SIGTERM');
  t.notOk(p.running);
});

t.test('run: exit codes, stderr, timeouts, env', async (t) => {
  const ok = await a.run('sh', ['-c', 'echo "$X"; echo err >&2; exit 3'], { env: { X: 'hello $(no expansion)' } });
  t.equal(ok.exitCode, 3);
  t.equal(ok.stdout, 'hello $(no expansion)');
  t.equal(ok.stderr, 'err');
  const slow = await a.run('sleep', ['10'], { timeoutMs: 300 });
  t.equal(slow.timedOut, true);
  t.equal(slow.signal, 'SIGKILL');
  const missing = await a.run('/nonexistent/program', []);
  t.equal(missing.exitCode, 127);
  t.match(missing.stderr, /mlexec: exec/);
  await t.rejects(a.spawn('/nonexistent/program'), /could not start \/nonexistent\/program \(exit 127\): mlexec: exec/);
});

t.test('waitForLine: finds lines, times out, reports an early exit', async (t) => {
  const seen: string[] = [];
  const p = await a.spawn('sh', ['-c', 'sleep 0.2; echo one; echo \'{"event":"two","n":2}\'; sleep 30']);
  t.teardown(() => p.kill());
  const off = p.onLine((l) => seen.push(l));
  t.equal(await p.waitForLine((l) => l === 'one'), 'one');
  t.same(await p.waitForJson((e) => e['event'] === 'two'), { event: 'two', n: 2 });
  await t.rejects(p.waitForLine((l) => l === 'never', { timeoutMs: 200 }), /timed out after 200 ms/);
  off();
  t.same(seen, ['one', '{"event":"two","n":2}'], 'onLine streams lines as they come');
  t.same(p.events(), [{ event: 'two', n: 2 }]);
  const q = await a.spawn('sh', ['-c', 'echo bye; echo oops >&2; exit 1']);
  await t.rejects(q.waitForLine((l) => l === 'never'), /exited \(exit 1\).*oops/);
  t.same(q.lines(), ['bye']);
});

t.test('node-level processes run in the node netns, below the root but in no pod', async (t) => {
  const srv = await b.spawn(mlpeer, ['server', '--port', '9090', '--mode', 'sink']);
  t.teardown(() => srv.kill());
  await srv.waitForJson((e) => e['event'] === 'listening');
  const r = await n.run(mlpeer, ['client', '--connect', `${b.ipv4}:9090`, '--mode', 'send', '--bytes', '1000']);
  t.equal(r.exitCode, 0, r.stdout);
  const close = await srv.waitForJson((e) => e['event'] === 'close');
  t.equal(close['peer'], `${n.gateway4}:${String(close['peer']).split(':')[1]}`, 'from the bridge address');
  t.equal(close['bytes_in'], 1000);
  const cg = await n.run('cat', ['/proc/self/cgroup']);
  t.match(cg.stdout, new RegExp(`^0::/${n.prefix}/system$`, 'm'));
});

t.test('removePod takes one pod away', async (t) => {
  const d = await n.addPod({ name: 'short-lived' });
  t.equal(d.index, 4);
  const p = await d.spawn('sleep', ['30']);
  await n.removePod(d);
  const exit = await p.exited;
  t.equal(exit.signal, 'SIGKILL', 'its process was killed');
  t.notOk(existsSync(d.cgroupPath));
  t.notOk((await listNetns()).includes(d.netns));
  t.notMatch(await n.ip(['-o', 'link', 'show']), new RegExp(`${d.nodeVeth}[@:]`));
  const e = await n.addPod({ name: 'reuses-index' });
  t.equal(e.index, 4, 'the index is free again');
});

t.test('destroy removes everything with the prefix', async (t) => {
  const long = await a.spawn('sleep', ['60']);
  const pids = [long.pid];
  const paths = { cgroup: n.cgroupRoot, pin: n.pinDir, state: n.stateDir };
  await n.destroy();
  node = undefined;
  for (const pid of pids) t.notOk(existsSync(`/proc/${pid}/status`) && readFileSync(`/proc/${pid}/status`, 'utf8').match(/^State:\s+[^Z]/m), `process ${pid} gone`);
  t.notOk(existsSync(paths.cgroup), 'no cgroup dir');
  t.notOk(existsSync(paths.pin), 'no pin dir');
  t.notOk(existsSync(paths.state), 'no state dir');
  t.same((await listNetns()).filter((x) => x.startsWith(n.prefix)), [], 'no netns');
  t.same((await listLinks()).filter((x) => x.startsWith(n.prefix)), [], 'no host links');
  await n.destroy();
  t.pass('a second destroy is harmless');
});
