// Results of every supported version: parse, re-emit untouched, convert both ways.
// The spec versions are data: each test body runs over SUPPORTED_VERSIONS.
import t from 'tap';
import { emptyResult, isPrevResult, parseResult, resultToJson, sandboxIps } from '../../src/cni/result.js';
import { SUPPORTED_VERSIONS, resultHasIpVersion } from '../../src/cni/versions.js';
import { readFixture, realResults, throwsCni } from './helpers.js';

type Json = Record<string, unknown>;

/** What a conversion must produce: the input with cniVersion replaced and ips[].version set or dropped. */
function expectedAt(input: Json, version: string): Json {
  const { cniVersion: _v, ...rest } = input;
  const out: Json = { cniVersion: version, ...rest };
  if (Array.isArray(input['ips'])) {
    out['ips'] = (input['ips'] as Json[]).map((ip) => {
      const { version: _ipv, ...fields } = ip;
      const family = String(fields['address']).includes(':') ? '6' : '4';
      return resultHasIpVersion(version) ? { version: family, ...fields } : fields;
    });
  }
  return out;
}

/** A spec-shaped result of `version` with fields of every kind, plus fields meshlane does not know. */
function synthetic(version: string): Json {
  const v1_1 = version === '1.1.0';
  const ip = (address: string, gateway: string, family: string): Json => ({
    ...(resultHasIpVersion(version) ? { version: family } : {}),
    interface: 2,
    address,
    gateway,
    vendorIpField: { keep: [1, 2, 3] },
  });
  return {
    cniVersion: version,
    interfaces: [
      { name: 'cni0', mac: '00:11:22:33:44:55', ...(v1_1 ? { mtu: 1500 } : {}) },
      { name: 'veth3243', mac: '55:44:33:22:11:11' },
      {
        name: 'eth0',
        mac: '99:88:77:66:55:44',
        sandbox: '/var/run/netns/blue',
        ...(v1_1 ? { mtu: 1450, socketPath: '/run/vhost.sock', pciID: '0000:00:1f.6' } : {}),
        vendorIfField: 'x',
      },
    ],
    ips: [ip('10.1.0.5/16', '10.1.0.1', '4'), ip('2001:db8::5/64', '2001:db8::1', '6')],
    routes: [
      { dst: '0.0.0.0/0', gw: '10.1.0.1', ...(v1_1 ? { mtu: 1400, advmss: 1360, priority: 10, table: 100, scope: 0 } : {}) },
      { dst: '::/0' },
    ],
    dns: { nameservers: ['10.96.0.10'], domain: 'cluster.local', search: ['default.svc.cluster.local'], options: ['ndots:5'], vendorDns: true },
    vendorTop: { nested: { deeper: ['a', null, 1.5] } },
  };
}

t.test('real results: re-emitted in their own version byte for byte', async (t) => {
  const results = realResults();
  t.same(results.map((r) => r.file).sort(), [
    'bridge-host-local-0.3.0.json',
    'bridge-host-local-0.3.1.json',
    'bridge-host-local-0.4.0.json',
    'bridge-host-local-1.0.0.json',
    'ptp-host-local-0.3.1.json',
    'ptp-host-local-1.0.0.json',
  ]);
  for (const { file, version, result } of results) {
    t.equal(JSON.stringify(resultToJson(parseResult(result), version)), JSON.stringify(result), file);
  }
});

for (const target of SUPPORTED_VERSIONS) {
  t.test(`real results converted to ${target}`, async (t) => {
    for (const { file, result } of realResults()) {
      const out = resultToJson(parseResult(result), target);
      t.same(out, expectedAt(result, target), `${file} -> ${target}`);
      t.equal(out['cniVersion'], target);
      const ips = out['ips'] as Json[];
      t.equal(ips.every((ip) => 'version' in ip), resultHasIpVersion(target), `ips[].version ${resultHasIpVersion(target) ? 'present' : 'absent'}`);
      // and back to where it came from
      t.same(resultToJson(parseResult(out), String(result['cniVersion'])), result, `${file} -> ${target} -> back`);
    }
  });
}

