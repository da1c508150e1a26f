// istio-cni's pod rules, one at a time, from the API and from the annotations alone.
import t from 'tap';
import { decideSidecar, parseSidecarStatus, podInfoFromAnnotations, podInfoFromObject, type PodInfo } from '../../src/mesh/index.js';

const opts = { excludeNamespaces: ['kube-system', 'istio-system'] };
const NATIVE = JSON.stringify({ initContainers: ['istio-validation', 'istio-proxy'], containers: null, volumes: ['x'], imagePullSecrets: null, revision: 'default' });
const CLASSIC_CNI = JSON.stringify({ initContainers: ['istio-validation'], containers: ['istio-proxy'] });
const IPTABLES = JSON.stringify({ initContainers: ['istio-init'], containers: ['istio-proxy'] });
const GATEWAY = JSON.stringify({ initContainers: null, containers: ['istio-proxy'] });

interface C {
  name: string;
  args?: string[];
  env?: { name: string; value?: string }[];
}
function apiPod(o: { ns?: string; annotations?: Record<string, string>; labels?: Record<string, string>; containers?: C[]; init?: C[] }): PodInfo {
  return podInfoFromObject({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { namespace: o.ns ?? 'default', name: 'p', annotations: o.annotations ?? {}, labels: o.labels ?? {} },
    spec: { containers: o.containers ?? [{ name: 'app' }], initContainers: o.init ?? [] },
  });
}
const annPod = (a: Record<string, string>, ns = 'default') => podInfoFromAnnotations(ns, 'p', a);
const sidecar: C = { name: 'istio-proxy', args: ['proxy', 'sidecar', '--domain', 'x'] };
const validation: C = { name: 'istio-validation', args: ['istio-iptables', '--run-validation'] };

