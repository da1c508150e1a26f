// The guest test runs' bookkeeping, without a guest: parsing what the guest
// printed, judging each file against the expected failures, tap's host
// results, and the kernel × test table.
import t from 'tap';
import { EXPECTED_FAILURES } from '../../scripts/kernels/expected-failures.js';
import { type ExpectedFailure, type GuestFileResult, formatTestTable, isFailure, judge, parseHostTap, testName } from '../../scripts/kernels/guest-table.js';
import { GUEST_TEST_FILES, parseGuestOutput } from '../../scripts/kernels/guest-tests.js';
import { KERNEL_PINS } from '../../scripts/kernels/pins.js';

const passing: GuestFileResult = { exit: 0, signal: null, ms: 1234, timedOut: false, passed: 3, failed: 0, planned: 3, failedNames: [] };
const failing: GuestFileResult = { exit: 1, signal: null, ms: 900, timedOut: false, passed: 1, failed: 2, planned: 3, failedNames: ['a', 'b'] };
const crashed: GuestFileResult = { exit: 1, signal: null, ms: 300, timedOut: false, passed: 0, failed: 0, planned: null, failedNames: [] };
const killed: GuestFileResult = { exit: null, signal: 'SIGKILL', ms: 480_000, timedOut: true, passed: 2, failed: 0, planned: null, failedNames: [] };
const known: ExpectedFailure = { reason: 'the datapath does not load', output: /verifier rejected/ };

t.test('judge: pass and fail without an expectation', async (t) => {
  t.same(judge(passing, '', undefined), { verdict: 'pass', detail: '' });
  t.same(judge(failing, '', undefined), { verdict: 'fail', detail: '2 failed: a; b' });
  t.match(judge(crashed, '', undefined), { verdict: 'fail', detail: /ended before its plan \(exit 1\)/ });
  t.match(judge(killed, '', undefined), { verdict: 'fail', detail: /timed out after 480 s/ });
  t.same(judge(undefined, '', undefined), { verdict: 'not run', detail: 'no result from the guest' });
  t.ok(judge({ ...passing, exit: 1 }, '', undefined).verdict === 'fail', 'a non-zero exit fails even with every subtest ok');
  t.ok(judge({ ...passing, planned: null }, '', undefined).verdict === 'fail', 'no plan printed: not a pass');
});

t.test('judge: an expected failure must fail, and for the listed reason', async (t) => {
  t.same(judge(crashed, 'DatapathError: the kernel\'s verifier rejected a meshlane program', known), { verdict: 'expected-fail', detail: 'the datapath does not load' });
  t.match(judge(failing, 'some other error', known), { verdict: 'fail', detail: /not the expected failure/ }, 'another failure is not hidden');
  t.match(judge(passing, '', known), { verdict: 'unexpected-pass', detail: /remove it from the expected failures/ });
  t.same(judge(undefined, '', known).verdict, 'not run');
});

t.test('which verdicts fail CI', async (t) => {
  t.same(
    (['pass', 'fail', 'expected-fail', 'unexpected-pass', 'not run'] as const).filter(isFailure),
    ['fail', 'unexpected-pass', 'not run'],
  );
});

t.test('the expected failures name real kernels and test files, each with a reason', async (t) => {
  const names = GUEST_TEST_FILES.map(testName);
  for (const [kernel, files] of Object.entries(EXPECTED_FAILURES)) {
    t.ok(KERNEL_PINS.some((k) => k.name === kernel), `${kernel} is a pinned kernel`);
    for (const [file, e] of Object.entries(files)) {
      t.ok(names.includes(file), `${kernel}: ${file} is a guest test`);
      t.ok(e.reason.length > 20, `${kernel} ${file}: a reason is given`);
    }
  }
  for (const k of KERNEL_PINS) t.notOk(EXPECTED_FAILURES[k.name], `no expected failure on ${k.name}: every test must pass there`);
});

t.test('parseGuestOutput: results and outputs per file, an unfinished file kept', async (t) => {
  const out = [
    'noise before',
    '@@ML-TEST-BEGIN loader.test',
    'ok 1 - first # time=10ms',
    '1..1',
    `@@ML-TEST-END loader.test ${JSON.stringify(passing)}`,
    '@@ML-TEST-BEGIN datapath-dns.test',
    'not ok 1 - x',
    `@@ML-TEST-END datapath-dns.test ${JSON.stringify(failing)}`,
    '@@ML-TEST-BEGIN datapath-sockmap.test',
    '# Subtest: hangs',
  ].join('\n');
  const { results, outputs } = parseGuestOutput(out);
  t.same(Object.keys(results), ['loader', 'datapath-dns']);
  t.same(results['loader'], passing);
  t.equal(outputs['loader'], 'ok 1 - first # time=10ms\n1..1');
  t.equal(outputs['datapath-dns'], 'not ok 1 - x');
  t.equal(outputs['datapath-sockmap'], '# Subtest: hangs', 'the output of a file that never ended');
  t.notOk(results['datapath-sockmap']);
});

t.test("parseHostTap: tap's saved output of a host run", async (t) => {
  t.same(parseHostTap('# Subtest: a\n    ok 1 - x\nok 1 - a # time=5ms\n\n1..1\n# time=4189.889ms\n'), { ok: true, ms: 4189.889, failedNames: [] });
  t.same(parseHostTap('not ok 1 - a # time=5ms\nok 2 - b\n1..2\n# time=10ms\n'), { ok: false, ms: 10, failedNames: ['a'] });
  t.same(parseHostTap('ok 1 - a\n'), { ok: false, ms: null, failedNames: [] }, 'no plan: did not finish');
});

t.test('formatTestTable: one row per test, one column per kernel, the reasons below', async (t) => {
  const table = formatTestTable(
    ['loader', 'datapath-dns'],
    [
      { title: 'host (6.18)', cells: new Map([['loader', { verdict: 'host-pass', ms: 4190, detail: '' }]]), footer: 'tap' },
      {
        title: '5.10 (5.10.0-46-amd64)',
        cells: new Map([
          ['loader', { verdict: 'expected-fail', ms: 61_700, detail: 'the datapath does not load' }],
          ['datapath-dns', { verdict: 'expected-fail', ms: 40_400, detail: 'the datapath does not load' }],
        ]),
        footer: '15 / 295 / 311',
      },
      { title: '6.1 (6.1.0-57-amd64)', cells: new Map([['loader', { verdict: 'fail', ms: 900, detail: '2 failed: a | b' }], ['datapath-dns', { verdict: 'pass', ms: 51_000, detail: '' }]]), footer: '6 / 400 / 410' },
    ],
  );
  t.equal(
    table,
    [
      '| test | host (6.18) | 5.10 (5.10.0-46-amd64) | 6.1 (6.1.0-57-amd64) |',
      '| --- | --- | --- | --- |',
      '| `loader` | pass 4.2 s | expected-fail 61.7 s | FAIL 0.9 s (2 failed: a / b) |',
      '| `datapath-dns` | not run | expected-fail 40.4 s | pass 51.0 s |',
      '| each guest: boot / tests / qemu (s) | tap | 15 / 295 / 311 | 6 / 400 / 410 |',
      '',
      '- expected-fail (5.10 loader, 5.10 datapath-dns): the datapath does not load',
    ].join('\n'),
  );
});
