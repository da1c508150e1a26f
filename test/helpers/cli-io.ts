// A CLI context for runCli in-process: its streams collected, read back as text.
import { PassThrough } from 'node:stream';
import type { CliContext } from '../../src/cli/context.js';

export interface CliIo extends CliContext {
  /** What the command wrote on stdout so far. */
  out(): string;
  /** What the command wrote on stderr so far. */
  err(): string;
}

export function cliIo(env: Record<string, string> = {}): CliIo {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const o: Buffer[] = [];
  const e: Buffer[] = [];
  stdout.on('data', (c: Buffer) => o.push(c));
  stderr.on('data', (c: Buffer) => e.push(c));
  return { stdout, stderr, env, out: () => Buffer.concat(o).toString(), err: () => Buffer.concat(e).toString() };
}
