// The pod model from hostile input: types never trusted, sizes bounded, no prototype games.
import t, { type Test } from 'tap';
import { POD_LIMITS, PodInputError, podInfoFromAnnotations, podInfoFromObject } from '../../src/mesh/index.js';

const base = () => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { namespace: 'ns', name: 'p', uid: 'u-1', annotations: {} as Record<string, unknown>, labels: {} as Record<string, unknown> },
  spec: { containers: [{ name: 'app' }] as unknown[], initContainers: [] as unknown[] },
});

function rejects(t: Test, obj: unknown, field: RegExp, msg: RegExp, label: string): void {
  try {
    podInfoFromObject(obj);
    t.fail(`accepted: ${label}`);
  } catch (err) {
    t.ok(err instanceof PodInputError, `PodInputError: ${label}`);
    t.match((err as PodInputError).field, field, label);
    t.match((err as Error).message, msg, label);
  }
}

t.test('a minimal pod', async (t) => {
  const p = podInfoFromObject(base());
  t.equal(p.namespace, 'ns');
  t.equal(p.name, 'p');
  t.equal(p.uid, 'u-1');
  t.same(p.containers, [{ name: 'app', env: {} }]);
  t.same(p.initContainers, []);
  const noKind = base() as Record<string, unknown>;
  delete noKind['kind'];
  delete noKind['apiVersion'];
  t.doesNotThrow(() => podInfoFromObject(noKind), 'kind and apiVersion may be absent');
  const noUid = base();
  delete (noUid.metadata as Record<string, unknown>)['uid'];
  t.equal(podInfoFromObject(noUid).uid, undefined);
  const noLists = base() as { spec: Record<string, unknown> };
  noLists.spec = {};
  t.same(podInfoFromObject(noLists).containers, [], 'no containers: known to be none');
});

t.test('not a pod', async (t) => {
  for (const v of [null, undefined, 1, 'pod', [], [base()], true]) rejects(t, v, /^pod$/, /must be an object/, JSON.stringify(v) ?? 'undefined');
  rejects(t, { ...base(), kind: 'Service' }, /^kind$/, /"Service", not "Pod"/, 'kind Service');
  rejects(t, { ...base(), kind: 'PodList', items: [] }, /^kind$/, /not "Pod"/, 'a list');
  rejects(t, { ...base(), apiVersion: 'apps/v1' }, /^apiVersion$/, /not "v1"/, 'apiVersion');
  rejects(t, { kind: 'Status', apiVersion: 'v1', status: 'Failure', code: 404 }, /^kind$/, /Status/, 'an API error Status');
  rejects(t, { ...base(), metadata: 'x' }, /^metadata$/, /must be an object/, 'metadata');
  rejects(t, { ...base(), spec: null }, /^spec$/, /must be an object/, 'spec');
  const noName = base();
  noName.metadata.name = '' as string;
  rejects(t, noName, /metadata\.name/, /must not be empty/, 'empty name');
  const numName = base() as unknown as { metadata: Record<string, unknown> };
  numName.metadata['namespace'] = 7;
  rejects(t, numName, /metadata\.namespace/, /must be a string, got a number/, 'namespace number');
  const longName = base();
  longName.metadata.name = 'x'.repeat(300);
  rejects(t, longName, /metadata\.name/, /at most 253/, 'long name');
});

