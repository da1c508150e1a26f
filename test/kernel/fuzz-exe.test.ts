// The seeded fuzz of test/plugin/fuzz.test.ts, a few hundred calls through the
// built executable, against a real datapath on a sandbox node: every rule of
// the in-process fuzz, and no registration is ever left in the maps (the
// sidecar ADDs reach the maps and fail at the tc attach, since the netns does
// not exist, so their rollback runs for real).
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { createNode, type SandboxNode } from '../../testing/sandbox/node.js';
import { installDatapath, removeDatapath } from '../../src/bpf/loader.js';
import { MAP_NAMES } from '../../src/bpf/names.js';
import { mapEntryCount } from '../../src/bpf/registry.js';
import { runExe } from '../helpers/exe.js';
import { checkOutcome, fuzzCase, fuzzDirs, POD_UID } from '../helpers/fuzz-cases.js';
import { distBpfObject, requireBuiltExe } from '../helpers/paths.js';
import { requireRoot } from '../helpers/root.js';

requireRoot('the executable fuzz test');
requireBuiltExe();
const seed = Number(process.env['MESHLANE_FUZZ_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
const cases = Number(process.env['MESHLANE_FUZZ_EXE_CASES'] ?? 300);
t.comment(`executable fuzz seed ${seed}, ${cases} cases (replay: MESHLANE_FUZZ_SEED=${seed})`);

let node: SandboxNode | undefined;
t.teardown(async () => {
  if (node) await removeDatapath({ pinDir: node.pinDir, cgroupDir: node.cgroupRoot }).catch(() => undefined);
  await node?.destroy();
});
node = await createNode({ prefix: 'mlkfz' });
const n = node;
await installDatapath({ pinDir: n.pinDir, cgroupDir: n.cgroupRoot }, distBpfObject);
mkdirSync(join(n.cgroupRoot, 'kubepods', 'besteffort', `pod${POD_UID}`), { recursive: true });
const base = mkdtempSync(join(n.stateDir, 'fuzz-'));

const failures: string[] = [];
let failedAdds = 0;
for (let i = 0; i < cases; i++) {
  const root = join(base, String(i));
  const dirs = { ...fuzzDirs(root), pinDir: n.pinDir, cgroupRoot: n.cgroupRoot };
  const c = fuzzCase(seed, i, dirs);
  const r = await runExe(c.env, c.stdin);
  const problems = checkOutcome(c, r);
  if (c.command === 'ADD' && r.exitCode !== 0) failedAdds++;
  const left = (await mapEntryCount(n.pinDir, MAP_NAMES.podsByCgroup)) + (await mapEntryCount(n.pinDir, MAP_NAMES.podsByIp));
  if (left !== 0) problems.push(`${left} map entries left`);
  if (problems.length) failures.push(`case ${i} [${c.mutations.join('; ')}]: ${problems.join('; ')} | stdout ${r.stdout.slice(0, 300)}`);
  rmSync(root, { recursive: true, force: true });
}
t.comment(`${cases} executable calls, ${failedAdds} failed ADDs, none left a registration`);
t.same(failures.slice(0, 20), [], `every call keeps the rules (seed ${seed}; ${failures.length} failing)`);