for (const source of SUPPORTED_VERSIONS) {
  t.test(`a ${source} result with unknown fields, given to requests of every version`, async (t) => {
    const input = synthetic(source);
    const parsed = parseResult(input);
    t.equal(parsed.declaredVersion, source);
    t.equal(parsed.interfaces.length, 3);
    t.same(parsed.interfaces[2], {
      name: 'eth0',
      mac: '99:88:77:66:55:44',
      sandbox: '/var/run/netns/blue',
      ...(source === '1.1.0' ? { mtu: 1450, socketPath: '/run/vhost.sock', pciID: '0000:00:1f.6' } : {}),
    });
    t.same(parsed.ips, [
      { family: 4, address: '10.1.0.5/16', gateway: '10.1.0.1', interface: 2 },
      { family: 6, address: '2001:db8::5/64', gateway: '2001:db8::1', interface: 2 },
    ]);
    t.same(parsed.routes, [{ dst: '0.0.0.0/0', gw: '10.1.0.1' }, { dst: '::/0' }]);
    t.same(parsed.dns, { nameservers: ['10.96.0.10'], domain: 'cluster.local', search: ['default.svc.cluster.local'], options: ['ndots:5'] });
    t.same(sandboxIps(parsed, 'eth0'), [
      { family: 4, address: '10.1.0.5' },
      { family: 6, address: '2001:db8::5' },
    ]);
    for (const target of SUPPORTED_VERSIONS) {
      const out = resultToJson(parsed, target);
      t.same(out, expectedAt(input, target), `${source} -> ${target}`);
      t.same(out['vendorTop'], input['vendorTop'], 'unknown top-level field kept');
      t.same(resultToJson(parseResult(out), source), input, `${source} -> ${target} -> ${source}`);
    }
    t.same(input, synthetic(source), 'the input object is not modified');
  });
}

t.test('0.3.1 result to a 1.0.0 request and back (the common chain mismatch)', async (t) => {
  const r031 = readFixture('ptp-host-local-0.3.1.json');
  const as100 = resultToJson(parseResult(r031), '1.0.0');
  t.same((as100['ips'] as Json[])[0], { interface: 1, address: '10.244.252.3/24', gateway: '10.244.252.1' });
  const r100 = readFixture('ptp-host-local-1.0.0.json');
  const as031 = resultToJson(parseResult(r100), '0.3.1');
  t.same((as031['ips'] as Json[]).map((ip) => ip['version']), ['4', '6']);
  t.equal(Object.keys((as031['ips'] as Json[])[0] ?? {})[0], 'version', 'version first, as libcni prints it');
});

t.test('a version that contradicts the address is re-derived, not trusted', async (t) => {
  const r = parseResult({ cniVersion: '0.4.0', ips: [{ version: '6', address: '10.0.0.1/24' }] });
  t.same(resultToJson(r, '0.4.0')['ips'], [{ version: '4', address: '10.0.0.1/24' }]);
});

t.test('CNI 0.1/0.2 results are refused with code 1', async (t) => {
  const old = readFixture('bridge-host-local-0.2.0.json');
  const details = 'results of CNI 0.3.0 and later are supported; chain meshlane only with plugins configured for cniVersion 0.3.0 or later';
  throwsCni(t, () => parseResult(old), 1, 'prevResult is a CNI 0.2.0 result (ip4/ip6), which meshlane cannot read', details);
  const { cniVersion: _v, ...noVersion } = old;
  throwsCni(t, () => parseResult(noVersion), 1, 'prevResult is a CNI 0.2.0 result (ip4/ip6), which meshlane cannot read');
  throwsCni(t, () => parseResult({ cniVersion: '0.1.0' }), 1, 'prevResult is a CNI 0.1.0 result (ip4/ip6), which meshlane cannot read');
});