t.test('containers', async (t) => {
  const p = base();
  p.spec.containers = [
    {
      name: 'istio-proxy',
      args: ['proxy', 'sidecar'],
      securityContext: { runAsUser: 1000670000, runAsGroup: 1000670001 },
      env: [{ name: 'A', value: 'x' }, { name: 'B', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }, { name: 'C' }],
    },
  ];
  const c = podInfoFromObject(p).containers?.[0];
  t.same(c, { name: 'istio-proxy', args: ['proxy', 'sidecar'], runAsUser: 1000670000, runAsGroup: 1000670001, env: { A: 'x', B: '', C: '' } });

  // Odd uids are ignored (the default applies), not trusted.
  for (const u of [-1, 1.5, '1000', 2 ** 40, 0xffffffff, null, NaN]) {
    const q = base();
    q.spec.containers = [{ name: 'istio-proxy', securityContext: { runAsUser: u, runAsGroup: u } }];
    const got = podInfoFromObject(q).containers?.[0];
    t.equal(got?.runAsUser, undefined, `runAsUser ${String(u)} ignored`);
    t.equal(got?.runAsGroup, undefined);
  }
  const zero = base();
  zero.spec.containers = [{ name: 'istio-proxy', securityContext: { runAsUser: 0 } }];
  t.equal(podInfoFromObject(zero).containers?.[0]?.runAsUser, 0, 'root is recorded (the policy maps it to 1337)');

  const bad: [unknown, RegExp, RegExp, string][] = [
    [{ containers: 'x' }, /spec\.containers/, /must be an array/, 'containers not an array'],
    [{ containers: [7] }, /spec\.containers\[0\]/, /must be an object/, 'container not an object'],
    [{ containers: [{}] }, /spec\.containers\[0\]\.name/, /must be a string, got undefined/, 'no name'],
    [{ containers: [{ name: ['x'] }] }, /spec\.containers\[0\]\.name/, /got an array/, 'name array'],
    [{ containers: [{ name: 'a', env: {} }] }, /env$/, /must be an array/, 'env object'],
    [{ containers: [{ name: 'a', env: [{ name: 'X', value: 1 }] }] }, /env\[0\]\.value/, /must be a string/, 'env value number'],
    [{ containers: [{ name: 'a', env: [{ value: 'v' }] }] }, /env\[0\]\.name/, /non-empty string/, 'env without name'],
    [{ containers: [{ name: 'a', env: ['X=1'] }] }, /env\[0\]/, /must be an object/, 'env string'],
    [{ containers: [{ name: 'a', args: 'proxy sidecar' }] }, /args$/, /must be an array/, 'args string'],
    [{ containers: [{ name: 'a', args: ['proxy', 1] }] }, /args\[1\]/, /must be a string/, 'args number'],
    [{ initContainers: {} }, /spec\.initContainers/, /must be an array/, 'initContainers object'],
  ];
  for (const [spec, field, msg, label] of bad) rejects(t, { ...base(), spec }, field, msg, label);
});

t.test('absurd sizes', async (t) => {
  const many = base();
  many.spec.containers = Array.from({ length: POD_LIMITS.maxContainers + 1 }, (_, i) => ({ name: `c${i}` }));
  rejects(t, many, /spec\.containers/, /more than 1000 containers/, '1001 containers');
  const split = base();
  split.spec.initContainers = Array.from({ length: 600 }, (_, i) => ({ name: `i${i}` }));
  split.spec.containers = Array.from({ length: 401 }, (_, i) => ({ name: `c${i}` }));
  rejects(t, split, /spec\.containers/, /more than 1000/, '600 init + 401');
  const ok = base();
  ok.spec.containers = Array.from({ length: 1000 }, (_, i) => ({ name: `c${i}` }));
  t.equal(podInfoFromObject(ok).containers?.length, 1000, '1000 is fine');

  const bigAnn = base();
  bigAnn.metadata.annotations = { a: 'x'.repeat(POD_LIMITS.maxMapBytes) };
  rejects(t, bigAnn, /metadata\.annotations/, /larger than 262144 bytes/, 'annotations > 256 KiB');
  const manyAnn = base();
  manyAnn.metadata.annotations = Object.fromEntries(Array.from({ length: 30_000 }, (_, i) => [`key-${i}`, 'value']));
  rejects(t, manyAnn, /metadata\.annotations/, /larger than/, 'many annotations');
  const bigLabels = base();
  bigLabels.metadata.labels = { a: 'x'.repeat(POD_LIMITS.maxMapBytes + 1) };
  rejects(t, bigLabels, /metadata\.labels/, /larger than/, 'labels > 256 KiB');
  const env = base();
  env.spec.containers = [{ name: 'a', env: Array.from({ length: 1001 }, (_, i) => ({ name: `E${i}`, value: '' })) }];
  rejects(t, env, /env/, /1001 entries/, 'env entries');
  const arg = base();
  arg.spec.containers = [{ name: 'a', args: ['x'.repeat(POD_LIMITS.maxStringBytes + 1)] }];
  rejects(t, arg, /args\[0\]/, /longer than/, 'one huge arg');
  t.throws(() => podInfoFromAnnotations('ns', 'p', { a: 'x'.repeat(300 * 1024) }), PodInputError, 'annotations path too');
});

