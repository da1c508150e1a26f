// Run the built executable the way a container runtime runs a CNI plugin:
// environment + stdin in, stdout/stderr/exit code out.
import { execa } from 'execa';
import { requireBuiltExe } from './paths.js';

export interface ExeResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export async function runExe(
  env: Record<string, string>,
  stdin: string | Uint8Array = '',
  args: readonly string[] = [],
): Promise<ExeResult> {
  const exe = requireBuiltExe();
  const r = await execa(exe, [...args], {
    env: { PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...env },
    extendEnv: false,
    input: stdin,
    reject: false,
    stripFinalNewline: false,
    timeout: 30_000,
  });
  if (r.exitCode === undefined) {
    throw new Error(`${exe} did not exit: ${r.signal ?? 'unknown'} ${r.stderr}`);
  }
  return { exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr };
}

/** stdout must be exactly one JSON document (or nothing). Returns it parsed. */
export function parseSingleJson(stdout: string): unknown {
  const text = stdout.trim();
  if (text === '') return undefined;
  return JSON.parse(text) as unknown;
}
