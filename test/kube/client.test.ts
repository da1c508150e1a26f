// getPod against a local HTTPS API server serving the real fixture pods.
import t from 'tap';
import type { Test } from 'tap';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { KubeApiError, KubeconfigError, getPod, loadKubeconfig } from '../../src/kube/index.js';
import type { GetPodOptions, KubeAccess } from '../../src/kube/index.js';
import { upstreamFixtures } from '../helpers/paths.js';
import { FakeApi, loadFixturePods, makePki } from './fake-api.js';

const golden = join(upstreamFixtures, 'istio-install-golden');
const TOKEN = 'eyJhbGciOiJSUzI1NiJ9.test-service-account-token.c2lnbmF0dXJl';
const TOKEN_FOO = readFileSync(join(golden, 'token-foo'), 'utf8').trim();
const TOKEN_BAR = readFileSync(join(golden, 'token-bar'), 'utf8').trim();
const ALL_TOKENS = [TOKEN, TOKEN_FOO, TOKEN_BAR];

const pki = makePki();
process.once('exit', () => pki.cleanup()); // also when the test crashes before its teardown
const api = await new FakeApi(pki, TOKEN).listen();
t.teardown(async () => {
  await api.close();
  pki.cleanup();
});

/** Every error message and attempt report seen, checked at the end for tokens. */
const seenText: string[] = [];

const dir = t.testdir({});
const podA = loadFixturePods().find((p) => p.file === 'istio-sidecar-cni-native.json')!;

function writeKubeconfig(name: string, cluster: Record<string, unknown>, user: Record<string, unknown>, server = api.url): string {
  const path = join(dir, name);
  const yaml = (o: Record<string, unknown>): string =>
    Object.entries(o)
      .map(([k, v]) => `    ${k}: ${typeof v === 'string' ? JSON.stringify(v) : String(v)}`)
      .join('\n');
  writeFileSync(
    path,
    `apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: ${server}\n${yaml(cluster)}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: sa\ncurrent-context: test\nusers:\n- name: sa\n  user:\n${yaml(user)}\n`,
  );
  return path;
}

const caData = pki.caPem.toString('base64');
const access = await loadKubeconfig(writeKubeconfig('kc-ca-data', { 'certificate-authority-data': caData }, { token: TOKEN }));

interface Run {
  pod?: Record<string, unknown>;
  error?: KubeApiError;
  attempts: Array<{ attempt: number; status?: number; error?: string }>;
  ms: number;
}

async function run(a: KubeAccess, opts: Partial<GetPodOptions> = {}, ns = podA.namespace, name = podA.name): Promise<Run> {
  const attempts: Run['attempts'] = [];
  const started = Date.now();
  try {
    const pod = await getPod(a, ns, name, {
      deadlineMs: 5000,
      retryIntervalMs: 50,
      attemptTimeoutMs: 2000,
      ...opts,
      onAttempt: (info) => {
        attempts.push(info);
        if (info.error) seenText.push(info.error);
      },
    });
    return { pod, attempts, ms: Date.now() - started };
  } catch (err) {
    if (!(err instanceof KubeApiError)) throw err;
    seenText.push(err.message);
    return { error: err, attempts, ms: Date.now() - started };
  }
}

function expectPod(t: Test, r: Run, attempts: number, msg: string): void {
  t.equal(r.error, undefined, `${msg}: no error${r.error ? ` (${r.error.message})` : ''}`);
  t.same(r.pod, JSON.parse(podA.body.toString('utf8')), `${msg}: the fixture pod`);
  t.equal(r.attempts.length, attempts, `${msg}: ${attempts} attempt(s)`);
}

function expectError(t: Test, r: Run, kind: string, attempts: number, msg: string): KubeApiError | undefined {
  t.ok(r.error, `${msg}: fails`);
  t.equal(r.error?.kind, kind, `${msg}: kind ${kind} (${r.error?.message})`);
  t.equal(r.error?.attempts, attempts, `${msg}: ${attempts} attempt(s)`);
  t.equal(api.requests.length, attempts, `${msg}: the server saw ${attempts} request(s)`);
  return r.error;
}

