// Where the plugin learns about a pod: a runtime that passes the annotations key
// decides without the API, even when the pod has none (null or {}); only a
// missing key (the runtime passes no annotations) means asking the API.
import t from 'tap';
import { CniError } from '../../src/cni/errors.js';
import { parsePluginConfig } from '../../src/plugin/config.js';
import { lookupPod, runtimeAnnotations } from '../../src/plugin/pod-source.js';
import type { Logger } from '../../src/log/logger.js';

const quiet: Logger = { error: () => undefined, warn: () => undefined, info: () => undefined, debug: () => undefined, child: () => quiet, close: () => Promise.resolve() };
const KEY = 'io.kubernetes.cri.pod-annotations';
// No kubeconfig: a lookup that reaches the API fails with code 11 (try again later).
const conf = parsePluginConfig({ kubeconfig: '/nonexistent/meshlane-kubeconfig', kube_api_timeout_seconds: 1 });

t.test('runtimeAnnotations: present (even null or {}) vs missing', async (t) => {
  t.same(runtimeAnnotations({ runtimeConfig: { [KEY]: { a: 'b' } } }), { a: 'b' });
  t.same(runtimeAnnotations({ runtimeConfig: { [KEY]: null } }), {}, 'null: the pod has none');
  t.same(runtimeAnnotations({ runtimeConfig: { [KEY]: {} } }), {});
  t.equal(runtimeAnnotations({ runtimeConfig: {} }), undefined, 'no key: the runtime passes none');
  t.equal(runtimeAnnotations({}), undefined, 'no runtimeConfig');
  t.equal(runtimeAnnotations({ runtimeConfig: { portMappings: [] } }), undefined);
  t.equal(runtimeAnnotations({ runtimeConfig: { [KEY]: 'x' } }), 'x', 'a wrong type is handed on to be refused');
});

t.test('a pod with no annotations is not meshed, decided without the API', async (t) => {
  for (const value of [null, {}]) {
    const r = await lookupPod(conf, { runtimeConfig: { [KEY]: value } }, 'default', 'bare', quiet);
    t.equal(r.source, 'annotations', `${JSON.stringify(value)}: decided from the runtime's answer`);
    t.equal(r.decision.meshed, false);
  }
});

t.test('no annotations key at all: the API is asked (and without a kubeconfig, try again later)', async (t) => {
  for (const config of [{}, { runtimeConfig: {} }, { runtimeConfig: { [KEY]: 'not a map' } }]) {
    const err = await lookupPod(conf, config, 'default', 'bare', quiet).catch((e: unknown) => e);
    t.ok(err instanceof CniError && err.code === 11, `${JSON.stringify(config)}: code 11`);
  }
});
