// The kernel × test table of the guest test runs (scripts/kernels/guest-tests.ts):
// what each test file did on each kernel, judged against the one list of
// failures expected today. Pure code: no processes, no files.

/** What scripts/kernels/guest-run.ts reports for one test file in a guest. */
export interface GuestFileResult {
  /** The test process's exit status; null when it was killed. */
  exit: number | null;
  signal: string | null;
  ms: number;
  timedOut: boolean;
  /** Top-level TAP results ("ok N" / "not ok N" lines) and the plan (null: none printed). */
  passed: number;
  failed: number;
  planned: number | null;
  failedNames: string[];
}

/** One test file that fails on one kernel today, and why (shown in the table). */
export interface ExpectedFailure {
  reason: string;
  /** The failure must show this in the test's output: another failure of the same file is not hidden. */
  output: RegExp;
}

export type Verdict = 'pass' | 'fail' | 'expected-fail' | 'unexpected-pass' | 'not run';

export interface Judged {
  verdict: Verdict;
  /** One line: the failing subtests, the expected reason, or what went wrong. */
  detail: string;
}

/** A test file's name in the table: `test/kernel/datapath-dns.test.ts` -> `datapath-dns`. */
export function testName(file: string): string {
  return (file.split('/').pop() ?? file).replace(/\.test\.(ts|js)$/, '');
}

export function passedCleanly(r: GuestFileResult): boolean {
  return r.exit === 0 && !r.timedOut && r.failed === 0 && r.planned !== null;
}

function whatFailed(r: GuestFileResult): string {
  if (r.timedOut) return `timed out after ${(r.ms / 1000).toFixed(0)} s`;
  if (r.failed > 0) return `${r.failed} failed: ${r.failedNames.join('; ')}`;
  if (r.planned === null) return `ended before its plan (exit ${r.exit ?? r.signal ?? '?'})`;
  return `exit ${r.exit ?? r.signal ?? '?'}`;
}

/**
 * The verdict for one file on one kernel. A file listed as expected to fail must
 * fail, and show the listed output; passing then is 'unexpected-pass' (which
 * fails CI too: empty the list entry when a fix lands).
 */
export function judge(result: GuestFileResult | undefined, output: string, expected: ExpectedFailure | undefined): Judged {
  if (result === undefined) return { verdict: 'not run', detail: 'no result from the guest' };
  const ok = passedCleanly(result);
  if (expected === undefined) return ok ? { verdict: 'pass', detail: '' } : { verdict: 'fail', detail: whatFailed(result) };
  if (ok) return { verdict: 'unexpected-pass', detail: `passes now: remove it from the expected failures (${expected.reason})` };
  if (!expected.output.test(output)) return { verdict: 'fail', detail: `${whatFailed(result)}; not the expected failure (${expected.reason}): no ${String(expected.output)} in its output` };
  return { verdict: 'expected-fail', detail: expected.reason };
}

/** A verdict that fails CI. */
export function isFailure(v: Verdict): boolean {
  return v === 'fail' || v === 'unexpected-pass' || v === 'not run';
}

/** What tap saved of a host run (`.tap/test-results/<file>.tap`): its verdict and time. */
export function parseHostTap(text: string): { ok: boolean; ms: number | null; failedNames: string[] } {
  const failedNames: string[] = [];
  let planned = false;
  let ms: number | null = null;
  for (const line of text.split('\n')) {
    const nok = /^not ok \d+ - (.*?)(?: # time=.*)?$/.exec(line);
    if (nok) failedNames.push(nok[1] ?? '');
    if (/^1\.\.\d+/.test(line)) planned = true;
    const tm = /^# time=([0-9.]+)ms$/.exec(line);
    if (tm) ms = Number(tm[1]);
  }
  return { ok: planned && failedNames.length === 0, ms, failedNames };
}

export interface TableColumn {
  /** Header: the kernel's name and release. */
  title: string;
  /** test name -> the cell's verdict, seconds, detail. */
  cells: Map<string, { verdict: Verdict | 'host-pass' | 'host-fail'; ms: number | null; detail: string }>;
  /** A last row: the guest's boot and total time, or a note. */
  footer: string;
}

function cellText(c: { verdict: string; ms: number | null; detail: string } | undefined): string {
  if (c === undefined) return 'not run';
  const time = c.ms === null ? '' : ` ${(c.ms / 1000).toFixed(1)} s`;
  const word = c.verdict === 'host-pass' ? 'pass' : c.verdict === 'host-fail' ? 'FAIL' : c.verdict === 'fail' ? 'FAIL' : c.verdict === 'unexpected-pass' ? 'UNEXPECTED PASS' : c.verdict;
  return `${word}${time}${c.detail !== '' && c.verdict !== 'expected-fail' ? ` (${c.detail.replace(/\|/g, '/')})` : ''}`;
}

/** A markdown table: one row per test, one column per kernel, then the footers and the expected failures' reasons. */
export function formatTestTable(tests: readonly string[], columns: readonly TableColumn[]): string {
  const head = `| test | ${columns.map((c) => c.title).join(' | ')} |`;
  const sep = `| --- | ${columns.map(() => '---').join(' | ')} |`;
  const rows = tests.map((name) => `| \`${name}\` | ${columns.map((c) => cellText(c.cells.get(name))).join(' | ')} |`);
  const foot = `| each guest: boot / tests / qemu (s) | ${columns.map((c) => c.footer).join(' | ')} |`;
  const reasons = new Map<string, string[]>();
  for (const c of columns) {
    for (const [name, cell] of c.cells) {
      if (cell.verdict !== 'expected-fail') continue;
      const key = cell.detail;
      reasons.set(key, [...(reasons.get(key) ?? []), `${c.title.split(' ')[0]} ${name}`]);
    }
  }
  const notes = [...reasons].map(([reason, where]) => `- expected-fail (${where.join(', ')}): ${reason}`);
  return [head, sep, ...rows, foot, ...(notes.length > 0 ? ['', ...notes] : [])].join('\n');
}
