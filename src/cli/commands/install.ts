import { UsageError, type CliCommand } from '../context.js';
import { INSTALL_FLAGS, optionsHelp } from '../../install/options.js';

export const installCommand: CliCommand = {
  name: 'install',
  summary: 'place the plugin, attach the eBPF datapath and chain the CNI config on this node',
  help: optionsHelp(
    [
      'Usage: meshlane install [flags]',
      '',
      'Puts meshlane on this node and keeps it right: copies this executable into the',
      'CNI bin dir, mounts bpffs when needed, loads and attaches the eBPF datapath',
      '(reusing pinned maps, so registrations survive restarts and upgrades), writes',
      "the settings, the plugin's kubeconfig (in a cluster), and meshlane's entry in",
      'the primary CNI config. Without --once it then watches the CNI config dir and',
      'serves /healthz, /readyz and /metrics until SIGTERM, which leaves everything in',
      'place (an upgrade must not leave pods unintercepted).',
    ].join('\n'),
    INSTALL_FLAGS,
  ),
  async run(args, ctx) {
    const { runInstall } = await import('../../install/commands.js');
    try {
      return await runInstall(args, ctx);
    } catch (err) {
      if (err instanceof UsageError) throw err;
      ctx.stderr.write(`meshlane install: ${(err as Error).message}\n`);
      return 1;
    }
  },
};