t.test('shapes are checked with the field named', async (t) => {
  const cases: Array<[unknown, string, string?]> = [
    [[], 'prevResult is not a JSON object', 'got an array'],
    [{ cniVersion: 1 }, 'prevResult.cniVersion is not a string', 'got a number'],
    [{ cniVersion: 'one' }, 'prevResult.cniVersion is not a CNI version', 'got "one"'],
    [{ interfaces: {} }, 'prevResult.interfaces is not an array', 'got an object'],
    [{ interfaces: ['eth0'] }, 'prevResult.interfaces[0] is not a JSON object', 'got a string'],
    [{ interfaces: [{ name: 1 }] }, 'prevResult.interfaces[0].name is not a string', 'got a number'],
    [{ interfaces: [{ name: 'a' }, { name: 'b', sandbox: false }] }, 'prevResult.interfaces[1].sandbox is not a string', 'got a boolean'],
    [{ interfaces: [{ name: 'a', mtu: -1 }] }, 'prevResult.interfaces[0].mtu is not a non-negative integer', 'got -1'],
    [{ interfaces: [{ name: 'a', mtu: '1500' }] }, 'prevResult.interfaces[0].mtu is not a non-negative integer', 'got a string'],
    [{ ips: null }, 'prevResult.ips is not an array', 'got null'],
    [{ ips: [{}] }, 'prevResult.ips[0].address is missing'],
    [{ ips: [{ address: '10.0.0.1' }] }, 'prevResult.ips[0].address is not an IP address with a prefix length', 'got "10.0.0.1"'],
    [{ ips: [{ address: '10.0.0.1/33' }] }, 'prevResult.ips[0].address is not an IP address with a prefix length', 'got "10.0.0.1/33"'],
    [{ ips: [{ address: 'fe80::1%eth0/64' }] }, 'prevResult.ips[0].address is not an IP address with a prefix length'],
    [{ ips: [{ address: '10.0.0.1/24' }, { address: 'x/1' }] }, 'prevResult.ips[1].address is not an IP address with a prefix length', 'got "x/1"'],
    [{ ips: [{ address: '10.0.0.1/24', gateway: '10.0.0.256' }] }, 'prevResult.ips[0].gateway is not an IP address', 'got "10.0.0.256"'],
    [{ ips: [{ address: '10.0.0.1/24', interface: -1 }] }, 'prevResult.ips[0].interface is not a non-negative integer', 'got -1'],
    [{ ips: [{ address: '10.0.0.1/24', interface: 0.5 }] }, 'prevResult.ips[0].interface is not a non-negative integer', 'got 0.5'],
    [{ ips: [{ address: '10.0.0.1/24', version: 4 }] }, 'prevResult.ips[0].version is not a string', 'got a number'],
    [{ ips: [{ address: '10.0.0.1/24', version: 'v4' }] }, 'prevResult.ips[0].version is neither "4" nor "6"', 'got "v4"'],
    [{ routes: [{ gw: '10.0.0.1' }] }, 'prevResult.routes[0].dst is missing'],
    [{ routes: [{ dst: 'default' }] }, 'prevResult.routes[0].dst is not an IP address with a prefix length', 'got "default"'],
    [{ routes: [{ dst: '0.0.0.0/0', gw: 'router' }] }, 'prevResult.routes[0].gw is not an IP address', 'got "router"'],
    [{ routes: [{ dst: '0.0.0.0/0', table: 'main' }] }, 'prevResult.routes[0].table is not a non-negative integer', 'got a string'],
    [{ dns: [] }, 'prevResult.dns is not a JSON object', 'got an array'],
    [{ dns: { nameservers: '10.96.0.10' } }, 'prevResult.dns.nameservers is not an array', 'got a string'],
    [{ dns: { search: ['a', 2] } }, 'prevResult.dns.search[1] is not a string', 'got a number'],
    [{ dns: { domain: [] } }, 'prevResult.dns.domain is not a string', 'got an array'],
  ];
  for (const [value, msg, details] of cases) throwsCni(t, () => parseResult(value), 7, msg, details);
  throwsCni(t, () => parseResult({ ips: [{}] }, 'result'), 7, 'result.ips[0].address is missing');
});

t.test('minimal and odd-but-valid results', async (t) => {
  const empty = parseResult({});
  t.same([empty.interfaces, empty.ips, empty.routes, empty.dns, empty.declaredVersion], [[], [], [], {}, undefined]);
  t.same(resultToJson(empty, '0.4.0'), { cniVersion: '0.4.0' }, 'no ips key is not invented');
  t.same(resultToJson(emptyResult(), '1.1.0'), { cniVersion: '1.1.0', interfaces: [], ips: [], dns: {} });
  const future = parseResult({ cniVersion: '1.2.0', ips: [{ address: '10.0.0.1/32' }] });
  t.equal(future.declaredVersion, '1.2.0', 'a newer declared version is read (the request version decides the output)');
  const v4mapped = parseResult({ ips: [{ address: '::ffff:10.0.0.1/128' }] });
  t.equal(v4mapped.ips[0]?.family, 6);
});

