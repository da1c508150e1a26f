// The installer on a kernel it refuses, with the probe's result injected (no
// kernel needed): one message naming the kernel and what it lacks; the
// datapath is not loaded; the CNI entry still goes into the chain (so a sidecar
// pod's ADD fails naming the reason, and every other pod passes); the refusal
// is recorded for the plugin and cleared once a probe passes; /readyz stays
// 503 with the message; the message is logged once, not every pass.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { MAP_NEEDS, PROGRAM_NEEDS, helperKey, type KernelFeatures } from '../../src/bpf/kernel-probe.js';
import { startHealthServer } from '../../src/install/health.js';
import { Installer } from '../../src/install/installer.js';
import { runInstallLoop, type LoopState } from '../../src/install/loop.js';
import { INSTALL_FLAGS, parseOptions } from '../../src/install/options.js';
import { currentBootId, kernelRefusalPath, readKernelRefusal } from '../../src/node/kernel-refusal.js';
import { upstreamFixtures } from '../helpers/paths.js';
import { RecordingLogger } from '../helpers/recording-logger.js';

/** A kernel with every feature but the ancestor-cgroup helper in connect4/6 (what 5.4 lacks). */
function kernel54(): KernelFeatures {
  const f: KernelFeatures = { release: '5.4.0-150-generic', bpf: { ok: true }, cgroup2: { ok: true, dir: '/sys/fs/cgroup' }, programs: {}, helpers: {}, maps: {}, optional: {} };
  for (const n of PROGRAM_NEEDS) {
    f.programs[n.section] = { ok: true };
    for (const h of n.helpers) f.helpers[helperKey(n.section, h)] = { ok: true };
  }
  for (const m of MAP_NEEDS) f.maps[m.name] = { ok: true };
  for (const s of ['cgroup/connect4', 'cgroup/connect6']) {
    f.helpers[helperKey(s, 'get_current_ancestor_cgroup_id')] = { ok: false, why: 'missing', detail: 'unknown func bpf_get_current_ancestor_cgroup_id#123' };
  }
  return f;
}
const EXPECTED =
  'meshlane cannot run on this kernel (Linux 5.4.0-150-generic): no helper bpf_get_current_ancestor_cgroup_id in cgroup/connect4 programs; ' +
  'no helper bpf_get_current_ancestor_cgroup_id in cgroup/connect6 programs. meshlane needs Linux 5.10 or later';

