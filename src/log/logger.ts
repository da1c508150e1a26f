// Logging for every mode of the executable: JSON lines to a file and to stderr,
// never to stdout (stdout belongs to the CNI result). Every line is written
// synchronously, so when a call has printed its result every log write has
// completed or failed: nothing is left in flight that could change the exit
// status, hold the process, or crash it later (a full disk, a closed pipe).
//
// The file: a path that exists must be a regular file, and never the file that
// is this process's stdout or stderr (LogFileRefused: the caller names the
// setting). A file that cannot be opened (read-only host path, missing
// permission) or later fails a write (ENOSPC) is reported once on stderr, one
// line, no stack, and dropped: the call goes on, logging to stderr only.
import { closeSync, fstatSync, openSync, statSync, writeSync, type Stats } from 'node:fs';
import { dirname } from 'node:path';
import { mkdirp } from '../sys/mkdirp.js';
import { redact } from './redact.js';
import { errnoOf, errorMessage, isSystemError } from '../describe-error.js';

export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export type LogFields = Record<string, unknown>;

export interface Logger {
  error(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  debug(msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line. */
  child(fields: LogFields): Logger;
  /** Close the file. Every line is already written: this never waits. */
  close(): Promise<void>;
}

export interface LoggerOptions {
  level: LogLevel;
  /** Append JSON lines here as well as to stderr; skipped (with a warning) when it cannot be opened. */
  file?: string | undefined;
  /** Fields on every line (container id, command, pod ...). */
  fields?: LogFields;
  /** Write to stderr too (default true). */
  stderr?: boolean;
  /** Where "stderr" goes; tests pass their own stream. Default: file descriptor 2, written synchronously. */
  stderrStream?: NodeJS.WritableStream;
}

export function isLogLevel(value: unknown): value is LogLevel {
  return typeof value === 'string' && (LOG_LEVELS as readonly string[]).includes(value);
}

const RANK: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };

/** A log file that must not be used at all: the caller turns it into a configuration error. */
export class LogFileRefused extends Error {
  override name = 'LogFileRefused';
}

function fstatOrUndefined(fd: number): Stats | undefined {
  try {
    return fstatSync(fd);
  } catch (err) {
    if (!isSystemError(err)) throw err; // EBADF: that fd is closed
    return undefined;
  }
}

/** Is `st` the file behind this process's standard output or standard error? */
function isStdio(st: Stats): boolean {
  return [1, 2].some((fd) => {
    const s = fstatOrUndefined(fd);
    return s !== undefined && s.dev === st.dev && s.ino === st.ino;
  });
}

/**
 * Check `file` and open it for appending. Throws LogFileRefused for a path that
 * is not (and cannot become) a regular file or that is stdout/stderr; returns
 * the reason as a string when it merely cannot be opened now.
 */
export function openLogFile(file: string): number | string {
  let before: Stats | undefined;
  try {
    before = statSync(file);
  } catch (err) {
    if (!isSystemError(err)) throw err;
    before = undefined; // missing: it becomes a regular file (other failures show when it is opened)
  }
  if (before && !before.isFile()) {
    throw new LogFileRefused(`${file} is ${before.isDirectory() ? 'a directory' : 'not a regular file (a device, pipe or socket)'}`);
  }
  if (before && isStdio(before)) throw new LogFileRefused(`${file} is this process's standard output or error, which belong to the CNI result`);
  let fd: number;
  try {
    mkdirp(dirname(file));
    fd = openSync(file, 'a', 0o600);
  } catch (err) {
    return errorMessage(err);
  }
  const st = fstatOrUndefined(fd);
  if (!st || !st.isFile() || isStdio(st)) {
    closeSync(fd);
    throw new LogFileRefused(`${file} is not a regular file of its own`);
  }
  return fd;
}

/** Where the lines go. Shared by a logger and its children. */
class Sinks {
  #fileFd: number | undefined;
  readonly #file: string | undefined;
  readonly #stderr: boolean;
  readonly #stream: NodeJS.WritableStream | undefined;
  #stderrBroken = false;

