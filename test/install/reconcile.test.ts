// The installer's reconcile pieces that need no kernel: which CRI socket, the
// totals file that `meshlane status` reads, and the --cri-socket / --period flags.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { chooseCriSocket, readTotals, totalsPath } from '../../src/install/reconcile.js';
import { INSTALL_FLAGS, parseOptions } from '../../src/install/options.js';
import { UsageError } from '../../src/usage-error.js';

t.test('the CRI socket: the one given, none, or the first default that exists', async (t) => {
  t.equal(chooseCriSocket('/x/cri.sock', () => false), '/x/cri.sock');
  t.equal(chooseCriSocket('none', () => true), undefined);
  t.equal(chooseCriSocket(undefined, (p) => p === '/var/run/crio/crio.sock'), '/var/run/crio/crio.sock');
  t.equal(chooseCriSocket(undefined, () => true), '/run/containerd/containerd.sock', 'containerd first');
  t.equal(chooseCriSocket(undefined, () => false), undefined);
});

t.test('--cri-socket and --period, with their environment variables', async (t) => {
  t.match(parseOptions(['--cri-socket', '/run/x.sock', '--period', '5'], {}, INSTALL_FLAGS), { criSocket: '/run/x.sock', period: 5 });
  t.match(parseOptions([], { MESHLANE_CRI_SOCKET: 'none', MESHLANE_PERIOD: '60' }, INSTALL_FLAGS), { criSocket: 'none', period: 60 });
  t.match(parseOptions([], {}, INSTALL_FLAGS), { criSocket: undefined, period: 30 });
  t.throws(() => parseOptions(['--cri-socket', 'relative.sock'], {}, INSTALL_FLAGS), UsageError);
  t.throws(() => parseOptions(['--period', '0'], {}, INSTALL_FLAGS), UsageError);
});

t.test('the totals file: missing, damaged or hostile values read as zero', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'meshlane-totals-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  t.same(readTotals(dir), { lateRegistrations: 0, staleRemoved: 0, failures: 0 });
  writeFileSync(totalsPath(dir), '{"lateRegistrations":3,"staleRemoved":-1,"failures":"x","lastRound":"2026-12-07T01:00:00.000Z"}');
  t.same(readTotals(dir), { lateRegistrations: 3, staleRemoved: 0, failures: 0, lastRound: '2026-12-07T01:00:00.000Z' });
  writeFileSync(totalsPath(dir), 'not json');
  t.same(readTotals(dir), { lateRegistrations: 0, staleRemoved: 0, failures: 0 });
});
