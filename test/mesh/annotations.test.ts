// Annotation semantics: istio-cni's meaning of each traffic annotation, the
// edge cases Merbridge got wrong, and hostile values.
import t, { type Test } from 'tap';
import {
  ANNOTATIONS,
  AnnotationError,
  MAX_ERROR_VALUE,
  interceptionFromAnnotations,
  interceptionMode,
  normalizeCidr,
  parseCidrList,
  parseInterceptionAnnotations,
  parsePortList,
} from '../../src/mesh/index.js';
import { ConfigLimitError, encodePodConfig } from '../../src/bpf/pod-config.js';

const A = ANNOTATIONS;
const cfg = (a: Record<string, string>) => interceptionFromAnnotations(a);

function throwsAnnotation(t: Test, a: Record<string, string>, annotation: string, msg: RegExp, label?: string): void {
  try {
    interceptionFromAnnotations(a);
    t.fail(`no error for ${JSON.stringify(a).slice(0, 300)}`);
  } catch (err) {
    t.ok(err instanceof AnnotationError, `AnnotationError ${label ?? ''}`);
    if (!(err instanceof AnnotationError)) return;
    t.equal(err.annotation, annotation, 'names the annotation');
    t.ok(err.message.startsWith(`${annotation}: `), 'message starts with the annotation');
    t.match(err.message, msg, label ?? msg.source);
    t.ok(err.value.length <= MAX_ERROR_VALUE + 1, 'value bounded');
    t.equal(err.name, 'AnnotationError');
  }
}

t.test('defaults: what istio-cni does with only the status annotation', async (t) => {
  t.same(cfg({}), {
    includeInboundPorts: '*',
    excludeInboundPorts: [15020, 15021, 15090],
    includeOutboundPorts: [],
    excludeOutboundPorts: [15020],
    includeOutboundCidrs: '*',
    excludeOutboundCidrs: [],
    statusPort: 15021,
  });
  const p = parseInterceptionAnnotations({});
  t.equal(p.mode, 'REDIRECT');
  t.same(p.excludeInterfaces, []);
  t.same(p.notes, []);
});

t.test('an invalid CIDR: the message names the annotation and the value', async (t) => {
  try {
    cfg({ [A.excludeOutboundIPRanges]: '10.0.0.0/33' });
    t.fail('no error');
  } catch (err) {
    t.equal((err as Error).message, 'traffic.sidecar.istio.io/excludeOutboundIPRanges: "10.0.0.0/33" is not a valid CIDR');
    t.equal((err as AnnotationError).value, '10.0.0.0/33');
  }
});

t.test('"*"', async (t) => {
  t.equal(cfg({ [A.includeOutboundIPRanges]: '*' }).includeOutboundCidrs, '*');
  t.equal(cfg({ [A.includeOutboundIPRanges]: ' * ' }).includeOutboundCidrs, '*');
  // Merbridge excluded nothing here; istio-cni refuses '*' (ValidateExcludeIPRanges), and so does meshlane.
  throwsAnnotation(t, { [A.excludeOutboundIPRanges]: '*' }, A.excludeOutboundIPRanges, /"\*" is not a CIDR \(istio-cni refuses it as well\)/);
  throwsAnnotation(t, { [A.excludeOutboundIPRanges]: ' * ' }, A.excludeOutboundIPRanges, /is not a CIDR/);
  // The datapath still honours the flag when a config carries it.
  t.ok(encodePodConfig({ ...cfg({}), excludeOutboundCidrs: '*' }).flags & 4, 'OUT_CIDRS_EXCL_ALL set');
  t.equal(cfg({ [A.includeInboundPorts]: '*' }).includeInboundPorts, '*');
  for (const key of [A.excludeInboundPorts, A.includeOutboundPorts, A.excludeOutboundPorts]) {
    throwsAnnotation(t, { [key]: '*' }, key, /"\*" is accepted only by includeInboundPorts/, key);
  }
  throwsAnnotation(t, { [A.includeOutboundIPRanges]: '10.0.0.0/8,*' }, A.includeOutboundIPRanges, /"\*" must stand alone/);
  throwsAnnotation(t, { [A.includeInboundPorts]: '80,*' }, A.includeInboundPorts, /"\*" must stand alone/);
});