t.test('from the API: each rule of istio-cni', async (t) => {
  const status = { 'sidecar.istio.io/status': NATIVE };
  const cases: [string, Parameters<typeof apiPod>[0], boolean, RegExp?][] = [
    ['native sidecar', { annotations: status, init: [validation, sidecar] }, true],
    ['regular sidecar container', { annotations: status, init: [validation], containers: [{ name: 'app' }, sidecar] }, true],
    ['status "true" (istio-cni does not parse it)', { annotations: { 'sidecar.istio.io/status': 'true' }, containers: [sidecar] }, true],
    ['status malformed JSON', { annotations: { 'sidecar.istio.io/status': '{nope' }, containers: [sidecar] }, true],
    ['status ""', { annotations: { 'sidecar.istio.io/status': '' }, containers: [sidecar] }, true],
    ['excluded namespace', { ns: 'kube-system', annotations: status, containers: [sidecar] }, false, /excluded/],
    ['no status', { containers: [sidecar] }, false, /no sidecar\.istio\.io\/status/],
    ['istio-init init container', { annotations: status, init: [{ name: 'istio-init' }], containers: [sidecar] }, false, /istio-init/],
    ['istio-init as a regular container', { annotations: status, containers: [sidecar, { name: 'istio-init' }] }, false, /istio-init/],
    ['no istio-proxy', { annotations: status, containers: [{ name: 'app' }] }, false, /no istio-proxy/],
    ['istio-proxy spelled otherwise', { annotations: status, containers: [{ name: 'Istio-Proxy' }] }, false, /no istio-proxy/],
    ['gateway: proxy router', { annotations: status, containers: [{ name: 'istio-proxy', args: ['proxy', 'router'] }] }, false, /proxy router/],
    ['proxy <other type>', { annotations: status, containers: [{ name: 'istio-proxy', args: ['proxy', 'waypoint'] }] }, false, /proxy waypoint/],
    ['no args: a sidecar', { annotations: status, containers: [{ name: 'istio-proxy' }] }, true],
    ['one arg: a sidecar', { annotations: status, containers: [{ name: 'istio-proxy', args: ['proxy'] }] }, true],
    ['first arg not proxy: a sidecar', { annotations: status, containers: [{ name: 'istio-proxy', args: ['run', 'router'] }] }, true],
    ['proxy "" type: a sidecar', { annotations: status, containers: [{ name: 'istio-proxy', args: ['proxy', ''] }] }, true],
    ['DISABLE_ENVOY=true', { annotations: status, containers: [{ ...sidecar, env: [{ name: 'DISABLE_ENVOY', value: 'true' }] }] }, false, /DISABLE_ENVOY/],
    ['DISABLE_ENVOY=1', { annotations: status, containers: [{ ...sidecar, env: [{ name: 'DISABLE_ENVOY', value: '1' }] }] }, false, /DISABLE_ENVOY/],
    ['DISABLE_ENVOY=false', { annotations: status, containers: [{ ...sidecar, env: [{ name: 'DISABLE_ENVOY', value: 'false' }] }] }, true],
    ['DISABLE_ENVOY=yes (not a Go bool)', { annotations: status, containers: [{ ...sidecar, env: [{ name: 'DISABLE_ENVOY', value: 'yes' }] }] }, true],
    ['DISABLE_ENVOY on another container', { annotations: status, containers: [sidecar, { name: 'app', env: [{ name: 'DISABLE_ENVOY', value: 'true' }] }] }, true],
    ['inject annotation false', { annotations: { ...status, 'sidecar.istio.io/inject': 'false' }, containers: [sidecar] }, false, /opted out by annotation/],
    ['inject annotation F', { annotations: { ...status, 'sidecar.istio.io/inject': 'F' }, containers: [sidecar] }, false, /opted out/],
    ['inject annotation "no" (not a Go bool)', { annotations: { ...status, 'sidecar.istio.io/inject': 'no' }, containers: [sidecar] }, true],
    ['inject annotation true', { annotations: { ...status, 'sidecar.istio.io/inject': 'true' }, containers: [sidecar] }, true],
    ['inject label false', { annotations: status, labels: { 'sidecar.istio.io/inject': 'false' }, containers: [sidecar] }, false, /opted out by label/],
    ['label true wins over annotation false', { annotations: { ...status, 'sidecar.istio.io/inject': 'false' }, labels: { 'sidecar.istio.io/inject': 'true' }, containers: [sidecar] }, true],
    ['empty label wins over annotation false', { annotations: { ...status, 'sidecar.istio.io/inject': 'false' }, labels: { 'sidecar.istio.io/inject': '' }, containers: [sidecar] }, true],
    ['label false wins over annotation true', { annotations: { ...status, 'sidecar.istio.io/inject': 'true' }, labels: { 'sidecar.istio.io/inject': 'false' }, containers: [sidecar] }, false, /label/],
  ];
  for (const [label, pod, meshed, reason] of cases) {
    const d = decideSidecar(apiPod(pod), opts);
    t.equal(d.meshed, meshed, `${label}: ${JSON.stringify(d)}`);
    if (reason && d.meshed === false) t.match(d.reason, reason, label);
  }
});

