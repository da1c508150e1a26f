// Shared test helpers for the CNI protocol tests: in-memory streams, a recording
// logger, a runCni wrapper and fixture loaders. (No tests here.)
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';
import { CniError } from '../../src/cni/errors.js';
import { RecordingLogger, type LogLine } from '../helpers/recording-logger.js';
import { runCni, type CniHandlers, type LogFieldsForCall, type SkelOptions } from '../../src/cni/skel.js';
import { passThroughHandlers } from './passthrough-handlers.js';
export { upstreamFixtures } from '../helpers/paths.js';
import { isSupportedVersion } from '../../src/cni/versions.js';

export { RecordingLogger, type LogLine };

export const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = resolve(here, '..', '..');
export const fixturesDir = join(here, 'fixtures');

export function readFixture(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(fixturesDir, name), 'utf8')) as Record<string, unknown>;
}

/** Real results captured from bridge/ptp + host-local (see fixtures/README.md) in the supported versions. */
export function realResults(): Array<{ file: string; version: string; result: Record<string, unknown> }> {
  return readdirSync(fixturesDir)
    .filter((f) => /^(bridge|ptp)-host-local-\d+\.\d+\.\d+\.json$/.test(f))
    .map((file) => {
      const result = readFixture(file);
      return { file, version: String(result['cniVersion']), result };
    })
    .filter((r) => isSupportedVersion(r.version));
}


export class MemoryStdout extends Writable {
  readonly chunks: Buffer[] = [];
  writes = 0;
  override _write(chunk: Buffer | string, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.writes++;
    this.chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    // Complete asynchronously, as a pipe would.
    setImmediate(() => cb());
  }
  get text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

export function stdinOf(data: string | Buffer | undefined, chunkSize = 65536): Readable {
  if (data === undefined) return Readable.from([]);
  const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const chunks: Buffer[] = [];
  for (let i = 0; i < buf.length; i += chunkSize) chunks.push(buf.subarray(i, i + chunkSize));
  return Readable.from(chunks);
}

export interface LoggerCall {
  config: Readonly<Record<string, unknown>>;
  fields: LogFieldsForCall;
  logger: RecordingLogger;
}

export interface RunOutcome {
  code: number;
  stdout: string;
  /** stdout parsed, when it is not empty. */
  json: Record<string, unknown> | undefined;
  writes: number;
  loggers: LoggerCall[];
  lines: LogLine[];
}

export interface RunOptions {
  env: Record<string, string | undefined>;
  stdin?: string | Buffer | Readable;
  handlers?: Partial<CniHandlers>;
  /** Replaces the recording logger factory (to make it throw, say). */
  createLogger?: SkelOptions['createLogger'];
}

export const baseEnv = {
  CNI_COMMAND: 'ADD',
  CNI_CONTAINERID: 'c0ffee1234',
  CNI_NETNS: '/var/run/netns/test',
  CNI_IFNAME: 'eth0',
  CNI_PATH: '/opt/cni/bin:/usr/lib/cni',
  CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_UID=0d5c3a8e-2f6b-4c1e-9a77-1b2c3d4e5f60',
};

export async function run(opts: RunOptions): Promise<RunOutcome> {
  const stdout = new MemoryStdout();
  const loggers: LoggerCall[] = [];
  const lines: LogLine[] = [];
  const createLogger: SkelOptions['createLogger'] =
    opts.createLogger ??
    ((config, fields) => {
      const logger = new RecordingLogger({ ...fields }, lines);
      loggers.push({ config, fields, logger });
      return logger;
    });
  const stdin = opts.stdin instanceof Readable ? opts.stdin : stdinOf(opts.stdin);
  const handlers: CniHandlers = { ...passThroughHandlers, ...(opts.handlers ?? {}) };
  const code = await runCni({ env: opts.env, stdin, stdout }, handlers, { createLogger });
  const text = stdout.text;
  return {
    code,
    stdout: text,
    json: text === '' ? undefined : (JSON.parse(text) as Record<string, unknown>),
    writes: stdout.writes,
    loggers,
    lines,
  };
}

/** stdout must be empty or exactly one JSON document (one line, newline-terminated). */
export function stdoutShape(stdout: string): 'empty' | 'one-document' | 'bad' {
  if (stdout === '') return 'empty';
  if (!stdout.endsWith('\n') || stdout.slice(0, -1).includes('\n')) return 'bad';
  try {
    const value: unknown = JSON.parse(stdout);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? 'one-document' : 'bad';
  } catch {
    return 'bad';
  }
}

export function conf(extra: Record<string, unknown> = {}, version = '1.0.0'): string {
  return JSON.stringify({ cniVersion: version, name: 'k8s-pod-network', type: 'meshlane', ...extra });
}

/** Assert that `fn` throws a CniError with exactly this code and msg (and details, when given). */
export function throwsCni(t: Test, fn: () => unknown, code: number, msg: string, details?: string | RegExp): void {
  try {
    fn();
    t.fail(`expected CNI error ${code} "${msg}"`);
  } catch (err) {
    checkCni(t, err, code, msg, details);
  }
}

export async function rejectsCni(t: Test, p: Promise<unknown>, code: number, msg: string, details?: string | RegExp): Promise<void> {
  try {
    await p;
    t.fail(`expected CNI error ${code} "${msg}"`);
  } catch (err) {
    checkCni(t, err, code, msg, details);
  }
}

function checkCni(t: Test, err: unknown, code: number, msg: string, details?: string | RegExp): void {
  if (!(err instanceof CniError)) {
    t.fail(`expected a CniError, got ${String(err)}`);
    return;
  }
  t.equal(err.code, code, `code ${code}`);
  t.equal(err.msg, msg, 'msg');
  if (details instanceof RegExp) t.match(err.details ?? '', details, 'details');
  else if (details !== undefined) t.equal(err.details, details, 'details');
}