t.beforeEach(() => api.reset());

t.test('every fixture pod, as the API serves it', async (t) => {
  for (const p of loadFixturePods()) {
    const r = await run(access, {}, p.namespace, p.name);
    t.same(r.pod, JSON.parse(p.body.toString('utf8')), `${p.file}: ${p.namespace}/${p.name}`);
  }
  const first = api.requests[0]!;
  t.equal(first.method, 'GET');
  t.match(first.path, /^\/api\/v1\/namespaces\/[a-z0-9-]+\/pods\/[a-z0-9.-]+$/);
  t.equal(first.authorization, `Bearer ${TOKEN}`);
  t.equal(first.accept, 'application/json');
  t.equal(api.requests.length, loadFixturePods().length, 'one request each');
});

t.test('CA file, insecure-skip-tls-verify, JSON kubeconfig, path prefix, client certificate', async (t) => {
  const caFile = await loadKubeconfig(writeKubeconfig('kc-ca-file', { 'certificate-authority': pki.caFile }, { token: TOKEN }));
  expectPod(t, await run(caFile), 1, 'certificate-authority file');

  const insecure = await loadKubeconfig(writeKubeconfig('kc-insecure', { 'insecure-skip-tls-verify': true }, { token: TOKEN }));
  api.reset();
  expectPod(t, await run(insecure), 1, 'insecure-skip-tls-verify against a self-signed server');

  const jsonPath = join(dir, 'kc-json');
  writeFileSync(jsonPath, JSON.stringify({ clusters: [{ name: 'c', cluster: { server: `https://localhost:${api.port}`, 'certificate-authority-data': caData } }], users: [{ name: 'u', user: { token: TOKEN } }], contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }], 'current-context': 'x' }));
  api.reset();
  expectPod(t, await run(await loadKubeconfig(jsonPath)), 1, 'JSON kubeconfig, server by DNS name');

  const prefixed = await loadKubeconfig(writeKubeconfig('kc-prefix', { 'certificate-authority-data': caData }, { token: TOKEN }, `${api.url}/k8s/clusters/c-1/`));
  api.reset();
  api.fallback = '404';
  await run(prefixed, { maxAttempts: 1 });
  t.equal(api.requests[0]?.path, `/k8s/clusters/c-1/api/v1/namespaces/${podA.namespace}/pods/${podA.name}`, 'the server URL path is kept as a prefix');

  const cert = await loadKubeconfig(
    writeKubeconfig('kc-cert', { 'certificate-authority-data': caData }, { 'client-certificate-data': pki.clientCert.toString('base64'), 'client-key-data': pki.clientKey.toString('base64') }),
  );
  api.reset();
  api.fallback = '404';
  await run(cert, { maxAttempts: 1 });
  t.equal(api.lastClientCn, 'system:serviceaccount:kube-system:meshlane', 'the client certificate is presented');
  t.equal(api.requests[0]?.authorization, undefined, 'no token, no Authorization header');
});

