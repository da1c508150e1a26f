// A Logger that keeps what it is told, for tests that check what was logged.
import type { Logger, LogFields } from '../../src/log/logger.js';

/** One logged line: the level, the message and the fields (the child's base fields merged in). */
export interface LogLine {
  level: 'error' | 'warn' | 'info' | 'debug';
  msg: string;
  fields: LogFields;
}

/** Children share the parent's `lines`; `closed` counts close() calls. */
export class RecordingLogger implements Logger {
  readonly lines: LogLine[];
  closed = 0;
  constructor(
    readonly base: LogFields = {},
    lines: LogLine[] = [],
  ) {
    this.lines = lines;
  }
  private add(level: LogLine['level'], msg: string, fields?: LogFields): void {
    this.lines.push({ level, msg, fields: { ...this.base, ...(fields ?? {}) } });
  }
  error(msg: string, fields?: LogFields): void {
    this.add('error', msg, fields);
  }
  warn(msg: string, fields?: LogFields): void {
    this.add('warn', msg, fields);
  }
  info(msg: string, fields?: LogFields): void {
    this.add('info', msg, fields);
  }
  debug(msg: string, fields?: LogFields): void {
    this.add('debug', msg, fields);
  }
  child(fields: LogFields): Logger {
    return new RecordingLogger({ ...this.base, ...fields }, this.lines);
  }
  close(): Promise<void> {
    this.closed++;
    return Promise.resolve();
  }
}
