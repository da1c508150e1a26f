// Test programs in testing/tools/*.c, compiled on demand into .build/tools/.
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const toolsSrcDir = join(repoRoot, 'testing', 'tools');
export const toolsBuildDir = join(repoRoot, '.build', 'tools');

function mtime(path: string): number {
  return statSync(path).mtimeMs;
}

/** Newest mtime of the program's source and the shared headers. */
function sourceTime(src: string): number {
  const headers = readdirSync(toolsSrcDir).filter((f) => f.endsWith('.h'));
  return Math.max(mtime(src), ...headers.map((h) => mtime(join(toolsSrcDir, h))));
}

/**
 * The path of .build/tools/<name>, compiled from testing/tools/<name>.c with
 * `cc -O2 -Wall -Werror` when missing or older than its sources. Safe to call
 * from several processes at once (compile to a temp file, then rename).
 */
export async function buildTool(name: string): Promise<string> {
  if (!/^[a-z][a-z0-9_-]*$/.test(name)) throw new Error(`bad tool name '${name}'`);
  const src = join(toolsSrcDir, `${name}.c`);
  if (!existsSync(src)) throw new Error(`no such test program: ${src}`);
  const out = join(toolsBuildDir, name);
  if (existsSync(out) && mtime(out) >= sourceTime(src)) return out;
  mkdirSync(toolsBuildDir, { recursive: true });
  const tmp = `${out}.tmp${process.pid}`;
  const r = await execa('cc', ['-O2', '-Wall', '-Werror', '-pthread', '-I', toolsSrcDir, '-o', tmp, src], {
    reject: false,
    timeout: 120_000,
  });
  if (r.exitCode !== 0) {
    rmSync(tmp, { force: true });
    throw new Error(`compiling ${src} failed (exit ${r.exitCode}; is gcc installed?):\n${r.stderr}`);
  }
  renameSync(tmp, out);
  return out;
}
