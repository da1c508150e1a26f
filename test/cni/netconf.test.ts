import t from 'tap';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { decodeJson, parseNetConf, peekVersion } from '../../src/cni/netconf.js';
import { MAX_JSON_DEPTH as MAX_CONFIG_DEPTH } from '../../src/json/scan.js';
import { isPrevResult } from '../../src/cni/result.js';
import { SUPPORTED_VERSIONS } from '../../src/cni/versions.js';
import { readFixture, upstreamFixtures, throwsCni } from './helpers.js';

const good = { cniVersion: '1.0.0', name: 'k8s-pod-network', type: 'meshlane' };
const bytes = (s: string | Buffer): Buffer => (typeof s === 'string' ? Buffer.from(s, 'utf8') : s);
const SUPPORTED = '0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0';

t.test('decode: not JSON is code 6 and says where', async (t) => {
  throwsCni(t, () => decodeJson(bytes('')), 6, 'network config is empty', 'stdin held no data');
  throwsCni(t, () => decodeJson(bytes(' \n\t ')), 6, 'network config is empty');
  throwsCni(t, () => decodeJson(bytes('{"cniVersion":"1.0.0","na')), 6, 'invalid JSON in network config', 'unterminated string at line 1 column 26 (character 25)');
  throwsCni(t, () => decodeJson(bytes('{"cniVersion":"1.0.0",\n"name":"x",\n}')), 6, 'invalid JSON in network config', "expected a property name in double quotes, found '}' at line 3 column 1 (character 35)");
  throwsCni(t, () => decodeJson(bytes('\u0000\u0000\u0000')), 6, 'invalid JSON in network config', 'unexpected U+0000 at line 1 column 1 (character 0)');
  throwsCni(t, () => decodeJson(Buffer.from([0x7b, 0xff, 0xfe, 0x7d])), 6, 'network config is not valid UTF-8');
  throwsCni(t, () => decodeJson(bytes('['.repeat(MAX_CONFIG_DEPTH + 1) + ']'.repeat(MAX_CONFIG_DEPTH + 1))), 6, 'invalid JSON in network config', 'nested deeper than 64 levels at line 1 column 65 (character 64)');
  t.same(decodeJson(bytes(JSON.stringify(good))), good);
});

t.test('not a plugin config is code 7 naming the field', async (t) => {
  const cases: Array<[unknown, string, string?]> = [
    [[], 'network config is not a JSON object', 'got an array'],
    [null, 'network config is not a JSON object', 'got null'],
    ['str', 'network config is not a JSON object', 'got a string'],
    [42, 'network config is not a JSON object', 'got a number'],
    [{ ...good, cniVersion: 1 }, 'cniVersion is not a string', 'got a number'],
    [{ ...good, name: undefined }, 'missing network name'],
    [{ ...good, name: '' }, 'missing network name'],
    [{ ...good, name: 7 }, 'name is not a string', 'got a number'],
    [{ ...good, name: 'bad name' }, 'invalid characters found in network name', 'name is "bad name"; it must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$'],
    [{ ...good, name: 'n'.repeat(257) }, 'network name is longer than 256 characters'],
    [{ ...good, type: undefined }, 'missing type', 'the config names no plugin type'],
    [{ ...good, type: ['meshlane'] }, 'type is not a string', 'got an array'],
    [{ ...good, type: '' }, 'type is empty'],
    [{ ...good, runtimeConfig: [] }, 'runtimeConfig is not a JSON object', 'got an array'],
    [{ ...good, runtimeConfig: null }, 'runtimeConfig is not a JSON object', 'got null'],
    [{ ...good, capabilities: true }, 'capabilities is not a JSON object', 'got a boolean'],
    [{ ...good, args: 'x=y' }, 'args is not a JSON object', 'got a string'],
    [{ ...good, prevResult: 'x' }, 'prevResult is not a JSON object', 'got a string'],
    [{ ...good, prevResult: { ips: [{}] } }, 'prevResult.ips[0].address is missing'],
  ];
  for (const [value, msg, details] of cases) throwsCni(t, () => parseNetConf(value), 7, msg, details);
});