t.test('token file rotation: the token is read on every call', async (t) => {
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, readFileSync(join(golden, 'token-foo')));
  const a = await loadKubeconfig(writeKubeconfig('kc-token-file', { 'certificate-authority-data': caData }, { tokenFile: 'token' }));
  api.token = TOKEN_FOO;
  expectPod(t, await run(a), 1, 'with token-foo');
  t.equal(api.requests[0]?.authorization, `Bearer ${TOKEN_FOO}`);

  // The kubelet/installer rotates the token: atomic replace.
  writeFileSync(`${tokenFile}.tmp`, readFileSync(join(golden, 'token-bar')));
  renameSync(`${tokenFile}.tmp`, tokenFile);
  api.token = TOKEN_BAR;
  api.reset();
  expectPod(t, await run(a), 1, 'with token-bar');
  t.equal(api.requests[0]?.authorization, `Bearer ${TOKEN_BAR}`, 'the new token is sent');

  // Rotated while retrying: the next attempt uses the new token.
  api.reset();
  api.enqueue('500');
  const r = run(a, { retryIntervalMs: 150 });
  setTimeout(() => {
    writeFileSync(tokenFile, TOKEN_FOO);
    api.token = TOKEN_FOO;
  }, 50);
  expectPod(t, await r, 2, 'rotated between attempts');
  t.equal(api.requests[1]?.authorization, `Bearer ${TOKEN_FOO}`);

  api.reset();
  api.token = TOKEN;
});

t.test('404 is retried (the pod may not be visible yet), then the pod', async (t) => {
  api.enqueue('404', '404');
  const r = await run(access);
  expectPod(t, r, 3, '404, 404, 200');
  t.same(r.attempts.map((a) => a.status), [404, 404, 200]);
  t.match(r.attempts[0]?.error, /HTTP 404: pods "x" not found/, 'the Status message is reported');
});

t.test('404 until the attempt limit: not-found', async (t) => {
  api.fallback = '404';
  const r = await run(access, { maxAttempts: 3 });
  const e = expectError(t, r, 'not-found', 3, '404 forever');
  t.equal(e?.status, 404);
  t.match(e?.message, /3 attempt\(s\).*attempt limit 3/);
});

t.test('401 fails at once, without retry', async (t) => {
  const wrong = await loadKubeconfig(writeKubeconfig('kc-wrong-token', { 'certificate-authority-data': caData }, { token: 'expired-token-value' }));
  const r = await run(wrong);
  const e = expectError(t, r, 'unauthorized', 1, 'a token the server refuses');
  t.equal(e?.status, 401);
  t.match(e?.message, /^the service account token was refused \(HTTP 401\) by the Kubernetes API at 127\.0\.0\.1:\d+/);
  t.match(e?.message, /is the installer running/);
  t.notMatch(e?.message, /expired-token-value/, 'not the refused token either');
  seenText.push(e?.message ?? '');

  api.reset();
  api.enqueue('401');
  expectError(t, await run(access), 'unauthorized', 1, 'a scripted 401');
});

t.test('403 fails at once', async (t) => {
  api.enqueue('403');
  const e = expectError(t, await run(access), 'forbidden', 1, '403');
  t.match(e?.message, /HTTP 403.*cannot get resource "pods".*ClusterRole/);
});

t.test('500, 503, 429 are retried', async (t) => {
  api.enqueue('500', '500', '500');
  const r = await run(access);
  expectPod(t, r, 4, '500 x3 then 200');
  t.same(r.attempts.map((a) => a.status), [500, 500, 500, 200]);
  api.reset();
  api.enqueue('503', '429');
  expectPod(t, await run(access), 3, '503 (text/plain), 429 (Retry-After: 0), then 200');
});

t.test('slow: the attempt times out, the next one answers', async (t) => {
  api.enqueue('slow');
  const r = await run(access, { attemptTimeoutMs: 300 });
  expectPod(t, r, 2, 'slow, then 200');
  t.match(r.attempts[0]?.error, /no complete answer within 300 ms/);
  t.ok(r.ms < 2000, `well before the slow answer would have come (${r.ms} ms)`);
});

t.test('connection reset, before and during the body', async (t) => {
  api.enqueue('reset', 'reset-mid-body');
  const r = await run(access);
  expectPod(t, r, 3, 'reset, reset mid-body, then 200');
  t.match(r.attempts[0]?.error, /ECONNRESET|socket hang up/);
  t.match(r.attempts[1]?.error, /ECONNRESET|aborted|closed/);
});

