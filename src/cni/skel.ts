// The dispatcher, shaped like containernetworking's skel: env, stdin and stdout are
// passed in, one handler per command. It owns the protocol: which variables each command
// needs, the config and its version, what goes to stdout (exactly one result or error
// JSON document, or nothing), and the exit code. It knows nothing of meshes or BPF.
import type { Logger } from '../log/logger.js';
import { readCniEnv, parseCniArgs, podFromArgs, boundText, type CniEnv } from './env.js';
import { CniError, CniErrorCode, INTERNAL_ERROR_MSG, describeThrown, toCniError } from './errors.js';
import { decodeJson, parseNetConf, peekVersion, type NetConf } from './netconf.js';
import { isJsonObject } from '../json/value.js';
import { resultToJson, type CniResultJson, type PrevResult } from './result.js';
import { isTerminal, readStdin } from './stdin.js';
import {
  COMMAND_MIN_VERSION,
  LATEST_VERSION,
  commandAllowed,
  versionInfo,
  type CniHandlerCommand,
  type CniVersion,
} from './versions.js';

export interface CniRequest {
  command: CniHandlerCommand;
  /** Empty for GC and STATUS. */
  containerId: string;
  /** Empty for GC and STATUS, and may be empty for DEL. */
  netns: string;
  /** Empty for GC and STATUS. */
  ifname: string;
  args: ReadonlyMap<string, string>;
  path: string[];
  cniVersion: CniVersion;
  /** The raw plugin config (plugin-specific fields, runtimeConfig, capabilities ...). */
  config: Readonly<Record<string, unknown>>;
  /** Absent when the runtime sent none (and, for DEL only, when it could not be read). */
  prevResult?: PrevResult;
  log: Logger;
}

export interface CniHandlers {
  /** The result to print (converted to the request's version by the skeleton). */
  add(req: CniRequest): Promise<PrevResult | CniResultJson>;
  del(req: CniRequest): Promise<void>;
  check(req: CniRequest): Promise<void>;
  gc(req: CniRequest): Promise<void>;
  status(req: CniRequest): Promise<void>;
}

export interface CniIo {
  env: Readonly<Record<string, string | undefined>>;
  stdin: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
}

/** A type alias (not an interface) so that it is assignable to the logger's `LogFields`. */
export type LogFieldsForCall = {
  containerId?: string;
  command: string;
  pod?: string;
};

export interface SkelOptions {
  /** The logger of one call. May throw a CniError (e.g. a bad `log_level`: code 7). */
  createLogger(config: Readonly<Record<string, unknown>>, fields: LogFieldsForCall): Logger;
}

export const EXIT_OK = 0;
export const EXIT_ERROR = 1;

/**
 * stdout, the CNI channel: at most one document goes out, and the exit status is
 * derived from it, here and nowhere else: 0 after a result or nothing, 1 after an
 * error document or when stdout could not be written.
 */
export class CniChannel {
  #state: 'empty' | 'result' | 'error' | 'broken' = 'empty';
  constructor(private readonly stream: NodeJS.WritableStream) {}

  async result(text: string): Promise<void> {
    await this.#print(text, 'result');
  }

  async error(text: string): Promise<void> {
    await this.#print(text, 'error');
  }

  async #print(text: string, kind: 'result' | 'error'): Promise<void> {
    if (this.#state !== 'empty') throw new Error(`a second document for stdout (${this.#state} already)`);
    this.#state = kind === 'error' ? 'error' : 'broken'; // a result counts only once written whole
    await writeAll(this.stream, text);
    if (kind === 'result') this.#state = 'result';
  }

  get exitCode(): number {
    return this.#state === 'empty' || this.#state === 'result' ? EXIT_OK : EXIT_ERROR;
  }
}

const MAX_LOGGED_COMMAND_LENGTH = 32;
const MAX_LOGGED_CONTAINER_ID_LENGTH = 128;

/** Run one CNI call. Resolves to the exit code once stdout is written and the log is closed. */
export async function runCni(io: CniIo, handlers: CniHandlers, opts: SkelOptions): Promise<number> {
  const out = new CniChannel(io.stdout);
  await runCall(io, out, handlers, opts);
  return out.exitCode;
}