t.test('a version meshlane does not speak is code 1 naming it and the supported list', async (t) => {
  for (const v of ['0.1.0', '0.2.0', '1.2.0', '2.0.0', '1.0', 'latest']) {
    throwsCni(t, () => parseNetConf({ ...good, cniVersion: v }), 1, `incompatible CNI versions: config is ${JSON.stringify(v)}, meshlane supports ${SUPPORTED}`);
  }
  const { cniVersion: _v, ...noVersion } = good;
  throwsCni(t, () => parseNetConf(noVersion), 1, `incompatible CNI versions: config is absent (meaning "0.1.0"), meshlane supports ${SUPPORTED}`);
  for (const v of SUPPORTED_VERSIONS) t.equal(parseNetConf({ ...good, cniVersion: v }).cniVersion, v, v);
});

t.test('the raw object is kept whole', async (t) => {
  const raw = {
    ...good,
    log_level: 'debug',
    exclude_namespaces: ['kube-system'],
    capabilities: { 'io.kubernetes.cri.pod-annotations': true },
    runtimeConfig: { 'io.kubernetes.cri.pod-annotations': { 'sidecar.istio.io/status': '{}' } },
    args: { cni: { labels: [] } },
  };
  const c = parseNetConf(raw);
  t.equal(c.raw, raw, 'the same object');
  t.equal(c.name, 'k8s-pod-network');
  t.equal(c.type, 'meshlane');
  t.same(c.runtimeConfig, raw.runtimeConfig);
  t.same(c.capabilities, raw.capabilities);
  t.same(c.args, raw.args);
  t.equal(c.prevResult, undefined);
});

t.test('prevResult is parsed; for DEL a bad one can be recorded instead', async (t) => {
  const prevResult = readFixture('bridge-host-local-1.0.0.json');
  const c = parseNetConf({ ...good, prevResult });
  t.ok(isPrevResult(c.prevResult));
  t.equal(c.prevResult?.ips.length, 2);
  const bad = { ...good, prevResult: { ips: 'no' } };
  throwsCni(t, () => parseNetConf(bad), 7, 'prevResult.ips is not an array', 'got a string');
  const lenient = parseNetConf(bad, { lenientPrevResult: true });
  t.equal(lenient.prevResult, undefined);
  t.equal(lenient.prevResultError?.code, 7);
  t.equal(lenient.prevResultError?.msg, 'prevResult.ips is not an array');
});

t.test('peekVersion', async (t) => {
  t.equal(peekVersion(bytes('{"cniVersion":"0.4.0"}')), '0.4.0');
  t.equal(peekVersion(bytes('{"cniVersion":"0.2.0"}')), undefined);
  t.equal(peekVersion(bytes('[')), undefined);
  t.equal(peekVersion(bytes('[]')), undefined);
});

// Every plugin entry of every real conflist in testing/fixtures, built as libcni
// builds a plugin's stdin: the list's name and cniVersion injected into the entry
// (a single-plugin .conf is the config itself).
const conflistDir = join(upstreamFixtures, 'conflists');
const files = readdirSync(conflistDir).filter((f) => /\.conf(list)?$/.test(f));

t.test('real conflists from testing/fixtures', async (t) => {
  t.ok(files.length >= 9, `found ${files.length} configs`);
  for (const file of files) {
    const list = JSON.parse(readFileSync(join(conflistDir, file), 'utf8')) as Record<string, unknown>;
    const entries = Array.isArray(list['plugins']) ? (list['plugins'] as Array<Record<string, unknown>>) : [list];
    entries.forEach((entry, i) => {
      const stdin = JSON.stringify({ ...entry, name: list['name'], cniVersion: list['cniVersion'] });
      const c = parseNetConf(decodeJson(Buffer.from(stdin)));
      t.equal(c.cniVersion, list['cniVersion'], `${file}[${i}] version`);
      t.equal(c.type, entry['type'], `${file}[${i}] type ${String(entry['type'])}`);
      t.same(c.raw, JSON.parse(stdin), `${file}[${i}] raw kept`);
    });
  }
});

t.test('real conflist bytes (leading newlines, tabs, no trailing newline) decode', async (t) => {
  for (const file of files) {
    const value = decodeJson(readFileSync(join(conflistDir, file)));
    t.same(value, JSON.parse(readFileSync(join(conflistDir, file), 'utf8')), file);
  }
});

t.test('a plugin entry without the injected name and version is refused as libcni-built stdin never is', async (t) => {
  const list = JSON.parse(readFileSync(join(conflistDir, 'calico-10-calico.conflist'), 'utf8')) as { plugins: unknown[] };
  throwsCni(t, () => parseNetConf(list.plugins[1]), 1, `incompatible CNI versions: config is absent (meaning "0.1.0"), meshlane supports ${SUPPORTED}`);
});