t.test('a plain JSON result is validated, then converted', async (t) => {
  const out = resultToJson({ cniVersion: '1.0.0', ips: [{ address: '10.0.0.2/24' }], extra: 1 }, '0.3.0');
  t.same(out, { cniVersion: '0.3.0', ips: [{ version: '4', address: '10.0.0.2/24' }], extra: 1 });
  throwsCni(t, () => resultToJson({ ips: [{ address: 'nope' }] }, '1.0.0'), 7, 'result.ips[0].address is not an IP address with a prefix length');
  t.notOk(isPrevResult({ ips: [] }));
  t.ok(isPrevResult(parseResult({})));
  t.equal(JSON.stringify(parseResult({}).raw), '{}', 'the brand never reaches JSON');
});

t.test('"__proto__" keys stay plain data', async (t) => {
  const input = JSON.parse('{"cniVersion":"1.0.0","__proto__":{"polluted":true},"ips":[{"address":"10.0.0.1/24","__proto__":{"x":1}}]}') as Json;
  const out = resultToJson(parseResult(input), '0.4.0');
  t.equal(({} as Json)['polluted'], undefined, 'no prototype pollution');
  t.equal(JSON.stringify(out), '{"cniVersion":"0.4.0","__proto__":{"polluted":true},"ips":[{"version":"4","address":"10.0.0.1/24","__proto__":{"x":1}}]}');
});

t.test('the IPs inside the sandbox', async (t) => {
  const bridge = parseResult(readFixture('bridge-host-local-1.0.0.json'));
  t.same(sandboxIps(bridge, 'eth0'), [
    { family: 4, address: '10.244.250.2' },
    { family: 6, address: 'fd00:244:250::2' },
  ]);
  const ptp = parseResult(readFixture('ptp-host-local-0.3.1.json'));
  t.same(sandboxIps(ptp, 'eth0'), [
    { family: 4, address: '10.244.252.3' },
    { family: 6, address: 'fd00:244:252::3' },
  ]);
  const noIndex = parseResult({ interfaces: [{ name: 'cali1' }], ips: [{ address: '192.168.1.5/32' }] });
  t.same(sandboxIps(noIndex, 'eth0'), [{ family: 4, address: '192.168.1.5' }], 'no interface index: all ips');
  const mixed = parseResult({
    interfaces: [{ name: 'veth1' }, { name: 'eth0', sandbox: '/ns' }],
    ips: [{ address: '10.0.0.9/24', interface: 0 }, { address: '10.0.0.5/24', interface: 1 }, { address: '10.0.0.7/24' }],
  });
  t.same(sandboxIps(mixed, 'eth0'), [{ family: 4, address: '10.0.0.5' }], 'only the sandbox interface when one is named');
  const hostOnly = parseResult({ interfaces: [{ name: 'veth1' }], ips: [{ address: '10.0.0.9/24', interface: 0 }, { address: '10.0.0.8/24', interface: 7 }] });
  t.same(sandboxIps(hostOnly, 'eth0'), [], 'ips tied to host interfaces (or to none that exists) are not the pod\'s');
  t.same(sandboxIps(parseResult({}), 'eth0'), []);
});

t.test('several sandbox interfaces: only the IPs of CNI_IFNAME', async (t) => {
  // A primary that reports two pod interfaces (or Multus' net1 before eth0): the pod's
  // eth0 is the one the runtime named; another interface never lends its IP.
  const multi = parseResult({
    cniVersion: '1.0.0',
    interfaces: [{ name: 'cni0' }, { name: 'net1', sandbox: '/var/run/netns/p' }, { name: 'eth0', sandbox: '/var/run/netns/p' }],
    ips: [
      { address: '192.168.50.7/24', interface: 1 },
      { address: '10.244.0.5/24', interface: 2 },
      { address: 'fd00:50::7/64', interface: 1 },
      { address: 'fd00:244::5/64', interface: 2 },
    ],
  });
  t.same(sandboxIps(multi, 'eth0'), [{ family: 4, address: '10.244.0.5' }, { family: 6, address: 'fd00:244::5' }], 'eth0, not net1 listed first');
  t.same(sandboxIps(multi, 'net1'), [{ family: 4, address: '192.168.50.7' }, { family: 6, address: 'fd00:50::7' }]);
  t.same(sandboxIps(multi, 'eth1'), [], 'an interface the result does not list has no IPs');
});