async function runCall(io: CniIo, out: CniChannel, handlers: CniHandlers, opts: SkelOptions): Promise<void> {
  const started = performance.now();
  const rawCommand = io.env['CNI_COMMAND'] ?? '';
  let env: CniEnv | undefined;
  let envError: CniError | undefined;
  try {
    env = readCniEnv(io.env);
  } catch (err) {
    envError = toCniError(err);
  }
  const fields = fieldsForCall(rawCommand, env, io.env);

  if (env?.command === 'VERSION') return runVersion(io, out, opts, fields);

  // stdin is read even when the environment is wrong, so that the error can be logged
  // where the config says (runtimes give every call its config).
  let bytes: Buffer | undefined;
  let inputError: CniError | undefined;
  try {
    bytes = isTerminal(io.stdin) ? Buffer.alloc(0) : await readStdin(io.stdin);
  } catch (err) {
    inputError = toCniError(err);
  }
  let conf: NetConf | undefined;
  let confError: CniError | undefined;
  if (bytes) {
    try {
      conf = parseNetConf(decodeJson(bytes), { lenientPrevResult: env?.command === 'DEL' });
    } catch (err) {
      confError = toCniError(err);
    }
  }
  const { log, error: logError } = openLogger(opts, conf?.raw ?? {}, fields);
  const cniVersion: CniVersion = conf?.cniVersion ?? (bytes ? peekVersion(bytes) : undefined) ?? LATEST_VERSION;

  try {
    const early = envError ?? inputError ?? confError ?? logError;
    if (early || !env || !conf) {
      return await fail(out, log, early ?? internal('no environment or config and no error'), cniVersion, started);
    }
    const command = env.command;
    log.info('CNI call', {
      netns: env.netns,
      ifname: env.ifname,
      cniVersion,
      network: conf.name,
      prevResult: conf.prevResult !== undefined,
    });
    if (!commandAllowed(command, conf.cniVersion)) {
      const min = COMMAND_MIN_VERSION[command] ?? '';
      const err = new CniError(
        CniErrorCode.IncompatibleVersion,
        `config version does not allow ${command}`,
        `cniVersion is "${conf.cniVersion}"; ${command} needs ${min} or later`,
      );
      return await fail(out, log, err, cniVersion, started);
    }
    if (conf.prevResultError) {
      const e = conf.prevResultError;
      log.warn('prevResult cannot be read; DEL goes on without it', { code: e.code, msg: e.msg, details: e.details });
    }
    const req: CniRequest = {
      command,
      containerId: env.containerId,
      netns: env.netns,
      ifname: env.ifname,
      args: env.args,
      path: env.path,
      cniVersion: conf.cniVersion,
      config: conf.raw,
      log,
      ...(conf.prevResult ? { prevResult: conf.prevResult } : {}),
    };

    let output: string | undefined;
    try {
      output = await dispatch(handlers, req);
    } catch (err) {
      if (!(err instanceof CniError)) {
        log.error('handler failed with an unexpected error', { error: describeThrown(err), stack: err instanceof Error ? err.stack : undefined });
      }
      return await fail(out, log, toCniError(err), cniVersion, started);
    }
    if (output !== undefined) {
      try {
        await out.result(output);
      } catch (err) {
        log.error('cannot write the result to stdout', { error: describeThrown(err) });
        return;
      }
    }
    log.info('CNI call done', { ms: elapsed(started) });
  } finally {
    await closeQuietly(log);
  }
}

/** Call the command's handler; returns what to print (ADD only). */
async function dispatch(handlers: CniHandlers, req: CniRequest): Promise<string | undefined> {
  switch (req.command) {
    case 'ADD': {
      const result: unknown = await handlers.add(req);
      if (!isJsonObject(result)) throw internal(`the ADD handler returned ${result === null ? 'null' : typeof result}, not a result`);
      let json: Record<string, unknown>;
      try {
        json = resultToJson(result, req.cniVersion);
      } catch (err) {
        throw internal(`the ADD handler returned an invalid result: ${describeThrown(err)}`);
      }
      return `${JSON.stringify(json)}\n`;
    }
    case 'DEL':
      await handlers.del(req);
      return undefined;
    case 'CHECK':
      await handlers.check(req);
      return undefined;
    case 'GC':
      await handlers.gc(req);
      return undefined;
    case 'STATUS':
      await handlers.status(req);
      return undefined;
  }
}

