// The project's own kernel tests, run inside a qemu guest of each pinned kernel
// (scripts/kernels/pins.ts): the same test files tap runs on the host, bundled
// here with esbuild (one file each, shared chunks) and run in the guest by
// scripts/kernels/guest-run.ts, one `node` process per file and no tap runner
// or tsx (each costs seconds in a guest). Results: .build/kernels/guest-tests.json
// and each file's output in .build/kernels/guest-tests/<kernel>/<test>.tap.
//
//   tsx scripts/kernels/guest-tests.ts [--kernel K]... [--test NAME]... [--jobs N]   run (N guests at a time, default 2), print the table
//   tsx scripts/kernels/guest-tests.ts --table [--since EPOCH_S]           the table of the last run, with tap's host results
import { build } from 'esbuild';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { buildTool, toolsSrcDir } from '../../testing/sandbox/tools.js';
import { type GuestRunResult, buildInitramfs, runInGuest } from './boot.js';
import { ensureKernel } from './fetch.js';
import { EXPECTED_FAILURES } from './expected-failures.js';
import { type GuestFileResult, type Judged, type TableColumn, formatTestTable, isFailure, judge, parseHostTap, testName } from './guest-table.js';
import { GUEST_NODE, OBJECT } from './matrix.js';
import { KERNEL_PINS, kernelsBuildDir, pinByName, repoRoot } from './pins.js';

/**
 * The test files every kernel runs (the host runs them too, under tap), in two
 * groups of about the same time: each group is one guest, so two guests at a
 * time keep both cores busy to the end (6.12 under load: 318 s and 281 s).
 */
export const GUEST_TEST_GROUPS: readonly (readonly string[])[] = [
  ['test/kernel/datapath-sockmap.test.ts', 'test/kernel/loader.test.ts', 'test/kernel/datapath-untouched.test.ts', 'test/kernel/datapath-inbound.test.ts'],
  ['test/kernel/datapath-crossnode.test.ts', 'test/kernel/datapath-dns.test.ts', 'test/kernel/datapath-outbound.test.ts', 'test/kernel/datapath-getsockopt.test.ts', 'test/kernel/registry.test.ts'],
];
export const GUEST_TEST_FILES: readonly string[] = GUEST_TEST_GROUPS.flat();

/**
 * Where the bundles go: two levels below the repo, as the test helpers and the
 * sandbox are (test/helpers, testing/sandbox, src/sys), so the paths they derive
 * from their own module's URL (`<dir>/../..` = the repo) hold in a bundle too.
 */
export const BUNDLE_DIR = join(repoRoot, '.build', 'guest-tests');
export const RESULTS_JSON = join(kernelsBuildDir, 'guest-tests.json');
export const OUTPUT_DIR = join(kernelsBuildDir, 'guest-tests');
/** One test file in a guest: killed after this (tap's own timeout comes 10 s earlier). */
export const PER_FILE_TIMEOUT_S = 480;

export interface KernelTestRun {
  kernel: string;
  release: string;
  /** One guest per group of files. */
  runs: Omit<GuestRunResult, 'console' | 'output'>[];
  /** test name -> result (missing: the guest did not report it). */
  files: Record<string, GuestFileResult>;
  judged: Record<string, Judged>;
  /** The end of the console when something did not report. */
  consoleTail: string;
}

export interface GuestTestsReport {
  startedAt: string;
  ms: number;
  tests: string[];
  kernels: KernelTestRun[];
}

/** Build what the guest cannot (the repo is read-only there): the C test tools and the bundles. */
export async function prepareGuestTests(files: readonly string[] = GUEST_TEST_FILES): Promise<string[]> {
  if (resolve(BUNDLE_DIR, '..', '..') !== repoRoot) throw new Error(`${BUNDLE_DIR} must be two levels below ${repoRoot}`);
  if (!existsSync(OBJECT)) throw new Error(`${OBJECT} is missing: run 'npm run build' first`);
  for (const c of readdirSync(toolsSrcDir).filter((f) => f.endsWith('.c'))) await buildTool(c.slice(0, -2));
  rmSync(BUNDLE_DIR, { recursive: true, force: true });
  await build({
    entryPoints: files.map((f) => join(repoRoot, f)),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node22',
    splitting: true,
    sourcemap: 'linked',
    outdir: BUNDLE_DIR,
    entryNames: '[name]',
    chunkNames: 'chunk-[hash]',
    // CommonJS dependencies bundled into an ES module still call require().
    banner: { js: "import { createRequire as __mlCreateRequire } from 'node:module'; const require = __mlCreateRequire(import.meta.url);" },
    logLevel: 'error',
  });
  return files.map((f) => join(BUNDLE_DIR, `${testName(f)}.test.js`));
}

