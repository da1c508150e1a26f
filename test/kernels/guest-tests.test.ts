// The project's kernel tests in a qemu guest of each pinned kernel (5.10, 6.1,
// 6.12): the same files tap runs on the host (scripts/kernels/guest-tests.ts
// lists them), two guests at a time. One result per kernel and test file: a
// file that fails on a kernel fails here, unless scripts/kernels/expected-failures.ts
// lists it for that kernel (with the reason); a listed file that passes fails
// here too, until its entry is removed. The kernel × test table goes to
// .build/kernels/guest-tests.json; `.ci/run` prints it at the end of CI.
import t from 'tap';
import { failures, GUEST_TEST_FILES, OUTPUT_DIR, runGuestTests, tableOf } from '../../scripts/kernels/guest-tests.js';
import { testName } from '../../scripts/kernels/guest-table.js';
import { KERNEL_PINS } from '../../scripts/kernels/pins.js';
import { requireRoot } from '../helpers/root.js';

requireRoot('the kernel tests in qemu guests');
// Measured on a shared 2-core machine: 16.5 to 27 min of guests one at a time, so 8.5 to 14 two at a time.
t.setTimeout(40 * 60_000);

// MESHLANE_GUEST_JOBS=1: one guest at a time (a machine shared with other work).
const jobs = Number(process.env['MESHLANE_GUEST_JOBS'] ?? '2');
if (!Number.isInteger(jobs) || jobs < 1) throw new Error(`MESHLANE_GUEST_JOBS must be a positive integer, not '${process.env['MESHLANE_GUEST_JOBS'] ?? ''}'`);
const report = await runGuestTests(undefined, undefined, jobs);
t.comment(`kernel x test:\n${tableOf(report)}`);

t.equal(report.kernels.length, KERNEL_PINS.length, 'every pinned kernel ran');
for (const k of report.kernels) {
  t.test(`kernel ${k.kernel} (${k.release})`, async (t) => {
    t.same(k.runs.map((r) => r.exitCode), k.runs.map(() => 0), `each guest ran its files to the end${k.consoleTail === '' ? '' : `; console tail:\n${k.consoleTail}`}`);
    for (const file of GUEST_TEST_FILES) {
      const name = testName(file);
      const j = k.judged[name];
      const verdict = j?.verdict ?? 'not run';
      if (verdict === 'expected-fail') t.pass(`${name}: fails as expected on ${k.kernel} (${j?.detail ?? ''})`);
      else t.equal(verdict, 'pass', `${name} on ${k.kernel}: ${j?.detail ?? 'not run'} (output: ${OUTPUT_DIR}/${k.kernel}/${name}.tap)`);
    }
  });
}
t.same(failures(report), [], 'no kernel x test failure outside the expected list');
