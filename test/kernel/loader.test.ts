// The loader on the real kernel, in a sandbox node: load, pin, attach exactly
// once, reload keeping maps and registrations, replace older programs, remove.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { createNode, type SandboxNode } from '../../testing/sandbox/node.js';
import { bpftool } from '../../src/bpf/bpftool.js';
import { cgroupAttachments } from '../../src/bpf/readback.js';
import { attachedPrograms, installDatapath, removeDatapath, type DatapathLocation } from '../../src/bpf/loader.js';
import { ALL_MAPS, CGROUP_PROGRAMS, HOOKED_PROGRAMS, type CgroupProgram } from '../../src/bpf/names.js';
import { DEFAULT_INTERCEPTION, encodePodConfig } from '../../src/bpf/pod-config.js';
import { readPodByCgroup, readPodConfig, registerPod } from '../../src/bpf/registry.js';
import { distBpfCompatObject, distBpfObject, distBpfObjects, repoRoot } from '../helpers/paths.js';
import { requireRoot } from '../helpers/root.js';
import { collectStatus } from '../../src/install/status.js';

requireRoot('the loader test');
if (!existsSync(distBpfObject)) throw new Error(`${distBpfObject} is missing: run 'npm run build'`);

let node: SandboxNode | undefined;
t.teardown(async () => {
  if (node) await removeDatapath({ pinDir: node.pinDir, cgroupDir: node.cgroupRoot }).catch(() => undefined);
  await node?.destroy();
});
node = await createNode({ prefix: 'mlkld' });
const loc: DatapathLocation = { pinDir: node.pinDir, cgroupDir: node.cgroupRoot };

/** How many meshlane programs sit on each hook of the node cgroup. */
async function perHook(): Promise<Record<string, number>> {
  const attached = await attachedPrograms(loc.cgroupDir);
  return Object.fromEntries(HOOKED_PROGRAMS.map((p) => [p.attachType, attached.filter((a) => a.attach_type === p.shownAs).length]));
}
/** The build the first install chose (the compat one on kernels before 5.15), and the cgroup programs it has. */
let loaded: string = distBpfObject;
const programsOf = (object: string): readonly CgroupProgram[] => (object === distBpfCompatObject ? HOOKED_PROGRAMS : CGROUP_PROGRAMS);
const oneEach = (): Record<string, number> => Object.fromEntries(HOOKED_PROGRAMS.map((p) => [p.attachType, programsOf(loaded).includes(p) ? 1 : 0]));

t.test('first install creates every map and attaches every program once', async (t) => {
  const r = await installDatapath(loc, distBpfObjects);
  loaded = r.object;
  t.ok(loaded === distBpfObject || loaded === distBpfCompatObject, `one of the two builds loaded: ${loaded}`);
  t.comment(`loaded ${loaded} on Linux ${release()}`);
  t.same(r.reusedMaps, []);
  t.same([...r.createdMaps].sort(), [...ALL_MAPS].sort());
  t.equal(r.programsReplaced, true);
  t.equal(r.attached.length, programsOf(loaded).length);
  for (const m of ALL_MAPS) t.ok(existsSync(join(loc.pinDir, 'maps', m)), `map ${m} pinned`);
  t.same(await perHook(), oneEach(), 'exactly one program on each hook');
  t.notOk(existsSync(join(loc.pinDir, 'staging')), 'no staging left');
  // `meshlane status` lists the build's cgroup programs (ml_sock_create only with the compat one), each attached once.
  const state = mkdtempSync(join(tmpdir(), 'meshlane-loader-status-'));
  t.teardown(() => rmSync(state, { recursive: true, force: true }));
  const st = await collectStatus(loc.pinDir, loc.cgroupDir, state);
  for (const p of HOOKED_PROGRAMS) {
    const listed = st.programs.find((x) => x.name === p.name);
    if (programsOf(loaded).includes(p)) t.equal(listed?.attachedTo.length, 1, `status: ${p.name} attached once`);
    else t.equal(listed, undefined, `status: ${p.name} not listed (not in this build)`);
  }
  t.equal(st.installed, true, `status: installed (problems: ${st.problems.join('; ') || 'none'})`);
});

