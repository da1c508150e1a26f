// The node commands (install, uninstall, status) share one shape: help built
// from their flags, the installer code loaded only when the command runs, and
// a failure the user can fix on the node turned into a UserError (one line,
// exit 1); any other failure goes on to the CLI as the bug it is.
import { optionsHelp } from '../../install/options.js';
import type { CliCommand, CliContext } from '../context.js';

type NodeRunner = (args: readonly string[], ctx: CliContext, flags: readonly string[]) => Promise<number>;

export interface NodeCommandSpec {
  name: string;
  summary: string;
  /** The usage line and the description, one string per line. */
  usage: readonly string[];
  flags: readonly string[];
  load(): Promise<NodeRunner>;
}

export function nodeCommand(spec: NodeCommandSpec): CliCommand {
  return {
    name: spec.name,
    summary: spec.summary,
    help: optionsHelp(spec.usage.join('\n'), spec.flags),
    async run(args, ctx) {
      const [runner, { userFacing }] = await Promise.all([spec.load(), import('../../install/failures.js')]);
      try {
        return await runner(args, ctx, spec.flags);
      } catch (err) {
        throw userFacing(err) ?? err;
      }
    },
  };
}
