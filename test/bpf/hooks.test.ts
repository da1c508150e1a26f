// Which cgroup hooks a loaded datapath must hold, and which ones are wrong:
// the compat build's ml_sock_create counts only where it is pinned.
import t from 'tap';
import { CGROUP_PROGRAMS, COMPAT_CGROUP_PROGRAMS, hooksOfLoaded, wrongHooks } from '../../src/bpf/names.js';

const main = CGROUP_PROGRAMS.map((p) => p.name);
const compat = [...main, ...COMPAT_CGROUP_PROGRAMS.map((p) => p.name)];
const oneEach = (names: readonly string[]) => [...CGROUP_PROGRAMS, ...COMPAT_CGROUP_PROGRAMS].filter((p) => names.includes(p.name)).map((p) => ({ attach_type: p.shownAs }));

t.test('the compat hooks count only where the compat build is pinned', async (t) => {
  t.same(hooksOfLoaded(main).map((p) => p.name), main);
  t.same(hooksOfLoaded(compat).map((p) => p.name), compat);
  t.same(hooksOfLoaded([]).map((p) => p.name), main, 'nothing pinned: the hooks every build has');
});

t.test('wrong hooks: missing, doubled, and the compat one', async (t) => {
  t.same(wrongHooks(main, oneEach(main)), []);
  t.same(wrongHooks(compat, oneEach(compat)), []);
  t.same(wrongHooks(compat, oneEach(main)), ['sock_create: 0'], 'the compat build loaded, its sock_create hook empty');
  t.same(wrongHooks(main, oneEach(main).filter((a) => a.attach_type !== 'cgroup_inet4_connect')), ['connect4: 0']);
  t.same(wrongHooks(main, [...oneEach(main), { attach_type: 'cgroup_sock_ops' }]), ['sock_ops: 2']);
  t.same(wrongHooks(main, []).length, CGROUP_PROGRAMS.length, 'nothing attached: every hook');
});