t.test('a second install changes nothing and keeps registrations', async (t) => {
  const config = encodePodConfig(DEFAULT_INTERCEPTION);
  await registerPod(loc.pinDir, { cgroupId: 4242n, ipv4: '10.1.2.3', ipv6: 'fd00::3', config });
  const before = await attachedPrograms(loc.cgroupDir);
  const r = await installDatapath(loc, distBpfObjects);
  t.equal(r.object, loaded, 'the same build again');
  t.same([...r.reusedMaps].sort(), [...ALL_MAPS].sort());
  t.same(r.createdMaps, []);
  t.equal(r.programsReplaced, false);
  t.same(r.attached, []);
  t.same(r.detached, []);
  t.same((await attachedPrograms(loc.cgroupDir)).map((a) => a.id), before.map((a) => a.id), 'the same programs stay attached');
  t.ok(await readPodByCgroup(loc.pinDir, 4242n), 'registration kept');
  t.ok(await readPodConfig(loc.pinDir, '10.1.2.3'));
  t.ok(await readPodConfig(loc.pinDir, 'fd00::3'));
});

t.test('programs of an older install are replaced without a gap, maps kept', async (t) => {
  // An "older" meshlane attached next to ours (as after a restart that lost its pins).
  const oldPins = join(loc.pinDir, 'old-install');
  mkdirSync(oldPins);
  await bpftool(['prog', 'loadall', loaded, join(oldPins, 'progs'), 'pinmaps', join(oldPins, 'maps')]);
  await bpftool(['cgroup', 'attach', loc.cgroupDir, 'connect4', 'pinned', join(oldPins, 'progs', 'ml_connect4'), 'multi']);
  rmSync(join(loc.pinDir, 'progs'), { recursive: true, force: true });
  rmSync(oldPins, { recursive: true, force: true });
  const r = await installDatapath(loc, distBpfObjects);
  t.equal(r.programsReplaced, true);
  t.ok(r.detached.length >= 2, `older programs detached: ${r.detached.join(', ')}`);
  t.same(await perHook(), oneEach(), 'exactly one program on each hook');
  t.ok(await readPodByCgroup(loc.pinDir, 4242n), 'registration kept through the replacement');
});

t.test('remove detaches everything and unpins', async (t) => {
  await removeDatapath(loc);
  t.same(await attachedPrograms(loc.cgroupDir), []);
  t.same(cgroupAttachments(loc.cgroupDir), [], 'nothing at all attached to the node cgroup (on any hook meshlane uses)');
  t.notOk(existsSync(loc.pinDir));
  await removeDatapath(loc);
  t.pass('a second remove is fine');
});

t.test('clear errors: no bpffs, no cgroup v2, verifier rejection', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'meshlane-loader-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  await t.rejects(installDatapath({ pinDir: join(dir, 'pins'), cgroupDir: loc.cgroupDir }, distBpfObject), /not on a BPF filesystem: mount one with 'mount -t bpf bpf/);
  await t.rejects(installDatapath({ pinDir: loc.pinDir, cgroupDir: dir }, distBpfObject), /is not a cgroup v2 directory/);

  const bad = join(dir, 'rejected.o');
  execFileSync('clang', ['-O2', '-g', '-target', 'bpf', '-I', '/usr/include/x86_64-linux-gnu', '-c', join(repoRoot, 'test/kernel/fixtures/rejected.bpf.c'), '-o', bad]);
  const err = await installDatapath(loc, bad).then(
    () => undefined,
    (e: unknown) => e as Error,
  );
  t.ok(err, 'the load fails');
  t.match(err?.message, /verifier rejected a meshlane program/);
  t.match(err?.message, /invalid|out of bounds|access/i, 'with the verifier\'s own words');
  t.same(await attachedPrograms(loc.cgroupDir), [], 'nothing attached after a failed load');
  await removeDatapath(loc);
});
