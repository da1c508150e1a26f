// Which file the runtime uses: libcni's ConfFiles (.conf, .conflist, .json), Go's
// sort.Strings (bytes), the first valid one; and what libcni counts as valid.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { basename } from 'node:path';
import { compareByteOrder, configKindOf, conflistNameFor, type ConfigFile } from '../../src/install/cniconf/files.js';
import { planInstall } from '../../src/install/cniconf/plan.js';
import { scanCniConfigs } from '../../src/install/cniconf/primary.js';
const pickPrimary = (files: ConfigFile[]) => scanCniConfigs(files).primary;
import { parseCniConfig } from '../../src/install/cniconf/validity.js';
import { atomicTempPath } from '../../src/sys/atomic-write.js';
import { bytesOf, conflistsDir, docOf, istioGoldenDir, meshlaneEntry, readConfig, text } from './helpers.js';

const cilium = readConfig(conflistsDir, 'cilium-05-cilium.conflist', '05-cilium.conflist');
const calico = readConfig(conflistsDir, 'calico-10-calico.conflist', '10-calico.conflist');
const bridgeConf = readConfig(conflistsDir, 'bridge-10-dbnet.conf', '10-a.conf');
const as = (file: ConfigFile, name: string): ConfigFile => ({ name, bytes: file.bytes });
/** Calico's template as shipped: `"mtu": __CNI_MTU__` is not JSON. */
const calicoTemplate = new Uint8Array(readFileSync(join(conflistsDir, 'templates', 'calico-10-calico.conflist.template')));

t.test('byte order, the first valid one', async (t) => {
  t.equal(pickPrimary([calico, cilium])?.name, '05-cilium.conflist', '05-cilium before 10-calico');
  t.equal(pickPrimary([as(calico, '10-a.conflist'), bridgeConf])?.name, '10-a.conf', '10-a.conf before 10-a.conflist');
  t.equal(pickPrimary([as(cilium, 'a.conflist'), as(calico, 'Z.conflist')])?.name, 'Z.conflist', 'uppercase sorts first');
  // UTF-16 order puts U+10000 (a surrogate pair, 0xD800…) before U+FFFF; UTF-8 bytes
  // (F0… vs EF…) put it after, and Go sorts bytes.
  const astral = 'a\u{10000}.conflist';
  const bmp = 'a\uffff.conflist';
  t.ok([astral, bmp].sort()[0] === astral, 'JS default sort differs');
  t.equal(pickPrimary([as(cilium, astral), as(calico, bmp)])?.name, bmp, 'byte order wins');
  t.ok(compareByteOrder('10-a.conf', '10-a.conflist') < 0);
  t.equal(pickPrimary([as(cilium, '.00-hidden.conf')]), undefined, 'a hidden .conf holding a list is invalid as a conf');
  t.equal(pickPrimary([as(bridgeConf, '.00-hidden.conf'), cilium])?.name, '.00-hidden.conf', 'libcni does not skip hidden files');
});

t.test('invalid files before it are skipped with a reason', async (t) => {
  const files: ConfigFile[] = [
    calico,
    { name: '00-calico.conflist', bytes: calicoTemplate },
    readConfig(istioGoldenDir, 'invalid-map.conflist', '01-map.conflist'),
    readConfig(istioGoldenDir, 'invalid-arr.conflist', '02-arr.conflist'),
    as(calico, '03-list-in-a.json'),
    { name: '04-empty.conflist', bytes: new Uint8Array(0) },
    { name: '99-broken.conf', bytes: bytesOf('{') },
  ];
  const scan = scanCniConfigs(files);
  t.equal(scan.primary?.name, '10-calico.conflist');
  t.strictSame(
    scan.primary?.skipped.map((s) => s.name),
    ['00-calico.conflist', '01-map.conflist', '02-arr.conflist', '03-list-in-a.json', '04-empty.conflist'],
  );
  t.strictSame(scan.skipped.map((s) => s.name), ['00-calico.conflist', '01-map.conflist', '02-arr.conflist', '03-list-in-a.json', '04-empty.conflist', '99-broken.conf']);
  const reasons = Object.fromEntries(scan.skipped.map((s) => [s.name, s.reason]));
  t.match(reasons['00-calico.conflist'], /^invalid JSON: unexpected '_' at line 11 column/);
  t.match(reasons['01-map.conflist'], 'not a valid network config list: no name');
  t.match(reasons['02-arr.conflist'], 'not a valid network config list: it is an array, not an object');
  t.match(reasons['03-list-in-a.json'], "not a valid network config: missing 'type'", 'a .json is read as a single config');
  t.match(reasons['04-empty.conflist'], /^invalid JSON: unexpected end of input/, 'a zero-length file');
  t.match(reasons['99-broken.conf'], /^invalid JSON/);
  for (const s of scan.skipped) t.notMatch(s.reason, /__CNI_MTU__/, 'reasons never echo file content');
});

