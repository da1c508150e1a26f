// A fresh clone has nothing beside it: no test, script or CI step may read a
// folder outside the repo (the upstream fixtures are copied into
// testing/fixtures). Proven twice: the checker CI runs first finds a planted
// reference, and the tests that read fixtures pass in a copy of the tree that
// has no folder beside it.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import t from 'tap';
import { repoRoot } from '../helpers/paths.js';

const CHECKER = join('scripts', 'check-self-contained.sh');

/** The files a clone has: tracked, plus new ones not ignored (this change's own). */
function treeFiles(): string[] {
  const out = execFileSync('git', ['-C', repoRoot, 'ls-files', '-z', '--cached', '--others', '--exclude-standard'], { encoding: 'utf8' });
  return out.split('\0').filter((f) => f !== '' && existsSync(join(repoRoot, f)));
}

function copyTree(to: string): void {
  for (const f of treeFiles()) {
    mkdirSync(dirname(join(to, f)), { recursive: true });
    cpSync(join(repoRoot, f), join(to, f));
  }
  // git grep in the checker needs a repository: a fresh clone is one.
  execFileSync('git', ['init', '-q', to]);
  execFileSync('git', ['-C', to, 'add', '-A']);
}

/** Environment of a child test: none of the tap runner's own variables. */
function childEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(TAP|_TAPJS)/.test(k)));
}

const base = mkdtempSync(join(tmpdir(), 'meshlane-fresh-'));
t.teardown(() => rmSync(base, { recursive: true, force: true }));
const clone = join(base, 'repo');
copyTree(clone);
symlinkSync(join(repoRoot, 'node_modules'), join(clone, 'node_modules'));

t.test('the checker passes on this tree', async (t) => {
  const r = spawnSync('bash', [join(repoRoot, CHECKER)], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
});

t.test('the checker fails on a file that reads the folder beside the repo, naming it', async (t) => {
  const planted = join(clone, 'test', 'planted.ts');
  // Built here, so that this file itself holds neither pattern.
  const name = ['sha', 'red'].join('');
  const beside = `../${name}`;
  const bare = `'${name}'`;
  for (const line of [`const f = '${beside}/fixtures/pods';`, `const g = resolve(root, '..', ${bare}, 'fixtures');`]) {
    writeFileSync(planted, `${line}\n`);
    execFileSync('git', ['-C', clone, 'add', '-A']);
    const r = spawnSync('bash', [join(clone, CHECKER)], { encoding: 'utf8' });
    t.equal(r.status, 1, `refused: ${line}`);
    t.match(r.stderr, /test\/planted\.ts:1:/, 'names the file and line');
  }
  rmSync(planted);
  execFileSync('git', ['-C', clone, 'add', '-A']);
});

t.test('.ci/run runs the checker before the tests', async (t) => {
  const ci = readFileSync(join(repoRoot, '.ci', 'run'), 'utf8');
  const check = ci.indexOf('check-self-contained.sh');
  const tests = ci.indexOf('scripts/test.sh');
  t.ok(check > 0 && tests > check, 'the check comes first');
});

// Every test that reads an upstream fixture, run in the copy: nothing is beside it.
const FIXTURE_TESTS = [
  'test/cni/netconf.test.ts',
  'test/install/conflist.test.ts',
  'test/install/conflist-pick.test.ts',
  'test/install/installer-conflist.test.ts',
  'test/install/kubeconfig.test.ts',
  'test/install/status-istio.test.ts',
  'test/kube/client.test.ts',
  'test/kube/kubeconfig.test.ts',
  'test/mesh/fixtures.test.ts',
  'test/mesh/golden.test.ts',
  'test/sys/nat-save.test.ts',
];

t.test('the fixture tests pass in a copy with nothing beside it', async (t) => {
  t.same(readdirSync(base), ['repo'], 'nothing beside the copy');
  const tsx = join(clone, 'node_modules', '.bin', 'tsx');
  for (const file of FIXTURE_TESTS) {
    t.ok(existsSync(join(clone, file)), `${file} is in the tree`);
    const r = spawnSync(tsx, [file], { cwd: clone, env: childEnv(), encoding: 'utf8', timeout: 120_000 });
    t.equal(r.status, 0, `${file} passes in the copy${r.status === 0 ? '' : `:\n${(r.stdout + r.stderr).split('\n').filter((l) => /not ok|Error|ENOENT/.test(l)).slice(0, 10).join('\n')}`}`);
  }
});
