import { STATUS_FLAGS, optionsHelp } from '../../install/options.js';
import { UsageError, type CliCommand } from '../context.js';


export const statusCommand: CliCommand = {
  name: 'status',
  summary: 'show the datapath, the registered pods and the counters of this node',
  help: optionsHelp(
    [
      'Usage: meshlane status [--json] [flags]',
      '',
      'Programs and where they are attached, maps and their entry counts, registered',
      'pods (namespace/name, IPs, cgroup, interception), the datapath counters and the',
      'CNI config. --json prints the same as one JSON document (field "version" = 1).',
      'Exit code 0 when installed and chained, 3 when not.',
    ].join('\n'),
    STATUS_FLAGS,
  ),
  async run(args, ctx) {
    const { runStatus } = await import('../../install/commands.js');
    try {
      return await runStatus(args, ctx, STATUS_FLAGS);
    } catch (err) {
      if (err instanceof UsageError) throw err;
      ctx.stderr.write(`meshlane status: ${(err as Error).message}\n`);
      return 1;
    }
  },
};
