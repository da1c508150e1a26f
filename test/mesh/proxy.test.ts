// The proxy's identity and DNS capture.
import t from 'tap';
import { dnsCapture, podInfoFromAnnotations, podInfoFromObject, proxyIdentity, proxyMetadata } from '../../src/mesh/index.js';

function apiPod(proxy: Record<string, unknown> | undefined, annotations: Record<string, string> = {}, where: 'containers' | 'initContainers' = 'containers') {
  const list = proxy ? [{ name: 'istio-proxy', ...proxy }] : [];
  return podInfoFromObject({
    kind: 'Pod',
    metadata: { namespace: 'n', name: 'p', annotations },
    spec: where === 'containers' ? { containers: [{ name: 'app' }, ...list] } : { initContainers: list, containers: [{ name: 'app' }] },
  });
}
const overrides = (sc: unknown, list = 'containers') => ({ 'proxy.istio.io/overrides': JSON.stringify({ [list]: [{ name: 'istio-proxy', securityContext: sc }] }) });

t.test('proxyIdentity', async (t) => {
  t.same(proxyIdentity(apiPod({})), { uid: 1337, gid: 1337 }, 'default');
  t.same(proxyIdentity(apiPod({ securityContext: { runAsUser: 1000670000, runAsGroup: 1000670001 } })), { uid: 1000670000, gid: 1000670001 });
  t.same(proxyIdentity(apiPod({ securityContext: { runAsUser: 1000670000, runAsGroup: 1000670001 } }, {}, 'initContainers')), { uid: 1000670000, gid: 1000670001 }, 'native sidecar');
  t.same(proxyIdentity(apiPod({ securityContext: { runAsUser: 5000 } })), { uid: 5000, gid: 1337 }, 'gid unset: 1337, not the uid (istio-cni)');
  t.same(proxyIdentity(apiPod({ securityContext: { runAsUser: 0, runAsGroup: 0 } })), { uid: 1337, gid: 1337 }, 'root is never the proxy: 1337 (istio-cni custom-uid-zero)');
  // From the API the container decides, not the overrides annotation.
  t.same(proxyIdentity(apiPod({ securityContext: { runAsUser: 7 } }, overrides({ runAsUser: 9 }))), { uid: 7, gid: 1337 });
  // From annotations: proxy.istio.io/overrides.
  const ann = (a: Record<string, string>) => podInfoFromAnnotations('n', 'p', a);
  t.same(proxyIdentity(ann({})), { uid: 1337, gid: 1337 });
  t.same(proxyIdentity(ann(overrides({ runAsUser: 2000, runAsGroup: 3000 }))), { uid: 2000, gid: 3000 });
  t.same(proxyIdentity(ann(overrides({ runAsUser: 2000, runAsGroup: 3000 }, 'initContainers'))), { uid: 2000, gid: 3000 });
  t.same(proxyIdentity(ann(overrides({ runAsUser: 0 }))), { uid: 1337, gid: 1337 });
  t.same(proxyIdentity(ann(overrides({ runAsUser: '2000' }))), { uid: 1337, gid: 1337 }, 'a string uid is not trusted');
  t.same(proxyIdentity(ann(overrides({ runAsUser: -5 }))), { uid: 1337, gid: 1337 });
  t.same(proxyIdentity(ann(overrides({ runAsUser: 2 ** 33 }))), { uid: 1337, gid: 1337 });
  t.same(proxyIdentity(ann({ 'proxy.istio.io/overrides': '{not json' })), { uid: 1337, gid: 1337 });
  t.same(proxyIdentity(ann({ 'proxy.istio.io/overrides': JSON.stringify({ containers: [{ name: 'app', securityContext: { runAsUser: 5 } }] }) })), { uid: 1337, gid: 1337 }, 'another container');
  t.same(proxyIdentity(ann({ 'proxy.istio.io/overrides': '{"containers":[{"name":"istio-proxy","resources":{}}]}' })), { uid: 1337, gid: 1337 }, "the gateway fixture's overrides");
  t.same(proxyIdentity(ann({ 'proxy.istio.io/overrides': '{"containers":{"name":"istio-proxy"}}' })), { uid: 1337, gid: 1337 });
  t.same(proxyIdentity(ann({ 'proxy.istio.io/overrides': '{"__proto__":{"containers":[{"name":"istio-proxy","securityContext":{"runAsUser":5}}]}}' })), { uid: 1337, gid: 1337 }, '__proto__ not read');
  // A pod from the API without istio-proxy: overrides, then the default.
  t.same(proxyIdentity(apiPod(undefined, overrides({ runAsUser: 4 }))), { uid: 4, gid: 1337 });
});

