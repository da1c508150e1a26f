import t from 'tap';
import type { Test } from 'tap';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KubeconfigError, currentToken, loadKubeconfig } from '../../src/kube/index.js';
import { upstreamFixtures } from '../helpers/paths.js';

const golden = join(upstreamFixtures, 'istio-install-golden');
const SECRET = 'sEcReT-tOkEn-1234567890';
const CA_PEM = readFileSync(join(golden, 'kube-ca.crt'));
const CA_DATA = CA_PEM.toString('base64');

async function rejects(t: Test, p: Promise<unknown>, kind: string, parts: Array<string | RegExp>, msg: string): Promise<KubeconfigError | undefined> {
  try {
    await p;
    t.fail(`${msg}: resolved`);
    return undefined;
  } catch (err) {
    t.ok(err instanceof KubeconfigError, `${msg}: a KubeconfigError`);
    const e = err as KubeconfigError;
    t.equal(e.kind, kind, `${msg}: kind ${kind}`);
    for (const part of parts) {
      if (typeof part === 'string') t.ok(e.message.includes(part), `${msg}: message has ${JSON.stringify(part)}: ${e.message}`);
      else t.match(e.message, part, msg);
    }
    t.notOk(e.message.includes(SECRET), `${msg}: no secret in the message`);
    t.notOk(e.message.includes(CA_DATA.slice(0, 40)), `${msg}: no CA data in the message`);
    return e;
  }
}

function kubeconfig(cluster: string, user: string, extra = ''): string {
  return `apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
${cluster}
contexts:
- name: ctx
  context:
    cluster: local
    user: sa
current-context: ctx
users:
- name: sa
  user:
${user}
${extra}`;
}

t.test("Istio installer's golden kubeconfigs", async (t) => {
  const tls = await loadKubeconfig(join(golden, 'kubeconfig-tls'));
  t.equal(tls.server.hostname, '10.96.0.1');
  t.equal(tls.server.port, '', 'port 443 is the default');
  t.equal(tls.server.protocol, 'https:');
  t.equal(tls.insecureSkipTlsVerify, false);
  t.same(tls.ca, CA_PEM, 'certificate-authority-data decodes to kube-ca.crt');
  t.equal(tls.token, 'service_account_token_string');
  t.equal(tls.tokenFile, undefined);
  t.equal(tls.kubeconfigPath, join(golden, 'kubeconfig-tls'));

  const skip = await loadKubeconfig(join(golden, 'kubeconfig-skip-tls'));
  t.equal(skip.server.hostname, '10.96.0.1');
  t.equal(skip.insecureSkipTlsVerify, true);
  t.equal(skip.ca, undefined);
  t.equal(skip.token, 'service_account_token_string');

  const newhost = await loadKubeconfig(join(golden, 'kubeconfig-newhost'));
  t.equal(newhost.server.hostname, '50.76.2.1');
  t.equal(newhost.server.port, '');
  t.same(newhost.ca, CA_PEM);
  t.equal(newhost.insecureSkipTlsVerify, false);
  t.equal(newhost.token, 'service_account_token_string');
});

