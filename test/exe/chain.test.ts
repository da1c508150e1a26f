// meshlane chained after the real bridge + host-local plugins, run as libcni
// runs a conflist: ADD in order, DEL in reverse with the cached result, in pod
// network namespaces of a sandbox node (the bridge lives in the node's netns,
// not the host's).
import { dirname, join } from 'node:path';
import t from 'tap';
import { chainAdd, chainCheck, chainDel, execPlugin, type Conflist, type Json } from '../../testing/sandbox/cni-chain.js';
import { ip } from '../../testing/sandbox/netns.js';
import { meshlaneEntry, podSandbox } from '../../testing/sandbox/chain-pod.js';
import { createNode, type SandboxNode } from '../../testing/sandbox/node.js';
import { cniPluginDir, requireBuiltExe } from '../helpers/paths.js';
import { requireRoot } from '../helpers/root.js';

requireRoot('the CNI chain test');
const exe = requireBuiltExe();
let node: SandboxNode | undefined;
t.teardown(() => node?.destroy());
node = await createNode({ prefix: 'mltch', ipv4Subnet: '10.213.6.0/24', ipv6Subnet: 'fd00:213:6::/64' });
const n = node;
const state = n.stateDir;

// Debian's bridge plugin speaks up to 1.0.0; 1.1.0 is covered by test/exe/plugin-protocol.test.ts.
for (const cniVersion of ['0.3.1', '0.4.0', '1.0.0']) {
  t.test(`bridge + host-local + meshlane at ${cniVersion}`, async (t) => {
    const nsName = n.names.extra(`c${cniVersion.replace(/\./g, '')}`);
    const bridge = n.names.extra(`b${cniVersion.replace(/\./g, '')}`);
    const list: Conflist = {
      cniVersion,
      name: 'meshlane-chain-test',
      plugins: [
        {
          type: 'bridge',
          bridge,
          isGateway: false,
          ipMasq: false,
          ipam: {
            type: 'host-local',
            ranges: [[{ subnet: '10.213.7.0/24' }], [{ subnet: 'fd00:213:7::/64' }]],
            dataDir: join(state, `ipam-${cniVersion}`),
          },
        },
        meshlaneEntry(n, { stateDir: join(state, 'meshlane-state'), logFile: join(state, 'meshlane.log') }),
      ],
    };
    // A pod without Istio's annotations: meshlane hands the result on and registers nothing.
    const { rt } = await podSandbox(n, { namespace: 'default', name: 'chain-test', uid: '11111111-2222-3333-4444-555555555555', annotations: { app: 'chain-test' } }, `c${cniVersion.replace(/\./g, '')}`, {
      binDirs: [dirname(exe), cniPluginDir],
      containerId: `chain${cniVersion.replace(/\./g, '')}`,
      makeCgroup: false,
    });

    const bridgeOnly: Conflist = { ...list, plugins: [list.plugins[0] as Json] };
    const fromBridge = await chainAdd(bridgeOnly, rt);
    const cached = (await execPlugin('ADD', list, list.plugins[1] as Json, rt, fromBridge)) as Json;
    t.same(cached, fromBridge, 'meshlane hands on exactly what bridge returned');
    t.equal(cached['cniVersion'], cniVersion, 'the result is in the list version');
    const ips = cached['ips'] as Json[];
    t.same(ips.map((i) => (String(i['address']).includes(':') ? 6 : 4)), [4, 6], 'an IPv4 and an IPv6 address');
    const addrs = await ip(['-n', nsName, '-o', 'addr', 'show', 'dev', 'eth0']);
    t.match(addrs, /10\.213\.7\.\d+\/24/, 'bridge really configured the pod interface');

    if (cniVersion !== '0.3.1') await chainCheck(list, rt, cached); // CHECK exists from 0.4.0

    await chainDel(list, rt, cached);
    // containerd sends a second DEL without prevResult when the sandbox is removed.
    await execPlugin('DEL', list, list.plugins[1] as Json, { ...rt, netns: '' }, undefined);
    await ip(['netns', 'del', nsName]);
    await n.ip(['link', 'del', bridge]).catch(() => undefined);
  });
}
