// The iptables rules istio-cni writes (its own goldens, cni/pkg/plugin/testdata)
// read back into what they capture, against meshlane's config for the same pod.
// The pods are those of istio-cni's plugin_dryrun_test.go: containers test,
// istio-proxy, istio-validate; status annotation "true".
import t from 'tap';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { upstreamFixtures } from '../helpers/paths.js';
import {
  ANNOTATIONS as A,
  AnnotationError,
  decideSidecar,
  dnsCapture,
  interceptionFromAnnotations,
  podInfoFromAnnotations,
  podInfoFromObject,
  proxyIdentity,
  type PodInfo,
} from '../../src/mesh/index.js';
import type { InterceptionConfig } from '../../src/bpf/pod-config.js';

const goldenDir = resolve(upstreamFixtures, 'istio-plugin-iptables-golden');

interface Captured {
  inbound: { all: boolean; include: number[]; exclude: number[] };
  outbound: { all: boolean; includeCidrs: string[]; excludeCidrs: string[]; includePorts: number[]; excludePorts: number[] };
  uid: number[];
  gid: number[];
  dns: boolean;
}

/** What the nat table of a golden captures (the fixed parts — 15008, 127.0.0.6, loopback — left out). */
function readGolden(file: string): Captured {
  const text = readFileSync(resolve(goldenDir, file), 'utf8');
  const nat = text.split('* nat')[1]?.split('COMMIT')[0] ?? '';
  const c: Captured = {
    inbound: { all: false, include: [], exclude: [] },
    outbound: { all: false, includeCidrs: [], excludeCidrs: [], includePorts: [], excludePorts: [] },
    uid: [],
    gid: [],
    dns: /ISTIO_OUTPUT_DNS/.test(text),
  };
  const add = (list: number[], v: number) => {
    if (!list.includes(v)) list.push(v);
  };
  for (const line of nat.split('\n')) {
    let m: RegExpExecArray | null;
    if ((m = /^-A ISTIO_INBOUND -p tcp --dport (\d+) -j RETURN$/.exec(line)) && m[1] !== '15008') add(c.inbound.exclude, Number(m[1]));
    else if ((m = /^-A ISTIO_INBOUND -p tcp --dport (\d+) -j ISTIO_IN_REDIRECT$/.exec(line))) add(c.inbound.include, Number(m[1]));
    else if (line === '-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT') c.inbound.all = true;
    else if ((m = /^-A ISTIO_OUTPUT -p (?:tcp|udp) --dport (\d+) -j RETURN$/.exec(line))) add(c.outbound.excludePorts, Number(m[1]));
    else if ((m = /^-A ISTIO_OUTPUT -p tcp --dport (\d+) -j ISTIO_REDIRECT$/.exec(line))) add(c.outbound.includePorts, Number(m[1]));
    else if ((m = /^-A ISTIO_OUTPUT -d (\S+) -j RETURN$/.exec(line)) && m[1] !== '127.0.0.1/32') c.outbound.excludeCidrs.push(m[1] ?? '');
    else if ((m = /^-A ISTIO_OUTPUT -d (\S+) -j ISTIO_REDIRECT$/.exec(line))) c.outbound.includeCidrs.push(m[1] ?? '');
    else if (line === '-A ISTIO_OUTPUT -j ISTIO_REDIRECT') c.outbound.all = true;
    if ((m = /--uid-owner (\d+)/.exec(line))) add(c.uid, Number(m[1]));
    if ((m = /--gid-owner (\d+)/.exec(line))) add(c.gid, Number(m[1]));
  }
  return c;
}

/** The same view of meshlane's config (what the datapath captures, docs in bpf/lib/policy.h). */
function fromConfig(cfg: InterceptionConfig, id: { uid: number; gid: number }, dns: boolean): Captured {
  const inAll = cfg.includeInboundPorts === '*';
  return {
    inbound: { all: inAll, include: inAll ? [] : [...(cfg.includeInboundPorts as number[])], exclude: inAll ? [...cfg.excludeInboundPorts] : [] },
    outbound: {
      all: cfg.includeOutboundCidrs === '*',
      includeCidrs: cfg.includeOutboundCidrs === '*' ? [] : [...cfg.includeOutboundCidrs],
      excludeCidrs: cfg.excludeOutboundCidrs === '*' ? ['*'] : [...cfg.excludeOutboundCidrs],
      includePorts: [...cfg.includeOutboundPorts],
      excludePorts: [...cfg.excludeOutboundPorts],
    },
    uid: [id.uid],
    gid: [id.gid],
    dns,
  };
}