/** Parse the guest's output into the per-file results and outputs. */
export function parseGuestOutput(output: string): { results: Record<string, GuestFileResult>; outputs: Record<string, string> } {
  const results: Record<string, GuestFileResult> = {};
  const outputs: Record<string, string> = {};
  let current: string | undefined;
  let lines: string[] = [];
  for (const line of output.split('\n')) {
    const begin = /^@@ML-TEST-BEGIN (\S+)$/.exec(line);
    if (begin) {
      current = begin[1];
      lines = [];
      continue;
    }
    const end = /^@@ML-TEST-END (\S+) (\{.*\})$/.exec(line);
    if (end && end[1] === current) {
      const name = testName(`${current}.js`);
      results[name] = JSON.parse(end[2] as string) as GuestFileResult;
      outputs[name] = lines.join('\n');
      current = undefined;
      continue;
    }
    if (current !== undefined) lines.push(line);
  }
  // A file that started and never ended (the guest died or timed out): keep its output.
  if (current !== undefined) outputs[testName(`${current}.js`)] = lines.join('\n');
  return { results, outputs };
}

export async function runKernelTests(kernel: string, bundles: readonly string[], onLine?: (line: string) => void): Promise<KernelTestRun> {
  const run = await runInGuest(kernel, {
    command: [GUEST_NODE, '--no-warnings', join(repoRoot, 'scripts', 'kernels', 'guest-run.ts'), String(PER_FILE_TIMEOUT_S), ...bundles],
    // Node's compile cache on the guest's /tmp: the shared chunks are compiled once per boot.
    env: { NODE_COMPILE_CACHE: '/tmp/node-compile-cache' },
    timeoutMs: (bundles.length * PER_FILE_TIMEOUT_S + 120) * 1000,
    onLine,
  });
  const { results, outputs } = parseGuestOutput(run.output);
  const dir = join(OUTPUT_DIR, kernel);
  mkdirSync(dir, { recursive: true });
  for (const [name, text] of Object.entries(outputs)) writeFileSync(join(dir, `${name}.tap`), `${text}\n`);
  const judged: Record<string, Judged> = {};
  for (const b of bundles) {
    const name = testName(b);
    judged[name] = judge(results[name], outputs[name] ?? '', EXPECTED_FAILURES[kernel]?.[name]);
  }
  const { console: consoleText, output: _output, ...times } = run;
  const complete = Object.keys(results).length === bundles.length && run.exitCode === 0;
  return { kernel, release: run.release, runs: [times], files: results, judged, consoleTail: complete ? '' : consoleText.slice(-4000) };
}

function merge(a: KernelTestRun | undefined, b: KernelTestRun): KernelTestRun {
  if (a === undefined) return b;
  return {
    kernel: a.kernel,
    release: a.release,
    runs: [...a.runs, ...b.runs],
    files: { ...a.files, ...b.files },
    judged: { ...a.judged, ...b.judged },
    consoleTail: [a.consoleTail, b.consoleTail].filter((c) => c !== '').join('\n---\n'),
  };
}

/**
 * Every kernel, one guest per group of files, `concurrency` guests at a time (a
 * TCG guest keeps one core busy); the slowest kernel first.
 */
export async function runGuestTests(
  kernels: readonly string[] = KERNEL_PINS.map((k) => k.name),
  files: readonly string[] = GUEST_TEST_FILES,
  concurrency = 2,
  onLine?: (kernel: string, line: string) => void,
): Promise<GuestTestsReport> {
  const startedAt = new Date().toISOString();
  const t0 = Date.now();
  const bundles = await prepareGuestTests(files);
  for (const k of kernels) {
    rmSync(join(OUTPUT_DIR, k), { recursive: true, force: true });
    // Fetched and its initramfs made here, one kernel at a time: two guests of one
    // kernel start together below, and must not both rewrite its cached initramfs.
    await buildInitramfs(await ensureKernel(pinByName(k)));
  }
  const bundleOf = (f: string): string => bundles[files.indexOf(f)] as string;
  const groups = GUEST_TEST_GROUPS.map((g) => g.filter((f) => files.includes(f))).filter((g) => g.length > 0);
  const version = (k: string): number => Number(k.split('.')[0]) * 1000 + Number(k.split('.')[1] ?? 0);
  const queue = [...kernels].sort((a, b) => version(a) - version(b)).flatMap((k) => groups.map((g) => ({ kernel: k, bundles: g.map(bundleOf) })));
  const out = new Map<string, KernelTestRun>();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < queue.length) {
      const job = queue[next++] as { kernel: string; bundles: string[] };
      const r = await runKernelTests(job.kernel, job.bundles, onLine && ((l) => onLine(job.kernel, l)));
      out.set(job.kernel, merge(out.get(job.kernel), r));
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, queue.length) }, worker));
  const report: GuestTestsReport = { startedAt, ms: Date.now() - t0, tests: files.map(testName), kernels: kernels.map((k) => out.get(k) as KernelTestRun) };
  mkdirSync(kernelsBuildDir, { recursive: true });
  writeFileSync(RESULTS_JSON, `${JSON.stringify(report, null, 2)}\n`);
  return report;
}

