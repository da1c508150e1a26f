// The one place that starts processes. Arguments are always an array (no shell),
// and a failure says what ran, how it ended, what it printed and how long it took.
import { execa } from 'execa';

export class CommandError extends Error {
  override name = 'CommandError';
  constructor(
    readonly command: readonly string[],
    readonly exitCode: number | undefined,
    readonly signal: string | undefined,
    readonly stderr: string,
    readonly durationMs: number,
    readonly reason?: string,
    readonly stdout: string = '',
  ) {
    const how = reason ?? (signal ? `killed by ${signal}` : `exit code ${exitCode}`);
    // bpftool -j reports its errors as JSON on stdout; other tools use stderr.
    const detail = (stderr.trim() || stdout.trim().slice(0, 2000)).split('\n').slice(-20).join('\n');
    super(`${command.join(' ')} failed (${how}, ${Math.round(durationMs)} ms)${detail ? `: ${detail}` : ''}`);
  }
}

export interface RunOptions {
  input?: string;
  timeoutMs?: number;
  env?: Record<string, string>;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  durationMs: number;
}

export async function run(file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const started = performance.now();
  const r = await execa(file, [...args], {
    reject: false,
    ...(opts.input !== undefined ? { input: opts.input } : { stdin: 'ignore' as const }),
    timeout: opts.timeoutMs ?? 60_000,
    ...(opts.env ? { env: opts.env } : {}),
    maxBuffer: 64 * 1024 * 1024,
  });
  const durationMs = performance.now() - started;
  if (r.failed || r.exitCode !== 0) {
    const reason = r.timedOut
      ? `timed out after ${opts.timeoutMs ?? 60_000} ms`
      : r.exitCode === undefined && !r.signal
        ? `could not start: ${r.originalMessage ?? r.shortMessage}`
        : undefined;
    throw new CommandError([file, ...args], r.exitCode, r.signal, String(r.stderr ?? ''), durationMs, reason, String(r.stdout ?? ''));
  }
  return { stdout: String(r.stdout), stderr: String(r.stderr), durationMs };
}