  constructor(opts: LoggerOptions, fileFd: number | undefined) {
    this.#fileFd = fileFd;
    this.#file = opts.file;
    this.#stderr = opts.stderr !== false;
    // process.stderr is read only when a stream is given: making it loads Node's streams.
    this.#stream = opts.stderrStream === undefined || opts.stderrStream === process.stderr ? undefined : opts.stderrStream;
  }

  write(line: string): void {
    if (this.#fileFd !== undefined) {
      try {
        writeAllSync(this.#fileFd, line);
      } catch (err) {
        const fd = this.#fileFd;
        this.#fileFd = undefined;
        try {
          closeSync(fd);
        } catch (closeErr) {
          if (!isSystemError(closeErr)) throw closeErr;
          // already unusable
        }
        this.note(`meshlane: cannot write the log file ${this.#file ?? ''} (${errorMessage(err)}); logging to stderr only`);
      }
    }
    if (this.#stderr) this.toStderr(line);
  }

  /** A line about logging itself: on stderr, once per problem, even when stderr logging is off. */
  note(text: string): void {
    this.toStderr(`${text}\n`);
  }

  private toStderr(line: string): void {
    if (this.#stderrBroken) return;
    try {
      if (this.#stream) this.#stream.write(line);
      else writeAllSync(2, line);
    } catch {
      this.#stderrBroken = true; // a closed stderr: nowhere left to say it
    }
  }

  close(): void {
    if (this.#fileFd === undefined) return;
    try {
      closeSync(this.#fileFd);
    } catch (err) {
      if (!isSystemError(err)) throw err;
      // nothing to do
    }
    this.#fileFd = undefined;
  }
}

/** writeSync until all is written; a non-blocking pipe that is full is retried a bounded number of times. */
function writeAllSync(fd: number, text: string): void {
  const bytes = Buffer.from(text, 'utf8');
  let off = 0;
  let again = 0;
  while (off < bytes.length) {
    try {
      off += writeSync(fd, bytes, off, bytes.length - off);
    } catch (err) {
      if (errnoOf(err) !== 'EAGAIN' || ++again > 1000) throw err;
    }
  }
}

function line(level: LogLevel, msg: string, base: LogFields, fields: LogFields | undefined): string {
  // level and message first (what a reader scans for), then the fields; ours win over same-named fields.
  const record = redact({ level, message: msg, ...base, ...(fields ?? {}) }) as LogFields;
  record['level'] = level;
  record['message'] = redact(msg);
  record['timestamp'] = new Date().toISOString();
  try {
    return `${JSON.stringify(record)}\n`;
  } catch (err) {
    if (!(err instanceof TypeError)) throw err; // a cycle or a BigInt among the fields
    return `${JSON.stringify({ level, message: msg, timestamp: record['timestamp'], note: 'fields could not be serialised' })}\n`;
  }
}

export function createLogger(opts: LoggerOptions): Logger {
  let fileFd: number | undefined;
  let fileProblem: string | undefined;
  if (opts.file) {
    const r = openLogFile(opts.file);
    if (typeof r === 'number') fileFd = r;
    else fileProblem = r;
  }
  const sinks = new Sinks(opts, fileFd);
  const max = RANK[opts.level];
  const make = (base: LogFields): Logger => {
    const at = (level: LogLevel) => (msg: string, fields?: LogFields): void => {
      if (RANK[level] <= max) sinks.write(line(level, msg, base, fields));
    };
    return {
      error: at('error'),
      warn: at('warn'),
      info: at('info'),
      debug: at('debug'),
      child: (fields) => make({ ...base, ...fields }),
      close: () => {
        sinks.close();
        return Promise.resolve();
      },
    };
  };
  const logger = make(opts.fields ?? {});
  if (fileProblem !== undefined && opts.file) {
    sinks.note(`meshlane: cannot open the log file ${opts.file} (${fileProblem}); logging to stderr only`);
  }
  return logger;
}
