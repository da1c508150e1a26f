// The kernel verdict from injected probe results (no kernel needed): a kernel
// with everything passes; each kind of gap is refused with one message that
// names the kernel and what is missing; optional features never refuse.
import t from 'tap';
import { HELPER, MAP_NEEDS, OPTIONAL_NEEDS, PROGRAM_NEEDS, helperKey, judgeKernel, type KernelFeatures, type Probed } from '../../src/bpf/kernel-probe.js';

const OK: Probed = { ok: true };

/** A 5.10-like kernel: every floor feature there, the optional ones absent. */
function kernel510(): KernelFeatures {
  const f: KernelFeatures = { release: '5.10.0-46-amd64', bpf: OK, cgroup2: { ok: true, dir: '/sys/fs/cgroup' }, programs: {}, helpers: {}, maps: {}, optional: {} };
  for (const n of PROGRAM_NEEDS) {
    f.programs[n.section] = OK;
    for (const h of n.helpers) f.helpers[helperKey(n.section, h)] = OK;
  }
  for (const m of MAP_NEEDS) f.maps[m.name] = OK;
  for (const o of OPTIONAL_NEEDS) f.optional[o.name] = { ok: false, why: 'missing', detail: `unknown func bpf_${o.helper}#${HELPER[o.helper]}` };
  return f;
}

t.test('the floor passes; optional features missing are reported, not refused', async (t) => {
  const v = judgeKernel(kernel510());
  t.equal(v.ok, true);
  t.equal(v.message, '');
  t.same(v.missing, []);
  t.equal(v.without.length, OPTIONAL_NEEDS.length, 'each optional feature the kernel lacks is listed');
  t.match(v.without[0], /bpf_get_netns_cookie/);
});

t.test('a helper missing in one section: one message naming the kernel, the helper and the section', async (t) => {
  const f = kernel510();
  f.release = '5.4.0-150-generic';
  f.helpers[helperKey('cgroup/connect4', 'get_current_ancestor_cgroup_id')] = { ok: false, why: 'missing', detail: 'unknown func bpf_get_current_ancestor_cgroup_id#123' };
  f.helpers[helperKey('cgroup/connect4', 'get_socket_cookie')] = { ok: false, why: 'missing', detail: 'unknown func bpf_get_socket_cookie#46' };
  const v = judgeKernel(f);
  t.equal(v.ok, false);
  t.same(v.missing, ['no helper bpf_get_socket_cookie, bpf_get_current_ancestor_cgroup_id in cgroup/connect4 programs']);
  t.equal(
    v.message,
    'meshlane cannot run on this kernel (Linux 5.4.0-150-generic): no helper bpf_get_socket_cookie, bpf_get_current_ancestor_cgroup_id in cgroup/connect4 programs. meshlane needs Linux 5.10 or later',
  );
  t.notMatch(v.message, /\n/, 'one line');
  t.same(v.without, [], 'a refused kernel lists no optional features');
});

t.test('a program type or attach type the kernel does not know', async (t) => {
  const f = kernel510();
  f.release = '5.2.0';
  f.programs['cgroup/getsockopt'] = { ok: false, why: 'missing', detail: 'EINVAL: invalid argument' };
  f.maps['sockhash'] = { ok: false, why: 'missing', detail: 'EINVAL: invalid argument' };
  const v = judgeKernel(f);
  t.equal(v.ok, false);
  t.same(v.missing, ['no cgroup/getsockopt programs (EINVAL: invalid argument)', 'no sockhash maps (EINVAL: invalid argument)']);
  t.match(v.message, /^meshlane cannot run on this kernel \(Linux 5\.2\.0\): no cgroup\/getsockopt programs .*; no sockhash maps .*meshlane needs Linux 5\.10 or later$/);
});

t.test('no cgroup v2: named with the reason, without the version hint', async (t) => {
  const f = kernel510();
  f.release = '6.1.0-57-amd64';
  f.cgroup2 = { ok: false, why: 'missing', detail: 'no cgroup2 mount in /proc/mounts; mount it, or pass --cgroup-root' };
  const v = judgeKernel(f);
  t.equal(v.message, 'meshlane cannot run on this kernel (Linux 6.1.0-57-amd64): no cgroup v2 (no cgroup2 mount in /proc/mounts; mount it, or pass --cgroup-root)');
});

t.test('BPF not permitted: the capability hint, and nothing else probed is blamed', async (t) => {
  const f: KernelFeatures = { release: '6.12.118+deb12-amd64', bpf: { ok: false, why: 'denied', detail: 'EPERM: operation not permitted' }, cgroup2: { ok: true, dir: '/sys/fs/cgroup' }, programs: {}, helpers: {}, maps: {}, optional: {} };
  const v = judgeKernel(f);
  t.same(v.missing, ['BPF not permitted (EPERM: operation not permitted)']);
  t.equal(v.message, 'meshlane cannot run on this kernel (Linux 6.12.118+deb12-amd64): BPF not permitted (EPERM: operation not permitted). The installer needs CAP_SYS_ADMIN (or CAP_BPF and CAP_NET_ADMIN), and before Linux 5.11 CAP_SYS_RESOURCE or a large enough RLIMIT_MEMLOCK');
});

t.test('a program type denied (CAP_BPF without CAP_NET_ADMIN) and a kernel without bpf(2)', async (t) => {
  const f = kernel510();
  f.programs['tc'] = { ok: false, why: 'denied', detail: 'EPERM: operation not permitted' };
  t.same(judgeKernel(f).missing, ['tc programs not permitted (EPERM: operation not permitted)']);
  const g: KernelFeatures = { ...kernel510(), bpf: { ok: false, why: 'missing', detail: 'the kernel has no bpf system call (CONFIG_BPF_SYSCALL)' } };
  t.same(judgeKernel(g).missing, ['no BPF (the kernel has no bpf system call (CONFIG_BPF_SYSCALL))']);
});

t.test('a result that was never probed counts as missing, never as there', async (t) => {
  const f = kernel510();
  delete f.programs['sk_msg'];
  delete f.helpers[helperKey('tc', 'l4_csum_replace')];
  const v = judgeKernel(f);
  t.equal(v.ok, false);
  t.same(v.missing, ['sk_msg programs: not probed', 'helper bpf_l4_csum_replace in tc programs: not probed']);
});
