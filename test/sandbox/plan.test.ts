// The sandbox's pure parts: naming scheme, address plan, cgroup layout, mount parsing.
import t from 'tap';
import { canonicalAddress, hostAddress, inSubnet, parseSubnet } from '../../scripts/sandbox/addr.js';
import { bpffsMounted } from '../../scripts/sandbox/bpffs.js';
import { cgroup2Mount, cgroupLevel } from '../../scripts/sandbox/cgroup.js';
import { checkPrefix, isSandboxName, sandboxNames } from '../../scripts/sandbox/names.js';
import { podCgroupRelPath } from '../../scripts/sandbox/pod.js';

t.test('names fit in 15 characters and cleanup matches only the scheme', async (t) => {
  const n = sandboxNames('mlcdefghijk');
  for (const name of [n.nodeNetns, n.bridge, n.podNetns(250), n.podVeth(250)]) t.ok(name.length <= 15, name);
  t.throws(() => checkPrefix('ab'), /bad sandbox prefix/);
  t.throws(() => checkPrefix('mlcdefghijkl'), /bad sandbox prefix/);
  t.throws(() => checkPrefix('Mlc'), /bad sandbox prefix/);
  t.throws(() => checkPrefix('kubepods'), /bad sandbox prefix/, 'never a cgroup a real node uses');
  t.throws(() => checkPrefix('system'), /bad sandbox prefix/);
  t.throws(() => checkPrefix('a/b'), /bad sandbox prefix/);
  t.throws(() => n.podNetns(0));
  t.throws(() => n.podVeth(251));
  t.ok(isSandboxName('mlsbx', 'mlsbxnode'));
  t.ok(isSandboxName('mlsbx', 'mlsbxbr'));
  t.ok(isSandboxName('mlsbx', 'mlsbxp12'));
  t.ok(isSandboxName('mlsbx', 'mlsbxv3'));
  t.notOk(isSandboxName('mlsbx', 'mlsbx2node'), 'a longer prefix is another sandbox');
  t.notOk(isSandboxName('mlsbx', 'mlsbxpod'), 'not a name of the scheme');
  t.notOk(isSandboxName('mlsbx', 'eth0'));
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