t.test('non-config names are ignored', async (t) => {
  const files: ConfigFile[] = [
    as(cilium, '00-cilium.conflist.cilium_bak'),
    as(cilium, '00-calico.conflist.template'),
    as(cilium, 'README'),
    as(cilium, '00-x.yaml'),
    as(cilium, basename(atomicTempPath('/etc/cni/net.d/10-calico.conflist'))),
    calico,
  ];
  const scan = scanCniConfigs(files);
  t.equal(scan.primary?.name, '10-calico.conflist');
  t.strictSame(scan.skipped, []);
  t.equal(scan.ignored.length, 5);
  t.equal(configKindOf(basename(atomicTempPath('/etc/cni/net.d/10-calico.conflist'))), undefined, 'the temp name of an atomic write has no config extension');
});

t.test('empty or all-invalid dir: undefined', async (t) => {
  t.equal(pickPrimary([]), undefined);
  t.equal(pickPrimary([{ name: 'x.conflist', bytes: bytesOf('{}') }]), undefined);
  t.equal(scanCniConfigs([{ name: 'x.conflist', bytes: bytesOf('{}') }]).skipped.length, 1, 'the reasons are still there');
});

t.test('names', async (t) => {
  t.equal(configKindOf('a.conflist'), 'conflist');
  t.equal(configKindOf('a.conf'), 'conf');
  t.equal(configKindOf('a.json'), 'conf');
  t.equal(configKindOf('.conf'), 'conf', 'filepath.Ext(".conf") is ".conf"');
  t.equal(configKindOf('a.conflist.bak'), undefined);
  t.equal(configKindOf('a.CONF'), undefined, 'extensions are case-sensitive');
  t.equal(conflistNameFor('10-a.conf'), '10-a.conflist');
  t.equal(conflistNameFor('10-a.json'), '10-a.conflist');
  t.equal(conflistNameFor('10-a.conflist'), '10-a.conflist');
});

t.test('validity as libcni sees it', async (t) => {
  const conf = (o: unknown): ReturnType<typeof parseCniConfig> => parseCniConfig('x.conf', bytesOf(JSON.stringify(o)));
  const cl = (o: unknown): ReturnType<typeof parseCniConfig> => parseCniConfig('x.conflist', bytesOf(JSON.stringify(o)));
  const ok = { type: 'bridge' };
  const valid: Array<[string, ReturnType<typeof parseCniConfig>]> = [
    ['minimal conf', conf(ok)],
    ['conf with nulls (Go leaves the field zero)', conf({ type: 'b', name: null, cniVersion: null, ipam: null, dns: null })],
    ['"Type" matches type case-insensitively, like Go structs', conf({ Type: 'bridge' })],
    ['minimal list', cl({ name: 'n', plugins: [ok] })],
    ['list with disableCheck "true" (libcni 1.2)', cl({ name: 'n', disableCheck: 'TRUE', plugins: [ok] })],
    ['list with cniVersions', cl({ name: 'n', cniVersions: ['1.0.0', '1.1.0'], plugins: [ok] })],
    ['unknown fields pass', cl({ name: '', whatever: [1], plugins: [{ type: 'x', mtu: '9001', capabilities: { a: true } }] })],
  ];
  for (const [what, r] of valid) t.ok(r.ok, what);

  const invalid: Array<[string, ReturnType<typeof parseCniConfig>, string | RegExp]> = [
    ['conf {}', conf({}), "missing 'type'"],
    ['conf null', conf(null), "missing 'type'"],
    ['conf []', conf([]), 'it is an array, not an object'],
    ['conf type ""', conf({ type: '' }), "missing 'type'"],
    ['conf type 5', conf({ type: 5 }), '"type" is a number, not a string'],
    ['conf cniVersion 1', conf({ type: 'b', cniVersion: 1 }), '"cniVersion" is a number'],
    ['conf name true', conf({ type: 'b', name: true }), '"name" is a boolean'],
    ['capabilities not booleans', conf({ type: 'b', capabilities: { portMappings: 'yes' } }), '"capabilities"."portMappings" is a string, not a boolean'],
    ['ipam a string', conf({ type: 'b', ipam: 'host-local' }), '"ipam" is a string, not an object'],
    ['ipam.type a number', conf({ type: 'b', ipam: { type: 1 } }), '"ipam": "type" is a number'],
    ['dns.nameservers a string', conf({ type: 'b', dns: { nameservers: '1.1.1.1' } }), '"dns"."nameservers" is a string'],
    ['a list in a .conf', conf({ name: 'n', plugins: [ok] }), "missing 'type'"],
    ['list no name', cl({ plugins: [ok] }), 'no name'],
    ['list name null', cl({ name: null, plugins: [ok] }), '"name" is null, not a string'],
    ['list cniVersion number', cl({ name: 'n', cniVersion: 1.0, plugins: [ok] }), '"cniVersion" is a number'],
    ['list no plugins', cl({ name: 'n' }), "no 'plugins' key"],
    ['list plugins {}', cl({ name: 'n', plugins: {} }), '"plugins" is an object, not an array'],
    ['list plugins []', cl({ name: 'n', plugins: [] }), 'no plugins in list'],
    ['list plugin without type', cl({ name: 'n', plugins: [ok, { name: 'x' }] }), "plugin 1: missing 'type'"],
    ['list plugin a string', cl({ name: 'n', plugins: ['bridge'] }), 'plugin 0: it is a string, not an object'],
    ['list plugin null', cl({ name: 'n', plugins: [null] }), "plugin 0: missing 'type'"],
    ['disableCheck "yes"', cl({ name: 'n', disableCheck: 'yes', plugins: [ok] }), '"disableCheck" is a string, not a boolean'],
    ['cniVersions [1]', cl({ name: 'n', cniVersions: [1], plugins: [ok] }), '"cniVersions"[0] is a number'],
    ['a conf in a .conflist', cl(ok), 'no name'],
    ['prevResult a list', conf({ type: 'b', prevResult: [] }), '"prevResult" is an array, not an object'],
  ];
  for (const [what, r, reason] of invalid) t.match(r, { ok: false, reason }, what);
  t.match(parseCniConfig('x.txt', bytesOf('{}')), { ok: false, reason: /not a CNI config file name/ });
  t.match(parseCniConfig('x.conflist', bytesOf('{"name":"n","plugins":[{"type":"b",}]}')), { ok: false, reason: /^invalid JSON: expected a property name/ });
});