function secs(ms: number | null): string {
  return ms === null ? '?' : (ms / 1000).toFixed(0);
}

/** The host's column: tap's saved output of each file (only those written since `sinceMs`, when given). */
export function hostColumn(tests: readonly string[], sinceMs?: number): TableColumn {
  const cells: TableColumn['cells'] = new Map();
  for (const name of tests) {
    const f = join(repoRoot, '.tap', 'test-results', 'test', 'kernel', `${name}.test.ts.tap`);
    if (!existsSync(f) || (sinceMs !== undefined && statSync(f).mtimeMs < sinceMs)) continue;
    const h = parseHostTap(readFileSync(f, 'utf8'));
    cells.set(name, { verdict: h.ok ? 'host-pass' : 'host-fail', ms: h.ms, detail: h.failedNames.join('; ') });
  }
  const release = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  return { title: `host (${release})`, cells, footer: 'tap, natively' };
}

export function guestColumns(report: GuestTestsReport): TableColumn[] {
  return report.kernels.map((k) => {
    const cells: TableColumn['cells'] = new Map();
    for (const name of report.tests) {
      const j = k.judged[name];
      if (j === undefined) continue;
      cells.set(name, { verdict: j.verdict, ms: k.files[name]?.ms ?? null, detail: j.detail });
    }
    const footer = k.runs.map((r) => `${secs(r.bootMs)} / ${secs(r.runMs)} / ${secs(r.totalMs)}${r.timedOut ? ' (timed out)' : ''}`).join(' + ');
    return { title: `${k.kernel} (${k.release})`, cells, footer };
  });
}

/** Every (kernel, test) whose verdict fails CI. */
export function failures(report: GuestTestsReport): string[] {
  return report.kernels.flatMap((k) => report.tests.filter((n) => isFailure(k.judged[n]?.verdict ?? 'not run')).map((n) => `${k.kernel} ${n}: ${k.judged[n]?.detail ?? 'not run'}`));
}

export function tableOf(report: GuestTestsReport, sinceMs?: number): string {
  return `${formatTestTable(report.tests, [hostColumn(report.tests, sinceMs), ...guestColumns(report)])}\n\nguests: ${(report.ms / 1000).toFixed(0)} s for ${report.kernels.length} kernels (started ${report.startedAt})`;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const values = (flag: string): string[] => argv.flatMap((a, i) => (a === flag && argv[i + 1] !== undefined ? [argv[i + 1] as string] : []));
  const since = values('--since')[0];
  const sinceMs = since === undefined ? undefined : Number(since) * 1000;
  if (argv.includes('--table')) {
    if (!existsSync(RESULTS_JSON)) {
      console.log(`kernel x test: no guest results (${RESULTS_JSON} is missing)`);
      return;
    }
    const report = JSON.parse(readFileSync(RESULTS_JSON, 'utf8')) as GuestTestsReport;
    if (sinceMs !== undefined && Date.parse(report.startedAt) < sinceMs) {
      console.log(`kernel x test: the guests did not run in this run (last results ${report.startedAt})`);
      return;
    }
    console.log(`kernel x test (host: tap; guests: ${RESULTS_JSON}):\n${tableOf(report, sinceMs)}`);
    return;
  }
  const kernels = values('--kernel');
  const tests = values('--test');
  const files = tests.length === 0 ? GUEST_TEST_FILES : tests.map((n) => {
    const f = GUEST_TEST_FILES.find((x) => testName(x) === n);
    if (f === undefined) throw new Error(`no guest test '${n}' (one of ${GUEST_TEST_FILES.map(testName).join(', ')})`);
    return f;
  });
  const jobs = Number(values('--jobs')[0] ?? '2');
  const report = await runGuestTests(kernels.length > 0 ? kernels : undefined, files, jobs, argv.includes('--console') ? (k, l) => console.error(`[${k}] ${l}`) : undefined);
  console.log(tableOf(report));
  for (const k of report.kernels) if (k.consoleTail !== '') console.error(`--- ${k.kernel}: console tail:\n${k.consoleTail}`);
  const bad = failures(report);
  if (bad.length > 0) {
    console.error(`\nfailing:\n${bad.join('\n')}\n(outputs in ${OUTPUT_DIR}/<kernel>/<test>.tap)`);
    process.exit(1);
  }
}

if (process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  main().catch((err: unknown) => {
    console.error(`guest-tests: ${(err as Error).message}`);
    process.exit(1);
  });
}
