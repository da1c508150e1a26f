// What every command gets: its streams and environment, passed in so that
// commands are tested without a process.
export interface CliContext {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: Readonly<Record<string, string | undefined>>;
}

export interface CliCommand {
  name: string;
  /** One line for the command list. */
  summary: string;
  /** Full help, printed by `meshlane <name> --help`. */
  help: string;
  run(args: readonly string[], ctx: CliContext): Promise<number>;
}

export { UsageError, UserError } from '../usage-error.js';
