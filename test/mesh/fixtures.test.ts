// Every pod in testing/fixtures/pods through both sources, against what the
// fixtures' README says istio-cni does with it.
import t from 'tap';
import { readFileSync, readdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { upstreamFixtures } from '../helpers/paths.js';
import {
  decideSidecar,
  dnsCapture,
  interceptionFromAnnotations,
  podInfoFromAnnotations,
  podInfoFromObject,
  proxyIdentity,
  type SidecarDecision,
} from '../../src/mesh/index.js';
import { encodePodConfig } from '../../src/bpf/pod-config.js';

const podsDir = resolve(upstreamFixtures, 'pods');
const opts = { excludeNamespaces: ['kube-system'] };

interface Expect {
  meshed: boolean;
  reason?: RegExp;
  /** the annotations-only reason, when it differs */
  annotationsReason?: RegExp;
}

// From testing/fixtures/README.md ("pods/").
const expected: Record<string, Expect> = {
  'istio-sidecar-cni-native.json': { meshed: true },
  'istio-sidecar-classic.json': { meshed: false, reason: /istio-init/ },
  'istio-traffic-annotations.json': { meshed: false, reason: /istio-init/ },
  'istio-inject-disabled.json': { meshed: false, reason: /no istio-proxy/, annotationsReason: /no sidecar\.istio\.io\/status/ },
  'istio-gateway.json': { meshed: false, reason: /proxy router.*gateway|gateway/ },
  'linkerd-vote-bot.json': { meshed: false, reason: /no istio-proxy/, annotationsReason: /no sidecar\.istio\.io\/status/ },
  'kuma-busybox.json': { meshed: false, reason: /no istio-proxy/, annotationsReason: /no sidecar\.istio\.io\/status/ },
};

const files = readdirSync(podsDir).filter((f) => f.endsWith('.json')).sort();
t.ok(files.length >= 7, 'the fixture pods are there');
t.same(files, Object.keys(expected).sort(), 'every fixture pod has an expectation (add one for a new fixture)');

const verdict = (d: SidecarDecision): boolean | 'unknown' => d.meshed;

for (const file of files) {
  t.test(file, async (t) => {
    const obj: unknown = JSON.parse(readFileSync(resolve(podsDir, file), 'utf8'));
    const exp = expected[file];
    if (!exp) return t.fail(`no expectation for ${file}`);

    const fromApi = podInfoFromObject(obj);
    const raw = (obj as { metadata: { annotations?: Record<string, unknown> } }).metadata.annotations ?? {};
    const fromAnn = podInfoFromAnnotations(fromApi.namespace, fromApi.name, raw);
    t.same({ ...fromAnn.annotations }, { ...fromApi.annotations }, 'both sources see the same annotations');
    t.equal(fromAnn.containers, undefined, 'containers are unknown from annotations');

    const api = decideSidecar(fromApi, opts);
    const ann = decideSidecar(fromAnn, opts);
    t.equal(verdict(api), exp.meshed, `from the API: ${JSON.stringify(api)}`);
    t.equal(verdict(ann), exp.meshed, `from the annotations alone (they decide every fixture): ${JSON.stringify(ann)}`);
    if (api.meshed === false && exp.reason) t.match(api.reason, exp.reason);
    if (ann.meshed === false) t.match(ann.reason, exp.annotationsReason ?? exp.reason ?? /./);

    // In an excluded namespace nothing is meshed, from either source.
    const ex = { excludeNamespaces: [fromApi.namespace] };
    t.equal(decideSidecar(fromApi, ex).meshed, false);
    t.equal(decideSidecar(fromAnn, ex).meshed, false);
    t.match(decideSidecar(fromAnn, ex), { reason: /excluded/ });

    // Every fixture's annotations parse and fit the maps.
    const cfg = interceptionFromAnnotations(fromApi.annotations);
    t.doesNotThrow(() => encodePodConfig(cfg));
    t.same(interceptionFromAnnotations(fromAnn.annotations), cfg, 'same config from both sources');
    t.same(proxyIdentity(fromApi), { uid: 1337, gid: 1337 });
    t.same(proxyIdentity(fromAnn), { uid: 1337, gid: 1337 });
    t.equal(dnsCapture(fromApi, false), false);
    t.equal(dnsCapture(fromApi, true), true, 'no DNS capture setting: the default');
  });
}

t.test('the native CNI sidecar: what istio-cni would program', async (t) => {
  const pod = podInfoFromObject(JSON.parse(readFileSync(resolve(podsDir, 'istio-sidecar-cni-native.json'), 'utf8')));
  t.equal(pod.namespace, 'default');
  t.equal(pod.uid !== undefined, true);
  t.same(
    pod.initContainers?.map((c) => c.name),
    ['istio-validation', 'istio-proxy'],
  );
  t.same(pod.initContainers?.[1]?.args?.slice(0, 2), ['proxy', 'sidecar']);
  t.same(interceptionFromAnnotations(pod.annotations), {
    includeInboundPorts: '*',
    // the injector wrote "15020" (its status port); istio-cni appends 15020,15021,15090
    excludeInboundPorts: [15020, 15021, 15090],
    includeOutboundPorts: [],
    // istio-cni's default when the annotation is absent
    excludeOutboundPorts: [15020],
    includeOutboundCidrs: '*',
    excludeOutboundCidrs: [],
    statusPort: 15021,
  });
});

t.test('the traffic-annotations pod: every traffic annotation parsed as istio-iptables reads it', async (t) => {
  const obj = JSON.parse(readFileSync(resolve(podsDir, 'istio-traffic-annotations.json'), 'utf8')) as {
    spec: { initContainers: { name: string; args: string[] }[] };
  };
  const pod = podInfoFromObject(obj);
  const cfg = interceptionFromAnnotations(pod.annotations);
  t.same(cfg, {
    includeInboundPorts: [1, 2, 3],
    excludeInboundPorts: [4, 5, 6, 15020, 15021, 15090],
    includeOutboundPorts: [],
    excludeOutboundPorts: [7, 8, 9],
    // istio-iptables masks each range (net.ParseCIDR): 127.0.0.1/24 is 127.0.0.0/24
    includeOutboundCidrs: ['127.0.0.0/24', '10.96.0.0/24'],
    // 10.96.0.2/24 and 10.96.0.3/24 are the same network
    excludeOutboundCidrs: ['10.96.0.0/24'],
    statusPort: 15021,
  });
  // The istio-init the injector wrote for the same annotations (iptables mode) agrees.
  const args = obj.spec.initContainers.find((c) => c.name === 'istio-init')?.args ?? [];
  const flag = (f: string): string => args[args.indexOf(f) + 1] ?? '';
  t.same(new Set(flag('-d').split(',').map(Number)), new Set(cfg.excludeInboundPorts), '-d (exclude inbound)');
  t.same(flag('-b').split(',').map(Number), cfg.includeInboundPorts, '-b (include inbound)');
  t.same(flag('-o').split(',').map(Number), cfg.excludeOutboundPorts, '-o (exclude outbound)');
  t.equal(flag('-i'), '127.0.0.1/24,10.96.0.1/24', '-i (include ranges) as written');
});
