import { STATUS_FLAGS } from '../../install/options.js';
import { nodeCommand } from './node-command.js';

export const statusCommand = nodeCommand({
  name: 'status',
  summary: 'show the datapath, the registered pods and the counters of this node',
  usage: [
    'Usage: meshlane status [--json] [flags]',
    '',
    'Programs and where they are attached, maps and their entry counts, registered',
    'pods (namespace/name, IPs, cgroup, interception), the datapath counters and the',
    'CNI config. --json prints the same as one JSON document (field "version" = 1).',
    'Exit code 0 when installed and chained, 3 when not.',
  ],
  flags: STATUS_FLAGS,
  load: async () => (await import('../../install/commands.js')).runStatus,
});
