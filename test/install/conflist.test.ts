// Golden tests of the installer's conflist edit: every real primary config, Istio's
// installer goldens adapted to meshlane's entry, stale and duplicate entries, and the
// way uninstall gives the primary its file back.
import t from 'tap';
import { ConflistError, ISTIO_CNI_TYPE, MESHLANE_TYPE, type ConfigFile } from '../../src/install/cniconf/files.js';
import { entryIndex, entryIndices, hasEntry, insertEntry, removeEntry } from '../../src/install/cniconf/chain.js';
import { scanCniConfigs } from '../../src/install/cniconf/primary.js';
import { originalToKeep, planRestore, sameApartFromEntry } from '../../src/install/cniconf/restore.js';
import { parseCniConfig } from '../../src/install/cniconf/validity.js';
import { bytesOf, docOf, istioGoldenDir, meshlaneEntry, pluginsOf, readConfig, realConfigs, text, without } from './helpers.js';

t.test('the entry under test is cni-conf/meshlane.json', async (t) => {
  t.equal(meshlaneEntry['type'], MESHLANE_TYPE);
  t.notOk('cniVersion' in meshlaneEntry, 'no cniVersion of its own: the list decides');
});

t.test('every real primary config', async (t) => {
  const configs = realConfigs();
  t.ok(configs.length >= 9, `${configs.length} fixtures`);
  for (const { fixture, file } of configs) {
    t.test(fixture, async (t) => {
      const parsed = parseCniConfig(file.name, file.bytes);
      t.ok(parsed.ok, 'the original is valid');
      const original = docOf(file);
      const isConf = file.name.endsWith('.conf');

      const ins = insertEntry(file, meshlaneEntry);
      t.equal(ins.changed, true, 'insert changes it');
      t.ok(text(ins.bytes).endsWith('}\n'), 'ends with a newline');
      const after = parseCniConfig(ins.name, ins.bytes);
      t.ok(after.ok && after.kind === 'conflist', 'the result is a valid conflist');
      const doc = docOf(ins);
      const plugins = pluginsOf(doc);

      if (isConf) {
        t.equal(ins.name, file.name.replace(/\.conf$/, '.conflist'), 'X.conf becomes X.conflist');
        t.equal(doc['cniVersion'], original['cniVersion'], 'the conf\'s cniVersion, not a downgrade');
        t.equal(doc['name'], original['name'], 'the conf\'s network name');
        t.strictSame(Object.keys(doc), ['cniVersion', 'name', 'plugins']);
        t.equal(plugins.length, 2);
        t.strictSame(plugins[0], without(original, 'cniVersion'), 'the conf is the first plugin, unchanged but for cniVersion');
      } else {
        t.equal(ins.name, file.name, 'same file name');
        t.strictSame(without(doc, 'plugins'), without(original, 'plugins'), 'top-level fields unchanged');
        t.strictSame(Object.keys(doc), Object.keys(original), 'top-level key order kept');
        t.equal(doc['cniVersion'], original['cniVersion'], 'cniVersion unchanged');
        const before = pluginsOf(original);
        t.equal(plugins.length, before.length + 1);
        t.strictSame(plugins.slice(0, -1), before, 'the primary\'s plugins unchanged, in order');
        before.forEach((p, i) => t.strictSame(Object.keys(plugins[i] ?? {}), Object.keys(p), `plugin ${i} key order kept`));
      }
      t.strictSame(plugins[plugins.length - 1], meshlaneEntry, 'meshlane last');

      const again = insertEntry(ins, meshlaneEntry);
      t.equal(again.changed, false, 'a second insert changes nothing');
      t.equal(again.name, ins.name);
      t.equal(again.bytes, ins.bytes, 'the same bytes');
      t.notOk(insertEntry(ins, meshlaneEntry).changed, 'current: a second insert changes nothing');
      t.equal(entryIndex(ins.bytes, ins.name), plugins.length - 1);

      const rm = removeEntry(ins.name, ins.bytes);
      t.equal(rm.changed, true);
      t.notOk(hasEntry(rm.bytes, rm.name));
      if (isConf) {
        t.strictSame(docOf(rm), { ...without(docOf(ins), 'plugins'), plugins: [without(original, 'cniVersion')] }, 'remove leaves the wrapped conf');
      } else {
        t.strictSame(docOf(rm), original, 'remove gives the original back semantically');
      }
      t.equal(removeEntry(rm.name, rm.bytes).changed, false, 'removing twice changes nothing');

      const plan = planRestore({ original: file, current: ins });
      t.equal(plan.action, 'restore', plan.reason);
      t.equal(plan.write?.name, file.name);
      t.equal(plan.write && text(plan.write.bytes), text(file.bytes), 'uninstall writes the original bytes exactly');
      t.equal(plan.remove, isConf ? ins.name : undefined, isConf ? 'and removes the .conflist' : 'nothing to remove');
    });
  }
});