t.test('kubeconfigs the installer may write', async (t) => {
  const dir = t.testdir({
    'ca.crt': CA_PEM,
    'token': `${SECRET}\n`,
    'yaml-ca-file': kubeconfig('    server: https://10.96.0.1:6443/prefix/\n    certificate-authority: ca.crt\n    tls-server-name: kubernetes.default.svc', '    tokenFile: token'),
    'json': JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster: { server: 'https://[fd00::1]:443', 'certificate-authority-data': CA_DATA } }],
      users: [{ name: 'u', user: { token: SECRET } }],
      contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
      'current-context': 'x',
    }),
    'no-contexts': `clusters:\n- name: only\n  cluster:\n    server: https://api.example:6443\n    insecure-skip-tls-verify: true\nusers:\n- name: sa\n  user:\n    token: ${SECRET}\n`,
    'one-context': `clusters:\n- name: c\n  cluster:\n    server: https://a:1\n    insecure-skip-tls-verify: true\ncontexts:\n- name: only\n  context:\n    cluster: c\n`,
    'client-cert': kubeconfig(
      `    server: https://127.0.0.1:6443\n    certificate-authority-data: ${CA_DATA}`,
      `    client-certificate-data: ${CA_DATA}\n    client-key-data: ${Buffer.from('-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n').toString('base64')}`,
    ),
  });

  const f = await loadKubeconfig(join(dir, 'yaml-ca-file'));
  t.same(f.ca, CA_PEM, 'certificate-authority read, relative to the kubeconfig');
  t.equal(f.tokenFile, join(dir, 'token'), 'tokenFile resolved against the kubeconfig dir');
  t.equal(f.token, undefined);
  t.equal(f.server.pathname, '/prefix/');
  t.equal(f.server.port, '6443');
  t.equal(f.tlsServerName, 'kubernetes.default.svc');
  t.equal(await currentToken(f), SECRET, 'token file read, trailing newline trimmed');
  writeFileSync(join(dir, 'token'), 'rotated');
  t.equal(await currentToken(f), 'rotated', 'read again on every call');

  const j = await loadKubeconfig(join(dir, 'json'));
  t.equal(j.server.hostname, '[fd00::1]');
  t.equal(j.token, SECRET);
  t.same(j.ca, CA_PEM);

  const n = await loadKubeconfig(join(dir, 'no-contexts'));
  t.equal(n.server.host, 'api.example:6443', 'no contexts: the only cluster and user');
  t.equal(n.token, SECRET);
  t.equal(n.insecureSkipTlsVerify, true);

  const o = await loadKubeconfig(join(dir, 'one-context'));
  t.equal(o.token, undefined, 'no current-context: the only context; no user, no credential');

  const c = await loadKubeconfig(join(dir, 'client-cert'));
  t.same(c.clientCert, CA_PEM);
  t.match(c.clientKey?.toString(), /BEGIN PRIVATE KEY/);
});