t.test('from the annotations alone', async (t) => {
  const cases: [string, Record<string, string>, boolean | 'unknown', RegExp?][] = [
    ['native sidecar', { 'sidecar.istio.io/status': NATIVE }, true],
    ['regular sidecar container in CNI mode', { 'sidecar.istio.io/status': CLASSIC_CNI }, true],
    ['sidecar templates', { 'sidecar.istio.io/status': NATIVE, 'inject.istio.io/templates': 'sidecar, spire' }, true],
    ['inject annotation true', { 'sidecar.istio.io/status': NATIVE, 'sidecar.istio.io/inject': 'true' }, true],
    ['no annotations', {}, false, /no sidecar\.istio\.io\/status/],
    ['inject false without status', { 'sidecar.istio.io/inject': 'false' }, false, /no sidecar\.istio\.io\/status/],
    ['iptables mode', { 'sidecar.istio.io/status': IPTABLES }, false, /istio-init/],
    ['istio-init anywhere in the status', { 'sidecar.istio.io/status': JSON.stringify({ initContainers: ['istio-proxy'], containers: ['istio-init'] }) }, false, /istio-init/],
    ['gateway template', { 'sidecar.istio.io/status': GATEWAY, 'inject.istio.io/templates': 'gateway' }, false, /gateway/],
    ['excluded namespace', { 'sidecar.istio.io/status': NATIVE }, false, /excluded/],
    // The API must decide:
    ['status "true"', { 'sidecar.istio.io/status': 'true' }, 'unknown', /not the injector's JSON/],
    ['status malformed', { 'sidecar.istio.io/status': '{"initContainers":' }, 'unknown'],
    ['status with wrong types', { 'sidecar.istio.io/status': '{"initContainers":"istio-proxy"}' }, 'unknown'],
    ['status an array', { 'sidecar.istio.io/status': '["istio-proxy"]' }, 'unknown'],
    ['status names no istio-proxy', { 'sidecar.istio.io/status': JSON.stringify({ initContainers: ['istio-validation'], containers: ['other'] }) }, 'unknown', /names no istio-proxy/],
    ['inject annotation false (a label would win)', { 'sidecar.istio.io/status': NATIVE, 'sidecar.istio.io/inject': 'false' }, 'unknown', /label/],
    ['other template', { 'sidecar.istio.io/status': NATIVE, 'inject.istio.io/templates': 'grpc-agent' }, 'unknown', /templates/],
    ['gateway without a template annotation', { 'sidecar.istio.io/status': GATEWAY }, 'unknown', /neither istio-validation nor istio-init/],
  ];
  for (const [label, a, meshed, reason] of cases) {
    const d = decideSidecar(annPod(a, label === 'excluded namespace' ? 'istio-system' : 'default'), opts);
    t.equal(d.meshed, meshed, `${label}: ${JSON.stringify(d)}`);
    if (reason && d.meshed !== true) t.match(d.reason, reason, label);
  }
});

t.test('the annotations never contradict the API', async (t) => {
  // For pods whose containers agree with their status annotation, a decided
  // annotations-only verdict equals the API's.
  const pods: { annotations: Record<string, string>; init?: C[]; containers?: C[] }[] = [
    { annotations: { 'sidecar.istio.io/status': NATIVE }, init: [validation, sidecar] },
    { annotations: { 'sidecar.istio.io/status': CLASSIC_CNI }, init: [validation], containers: [{ name: 'app' }, sidecar] },
    { annotations: { 'sidecar.istio.io/status': IPTABLES }, init: [{ name: 'istio-init' }], containers: [{ name: 'app' }, sidecar] },
    { annotations: { 'sidecar.istio.io/status': GATEWAY, 'inject.istio.io/templates': 'gateway' }, containers: [{ name: 'istio-proxy', args: ['proxy', 'router'] }] },
    { annotations: {}, containers: [{ name: 'app' }] },
    { annotations: { 'sidecar.istio.io/inject': 'false' }, containers: [{ name: 'app' }] },
  ];
  for (const p of pods) {
    for (const ns of ['default', 'kube-system']) {
      const api = decideSidecar(apiPod({ ...p, ns }), opts);
      const ann = decideSidecar(annPod(p.annotations, ns), opts);
      t.not(api.meshed, 'unknown', 'the API always decides');
      if (ann.meshed !== 'unknown') t.equal(ann.meshed, api.meshed, `${ns} ${JSON.stringify(p.annotations).slice(0, 120)}`);
    }
  }
});

t.test('parseSidecarStatus', async (t) => {
  t.same(parseSidecarStatus(NATIVE), { initContainers: ['istio-validation', 'istio-proxy'], containers: [] });
  t.same(parseSidecarStatus('{}'), { initContainers: [], containers: [] });
  t.equal(parseSidecarStatus('true'), undefined);
  t.equal(parseSidecarStatus('null'), undefined);
  t.equal(parseSidecarStatus('{"containers":[1]}'), undefined);
  t.equal(parseSidecarStatus('{"__proto__":{"containers":["istio-proxy"]}}')?.containers.length, 0, 'a __proto__ key is not read');
  t.equal(parseSidecarStatus('x'.repeat(100_000)), undefined);
});
