import { UNINSTALL_FLAGS, optionsHelp } from '../../install/options.js';
import { UsageError, type CliCommand } from '../context.js';


export const uninstallCommand: CliCommand = {
  name: 'uninstall',
  summary: 'remove the CNI config entry, detach the datapath and unpin its maps',
  help: optionsHelp(
    [
      'Usage: meshlane uninstall [flags]',
      '',
      "Takes meshlane off this node: the primary CNI config gets its content back",
      '(or only loses the meshlane entry when its CNI rewrote it since), every program',
      'is detached, every pin removed, the kubeconfig deleted. The plugin binary is',
      'removed only when no pod still has an attachment record (their CNI DEL needs it).',
    ].join('\n'),
    UNINSTALL_FLAGS,
  ),
  async run(args, ctx) {
    const { runUninstall } = await import('../../install/commands.js');
    try {
      return await runUninstall(args, ctx, UNINSTALL_FLAGS);
    } catch (err) {
      if (err instanceof UsageError) throw err;
      ctx.stderr.write(`meshlane uninstall: ${(err as Error).message}\n`);
      return 1;
    }
  },
};