/** A pod as istio-cni's dry-run test makes it. */
function testPod(annotations: Record<string, string>, proxy: { runAsUser?: number; runAsGroup?: number; env?: Record<string, string> } = {}): PodInfo {
  const sc: Record<string, number> = {};
  if (proxy.runAsUser !== undefined) sc['runAsUser'] = proxy.runAsUser;
  if (proxy.runAsGroup !== undefined) sc['runAsGroup'] = proxy.runAsGroup;
  return podInfoFromObject({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { namespace: 'istio-system', name: 'testPodName', annotations: { 'sidecar.istio.io/status': 'true', ...annotations } },
    spec: {
      containers: [
        { name: 'test' },
        {
          name: 'istio-proxy',
          args: ['proxy', 'sidecar'],
          securityContext: sc,
          env: Object.entries(proxy.env ?? {}).map(([name, value]) => ({ name, value })),
        },
        { name: 'istio-validate' },
      ],
    },
  });
}

const cases: { golden: string; annotations?: Record<string, string>; proxy?: Parameters<typeof testPod>[1] }[] = [
  { golden: 'basic.txt.golden' },
  { golden: 'include-exclude-ip.txt.golden', annotations: { [A.includeOutboundIPRanges]: '127.0.0.0/8', [A.excludeOutboundIPRanges]: '10.0.0.0/8' } },
  {
    golden: 'include-exclude-ports.txt.golden',
    annotations: { [A.includeInboundPorts]: '1111,2222', [A.excludeInboundPorts]: '3333,4444', [A.excludeOutboundPorts]: '5555,6666' },
  },
  { golden: 'dns.txt.golden', proxy: { env: { ISTIO_META_DNS_CAPTURE: 'true' } } },
  { golden: 'invalid-drop.txt.golden', proxy: { env: { INVALID_DROP: 'true' } } },
  { golden: 'custom-uid.txt.golden', proxy: { runAsUser: 1000670000, runAsGroup: 1000670001 } },
  // custom-uid-zero: uid 0 gives the basic rules (1337).
  { golden: 'basic.txt.golden', proxy: { runAsUser: 0 } },
];

for (const c of cases) {
  t.test(`${c.golden} ${JSON.stringify(c.annotations ?? {})} ${JSON.stringify(c.proxy ?? {})}`, async (t) => {
    const pod = testPod(c.annotations ?? {}, c.proxy);
    t.same(decideSidecar(pod, { excludeNamespaces: [] }), { meshed: true }, 'istio-cni programs this pod');
    // With only annotations, the status "true" is not the injector's JSON: the API must decide.
    t.equal(decideSidecar(podInfoFromAnnotations(pod.namespace, pod.name, pod.annotations), { excludeNamespaces: [] }).meshed, 'unknown');
    const want = readGolden(c.golden);
    const got = fromConfig(interceptionFromAnnotations(pod.annotations), proxyIdentity(pod), dnsCapture(pod, false));
    // The datapath leaves 15020/15021/15090 alone in any case; istio-cni lists them as excluded.
    t.same(got, want);
  });
}

t.test('the goldens say what the fixtures README says', async (t) => {
  const ports = readGolden('include-exclude-ports.txt.golden');
  t.same(ports.inbound, { all: false, include: [1111, 2222], exclude: [] }, 'excludeInboundPorts applies only with includeInboundPorts "*"');
  t.same(ports.outbound.excludePorts, [5555, 6666], 'the annotation replaces the default 15020');
  const ip = readGolden('include-exclude-ip.txt.golden');
  t.same([ip.outbound.includeCidrs, ip.outbound.excludeCidrs], [['127.0.0.0/8'], ['10.0.0.0/8']]);
  t.same([readGolden('custom-uid.txt.golden').uid, readGolden('custom-uid.txt.golden').gid], [[1000670000], [1000670001]]);
  t.same(readGolden('basic.txt.golden').outbound.excludePorts, [15020], "istio-cni's default excludeOutboundPorts");
  t.same(readGolden('basic.txt.golden').inbound.exclude, [15020, 15021, 15090]);
});

t.test('tproxy goldens: meshlane refuses TPROXY until it supports it', async (t) => {
  t.match(readFileSync(resolve(goldenDir, 'tproxy.txt.golden'), 'utf8'), /TPROXY/);
  const pod = testPod({ [A.interceptionMode]: 'TPROXY' }, { runAsUser: 1000670000, runAsGroup: 1000670001 });
  t.throws(() => interceptionFromAnnotations(pod.annotations), AnnotationError);
  t.same(proxyIdentity(pod), { uid: 1000670000, gid: 1000670001 }, 'custom-uid-tproxy identity');
});
