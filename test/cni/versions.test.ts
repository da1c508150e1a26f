import t from 'tap';
import {
  CNI_COMMANDS,
  LATEST_VERSION,
  SUPPORTED_VERSIONS,
  commandAllowed,
  compareVersions,
  isCniCommand,
  isSupportedVersion,
  parseVersion,
  resultHasIpVersion,
  versionAtLeast,
  versionInfo,
} from '../../src/cni/versions.js';

t.test('supported versions', async (t) => {
  t.same([...SUPPORTED_VERSIONS], ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']);
  t.equal(LATEST_VERSION, '1.1.0');
  for (const v of SUPPORTED_VERSIONS) t.ok(isSupportedVersion(v), v);
  for (const v of ['0.1.0', '0.2.0', '1.2.0', '1.0', '1.0.0 ', 'v1.0.0', '', 1, null, undefined]) {
    t.notOk(isSupportedVersion(v), JSON.stringify(v) ?? 'undefined');
  }
});

t.test('parse and compare', async (t) => {
  t.same(parseVersion('1.10.2'), [1, 10, 2]);
  for (const bad of ['1.0', '01.0.0', '1.0.0-rc1', 'a.b.c', '', '1..0']) t.equal(parseVersion(bad), undefined, bad);
  t.equal(compareVersions('0.3.1', '0.4.0'), -1);
  t.equal(compareVersions('1.0.0', '1.0.0'), 0);
  t.equal(compareVersions('1.1.0', '1.0.0'), 1);
  t.equal(compareVersions('0.10.0', '0.9.0'), 1, 'numeric, not lexical');
  t.throws(() => compareVersions('x', '1.0.0'), /not a CNI version: "x"/);
  t.ok(versionAtLeast('1.1.0', '1.1.0'));
  t.notOk(versionAtLeast('1.0.0', '1.1.0'));
});

t.test('which command exists in which version', async (t) => {
  const want: Record<string, string[]> = {
    '0.3.0': ['ADD', 'DEL', 'VERSION'],
    '0.3.1': ['ADD', 'DEL', 'VERSION'],
    '0.4.0': ['ADD', 'DEL', 'CHECK', 'VERSION'],
    '1.0.0': ['ADD', 'DEL', 'CHECK', 'VERSION'],
    '1.1.0': ['ADD', 'DEL', 'CHECK', 'GC', 'STATUS', 'VERSION'],
  };
  for (const v of SUPPORTED_VERSIONS) {
    t.same(CNI_COMMANDS.filter((c) => commandAllowed(c, v)).sort(), (want[v] ?? []).sort(), v);
  }
  t.ok(isCniCommand('GC'));
  t.notOk(isCniCommand('add'), 'case-sensitive');
  t.notOk(isCniCommand('GET'));
});

t.test('ips[].version exists only below 1.0.0', async (t) => {
  t.same(SUPPORTED_VERSIONS.filter(resultHasIpVersion), ['0.3.0', '0.3.1', '0.4.0']);
});

t.test('version info', async (t) => {
  t.same(versionInfo(), { cniVersion: '1.1.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
  t.same(versionInfo('0.4.0').cniVersion, '0.4.0');
});