t.test('values are kept as written: strings where numbers belong, literals, key order', async (t) => {
  const aws = realConfigs().find((c) => c.fixture.startsWith('aws'));
  if (!aws) throw new Error('aws fixture missing');
  const out = text(insertEntry(aws.file, meshlaneEntry).bytes);
  t.match(out, /"mtu": "9001"/, 'mtu stays a string');
  t.match(out, /"enabled": "false"/, 'a string "false" stays a string');
  t.match(out, /"disableCheck": true/);

  const odd = bytesOf('{"name":"n","cniVersion":"1.0.0","plugins":[{"type":"x","mtu":1500.0,"big":18446744073709551616,"e":1E3,"2":"two","b":"bee","__proto__":{"p":1}}],"1":"one"}');
  const res = insertEntry({ name: '10-odd.conflist', bytes: odd }, meshlaneEntry);
  const s = text(res.bytes);
  t.match(s, /"mtu": 1500\.0,/, '1500.0 kept');
  t.match(s, /"big": 18446744073709551616,/, 'a 2^64 literal kept');
  t.match(s, /"e": 1E3,/, 'exponent literal kept');
  t.ok(s.indexOf('"e": 1E3') < s.indexOf('"2": "two"') && s.indexOf('"2": "two"') < s.indexOf('"b": "bee"'), 'an integer-like key stays where it was (JS objects would move it first)');
  t.ok(s.indexOf('"plugins"') < s.indexOf('"1": "one"'), 'top-level "1" stays after plugins');
  t.match(s, /"__proto__": \{/, '__proto__ kept as a key');
  const doc = docOf(res);
  t.ok(Object.prototype.hasOwnProperty.call(pluginsOf(doc)[0], '__proto__'), '__proto__ is data in the parsed doc');
  t.equal(insertEntry(res, meshlaneEntry).changed, false);
});

t.test('Istio goldens, adapted to meshlane\'s entry', async (t) => {
  /** A golden is always a list (bridge.conf.golden too): read it as one. */
  const golden = (name: string): Record<string, unknown> => docOf(readConfig(istioGoldenDir, name, 'golden.conflist'));
  /** Istio's expected output with its own entry swapped for ours. */
  const adapt = (doc: Record<string, unknown>): Array<Record<string, unknown>> =>
    pluginsOf(doc).map((p) => (p['type'] === ISTIO_CNI_TYPE ? meshlaneEntry : p));

  t.test('bridge.conf → bridge.conf.golden', async (t) => {
    const input = readConfig(istioGoldenDir, 'bridge.conf');
    const out = insertEntry(input, meshlaneEntry);
    t.equal(out.name, 'bridge.conflist');
    const doc = docOf(out);
    const want = golden('bridge.conf.golden');
    t.strictSame(pluginsOf(doc), adapt(want), 'plugins as in the golden: the conf minus cniVersion, then the entry');
    // Deliberate differences from Istio, whose golden wraps a .conf with a hard-coded
    // cniVersion 0.3.1 and the name "k8s-pod-network": meshlane keeps the conf's own
    // version (never lowered) and its network name.
    t.equal(want['cniVersion'], '0.3.1');
    t.equal(doc['cniVersion'], '0.4.0', 'the conf\'s 0.4.0 kept, not Istio\'s 0.3.1 downgrade');
    t.equal(doc['name'], 'dbnet', 'the conf\'s network name (libcni caches results under it), not "k8s-pod-network"');
  });

  t.test('list.conflist → list.conflist.golden', async (t) => {
    const out = insertEntry(readConfig(istioGoldenDir, 'list.conflist'), meshlaneEntry);
    const want = golden('list.conflist.golden');
    t.strictSame(docOf(out), { ...want, plugins: adapt(want) });
  });

  t.test('list-no-istio.conflist is list.conflist with Istio\'s key order; same result', async (t) => {
    const a = insertEntry(readConfig(istioGoldenDir, 'list.conflist'), meshlaneEntry);
    const b = insertEntry(readConfig(istioGoldenDir, 'list-no-istio.conflist', 'list.conflist'), meshlaneEntry);
    t.strictSame(docOf(a), docOf(b));
  });

  t.test('list-with-istio.conflist: meshlane after istio-cni, istio-cni untouched', async (t) => {
    const input = readConfig(istioGoldenDir, 'list-with-istio.conflist');
    const before = pluginsOf(docOf(input));
    const out = insertEntry(input, meshlaneEntry);
    const plugins = pluginsOf(docOf(out));
    const want = golden('list-with-istio.conflist.golden');
    t.strictSame(plugins.map((p) => p['type']), [...pluginsOf(want).map((p) => p['type']), MESHLANE_TYPE], 'golden order, then meshlane');
    t.strictSame(plugins.slice(0, 3), before, 'istio-cni and the rest exactly as they were');
    t.strictSame(plugins[3], meshlaneEntry);
    t.equal(insertEntry(out, meshlaneEntry).changed, false, 'install twice: unchanged');
    const rm = removeEntry(out.name, out.bytes);
    t.strictSame(docOf(rm), docOf(input), 'uninstall: the file as it was');
    const plan = planRestore({ original: input, current: out });
    t.equal(plan.action, 'restore');
    t.equal(plan.write && text(plan.write.bytes), text(input.bytes), 'byte for byte');
  });

  t.test('Istio-owned lists take meshlane after istio-cni', async (t) => {
    for (const name of ['istio-owned.conflist.golden', 'istio-owned-bridge.conflist.golden']) {
      const input = readConfig(istioGoldenDir, name, name.replace(/\.golden$/, ''));
      const out = insertEntry(input, meshlaneEntry);
      const plugins = pluginsOf(docOf(out));
      t.strictSame(plugins.slice(0, -1), pluginsOf(docOf(input)), name);
      t.equal(plugins[plugins.length - 2]?.['type'], ISTIO_CNI_TYPE);
      t.equal(docOf(out)['cniVersion'], docOf(input)['cniVersion']);
    }
  });

  t.test('invalid-map.conflist ({}) and invalid-arr.conflist ([]) are refused', async (t) => {
    for (const name of ['invalid-map.conflist', 'invalid-arr.conflist']) {
      const file = readConfig(istioGoldenDir, name);
      const p = parseCniConfig(file.name, file.bytes);
      t.notOk(p.ok, name);
      t.equal(scanCniConfigs([file]).primary, undefined, `${name} is never the primary`);
      t.throws(() => insertEntry(file, meshlaneEntry), ConflistError);
    }
    t.match(parseCniConfig('invalid-map.conflist', bytesOf('{}\n')), { ok: false, reason: /no name/ });
    t.match(parseCniConfig('invalid-arr.conflist', bytesOf('[]\n')), { ok: false, reason: /an array, not an object/ });
  });
});

const list = (...plugins: Array<Record<string, unknown>>): ConfigFile => ({
  name: '10-test.conflist',
  bytes: bytesOf(JSON.stringify({ cniVersion: '1.0.0', name: 'test', plugins }, null, 2)),
});
const bridge = { type: 'bridge', bridge: 'cni0', ipam: { type: 'host-local', subnet: '10.1.0.0/16' } };
const tuning = { type: 'tuning', sysctl: { 'net.core.somaxconn': '500' } };
const istio = { type: 'istio-cni', name: 'istio-cni', plugin_log_level: 'debug', kubernetes: { kubeconfig: '/k' } };
const stale = { type: 'meshlane', log_level: 'debug', state_dir: '/old' };
const typesOf = (f: ConfigFile): unknown[] => pluginsOf(docOf(f)).map((p) => p['type']);

t.test('stale and duplicate entries', async (t) => {
  t.test('a stale entry is replaced in place', async (t) => {
    const out = insertEntry(list(bridge, stale, tuning), meshlaneEntry);
    t.equal(out.changed, true);
    t.strictSame(typesOf(out), ['bridge', 'meshlane', 'tuning'], 'same position');
    t.strictSame(pluginsOf(docOf(out))[1], meshlaneEntry, 'new content');
    t.ok(insertEntry(list(bridge, stale, tuning), meshlaneEntry).changed, 'a stale entry is not current');
    t.equal(entryIndices(list(bridge, stale, tuning).bytes).length, 1, 'present once');
  });

  t.test('duplicates collapse to the first', async (t) => {
    const input = list(bridge, meshlaneEntry, tuning, stale, meshlaneEntry);
    t.strictSame(entryIndices(input.bytes, input.name), [1, 3, 4]);
    t.ok(insertEntry(input, meshlaneEntry).changed, 'three entries are not current');
    const out = insertEntry(input, meshlaneEntry);
    t.strictSame(typesOf(out), ['bridge', 'meshlane', 'tuning']);
    t.strictSame(pluginsOf(docOf(out))[1], meshlaneEntry);
    t.equal(insertEntry(out, meshlaneEntry).changed, false);
  });

  t.test('an entry with the same content in any key order is current', async (t) => {
    const reordered = Object.fromEntries(Object.entries(meshlaneEntry).reverse());
    const input = list(bridge, reordered);
    t.notOk(insertEntry(input, meshlaneEntry).changed, 'current');
    t.equal(insertEntry(input, meshlaneEntry).changed, false);
  });

  t.test('an entry before istio-cni moves after it; istio-cni never changes', async (t) => {
    const out = insertEntry(list(bridge, meshlaneEntry, istio, tuning), meshlaneEntry);
    t.strictSame(typesOf(out), ['bridge', 'istio-cni', 'tuning', 'meshlane']);
    t.strictSame(pluginsOf(docOf(out))[1], istio);
    const after = insertEntry(list(bridge, istio, stale, tuning), meshlaneEntry);
    t.strictSame(typesOf(after), ['bridge', 'istio-cni', 'meshlane', 'tuning'], 'after istio-cni already: replaced in place');
    const removed = removeEntry(out.name, out.bytes);
    t.strictSame(pluginsOf(docOf(removed)), [bridge, istio, tuning], 'uninstall leaves istio-cni as it was');
  });

  t.test('the entry\'s own cniVersion is dropped; a non-meshlane entry is a bug', async (t) => {
    const out = insertEntry(list(bridge), { ...meshlaneEntry, cniVersion: '0.3.1' });
    t.strictSame(pluginsOf(docOf(out))[1], meshlaneEntry);
    t.equal(docOf(out)['cniVersion'], '1.0.0');
    t.throws(() => insertEntry(list(bridge), { type: 'other' }), TypeError);
    t.throws(() => insertEntry(list(bridge), { ...meshlaneEntry, port: Number.NaN }), { name: 'TypeError', message: /entry\.port is NaN/ });
    t.throws(() => insertEntry(list(bridge), { ...meshlaneEntry, f: () => 1 }), { name: 'TypeError', message: /entry\.f is function/ });
    t.strictSame(pluginsOf(docOf(insertEntry(list(bridge), { ...meshlaneEntry, gone: undefined })))[1], meshlaneEntry, 'undefined fields are left out, as JSON.stringify does');
  });

  t.test('a list of nothing but meshlane is not a primary network', async (t) => {
    t.throws(() => insertEntry(list(stale), meshlaneEntry), ConflistError);
    t.throws(() => removeEntry('10-test.conflist', list(stale).bytes), ConflistError);
  });

  t.test('hasEntry / entryIndex', async (t) => {
    t.equal(hasEntry(list(bridge).bytes), false);
    t.equal(entryIndex(list(bridge, tuning, meshlaneEntry).bytes), 2);
    t.equal(entryIndex(bytesOf('not json')), -1);
    t.equal(hasEntry(bytesOf(JSON.stringify({ ...meshlaneEntry, cniVersion: '1.0.0' })), '10-x.conf'), false, 'a single conf has no entry list');
  });
});

t.test('bytes that cannot be rewritten faithfully', async (t) => {
  const bom = new Uint8Array([0xef, 0xbb, 0xbf, ...list(bridge).bytes]);
  t.match(parseCniConfig('10-bom.conflist', bom), { ok: false, reason: /U\+FEFF/ }, 'a BOM is refused, as Go refuses it');
  // Go's encoding/json accepts invalid UTF-8 (it reads U+FFFD), so the runtime uses
  // the file; meshlane must not rewrite it, since the rewrite would change bytes.
  const latin1 = bytesOf(JSON.stringify({ cniVersion: '1.0.0', name: 'X', plugins: [{ type: 'bridge', note: 'Z' }] }));
  latin1[latin1.indexOf(0x5a)] = 0xe9;
  t.ok(parseCniConfig('10-latin1.conflist', latin1).ok, 'valid for the runtime');
  t.throws(() => insertEntry({ name: '10-latin1.conflist', bytes: latin1 }, meshlaneEntry), ConflistError);
});

t.test('uninstall: giving the primary its file back', async (t) => {
  const original = readConfig(istioGoldenDir, 'list.conflist');
  const ours = insertEntry(original, meshlaneEntry);

  t.test('the primary rewrote its file since: only our entry goes', async (t) => {
    const rewritten = insertEntry({ name: original.name, bytes: bytesOf(text(original.bytes).replace('500', '1024')) }, meshlaneEntry);
    const plan = planRestore({ original, current: rewritten });
    t.equal(plan.action, 'strip', plan.reason);
    t.notOk(plan.write && hasEntry(plan.write.bytes));
    t.match(plan.write && text(plan.write.bytes), /"net.core.somaxconn": "1024"/, 'the primary\'s new content kept');
  });

  t.test('nothing to do when the entry is gone or the file is', async (t) => {
    t.equal(planRestore({ original, current: original }).action, 'none');
    t.equal(planRestore({ original, current: undefined }).action, 'none');
  });

  t.test('a converted .conf', async (t) => {
    const conf = readConfig(istioGoldenDir, 'bridge.conf', '10-bridge.conf');
    const converted = insertEntry(conf, meshlaneEntry);
    t.equal(converted.name, '10-bridge.conflist');
    const restore = planRestore({ original: conf, current: converted });
    t.match(restore, { action: 'restore', write: { name: '10-bridge.conf' }, remove: '10-bridge.conflist' });
    // The primary CNI wrote its .conf again beside our .conflist: ours is a stale copy.
    const back = planRestore({ original: conf, current: converted, atOriginalName: conf.bytes });
    t.match(back, { action: 'delete', remove: '10-bridge.conflist', write: undefined });
    const newer = bytesOf(text(conf.bytes).replace('cni0', 'cni1'));
    t.match(planRestore({ original: conf, current: insertEntry({ name: conf.name, bytes: newer }, meshlaneEntry), atOriginalName: newer }), { action: 'delete' });
    // Our .conflist edited by somebody else and no .conf: keep theirs, strip ours.
    const edited = insertEntry({ name: conf.name, bytes: newer }, meshlaneEntry);
    t.match(planRestore({ original: conf, current: edited }), { action: 'strip', write: { name: '10-bridge.conflist' } });
  });

  t.test('which original to keep in the state dir', async (t) => {
    t.equal(originalToKeep(undefined, original).bytes, original.bytes, 'first install: the file as it is');
    t.equal(originalToKeep(original, ours), original, 'our own write: keep the saved original');
    const newer: ConfigFile = { name: original.name, bytes: bytesOf(text(original.bytes).replace('500', '1024')) };
    t.equal(originalToKeep(original, newer).bytes, newer.bytes, 'the primary wrote a new file: that is the original now');
    const noSaved = originalToKeep(undefined, ours);
    t.notOk(hasEntry(noSaved.bytes), 'an entry already there and nothing saved: keep it without the entry');
    t.ok(sameApartFromEntry(noSaved, original));
    t.ok(sameApartFromEntry(readConfig(istioGoldenDir, 'bridge.conf'), insertEntry(readConfig(istioGoldenDir, 'bridge.conf'), meshlaneEntry)), 'a conf and its conversion');
    t.notOk(sameApartFromEntry(original, readConfig(istioGoldenDir, 'invalid-map.conflist')));
  });
});