t.test('leading newlines, tabs, no trailing newline: read as they are', async (t) => {
  const kindnet = readConfig(conflistsDir, 'kindnet-10-kindnet.conflist', '10-kindnet.conflist');
  t.ok(text(kindnet.bytes).startsWith('\n'));
  t.ok(text(kindnet.bytes).includes('\t'));
  t.equal(docOf(kindnet)['name'], 'kindnet');
  t.notOk(text(calico.bytes).endsWith('\n'), 'calico has no trailing newline');
  t.equal(docOf(calico)['name'], 'k8s-pod-network');
});

t.test('planInstall: one round over a directory listing', async (t) => {
  t.match(planInstall([], meshlaneEntry), { action: 'wait' });
  t.match(planInstall([{ name: '00.conflist', bytes: bytesOf('{}') }], meshlaneEntry), { action: 'wait', skipped: [{ name: '00.conflist' }] });

  const first = planInstall([calico, as(cilium, '20-cilium.conflist')], meshlaneEntry);
  if (first.action !== 'write') throw new Error(`expected write, got ${first.action}`);
  t.equal(first.write.name, '10-calico.conflist');
  t.equal(first.remove, undefined);
  t.match(planInstall([first.write], meshlaneEntry), { action: 'none' }, 'installed: nothing to do');

  const conv = planInstall([bridgeConf], meshlaneEntry);
  t.match(conv, { action: 'write', write: { name: '10-a.conflist' }, remove: '10-a.conf' }, '.conf converted, old name removed');

  t.match(planInstall([bridgeConf, as(calico, '10-a.conflist')], meshlaneEntry), { action: 'refuse', reason: /10-a\.conflist, which exists and is not meshlane's/ }, 'never overwrites another config');
  if (conv.action !== 'write') throw new Error('expected write');
  t.match(planInstall([bridgeConf, conv.write], meshlaneEntry), { action: 'write', write: { name: '10-a.conflist' }, remove: '10-a.conf' }, 'the .conf came back: our stale copy is overwritten');

  t.match(planInstall([bridgeConf, as(cilium, '10-a.conf-b.conflist')], meshlaneEntry), { action: 'refuse', reason: /then 10-a\.conf-b\.conflist would be the primary/ }, 'the new name must stay first');
  t.match(planInstall([{ name: '10-m.conflist', bytes: bytesOf(JSON.stringify({ name: 'n', plugins: [meshlaneEntry] })) }], meshlaneEntry), { action: 'refuse', reason: /no network plugin but meshlane's/ });
});
