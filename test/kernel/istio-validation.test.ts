// Istio's istio-validation init container, for real: every pod Istio injects
// in CNI mode runs it (uid and gid 1337) before the app may start, and it
// fails the pod when interception does not work. `mlland validate`
// (testing/tools/mlland.c) does what istio/istio
// tools/istio-iptables/pkg/validation does: listen on 127.0.0.1:15001 and
// 127.0.0.1:15006, connect from 127.0.0.1:0 to 127.0.0.6:15002 (IPv6: [::1]:0
// to [::6]:15002), pass when the accepted socket's SO_ORIGINAL_DST port is
// 15002. Under Istio's rules the connection reaches 15006 through
//   -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT
// and meshlane must do the same alone.
//
// Three pods on one sandbox node: one added by meshlane through the CNI chain
// with the annotations of an injected CNI-mode pod (the check passes, and the
// connection was meshlane's); one with Istio's basic golden restored and no
// meshlane (the check passes: the emulation agrees with Istio); and the first
// pod again after its CNI DEL (meshlane absent: the check fails).
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import t from 'tap';
import { buildTool, type Pod } from '../../testing/sandbox/node.js';
import { execPlugin, type Conflist } from '../../testing/sandbox/cni-chain.js';
import { meshlaneEntry, primaryResultOf, sandboxPodThroughChain } from '../../testing/sandbox/chain-pod.js';
import { requireRoot } from '../helpers/root.js';
import { distExe, requireBuiltExe, upstreamFixtures } from '../helpers/paths.js';
import { addPassthrough6, counters, datapathNode, delta, describe, install } from '../helpers/datapath.js';
import { applyGolden } from '../helpers/istio-golden.js';

requireRoot('the istio-validation test');
requireBuiltExe();
const { node, loc } = await datapathNode(t, 'mlkiv', 152);
const mlland = await buildTool('mlland');
await install(loc);

const native = JSON.parse(readFileSync(join(upstreamFixtures, 'pods', 'istio-sidecar-cni-native.json'), 'utf8')) as { metadata: { annotations: Record<string, string> } };
const stateDir = join(node.stateDir, 'plugin-state');
const entry = meshlaneEntry(node, { stateDir });
const list: Conflist = { cniVersion: '1.0.0', name: 'meshlane-validation-test', plugins: [entry] };

const m = await node.addPod({ name: 'meshlane' });
const i = await node.addPod({ name: 'istio' });
for (const p of [m, i]) await addPassthrough6(p); // istio-iptables puts ::6 on lo
const chained = await sandboxPodThroughChain(node, list, [entry], m, { annotations: native.metadata.annotations }, { binDirs: [dirname(distExe)], containerId: `validation${'0'.repeat(20)}` });
let deleted = false;
t.teardown(async () => {
  if (!deleted) await execPlugin('DEL', list, entry, chained.rt, primaryResultOf(m)).catch(() => undefined);
});
await applyGolden(i, 'basic.txt.golden');

/** The istio-validation container: uid and gid 1337 (the injector's runAsUser/runAsGroup). */
const VALIDATION = { uid: 1337, gid: 1337, container: 'istio-validation' } as const;

async function validate(pod: Pod, family: 4 | 6, timeoutMs: number): Promise<{ out: Record<string, unknown>; exitCode: number | undefined; text: string }> {
  const r = await pod.run(mlland, ['validate', '--family', String(family), '--timeout-ms', String(timeoutMs)], { ...VALIDATION, timeoutMs: timeoutMs + 10_000 });
  const last = r.stdout.trim().split('\n').pop() ?? '';
  let out: Record<string, unknown> = {};
  try {
    out = JSON.parse(last) as Record<string, unknown>;
  } catch {
    out = { unparsed: r.stdout };
  }
  return { out, exitCode: r.exitCode, text: describe(r) };
}

const ORIG = { 4: '127.0.0.6:15002', 6: '[::6]:15002' } as const;

for (const family of [4, 6] as const) {
  t.test(`IPv${family}: istio-validation passes in a pod meshlane added through the CNI chain, by meshlane's redirect`, async (t) => {
    const before = await counters(node);
    const v = await validate(m, family, 10_000);
    t.equal(v.exitCode, 0, v.text);
    t.equal(v.out['ok'], true);
    t.equal(v.out['listener'], 15006, 'accepted on the inbound listener');
    t.equal(v.out['orig_dst'], ORIG[family], 'SO_ORIGINAL_DST: 127.0.0.6:15002 / [::6]:15002');
    t.equal(v.out['attempts'], 1, 'at the first attempt');
    const d = delta(before, await counters(node));
    t.equal(d[`connect${family}_redirect_in`], 1, `meshlane redirected it: ${JSON.stringify(d)}`);
    t.equal(d.getsockopt_answered, 1, 'and answered SO_ORIGINAL_DST');
  });
  t.test(`IPv${family}: istio-validation passes under Istio's basic golden without meshlane (the emulation agrees with Istio)`, async (t) => {
    const before = await counters(node);
    const v = await validate(i, family, 10_000);
    t.equal(v.exitCode, 0, v.text);
    t.equal(v.out['listener'], 15006);
    t.equal(v.out['orig_dst'], ORIG[family], 'conntrack\'s answer');
    const d = delta(before, await counters(node));
    t.notOk(d[`connect${family}_redirect_in`], 'not meshlane\'s');
  });
}

t.test('after CNI DEL (meshlane absent), istio-validation fails in the same pod', async (t) => {
  await chained.del(primaryResultOf(m));
  deleted = true;
  for (const family of [4, 6] as const) {
    const v = await validate(m, family, 3000);
    t.equal(v.exitCode, 1, v.text);
    t.equal(v.out['ok'], false, `IPv${family}: ${String(v.out['error'])}`);
    t.ok(Number(v.out['attempts']) >= 2, 'it retried once a second');
  }
});