t.test('empty values', async (t) => {
  // includeOutboundIPRanges "": capture nothing by address (includeOutboundPorts still apply).
  t.same(cfg({ [A.includeOutboundIPRanges]: '' }).includeOutboundCidrs, []);
  t.same(cfg({ [A.includeOutboundIPRanges]: '   ' }).includeOutboundCidrs, []);
  t.ok(encodePodConfig(cfg({ [A.includeOutboundIPRanges]: '' })).flags & 2, 'OUT_CIDRS_LISTED with an empty list');
  // includeInboundPorts "": no inbound capture (istio-iptables writes no ISTIO_INBOUND jump).
  t.same(cfg({ [A.includeInboundPorts]: '' }).includeInboundPorts, []);
  t.ok(encodePodConfig(cfg({ [A.includeInboundPorts]: '' })).flags & 1, 'IN_PORTS_LISTED with an empty list');
  // excludeInboundPorts "": still the three istio-cni always adds (its test: "15020,15021,15090").
  t.same(cfg({ [A.excludeInboundPorts]: '' }).excludeInboundPorts, [15020, 15021, 15090]);
  // excludeOutboundPorts "": replaces istio-cni's default 15020.
  t.same(cfg({ [A.excludeOutboundPorts]: '' }).excludeOutboundPorts, []);
  t.same(cfg({ [A.excludeOutboundIPRanges]: '' }).excludeOutboundCidrs, []);
  t.same(cfg({ [A.includeOutboundPorts]: '' }).includeOutboundPorts, []);
  t.same(parseInterceptionAnnotations({ [A.excludeInterfaces]: '' }).excludeInterfaces, []);
});

t.test('spaces and duplicates', async (t) => {
  // Merbridge lost 443 here.
  t.same(cfg({ [A.includeInboundPorts]: '80, 443' }).includeInboundPorts, [80, 443]);
  t.same(cfg({ [A.includeInboundPorts]: ' 80 ,\t443 ' }).includeInboundPorts, [80, 443]);
  t.same(cfg({ [A.excludeOutboundPorts]: '5555, 6666, 5555' }).excludeOutboundPorts, [5555, 6666]);
  // istio-cni's test: "3306" -> "3306,15020,15021,15090"
  t.same(cfg({ [A.excludeInboundPorts]: '3306' }).excludeInboundPorts, [3306, 15020, 15021, 15090]);
  t.same(cfg({ [A.excludeInboundPorts]: '15021, 3306,3306' }).excludeInboundPorts, [15021, 3306, 15020, 15090]);
  t.same(cfg({ [A.includeOutboundIPRanges]: '10.0.0.0/8, 192.168.0.0/16 ,10.0.0.0/8' }).includeOutboundCidrs, ['10.0.0.0/8', '192.168.0.0/16']);
  // Duplicates after normalisation: same network.
  t.same(cfg({ [A.excludeOutboundIPRanges]: '10.1.2.3/8,10.0.0.0/8' }).excludeOutboundCidrs, ['10.0.0.0/8']);
  t.same(cfg({ [A.excludeOutboundIPRanges]: '2001:DB8::/32,2001:db8:0::/32' }).excludeOutboundCidrs, ['2001:db8::/32']);
  t.same(cfg({ [A.includeOutboundPorts]: '0080' }).includeOutboundPorts, [80], 'leading zeros: Go ParseUint accepts them');
  // Empty entries: istio-cni refuses "80," and "80,,443".
  throwsAnnotation(t, { [A.includeInboundPorts]: '80,' }, A.includeInboundPorts, /empty entry/);
  throwsAnnotation(t, { [A.excludeOutboundIPRanges]: '10.0.0.0/8,,10.1.0.0/16' }, A.excludeOutboundIPRanges, /empty entry/);
});

