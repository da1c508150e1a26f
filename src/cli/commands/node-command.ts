// The node commands (install, uninstall, status) share one shape: help built
// from their flags, the installer code loaded only when the command runs, and
// a failure printed as one line (a usage mistake still exits 2).
import { optionsHelp } from '../../install/options.js';
import { UsageError, type CliCommand, type CliContext } from '../context.js';
import { errorMessage } from '../../describe-error.js';

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
      const runner = await spec.load();
      try {
        return await runner(args, ctx, spec.flags);
      } catch (err) {
        if (err instanceof UsageError) throw err;
        ctx.stderr.write(`meshlane ${spec.name}: ${errorMessage(err)}\n`);
        return 1;
      }
    },
  };
}
