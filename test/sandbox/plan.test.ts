// The sandbox's pure parts: naming scheme, address plan, cgroup layout, mount parsing.
import t from 'tap';
import { canonicalAddress, hostAddress, inSubnet, parseSubnet } from '../../testing/sandbox/addr.js';
import { bpffsMounted } from '../../testing/sandbox/bpffs.js';
import { cgroup2Mount, cgroupLevel } from '../../testing/sandbox/cgroup.js';
import { checkFilePrefix, checkPrefix, isSandboxName, runPrefixOf, sandboxNames } from '../../testing/sandbox/names.js';
import { leaseOwnerAlive, parseLease, processStart } from '../../testing/sandbox/runs.js';
import { podCgroupRelPath } from '../../testing/sandbox/pod.js';

t.test('names fit in 15 characters and cleanup matches only the scheme', async (t) => {
  const n = sandboxNames('mlcdefgh');
  for (const name of [n.nodeNetns, n.bridge, n.podNetns(250), n.podVeth(250), n.extra('abcdef')]) t.ok(name.length <= 15, name);
  t.throws(() => checkPrefix('ab'), /bad sandbox prefix/);
  t.throws(() => checkPrefix('mlcdefghi'), /bad sandbox prefix/, 'a run prefix is 8 characters');
  t.throws(() => checkFilePrefix('mlcdef'), /bad sandbox prefix/, 'a file prefix is 5');
  t.throws(() => checkPrefix('Mlcdefgh'), /bad sandbox prefix/);
  t.throws(() => checkPrefix('kubepods'), /bad sandbox prefix/, 'never a cgroup a real node uses');
  t.throws(() => checkPrefix('system'), /bad sandbox prefix/);
  t.throws(() => checkPrefix('a/b'), /bad sandbox prefix/);
  t.throws(() => n.podNetns(0));
  t.throws(() => n.podVeth(251));
  t.throws(() => n.extra('toolong7'));
  t.ok(isSandboxName('mlsbx123', 'mlsbx123node'));
  t.ok(isSandboxName('mlsbx123', 'mlsbx123br'));
  t.ok(isSandboxName('mlsbx123', 'mlsbx123p12'));
  t.ok(isSandboxName('mlsbx123', 'mlsbx123v3'));
  t.ok(isSandboxName('mlsbx123', 'mlsbx123xc1'), 'an extra name of the test');
  t.notOk(isSandboxName('mlsbx123', 'mlsbx1234node'), 'a longer prefix is another sandbox');
  t.notOk(isSandboxName('mlsbx123', 'mlsbx123pod'), 'not a name of the scheme');
  t.notOk(isSandboxName('mlsbx123', 'eth0'));
  t.equal(runPrefixOf('mlsbx', 'mlsbx123p4'), 'mlsbx123', 'a name gives its run prefix');
  t.equal(runPrefixOf('mlsbx', 'mlsbx123'), 'mlsbx123', 'a cgroup or pin dir is the run prefix itself');
  t.equal(runPrefixOf('mlsbx', 'mlsbx123keep'), undefined, 'not of the scheme');
  t.equal(runPrefixOf('mlsbx', 'mlsby123node'), undefined, 'another file prefix');
});

t.test('run leases: an owner is alive only with its pid and start time', async (t) => {
  const start = (pid: number): string | undefined => (pid === 42 ? '1000' : undefined);
  t.ok(leaseOwnerAlive({ pid: 42, start: '1000' }, start));
  t.notOk(leaseOwnerAlive({ pid: 42, start: '999' }, start), 'a reused pid is another process');
  t.notOk(leaseOwnerAlive({ pid: 43, start: '1000' }, start), 'no such process');
  t.same(parseLease('{"pid":42,"start":"1000"}'), { pid: 42, start: '1000' });
  t.equal(parseLease(''), undefined, 'a lease being written is not parsed');
  t.equal(parseLease('{"pid":"42"}'), undefined);
  t.equal(processStart(process.pid) !== undefined, true, 'this process has a start time');
});

t.test('address plan', async (t) => {
  const s4 = parseSubnet('10.213.100.0/24');
  const s6 = parseSubnet('fd00:213:100::/64');
  t.equal(hostAddress(s4, 1), '10.213.100.1');
  t.equal(hostAddress(s4, 2), '10.213.100.2');
  t.equal(hostAddress(s4, 254), '10.213.100.254');
  t.throws(() => hostAddress(s4, 255), /does not fit/);
  t.throws(() => hostAddress(s4, 0), /does not fit/);
  t.equal(hostAddress(s6, 1), 'fd00:213:100::1');
  t.equal(hostAddress(s6, 300), 'fd00:213:100::12c');
  t.ok(inSubnet(s4, '10.213.100.7'));
  t.notOk(inSubnet(s4, '10.213.101.7'));
  t.notOk(inSubnet(s4, 'fd00:213:100::7'));
  t.ok(inSubnet(s6, 'fd00:213:100:0:0:0:0:7'));
  t.notOk(inSubnet(s6, 'fd00:213:101::7'));
  t.equal(canonicalAddress('FD00:0213:0100:0000:0000:0000:0000:0002'), 'fd00:213:100::2');
  t.throws(() => parseSubnet('10.213.100.1/24'), /host bits/);
  t.throws(() => parseSubnet('10.213.100.0/31'), /bad subnet/);
  t.throws(() => parseSubnet('nonsense'), /bad subnet/);
});

t.test('pod cgroups are laid out like kubelet (cgroupfs driver)', async (t) => {
  t.equal(podCgroupRelPath('besteffort', 'u1'), 'kubepods/besteffort/podu1');
  t.equal(podCgroupRelPath('burstable', 'u1'), 'kubepods/burstable/podu1');
  t.equal(podCgroupRelPath('guaranteed', 'u1'), 'kubepods/podu1');
  t.equal(cgroupLevel('/sys/fs/cgroup', '/sys/fs/cgroup'), 0);
  t.equal(cgroupLevel('/sys/fs/cgroup/unified', '/sys/fs/cgroup/unified/x/kubepods/besteffort/podu1'), 4);
  t.throws(() => cgroupLevel('/sys/fs/cgroup/unified', '/sys/fs/cgroup/memory'), /not below/);
});

t.test('the cgroup2 and bpffs mounts are read from /proc/mounts, never assumed', async (t) => {
  const hybrid = [
    'tmpfs /sys/fs/cgroup tmpfs rw 0 0',
    'cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0',
    'cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0',
    'bpf /sys/fs/bpf bpf rw 0 0',
  ].join('\n');
  t.equal(cgroup2Mount(hybrid), '/sys/fs/cgroup/unified');
  t.equal(cgroup2Mount('cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n'), '/sys/fs/cgroup');
  t.equal(cgroup2Mount('none /mnt/with\\040space cgroup2 rw 0 0\n'), '/mnt/with space');
  t.throws(() => cgroup2Mount('tmpfs /sys/fs/cgroup tmpfs rw 0 0\n'), /no cgroup2 mount/);
  t.ok(bpffsMounted('/sys/fs/bpf', hybrid));
  t.notOk(bpffsMounted('/sys/fs/bpf', 'tmpfs /sys/fs/bpf tmpfs rw 0 0\n'));
});