t.test('deadline exhausted: the error comes within the deadline', async (t) => {
  api.fallback = '500';
  const r = await run(access, { deadlineMs: 1200, retryIntervalMs: 100 });
  const e = expectError(t, r, 'unavailable', api.requests.length, '500 forever');
  t.ok(api.requests.length >= 3, `retried (${api.requests.length} attempts)`);
  t.equal(e?.status, 500);
  t.match(e?.message, /deadline 1200 ms.*last: HTTP 500: Internal error occurred/);
  t.ok(r.ms <= 1200 + 1000, `failed in ${r.ms} ms (deadline 1200 ms + 1 s slack)`);

  api.reset();
  api.fallback = 'slow';
  const s = await run(access, { deadlineMs: 1000, attemptTimeoutMs: 400, retryIntervalMs: 50 });
  expectError(t, s, 'timeout', api.requests.length, 'slow forever');
  t.ok(s.ms <= 1000 + 1000, `failed in ${s.ms} ms (deadline 1000 ms + 1 s slack)`);

  api.reset();
  api.fallback = 'slow';
  const one = await run(access, { deadlineMs: 500, attemptTimeoutMs: 5000 });
  expectError(t, one, 'timeout', 1, 'the attempt timeout is cut to the deadline');
  t.ok(one.ms <= 500 + 1000, `failed in ${one.ms} ms`);
});