function setup(t: { teardown(f: () => void): void }, probe: () => KernelFeatures) {
  const root = mkdtempSync(join(tmpdir(), 'meshlane-kfloor-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const dir = join(root, 'net.d');
  const state = join(root, 'state');
  mkdirSync(dir);
  writeFileSync(join(dir, '10-flannel.conflist'), readFileSync(join(upstreamFixtures, 'conflists', 'flannel-10-flannel.conflist')));
  const opts = parseOptions(
    ['--cni-net-dir', dir, '--cgroup-root', '/sys/fs/cgroup/meshlane-test-none', '--pin-dir', join(root, 'pins-never-made'), '--state-dir', state, '--kubeconfig', join(root, 'kubeconfig')],
    {},
    INSTALL_FLAGS,
  );
  const log = new RecordingLogger();
  let objectAsked = 0;
  const installer = new Installer(opts, {
    log,
    env: {},
    selfExe: undefined,
    bpfObject: async () => {
      objectAsked++;
      return '/nonexistent.o';
    },
    probeKernel: probe,
  });
  return { root, dir, state, installer, log, objectAsked: () => objectAsked };
}

t.test('a pass on a refused kernel: one message, no load, the entry chained, the refusal recorded', async (t) => {
  const s = setup(t, kernel54);
  const r = await s.installer.pass({ datapath: true });
  t.match(r, { datapath: false, conflist: true, conflistFile: '10-flannel.conflist', kernelRefused: true });
  t.equal(r.reason, EXPECTED, 'the pass reason is the one message');
  t.equal(s.objectAsked(), 0, 'the object was never asked for: nothing loaded');
  t.match(readFileSync(join(s.dir, '10-flannel.conflist'), 'utf8'), /"type": ?"meshlane"/, 'the entry is in the chain');
  const errors = s.log.lines.filter((l) => l.level === 'error');
  t.same(errors.map((l) => l.msg), [EXPECTED], 'logged once, as an error, with the same words');
  t.match(errors[0]?.fields, { kernel: '5.4.0-150-generic' });
  const rec = readKernelRefusal(s.state);
  t.same(rec, { message: EXPECTED, release: '5.4.0-150-generic', bootId: currentBootId() }, 'recorded for the plugin, with this boot');
  t.equal(readKernelRefusal(s.state, 'another-boot'), undefined, 'another boot does not see it');

  await s.installer.pass({ datapath: false });
  t.equal(s.log.lines.filter((l) => l.level === 'error').length, 1, 'a second pass does not log it again');
});

t.test('a probe that passes clears the recorded refusal', async (t) => {
  let features = kernel54();
  const s = setup(t, () => features);
  await s.installer.pass({ datapath: true });
  t.ok(existsSync(kernelRefusalPath(s.state)));
  features = { ...kernel54(), helpers: Object.fromEntries(Object.keys(kernel54().helpers).map((k) => [k, { ok: true } as const])) };
  const v = s.installer.checkKernel();
  t.equal(v.ok, true);
  t.notOk(existsSync(kernelRefusalPath(s.state)), 'the record is gone');
  t.ok(s.log.lines.some((l) => l.level === 'info' && /every feature the datapath needs/.test(l.msg)));
});

t.test('/readyz stays 503 with the message while the loop runs', async (t) => {
  const s = setup(t, kernel54);
  const state: LoopState = { live: false, ready: false, reason: 'starting', passes: 0, conflistWrites: 0 };
  const health = await startHealthServer({ live: () => state.live, ready: () => ({ ready: state.ready, reason: state.reason }), metrics: async () => '' }, '127.0.0.1', 0);
  t.teardown(() => health.close());
  const stop = new AbortController();
  const loop = runInstallLoop(s.installer, s.log, state, { signal: stop.signal, periodMs: 60_000, debounceMs: 10 });
  for (let i = 0; i < 200 && state.passes < 1; i++) await new Promise((r) => setTimeout(r, 10));
  t.equal(state.passes, 1, 'one pass ran');
  const res = await fetch(`http://127.0.0.1:${health.port}/readyz`);
  t.equal(res.status, 503);
  t.equal(await res.text(), `${EXPECTED}\n`);
  const live = await fetch(`http://127.0.0.1:${health.port}/healthz`);
  t.equal(live.status, 200, 'alive: the loop keeps running (and re-probes) on a refused kernel');
  stop.abort();
  await loop;
});

t.test('no cgroup2 mount at all: the installer still starts, and refuses with the reason', async (t) => {
  const all = kernel54();
  for (const k of Object.keys(all.helpers)) all.helpers[k] = { ok: true };
  const s = setup(t, () => ({ ...all, release: '6.1.0-57-amd64', cgroup2: { ok: false, why: 'missing', detail: 'no cgroup2 mount in /proc/mounts; mount it, or pass --cgroup-root' } }));
  const r = await s.installer.pass({ datapath: true });
  t.equal(r.datapath, false);
  t.equal(r.reason, 'meshlane cannot run on this kernel (Linux 6.1.0-57-amd64): no cgroup v2 (no cgroup2 mount in /proc/mounts; mount it, or pass --cgroup-root)');
});

t.test('the probe of the netns cookie in sock_ops picks the object the loader tries', async (t) => {
  const { objectChoiceOf } = await import('../../src/install/installer.js');
  const f = kernel54();
  t.same(objectChoiceOf(f), {}, 'not probed: the loader tries the newer object first');
  f.optional['netns-cookie-in-sockops'] = { ok: true };
  t.same(objectChoiceOf(f), { netnsCookieInSockops: true });
  f.optional['netns-cookie-in-sockops'] = { ok: false, why: 'missing', detail: 'unknown func bpf_get_netns_cookie#122' };
  t.same(objectChoiceOf(f), { netnsCookieInSockops: false }, 'missing: the compat object only');
  f.optional['netns-cookie-in-sockops'] = { ok: false, why: 'denied', detail: 'EPERM' };
  t.same(objectChoiceOf(f), {}, 'could not tell: the loader tries');
});