async function runVersion(io: CniIo, out: CniChannel, opts: SkelOptions, fields: LogFieldsForCall): Promise<void> {
  // The input is optional ({"cniVersion": ...}); whatever it holds, VERSION answers.
  let bytes: Buffer | undefined;
  if (!isTerminal(io.stdin)) {
    try {
      bytes = await readStdin(io.stdin);
    } catch (err) {
      if (!(err instanceof CniError)) throw err; // readStdin turns every read failure into one
      bytes = undefined;
    }
  }
  const cniVersion = (bytes && peekVersion(bytes)) || LATEST_VERSION;
  let config: Readonly<Record<string, unknown>> = {};
  if (bytes && bytes.length > 0) {
    try {
      const value = decodeJson(bytes);
      if (isJsonObject(value)) config = value;
    } catch (err) {
      if (!(err instanceof CniError)) throw err;
      config = {};
    }
  }
  const { log } = openLogger(opts, config, fields);
  try {
    log.debug('CNI VERSION', { cniVersion });
    await out.result(`${JSON.stringify(versionInfo(cniVersion))}\n`);
  } catch (err) {
    log.error('cannot write the version to stdout', { error: describeThrown(err) });
  } finally {
    await closeQuietly(log);
  }
}

/** Log the error and print its document (the channel then gives exit status 1). */
async function fail(out: CniChannel, log: Logger, err: CniError, cniVersion: string, started: number): Promise<void> {
  log.error('CNI call failed', { code: err.code, msg: err.msg, details: err.details, ms: elapsed(started) });
  try {
    await out.error(`${JSON.stringify(err.toJson(cniVersion))}\n`);
  } catch (writeErr) {
    log.error('cannot write the error to stdout', { error: describeThrown(writeErr) });
  }
}

function internal(details: string): CniError {
  return new CniError(CniErrorCode.Internal, INTERNAL_ERROR_MSG, details);
}

/** The logger of the call; when the config's logging settings are refused, a default one and the error. */
function openLogger(
  opts: SkelOptions,
  config: Readonly<Record<string, unknown>>,
  fields: LogFieldsForCall,
): { log: Logger; error?: CniError } {
  try {
    return { log: opts.createLogger(config, fields) };
  } catch (err) {
    const error = toCniError(err);
    try {
      return { log: opts.createLogger({}, fields), error };
    } catch {
      // Any failure: the first one is already the call's error; the call still answers.
      return { log: silentLogger, error };
    }
  }
}

/** Fields on every log line of the call, from whatever of the environment is readable. */
function fieldsForCall(rawCommand: string, env: CniEnv | undefined, raw: CniIo['env']): LogFieldsForCall {
  const fields: LogFieldsForCall = { command: boundText(rawCommand, MAX_LOGGED_COMMAND_LENGTH) };
  const containerId = env ? env.containerId : (raw['CNI_CONTAINERID'] ?? '');
  if (containerId) fields.containerId = boundText(containerId, MAX_LOGGED_CONTAINER_ID_LENGTH);
  let args: ReadonlyMap<string, string> | undefined = env?.args;
  if (!args) {
    try {
      args = parseCniArgs(raw['CNI_ARGS'] ?? '');
    } catch (err) {
      if (!(err instanceof CniError)) throw err;
      args = undefined;
    }
  }
  const pod = args ? podFromArgs(args) : undefined;
  if (pod) fields.pod = pod;
  return fields;
}

/** Write all of `text` and wait until the stream has taken it. */
export function writeAll(stream: NodeJS.WritableStream, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    // A failed write is also emitted as 'error'; without a listener that would crash the process.
    const onError = (err: Error): void => reject(err);
    stream.once('error', onError);
    const done = (err?: Error | null): void => {
      // After a failed write the stream still emits 'error' (on a later tick): keep the
      // listener then, so that it finds one.
      if (err) reject(err);
      else {
        stream.removeListener('error', onError);
        resolve();
      }
    };
    try {
      stream.write(text, done);
    } catch (err) {
      done(err instanceof Error ? err : new Error(describeThrown(err)));
    }
  });
}

async function closeQuietly(log: Logger): Promise<void> {
  try {
    await log.close();
  } catch {
    // Closing the log must not change the call's outcome.
  }
}

function elapsed(started: number): number {
  return Math.round((performance.now() - started) * 10) / 10;
}

const silentLogger: Logger = {
  error: () => undefined,
  warn: () => undefined,
  info: () => undefined,
  debug: () => undefined,
  child: () => silentLogger,
  close: () => Promise.resolve(),
};

/** For callers that pick the mode: is this environment a CNI call? */
export function isCniInvocation(env: CniIo['env']): boolean {
  return env['CNI_COMMAND'] !== undefined;
}
