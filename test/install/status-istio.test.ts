// `meshlane status` beside istio-cni, without root: which node mode the pods'
// Istio rules add up to, whether the chained conflist holds istio-cni, and
// how both are shown. (The detection in a real netns: test/kernel/istio-cni.test.ts.)
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { hasIstioCniEntry, nodeMode, renderStatus, STATUS_VERSION, type PodStatus, type StatusReport } from '../../src/install/status.js';
import { upstreamFixtures } from '../helpers/paths.js';

const golden = (f: string): Uint8Array => readFileSync(join(upstreamFixtures, 'istio-install-golden', f));

t.test('the conflist: istio-cni entry or not', async (t) => {
  t.equal(hasIstioCniEntry('list-with-istio.conflist', golden('list-with-istio.conflist')), true);
  t.equal(hasIstioCniEntry('list.conflist', golden('list.conflist')), false);
  t.equal(hasIstioCniEntry('bridge.conf', golden('bridge.conf')), false);
  t.equal(hasIstioCniEntry('invalid-map.conflist', golden('invalid-map.conflist')), false);
});

t.test('node mode from the pods', async (t) => {
  const p = (istioRules: PodStatus['istioRules']): Pick<PodStatus, 'istioRules'> => ({ istioRules });
  t.equal(nodeMode([]).mode, 'no-pods');
  t.equal(nodeMode([p('present'), p('present')]).mode, 'beside-istio-cni');
  t.equal(nodeMode([p('absent')]).mode, 'alone');
  t.same(nodeMode([p('present'), p('absent'), p('unknown')]), { mode: 'mixed', podsWithIstioRules: 1, podsWithoutIstioRules: 1, podsUnknown: 1 });
  t.equal(nodeMode([p('unknown')]).mode, 'unknown');
  t.equal(nodeMode([p('present'), p('unknown')]).mode, 'beside-istio-cni');
});

t.test('rendered', async (t) => {
  const pod = (name: string, istioRules: PodStatus['istioRules'], mode: PodStatus['mode']): PodStatus => ({
    namespace: 'default', name, containerId: name, ipv4: '10.0.0.2', cgroup: '/x', cgroupId: '1', proxyUid: 1337, dnsCapture: false,
    registered: true, interception: 'includeInboundPorts=*', netns: '/var/run/netns/x', istioRules, istioRulesDetail: 'detail', mode,
  });
  const pods = [pod('a', 'present', 'ebpf+iptables'), pod('b', 'absent', 'ebpf')];
  const r: StatusReport = {
    version: STATUS_VERSION, pinDir: '/sys/fs/bpf/meshlane', cgroupRoot: '/sys/fs/cgroup', installed: true, programs: [], maps: [], pods,
    orphanCgroupIds: [], problems: [], node: nodeMode(pods), conflist: { file: '10-calico.conflist', hasEntry: true, detail: '/etc/cni/net.d/10-calico.conflist', istioCni: true },
  };
  const text = renderStatus(r);
  t.match(text, /CNI config: chained in 10-calico\.conflist after istio-cni/);
  t.match(text, /node mode: mixed .*Istio rules present in 1 of 2 pods/);
  t.match(text, /default\/a .*\n\s+mode: eBPF \+ Istio rules fallback; Istio rules present \(detail\)/);
  t.match(text, /default\/b .*\n\s+mode: eBPF only; Istio rules absent/);
});

t.test('a refused kernel: its message on the second line', async (t) => {
  const r: StatusReport = {
    version: STATUS_VERSION, pinDir: '/sys/fs/bpf/meshlane', cgroupRoot: '/sys/fs/cgroup', installed: false, programs: [], maps: [], pods: [],
    orphanCgroupIds: [], problems: [], node: nodeMode([]), kernelRefused: 'meshlane cannot run on this kernel (Linux 5.4.0): no cgroup v2',
  };
  const lines = renderStatus(r).split('\n');
  t.equal(lines[1], 'kernel: REFUSED by meshlane install: meshlane cannot run on this kernel (Linux 5.4.0): no cgroup v2');
  t.notMatch(renderStatus({ ...r, kernelRefused: undefined }), /kernel:/, 'no kernel line otherwise');
});