t.test('connection refused: unavailable within the deadline', async (t) => {
  const port = await new Promise<number>((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
  const down = await loadKubeconfig(writeKubeconfig('kc-down', { 'certificate-authority-data': caData }, { token: TOKEN }, `https://127.0.0.1:${port}`));
  const r = await run(down, { deadlineMs: 800, retryIntervalMs: 100 });
  t.equal(r.error?.kind, 'unavailable');
  t.equal(r.error?.code, 'ECONNREFUSED');
  t.ok((r.error?.attempts ?? 0) >= 3, 'retried');
  t.ok(r.ms <= 800 + 1000, `failed in ${r.ms} ms`);
});

t.test('wrong CA: a TLS error, not retried', async (t) => {
  const wrongCa = await loadKubeconfig(writeKubeconfig('kc-wrong-ca', { 'certificate-authority-data': pki.otherCaPem.toString('base64') }, { token: TOKEN }));
  const r = await run(wrongCa, { deadlineMs: 10_000 });
  t.equal(r.error?.kind, 'tls', r.error?.message ?? 'no error');
  t.equal(r.error?.attempts, 1);
  t.match(r.error?.message, /TLS verification of the Kubernetes API at 127\.0\.0\.1:\d+ failed/);
  t.ok(r.ms < 2000, `at once (${r.ms} ms)`);
  t.equal(api.requests.length, 0, 'no HTTP request reached the server');

  const wrongName = await loadKubeconfig(writeKubeconfig('kc-wrong-name', { 'certificate-authority-data': caData, 'tls-server-name': 'kubernetes.default.svc' }, { token: TOKEN }));
  const n = await run(wrongName);
  t.equal(n.error?.kind, 'tls', 'a certificate for another name');
  t.equal(n.error?.code, 'ERR_TLS_CERT_ALTNAME_INVALID');

  const rightName = await loadKubeconfig(writeKubeconfig('kc-right-name', { 'certificate-authority-data': caData, 'tls-server-name': 'localhost' }, { token: TOKEN }));
  api.reset();
  expectPod(t, await run(rightName), 1, 'tls-server-name names a name the certificate holds');
});

t.test('answers that are not the pod: bad-response, not retried', async (t) => {
  const cases = [
    ['wrong-type', /content type is "text\/html; charset=utf-8", not application\/json/],
    ['invalid-json', /not valid JSON/],
    ['wrong-kind', /kind "Secret", not Pod/],
    ['other-pod', /not the one asked for/],
    ['huge', /larger than 4194304 bytes/],
    ['huge-declared', /5242880 bytes is larger than 4194304/],
    ['400', /HTTP 400: bad request/],
  ] as const;
  for (const [b, re] of cases) {
    api.reset();
    api.enqueue(b);
    const e = expectError(t, await run(access), 'bad-response', 1, b);
    t.match(e?.message, re, b);
  }
  api.reset();
  api.enqueue('huge');
  const small = await run(access, { maxResponseBytes: 1000 });
  t.match(small.error?.message, /larger than 1000 bytes/, 'the bound is configurable');
});

t.test('hostile names are refused before any request', async (t) => {
  const bad: Array<[string, string]> = [
    ['default', '../x'],
    ['..', 'x'],
    ['default', 'Hello'],
    ['Default', 'x'],
    ['default', 'a'.repeat(300)],
    ['n'.repeat(64), 'x'],
    ['default', '%2F'],
    ['default', 'a%2Fb'],
    ['default', 'a/b'],
    ['default', ''],
    ['', 'x'],
    ['default', 'x?watch=true'],
    ['default', 'x\r\nHost: evil'],
    ['default', '-x'],
    ['kube.system', 'x'],
  ];
  for (const [ns, name] of bad) {
    const r = await run(access, {}, ns, name);
    t.equal(r.error?.kind, 'invalid-name', `${JSON.stringify(ns)}/${JSON.stringify(name.slice(0, 20))}: ${r.error?.message}`);
    t.equal(r.error?.attempts, 0);
    t.notOk(r.error?.message.includes('\n'), 'the message stays one line');
    t.ok((r.error?.message.length ?? 0) < 300, 'the message stays short');
  }
  t.equal(api.requests.length, 0, 'no request made');
  const ok = await run(access, { maxAttempts: 1 }, 'default', 'a'.repeat(253));
  t.equal(ok.error?.kind, 'not-found', 'a 253-character name is valid (and asked for)');
  const dotted = await run(access, { maxAttempts: 1 }, 'n'.repeat(63), 'web-1.example');
  t.equal(dotted.error?.kind, 'not-found', 'a 63-character namespace and a dotted name are valid');
});

t.test('a token echoed by the server does not reach the message', async (t) => {
  api.enqueue('echo-token-500');
  const r = await run(access, { maxAttempts: 1 });
  t.equal(r.error?.kind, 'unavailable');
  t.match(r.error?.message, /broken proxy saw Authorization: Bearer \[redacted\] and token \[redacted\]/);
});

t.test('abort signal', async (t) => {
  api.fallback = 'slow';
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 200);
  const r = await run(access, { signal: ac.signal });
  t.equal(r.error?.kind, 'aborted');
  t.ok(r.ms < 1500, `stopped at once (${r.ms} ms)`);
  const pre = await run(access, { signal: AbortSignal.abort() });
  t.equal(pre.error?.kind, 'aborted');
});

t.test('a token file gone at request time is a KubeconfigError', async (t) => {
  const a = await loadKubeconfig(writeKubeconfig('kc-token-gone', { 'certificate-authority-data': caData }, { tokenFile: 'no-such-token' }));
  const err = await getPod(a, 'default', 'x', { deadlineMs: 1000 }).then(() => undefined, (e: unknown) => e);
  t.ok(err instanceof KubeconfigError, 'a KubeconfigError');
  t.equal((err as KubeconfigError).kind, 'missing');
  t.match((err as KubeconfigError).message, /no-such-token does not exist/);
  await t.rejects(getPod(access, 'default', 'x', { deadlineMs: 0 }), RangeError);
  t.equal(api.requests.length, 0);
});

t.test('no token appears in any error message or attempt report', async (t) => {
  t.ok(seenText.length > 30, `${seenText.length} messages seen`);
  for (const text of seenText) {
    for (const token of ALL_TOKENS) t.notOk(text.includes(token), `no token in: ${text.slice(0, 120)}`);
    t.notOk(text.includes(pki.caPem.toString('base64').slice(30, 70)), 'no CA data');
  }
});
