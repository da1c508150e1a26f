// Logging for every mode of the executable: JSON lines to a file and to stderr,
// never to stdout (stdout belongs to the CNI result). Opening the file may fail
// (read-only host path, missing dir): the call that logs must not fail because of
// that, so the file is tried first and skipped with a warning on stderr.
import { closeSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import winston from 'winston';
import { mkdirp } from '../sys/mkdirp.js';
import { redactRecord } from './redact.js';

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
  /** Flush and close the file; resolves within `timeoutMs` even when a write hangs. */
  close(timeoutMs?: number): Promise<void>;
}

export interface LoggerOptions {
  level: LogLevel;
  /** Append JSON lines here as well as to stderr; skipped (with a warning) when it cannot be opened. */
  file?: string | undefined;
  /** Fields on every line (container id, command, pod ...). */
  fields?: LogFields;
  /** Write to stderr too (default true). */
  stderr?: boolean;
  /** Where "stderr" goes; tests pass their own stream. */
  stderrStream?: NodeJS.WritableStream;
}

export function isLogLevel(value: unknown): value is LogLevel {
  return typeof value === 'string' && (LOG_LEVELS as readonly string[]).includes(value);
}

/** Try to open `file` for appending, creating its directory. Returns the error message or undefined. */
function probeLogFile(file: string): string | undefined {
  try {
    mkdirp(dirname(file));
    closeSync(openSync(file, 'a', 0o600));
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

const redactFormat = winston.format((info) => redactRecord(info));

export function createLogger(opts: LoggerOptions): Logger {
  const stderrStream = opts.stderrStream ?? process.stderr;
  const transports: winston.transport[] = [];
  let fileTransport: winston.transports.FileTransportInstance | undefined;
  let fileProblem: string | undefined;
  if (opts.file) {
    fileProblem = probeLogFile(opts.file);
    if (!fileProblem) {
      fileTransport = new winston.transports.File({ filename: opts.file });
      // A later write error (disk full) must not throw out of the CNI call.
      fileTransport.on('error', () => undefined);
      transports.push(fileTransport);
    }
  }
  if (opts.stderr !== false) {
    transports.push(new winston.transports.Stream({ stream: stderrStream }));
  }
  const base = winston.createLogger({
    level: opts.level,
    levels: { error: 0, warn: 1, info: 2, debug: 3 },
    format: winston.format.combine(winston.format.timestamp(), redactFormat(), winston.format.json()),
    defaultMeta: opts.fields ?? {},
    transports,
    exitOnError: false,
  });
  // With no transport at all winston warns on stdout-less console; keep it silent instead.
  if (transports.length === 0) base.silent = true;

  const wrap = (w: winston.Logger): Logger => ({
    error: (msg, fields) => void w.log('error', msg, fields ?? {}),
    warn: (msg, fields) => void w.log('warn', msg, fields ?? {}),
    info: (msg, fields) => void w.log('info', msg, fields ?? {}),
    debug: (msg, fields) => void w.log('debug', msg, fields ?? {}),
    child: (fields) => wrap(w.child(fields)),
    close: (timeoutMs = 1000) => closeLogger(base, fileTransport, timeoutMs),
  });
  const logger = wrap(base);
  if (fileProblem && opts.file) {
    logger.warn('cannot open the log file; logging to stderr only', { log_file: opts.file, error: fileProblem });
  }
  return logger;
}

function closeLogger(
  base: winston.Logger,
  fileTransport: winston.transports.FileTransportInstance | undefined,
  timeoutMs: number,
): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    timer.unref();
    const done = (): void => {
      clearTimeout(timer);
      resolve();
    };
    if (!fileTransport) {
      base.end();
      done();
      return;
    }
    fileTransport.on('finish', done);
    fileTransport.on('error', done);
    base.end();
  });
}
