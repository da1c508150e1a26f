// A seeded fuzz of the plugin, in-process: the real handlers and logger behind
// the real dispatcher, stdin and stdout in memory, thousands of hostile calls
// (test/helpers/fuzz-cases.ts). For each call: the exit status agrees with
// stdout, stdout is one JSON document or nothing, every rejection has an
// integer code below 999, no stack reaches stdout, nothing is written outside
// the dirs the config names, and a failed ADD leaves no attachment record.
// Replay: MESHLANE_FUZZ_SEED=<seed> MESHLANE_FUZZ_CASES=<n> npx tap test/plugin/fuzz.test.ts
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { Readable, Writable } from 'node:stream';
import t from 'tap';
import { runCni } from '../../src/cni/skel.js';
import { MAP_NAMES, pinPaths } from '../../src/bpf/names.js';
import { handlers } from '../../src/plugin/handlers.js';
import { pluginLogger } from '../../src/plugin/run.js';
import { recordPath } from '../../src/node/records.js';
import { checkOutcome, fuzzCase, fuzzDirs, POD_UID, type FuzzDirs } from '../helpers/fuzz-cases.js';

const seed = Number(process.env['MESHLANE_FUZZ_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
const cases = Number(process.env['MESHLANE_FUZZ_CASES'] ?? 3000);
const base = mkdtempSync(join(tmpdir(), 'meshlane-fuzz-'));
t.teardown(() => rmSync(base, { recursive: true, force: true }));
t.comment(`fuzz seed ${seed}, ${cases} cases (replay: MESHLANE_FUZZ_SEED=${seed})`);

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.text += chunk.toString('utf8');
    cb();
  }
}

/** Files under `dir`, relative to it. */
function walk(dir: string, root = dir): string[] {
  let out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    out.push(relative(root, p));
    if (e.isDirectory()) out = out.concat(walk(p, root));
  }
  return out;
}

/** A node for the case: a pod cgroup for POD_UID, and (in most cases) pins that are plain files, so registration runs and fails. */
function prepare(dirs: FuzzDirs, withPins: boolean): void {
  mkdirSync(join(dirs.cgroupRoot, 'kubepods', 'besteffort', `pod${POD_UID}`), { recursive: true });
  if (withPins) {
    const p = pinPaths(dirs.pinDir);
    mkdirSync(p.maps, { recursive: true });
    for (const m of [MAP_NAMES.podsByCgroup, MAP_NAMES.podsByIp, MAP_NAMES.settings]) writeFileSync(p.map(m), '');
  }
}

const allowed = (dirs: FuzzDirs, rel: string): boolean => {
  const abs = join(dirs.root, rel);
  return [dirs.stateDir, join(dirs.logFile, '..'), dirs.pinDir, dirs.cgroupRoot].some((d) => abs === d || abs.startsWith(`${d}/`));
};

// The calls' TMPDIR: a private empty dir (other test runs on the machine use the real one).
const privateTmp = join(base, 'TMPDIR');
mkdirSync(privateTmp);
const realTmp = process.env['TMPDIR'];
process.env['TMPDIR'] = privateTmp;
const failures: string[] = [];
const codes = new Map<string, number>();
const started = performance.now();
for (let i = 0; i < cases; i++) {
  const dirs = fuzzDirs(join(base, 'cases', String(i)));
  prepare(dirs, i % 3 !== 0);
  const c = fuzzCase(seed, i, dirs);
  const stdout = new Capture();
  const exitCode = await runCni({ env: c.env, stdin: Readable.from([Buffer.from(c.stdin)]), stdout }, handlers, { createLogger: pluginLogger({ stderr: false }) });
  const problems = checkOutcome(c, { exitCode, stdout: stdout.text });
  const stray = walk(dirs.root).filter((f) => !allowed(dirs, f));
  if (stray.length) problems.push(`files outside the configured dirs: ${stray.join(', ')}`);
  if (c.command === 'ADD' && exitCode !== 0) {
    let rec: string | undefined;
    try {
      rec = recordPath(dirs.stateDir, c.containerId, c.ifname);
    } catch {
      rec = undefined; // a name no record can have
    }
    if (rec && existsSync(rec)) problems.push('a failed ADD left its attachment record');
  }
  const command = ['ADD', 'DEL', 'CHECK', 'GC', 'STATUS', 'VERSION'].includes(c.command) ? c.command : 'bad CNI_COMMAND';
  const key = exitCode === 0 ? `${command} ok` : `${command} ${String((JSON.parse(stdout.text || '{}') as { code?: unknown }).code)}`;
  codes.set(key, (codes.get(key) ?? 0) + 1);
  if (problems.length) failures.push(`case ${i} [${c.mutations.join('; ')}]: ${problems.join('; ')} | stdout ${stdout.text.slice(0, 300)}`);
  rmSync(dirs.root, { recursive: true, force: true });
}
const ms = performance.now() - started;
if (realTmp === undefined) delete process.env['TMPDIR'];
else process.env['TMPDIR'] = realTmp;
t.comment(`${cases} calls in ${(ms / 1000).toFixed(1)} s; outcomes: ${[...codes].sort().map(([k, v]) => `${k}: ${v}`).join(', ')}`);

t.same(failures.slice(0, 20), [], `every call keeps the rules (seed ${seed}; ${failures.length} failing)`);
t.same(readdirSync(privateTmp), [], 'nothing written to TMPDIR');
t.ok(codes.size > 10, 'the cases reach many outcomes');