t.test('IPv6 and IPv4 CIDRs', async (t) => {
  const c = cfg({
    [A.includeOutboundIPRanges]: '10.0.0.0/8,fd00::/8,2001:db8:1234:5678::/64',
    [A.excludeOutboundIPRanges]: '::1/128,fe80::/10,10.96.0.10',
  });
  // Merbridge truncated v6 to 4 bytes; here every bit of the prefix stays.
  t.same(c.includeOutboundCidrs, ['10.0.0.0/8', 'fd00::/8', '2001:db8:1234:5678::/64']);
  t.same(c.excludeOutboundCidrs, ['::1/128', 'fe80::/10', '10.96.0.10/32']);
  const enc = encodePodConfig(c);
  t.equal(enc.include_out_cidrs[2]?.prefix_len, 64);
  t.equal(Buffer.from(enc.include_out_cidrs[2]?.addr ?? []).toString('hex'), '20010db8123456780000000000000000');
  t.equal(enc.include_out_cidrs[0]?.prefix_len, 96 + 8, 'v4 prefix in the 128-bit space');

  const table: [string, string | undefined][] = [
    ['10.96.0.2/24', '10.96.0.0/24'],
    ['10.0.0.1', '10.0.0.1/32'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['255.255.255.255/1', '128.0.0.0/1'],
    ['192.168.1.255/31', '192.168.1.254/31'],
    ['2001:db8::1/32', '2001:db8::/32'],
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1/128'],
    ['2001:db8:0:1:0:0:0:0/64', '2001:db8:0:1::/64'],
    ['1:2:3:4:5:6:7:8/128', '1:2:3:4:5:6:7:8/128'],
    ['fd00:1::ffff/127', 'fd00:1::fffe/127'],
    ['::/0', '::/0'],
    ['::ffff:1.2.3.4/120', '::ffff:1.2.3.0/120'],
    ['fe80::1%eth0/64', undefined],
    ['10.0.0.0/33', undefined],
    ['2001:db8::/129', undefined],
    ['10.0.0.0/08', undefined],
    ['10.0.0.0/-1', undefined],
    ['10.0.0.0/', undefined],
    ['010.0.0.1/8', undefined],
    ['10.0.0/8', undefined],
    ['10.0.0.256/8', undefined],
    ['1.2.3.4/8/8', undefined],
    ['example.com/8', undefined],
    ['', undefined],
    ['/8', undefined],
    ['::g/64', undefined],
    ['10.0.0.0 /8', undefined],
  ];
  for (const [input, want] of table) t.equal(normalizeCidr(input), want, `normalizeCidr(${JSON.stringify(input)})`);
  throwsAnnotation(t, { [A.includeOutboundIPRanges]: '10.0.0.0/8, fe80::1%eth0/64' }, A.includeOutboundIPRanges, /entry "fe80::1%eth0\/64" is not a valid CIDR/);
});

t.test('ports out of range and garbage', async (t) => {
  for (const key of [A.includeInboundPorts, A.excludeInboundPorts, A.includeOutboundPorts, A.excludeOutboundPorts]) {
    throwsAnnotation(t, { [key]: '80,65536' }, key, /"65536" is not a port in 1\.\.65535/, `${key} 65536`);
    throwsAnnotation(t, { [key]: '0' }, key, /is not a port in 1\.\.65535/, `${key} 0`);
    throwsAnnotation(t, { [key]: '-1' }, key, /is not a port number/, `${key} -1`);
    throwsAnnotation(t, { [key]: 'http' }, key, /is not a port number/, `${key} http`);
    throwsAnnotation(t, { [key]: '80;443' }, key, /is not a port number/, `${key} ;`);
    throwsAnnotation(t, { [key]: '1e3' }, key, /is not a port number/, `${key} 1e3`);
    throwsAnnotation(t, { [key]: '80 443' }, key, /is not a port number/, `${key} space-separated`);
    throwsAnnotation(t, { [key]: '99999999999999999999999' }, key, /is not a port in/, `${key} huge number`);
  }
  throwsAnnotation(t, { [A.excludeOutboundIPRanges]: 'garbage' }, A.excludeOutboundIPRanges, /"garbage" is not a valid CIDR/);
  throwsAnnotation(t, { [A.statusPort]: 'abc' }, A.statusPort, /is not a port number/);
  throwsAnnotation(t, { [A.statusPort]: '70000' }, A.statusPort, /is not a port number/);
  throwsAnnotation(t, { [A.statusPort]: '15020,15021' }, A.statusPort, /is not a port number/);
  t.equal(cfg({ [A.statusPort]: '15030' }).statusPort, 15030);
  t.equal(cfg({ [A.statusPort]: ' 15030 ' }).statusPort, 15030);
  t.equal(cfg({ [A.statusPort]: '0' }).statusPort, 0, '0: no status port (the datapath reads 0 as 15021)');
});

t.test('too many entries for the maps', async (t) => {
  const ports = (n: number, from = 1000) => Array.from({ length: n }, (_, i) => String(from + i)).join(',');
  t.equal((cfg({ [A.includeInboundPorts]: ports(32) }).includeInboundPorts as number[]).length, 32, '32 fit');
  throwsAnnotation(t, { [A.includeInboundPorts]: ports(33) }, A.includeInboundPorts, /33 distinct ports; meshlane's datapath holds at most 32/);
  // 32 after duplicates are removed fit.
  t.equal(cfg({ [A.excludeOutboundPorts]: `${ports(32)},${ports(32)}` }).excludeOutboundPorts.length, 32);
  // excludeInboundPorts: the three always added count.
  t.equal(cfg({ [A.excludeInboundPorts]: ports(29) }).excludeInboundPorts.length, 32);
  throwsAnnotation(t, { [A.excludeInboundPorts]: ports(30) }, A.excludeInboundPorts, /33 distinct ports with 15020, 15021, 15090/);
  t.equal(cfg({ [A.excludeInboundPorts]: `${ports(29)},15020,15021,15090` }).excludeInboundPorts.length, 32);
  const cidrs = (n: number) => Array.from({ length: n }, (_, i) => `10.${i}.0.0/16`).join(',');
  t.equal((cfg({ [A.includeOutboundIPRanges]: cidrs(32) }).includeOutboundCidrs as string[]).length, 32);
  throwsAnnotation(t, { [A.includeOutboundIPRanges]: cidrs(33) }, A.includeOutboundIPRanges, /33 distinct ranges; meshlane's datapath holds at most 32/);
  throwsAnnotation(t, { [A.excludeOutboundIPRanges]: cidrs(40) }, A.excludeOutboundIPRanges, /40 distinct ranges/);
  // What passes here always encodes.
  const big = cfg({
    [A.includeInboundPorts]: ports(32),
    [A.excludeInboundPorts]: ports(29, 2000),
    [A.includeOutboundPorts]: ports(32, 3000),
    [A.excludeOutboundPorts]: ports(32, 4000),
    [A.includeOutboundIPRanges]: cidrs(32),
    [A.excludeOutboundIPRanges]: cidrs(32),
  });
  t.doesNotThrow(() => encodePodConfig(big));
  t.throws(() => encodePodConfig({ ...big, excludeOutboundPorts: [...big.excludeOutboundPorts, 1] }), ConfigLimitError, 'the encoder agrees on the limit');
});

t.test('huge, non-string and hostile values', async (t) => {
  const huge = '1,'.repeat(100_000) + '1';
  throwsAnnotation(t, { [A.excludeOutboundPorts]: huge }, A.excludeOutboundPorts, /characters long; at most 65536/);
  try {
    cfg({ [A.excludeOutboundPorts]: huge });
  } catch (err) {
    t.ok((err as AnnotationError).value.length <= MAX_ERROR_VALUE + 1, 'value bounded to 200 chars');
    t.ok((err as Error).message.length < 600, 'message bounded');
  }
  // A long list of a repeated valid port is fine (duplicates removed).
  t.same(cfg({ [A.excludeOutboundPorts]: '1,'.repeat(1000) + '1' }).excludeOutboundPorts, [1]);
  const longGarbage = 'x'.repeat(5000);
  throwsAnnotation(t, { [A.includeOutboundIPRanges]: longGarbage }, A.includeOutboundIPRanges, /is not a valid CIDR/);

  for (const v of [80, null, ['80'], { a: 1 }, true, undefined]) {
    const a = { [A.includeInboundPorts]: v } as unknown as Record<string, string>;
    throwsAnnotation(t, a, A.includeInboundPorts, /is not a string/, `non-string ${JSON.stringify(v)}`);
  }
  // Control characters are quoted, not printed raw.
  try {
    cfg({ [A.includeInboundPorts]: '80\n\u001b[31m' });
    t.fail('no error');
  } catch (err) {
    t.notMatch((err as Error).message, /\n|\u001b/, 'escaped in the message');
  }
  // Prototype pollution: "__proto__" and inherited keys are plain keys, never read.
  const polluted = JSON.parse(`{"__proto__": {"${A.excludeOutboundPorts}": "1"}, "constructor": "x"}`) as Record<string, string>;
  t.same(cfg(polluted).excludeOutboundPorts, [15020], 'a key in __proto__ is not an annotation');
  const inherited = Object.create({ [A.includeInboundPorts]: '1' }) as Record<string, string>;
  t.equal(cfg(inherited).includeInboundPorts, '*', 'inherited properties are not annotations');
  t.equal(({} as Record<string, unknown>)['polluted'], undefined);
});

t.test('interception mode', async (t) => {
  t.equal(parseInterceptionAnnotations({ [A.interceptionMode]: 'REDIRECT' }).mode, 'REDIRECT');
  throwsAnnotation(t, { [A.interceptionMode]: 'TPROXY' }, A.interceptionMode, /"TPROXY" is not supported by meshlane yet/);
  t.equal(interceptionMode({ [A.interceptionMode]: 'TPROXY' }), 'TPROXY');
  t.equal(interceptionMode({}), 'REDIRECT');
  t.throws(() => interceptionMode({ [A.interceptionMode]: 'tproxy' }), /is not a valid interception mode/);
  throwsAnnotation(t, { [A.interceptionMode]: 'NONE' }, A.interceptionMode, /is not a valid interception mode: REDIRECT or TPROXY/);
  throwsAnnotation(t, { [A.interceptionMode]: 'redirect' }, A.interceptionMode, /is not a valid interception mode/, 'case matters, as in istio-cni');
  throwsAnnotation(t, { [A.interceptionMode]: '' }, A.interceptionMode, /is not a valid interception mode/);
});

t.test('excludeInterfaces and virtual interfaces', async (t) => {
  const p = parseInterceptionAnnotations({ [A.excludeInterfaces]: 'net1, net2,net1' });
  t.same(p.excludeInterfaces, ['net1', 'net2']);
  t.equal(p.notes.length, 1);
  t.match(p.notes[0], /connect\(\)/);
  throwsAnnotation(t, { [A.excludeInterfaces]: 'averyveryverylongname' }, A.excludeInterfaces, /at most 15 characters/);
  throwsAnnotation(t, { [A.excludeInterfaces]: 'eth0;rm -rf' }, A.excludeInterfaces, /is not an interface name/);
  throwsAnnotation(t, { [A.excludeInterfaces]: '-eth0' }, A.excludeInterfaces, /is not an interface name/);
  throwsAnnotation(t, { [A.excludeInterfaces]: 'eth0,' }, A.excludeInterfaces, /empty entry/);
  throwsAnnotation(t, { [A.rerouteVirtualInterfaces]: 'tap0' }, A.rerouteVirtualInterfaces, /not supported by meshlane/);
  throwsAnnotation(t, { [A.kubevirtInterfaces]: 'net1,net2' }, A.kubevirtInterfaces, /not supported by meshlane/);
  t.doesNotThrow(() => cfg({ [A.kubevirtInterfaces]: '' }), 'empty: nothing to reroute');
});

t.test('unrelated annotations are ignored', async (t) => {
  t.same(cfg({ 'example.com/x': '*', 'traffic.sidecar.istio.io/unknown': 'garbage', 'kuma.io/x': '1' }), cfg({}));
});

t.test('list parsers on their own', async (t) => {
  t.same(parseCidrList('k', '10.0.0.1, ::1', false), ['10.0.0.1/32', '::1/128']);
  t.throws(() => parseCidrList('k', '*', false), /k: "\*" is not valid here/);
  t.equal(parseCidrList('k', '*', true), '*');
  t.same(parsePortList('k', ' '), []);
  const long = `${'9'.repeat(300)}`;
  try {
    parsePortList('k', long);
    t.fail('no error');
  } catch (err) {
    t.equal((err as AnnotationError).value, `${'9'.repeat(MAX_ERROR_VALUE)}…`, 'value cut at 200 characters');
    t.ok((err as Error).message.length < 500);
  }
});
