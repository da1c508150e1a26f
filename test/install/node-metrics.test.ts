// /metrics when a pinned map cannot be read: the scrape still answers, the
// figures of that map are left out, and `meshlane_map_read_errors` names it.
// The same for `meshlane status`, which names the error. (Readable maps: test/kernel/installer.test.ts.)
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { MAP_NAMES, UNCOUNTED_MAPS, pinPaths } from '../../src/bpf/names.js';
import { errnoName } from '../../src/sys/syscall-error.js';
import type { LoopState } from '../../src/install/loop.js';
import { nodeMetrics } from '../../src/install/node-metrics.js';
import { collectStatus } from '../../src/install/status.js';

t.test('a pinned path that is no map: a read error per map, no figures for it', async (t) => {
  const pinDir = mkdtempSync(join(tmpdir(), 'meshlane-metrics-'));
  t.teardown(() => rmSync(pinDir, { recursive: true, force: true }));
  const p = pinPaths(pinDir);
  mkdirSync(p.maps);
  // Plain files where pins would be (not on a bpffs): opening them as BPF objects fails.
  for (const m of [MAP_NAMES.podsByCgroup, MAP_NAMES.counters]) writeFileSync(p.map(m), '');
  const state: LoopState = { live: true, ready: false, reason: 'test', passes: 2, conflistWrites: 1 };
  const text = await nodeMetrics(state, pinDir);
  t.match(text, /^meshlane_install_passes_total 2$/m, 'the rest of the scrape is there');
  t.match(text, new RegExp(`^meshlane_map_read_errors\\{map="${MAP_NAMES.podsByCgroup}"\\} 1$`, 'm'));
  t.match(text, new RegExp(`^meshlane_map_read_errors\\{map="${MAP_NAMES.counters}"\\} 1$`, 'm'));
  t.notMatch(text, /^meshlane_map_entries\{/m, 'no entry count for a map that could not be read');
  t.notMatch(text, /^meshlane_datapath_events_total/m, 'no counters when the counters map could not be read');
  // Maps that are not pinned are not errors.
  t.notMatch(text, new RegExp(`map="${MAP_NAMES.settings}"`));
});

t.test('nothing pinned: the read-error metric is there, with no samples', async (t) => {
  const pinDir = mkdtempSync(join(tmpdir(), 'meshlane-metrics-'));
  t.teardown(() => rmSync(pinDir, { recursive: true, force: true }));
  const text = await nodeMetrics({ live: true, ready: false, reason: 'test', passes: 0, conflistWrites: 0 }, pinDir);
  t.match(text, /^# TYPE meshlane_map_read_errors gauge$/m);
  t.notMatch(text, /^meshlane_map_read_errors\{/m);
});

t.test('status: a map it cannot read is named in its problems, not skipped silently', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'meshlane-status-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const pinDir = join(root, 'pins');
  const p = pinPaths(pinDir);
  mkdirSync(p.maps, { recursive: true });
  // Every map "pinned" (plain files), so status goes on to the settings, counters and pods.
  for (const m of Object.values(MAP_NAMES)) writeFileSync(p.map(m), '');
  const report = await collectStatus(pinDir, join(root, 'no-cgroup'), join(root, 'state'));
  for (const m of Object.values(MAP_NAMES).filter((x) => !UNCOUNTED_MAPS.has(x))) {
    t.ok(report.problems.some((x) => x.startsWith(`cannot count the entries of ${p.map(m)}: `)), `${m}: the failed count is a problem`);
    t.notOk(report.maps.find((x) => x.name === m)?.entries !== undefined, `${m}: no entry count`);
  }
  t.notOk(report.problems.some((x) => x.includes(MAP_NAMES.netnsBySocket)), 'socket storage is not counted, so no problem for it');
  t.ok(report.problems.some((x) => x.startsWith(`cannot read the settings map in ${pinDir}: `)), 'settings');
  t.ok(report.problems.some((x) => x.startsWith(`cannot read the counters map in ${pinDir}: `)), 'counters');
  t.ok(report.problems.some((x) => x.startsWith(`cannot list the registered pods in ${pinDir}: `)), 'pods');
  t.equal(report.settings, undefined);
  t.equal(report.counters, undefined);
});

t.test("errno 524, the kernel's ENOTSUPP, has a name", async (t) => {
  t.equal(errnoName(524).name, 'ENOTSUPP');
  t.equal(errnoName(-524).name, 'ENOTSUPP');
  t.equal(errnoName(2).name, 'ENOENT');
  t.equal(errnoName(999).name, 'errno 999');
});