t.test('what is wrong, and where, without the content', async (t) => {
  const dir = t.testdir({
    'not-yaml': `users:\n- name: sa\n  user:\n    token: ${SECRET}\n   bad: [indent\n`,
    'empty': '',
    'scalar': 'just a string',
    'no-server': kubeconfig('    insecure-skip-tls-verify: true', `    token: ${SECRET}`),
    'bad-url': kubeconfig('    server: "::not a url"', `    token: ${SECRET}`),
    'http': kubeconfig('    server: http://10.96.0.1:8080', `    token: ${SECRET}`),
    'userinfo': kubeconfig(`    server: https://admin:${SECRET}@10.96.0.1`, '    token: x'),
    'bad-base64': kubeconfig('    server: https://10.96.0.1\n    certificate-authority-data: "%%%not base64%%%"', `    token: ${SECRET}`),
    'not-pem': kubeconfig(`    server: https://10.96.0.1\n    certificate-authority-data: ${Buffer.from(SECRET).toString('base64')}`, '    token: x'),
    'ca-and-insecure': kubeconfig(`    server: https://10.96.0.1\n    insecure-skip-tls-verify: true\n    certificate-authority-data: ${CA_DATA}`, '    token: x'),
    'insecure-string': kubeconfig('    server: https://10.96.0.1\n    insecure-skip-tls-verify: "yes"', '    token: x'),
    'ca-file-missing': kubeconfig('    server: https://10.96.0.1\n    certificate-authority: /nonexistent/ca.crt', '    token: x'),
    'exec': kubeconfig('    server: https://10.96.0.1\n    insecure-skip-tls-verify: true', '    exec:\n      command: aws\n      apiVersion: client.authentication.k8s.io/v1'),
    'token-number': kubeconfig('    server: https://10.96.0.1\n    insecure-skip-tls-verify: true', '    token: 12345'),
    'token-newline': kubeconfig('    server: https://10.96.0.1\n    insecure-skip-tls-verify: true', `    token: "${SECRET}\\r\\nX-Evil: 1"`),
    'cert-without-key': kubeconfig(`    server: https://10.96.0.1\n    certificate-authority-data: ${CA_DATA}`, `    client-certificate-data: ${CA_DATA}`),
    'dangling-context': kubeconfig('    server: https://10.96.0.1', '    token: x').replace('current-context: ctx', 'current-context: elsewhere'),
    'dangling-user': kubeconfig('    server: https://10.96.0.1', '    token: x').replace('user: sa\ncurrent', 'user: nobody\ncurrent'),
    'two-contexts': `clusters:\n- name: a\n  cluster:\n    server: https://a\n- name: b\n  cluster:\n    server: https://b\ncontexts:\n- name: a\n  context:\n    cluster: a\n- name: b\n  context:\n    cluster: b\n`,
    'clusters-not-list': 'clusters: {}\n',
    'wrong-kind': 'kind: Pod\n',
    'a-dir': {},
  });
  const p = (f: string): string => join(dir, f);
  const hint = 'meshlane install writes this file; is the installer running';

  const missing = await rejects(t, loadKubeconfig(p('nope')), 'missing', [p('nope'), 'does not exist', hint], 'missing file');
  t.equal(missing?.path, p('nope'));
  await rejects(t, loadKubeconfig(p('a-dir')), 'unreadable', [p('a-dir'), 'not a regular file'], 'a directory');
  const bad = await rejects(t, loadKubeconfig(p('not-yaml')), 'invalid', [p('not-yaml'), 'not valid YAML', /line \d+/, hint], 'bad YAML');
  t.notOk(bad?.message.includes('token'), 'the YAML source line is not quoted');
  await rejects(t, loadKubeconfig(p('empty')), 'invalid', ['is empty'], 'empty file');
  await rejects(t, loadKubeconfig(p('scalar')), 'invalid', ['not a mapping'], 'a scalar');
  const ns = await rejects(t, loadKubeconfig(p('no-server')), 'invalid', ['clusters["local"].cluster.server is missing', hint], 'no server');
  t.equal(ns?.field, 'clusters["local"].cluster.server');
  await rejects(t, loadKubeconfig(p('bad-url')), 'invalid', ['.server is not a URL'], 'server not a URL');
  await rejects(t, loadKubeconfig(p('http')), 'unsupported', ['must be an https:// URL', '10.96.0.1:8080'], 'http server');
  await rejects(t, loadKubeconfig(p('userinfo')), 'invalid', ['must not carry credentials'], 'credentials in the server URL');
  await rejects(t, loadKubeconfig(p('bad-base64')), 'invalid', ['certificate-authority-data is not valid base64'], 'bad base64');
  await rejects(t, loadKubeconfig(p('not-pem')), 'invalid', ['certificate-authority-data is not a PEM certificate'], 'CA data not PEM');
  await rejects(t, loadKubeconfig(p('ca-and-insecure')), 'invalid', ['insecure-skip-tls-verify is true together with a certificate authority'], 'CA and insecure');
  await rejects(t, loadKubeconfig(p('insecure-string')), 'invalid', ['insecure-skip-tls-verify must be true or false'], 'insecure as a string');
  const caMissing = await rejects(t, loadKubeconfig(p('ca-file-missing')), 'missing', ['/nonexistent/ca.crt', 'certificate-authority'], 'CA file missing');
  t.equal(caMissing?.path, '/nonexistent/ca.crt');
  await rejects(t, loadKubeconfig(p('exec')), 'unsupported', ['users["sa"].user.exec is not supported'], 'exec credentials');
  await rejects(t, loadKubeconfig(p('token-number')), 'invalid', ['users["sa"].user.token must be a string'], 'token of the wrong type');
  await rejects(t, loadKubeconfig(p('token-newline')), 'invalid', ['characters that a bearer token cannot have'], 'token that would split a header');
  await rejects(t, loadKubeconfig(p('cert-without-key')), 'invalid', ['client-key-data is missing'], 'cert without key');
  await rejects(t, loadKubeconfig(p('dangling-context')), 'invalid', ['current-context names "elsewhere"'], 'current-context names nothing');
  await rejects(t, loadKubeconfig(p('dangling-user')), 'invalid', ['no user named "nobody"'], 'context names no user');
  await rejects(t, loadKubeconfig(p('two-contexts')), 'invalid', ['current-context is not set and there are 2 contexts'], 'two contexts, none current');
  await rejects(t, loadKubeconfig(p('clusters-not-list')), 'invalid', ['clusters must be a list'], 'clusters not a list');
  await rejects(t, loadKubeconfig(p('wrong-kind')), 'invalid', ['kind is "Pod"'], 'not kind Config');
});

t.test('token file problems at request time', async (t) => {
  const dir = t.testdir({ 'kc': kubeconfig('    server: https://10.96.0.1\n    insecure-skip-tls-verify: true', '    tokenFile: sub/token'), sub: {} });
  const access = await loadKubeconfig(join(dir, 'kc'));
  await rejects(t, currentToken(access), 'missing', [join(dir, 'sub', 'token'), join(dir, 'kc')], 'token file missing');
  writeFileSync(join(dir, 'sub', 'token'), '\n');
  await rejects(t, currentToken(access), 'invalid', ['is empty'], 'token file empty');
  mkdirSync(join(dir, 'sub', 'x'));
  writeFileSync(join(dir, 'sub', 'token'), `${SECRET} ${SECRET}`);
  await rejects(t, currentToken(access), 'invalid', ['characters that a bearer token cannot have'], 'token file with a space');
});