t.test('annotation and label values: strings only', async (t) => {
  const p = base();
  p.metadata.annotations = { 'example.com/n': 5, 'example.com/o': { a: 1 }, 'example.com/s': 'ok', 'example.com/null': null };
  p.metadata.labels = { app: 'x', n: 3 };
  const got = podInfoFromObject(p);
  t.same({ ...got.annotations }, { 'example.com/s': 'ok' }, 'non-strings under unrelated keys are dropped');
  t.same({ ...got.labels }, { app: 'x' });
  for (const key of ['sidecar.istio.io/status', 'traffic.sidecar.istio.io/excludeOutboundIPRanges', 'proxy.istio.io/overrides', 'sidecar.istio.io/inject']) {
    const q = base();
    q.metadata.annotations = { [key]: ['10.0.0.0/8'] };
    rejects(t, q, /metadata\.annotations\[/, /must be a string, got an array/, `non-string ${key}`);
    t.throws(() => podInfoFromAnnotations('ns', 'p', { [key]: false }), PodInputError, `annotations path: ${key}`);
  }
  const l = base();
  l.metadata.labels = { 'sidecar.istio.io/inject': false };
  rejects(t, l, /metadata\.labels\[/, /must be a string, got a boolean/, 'non-string inject label');
  for (const v of ['x', 1, ['a']]) {
    const q = base() as unknown as { metadata: Record<string, unknown> };
    q.metadata['annotations'] = v;
    rejects(t, q, /metadata\.annotations$/, /must be an object of strings/, `annotations ${JSON.stringify(v)}`);
  }
  const n = base() as unknown as { metadata: Record<string, unknown> };
  n.metadata['annotations'] = null;
  t.same({ ...podInfoFromObject(n).annotations }, {}, 'null annotations: none');
});

t.test('prototype pollution', async (t) => {
  const text = `{"apiVersion":"v1","kind":"Pod","metadata":{"namespace":"ns","name":"p",
    "annotations":{"__proto__":"polluted","constructor":"c","toString":"s","sidecar.istio.io/status":"{}"},
    "labels":{"__proto__":{"x":"1"}}},
    "spec":{"containers":[{"name":"istio-proxy","env":[{"name":"__proto__","value":"v"}],"securityContext":{"__proto__":{"runAsUser":5}}}]}}`;
  const p = podInfoFromObject(JSON.parse(text));
  t.equal(Object.getPrototypeOf(p.annotations), null, 'maps have no prototype');
  t.equal(p.annotations['__proto__'], 'polluted', '__proto__ is a plain key');
  t.equal(p.annotations['constructor'], 'c');
  t.same(Object.keys(p.annotations).sort(), ['__proto__', 'constructor', 'sidecar.istio.io/status', 'toString']);
  t.equal(Object.keys(p.labels).length, 0, 'a non-string label under an unrelated key is dropped');
  t.equal(p.containers?.[0]?.env['__proto__'], 'v');
  t.equal(p.containers?.[0]?.runAsUser, undefined, 'inherited securityContext fields are not read');
  t.equal(({} as Record<string, unknown>)['x'], undefined, 'Object.prototype untouched');
  const a = podInfoFromAnnotations('ns', 'p', JSON.parse('{"__proto__":{"sidecar.istio.io/status":"x"}}') as Record<string, unknown>);
  t.same(Object.keys(a.annotations), [], 'an object under __proto__ (unrelated key) is dropped');
  t.equal(a.annotations['sidecar.istio.io/status'], undefined);
  const inherited = Object.create({ 'sidecar.istio.io/status': '{}' }) as Record<string, unknown>;
  t.same(Object.keys(podInfoFromAnnotations('ns', 'p', inherited).annotations), [], 'inherited keys are not annotations');
});

t.test('podInfoFromAnnotations', async (t) => {
  const p = podInfoFromAnnotations('ns', 'p', { a: 'b' });
  t.same({ ...p.annotations }, { a: 'b' });
  t.same({ ...p.labels }, {});
  t.equal(p.containers, undefined);
  t.equal(p.initContainers, undefined);
  t.throws(() => podInfoFromAnnotations('', 'p', {}), PodInputError);
  t.throws(() => podInfoFromAnnotations('ns', 5 as unknown as string, {}), PodInputError);
  t.throws(() => podInfoFromAnnotations('ns', 'p', 'x' as unknown as Record<string, unknown>), PodInputError);
  t.throws(() => podInfoFromAnnotations('ns', 'p', [] as unknown as Record<string, unknown>), PodInputError);
});