t.test('dnsCapture', async (t) => {
  const env = (v: string) => apiPod({ env: [{ name: 'ISTIO_META_DNS_CAPTURE', value: v }] });
  t.equal(dnsCapture(env('true'), false), true);
  t.equal(dnsCapture(env('1'), false), true);
  t.equal(dnsCapture(env('false'), true), false, 'explicit false beats the default');
  t.equal(dnsCapture(env('yes'), true), false, 'not a Go bool: false, as istio-cni reads it');
  t.equal(dnsCapture(apiPod({}), true), true, 'unset: the default');
  t.equal(dnsCapture(apiPod({}), false), false);
  t.equal(dnsCapture(apiPod({}, {}, 'initContainers'), true), true);
  t.equal(dnsCapture(apiPod({ env: [{ name: 'ISTIO_META_DNS_CAPTURE', value: 'true' }] }, {}, 'initContainers'), false), true, 'native sidecar env');
  t.equal(dnsCapture(podInfoFromObject({ kind: 'Pod', metadata: { namespace: 'n', name: 'p' }, spec: { containers: [{ name: 'app', env: [{ name: 'ISTIO_META_DNS_CAPTURE', value: 'true' }] }] } }), false), false, 'only istio-proxy counts');

  const cfg = (text: string) => ({ 'proxy.istio.io/config': text });
  const ann = (a: Record<string, string>) => podInfoFromAnnotations('n', 'p', a);
  t.equal(dnsCapture(ann(cfg('proxyMetadata:\n  ISTIO_META_DNS_CAPTURE: "true"\n')), false), true);
  t.equal(dnsCapture(ann(cfg("concurrency: 2\nproxyMetadata:\n  FOO: bar\n  ISTIO_META_DNS_CAPTURE: 'false'\nholdApplicationUntilProxyStarts: true")), true), false);
  t.equal(dnsCapture(ann(cfg('{"proxyMetadata":{"ISTIO_META_DNS_CAPTURE":"true"}}')), false), true);
  t.equal(dnsCapture(ann(cfg('proxyMetadata: {ISTIO_META_DNS_CAPTURE: "true"}')), false), true);
  t.equal(dnsCapture(ann(cfg('proxyMetadata:\n  ISTIO_META_DNS_CAPTURE: true # on\n')), false), true, 'plain scalar with a comment');
  t.equal(dnsCapture(ann(cfg('discoveryAddress: foo:123\nconcurrency: 0')), true), true, 'no proxyMetadata: the default');
  t.equal(dnsCapture(ann(cfg('ISTIO_META_DNS_CAPTURE: "true"')), false), false, 'not under proxyMetadata');
  t.equal(dnsCapture(ann(cfg('nested:\n  proxyMetadata:\n    ISTIO_META_DNS_CAPTURE: "true"')), false), false, 'not the top-level key');
  t.equal(dnsCapture(ann(cfg('{broken json')), true), true);
  // The API's env wins over the annotation.
  t.equal(dnsCapture(apiPod({ env: [{ name: 'ISTIO_META_DNS_CAPTURE', value: 'false' }] }, cfg('proxyMetadata:\n  ISTIO_META_DNS_CAPTURE: "true"')), false), false);
  t.equal(dnsCapture(apiPod({}, cfg('proxyMetadata:\n  ISTIO_META_DNS_CAPTURE: "true"')), false), true, 'env unset: the annotation');

  const fixture = 'discoveryAddress: foo:123\nconcurrency: 0\nproxyMetadata:\n  FOO: bar\n  ISTIO_META_TLS_CLIENT_KEY: /etc/identity2/client/keys/client-key.pem';
  t.same({ ...proxyMetadata(cfg(fixture)) }, { FOO: 'bar', ISTIO_META_TLS_CLIENT_KEY: '/etc/identity2/client/keys/client-key.pem' }, 'the traffic-annotations fixture');
  t.equal(proxyMetadata({}), undefined);
});
