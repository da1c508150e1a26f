import { UNINSTALL_FLAGS } from '../../install/options.js';
import { nodeCommand } from './node-command.js';

export const uninstallCommand = nodeCommand({
  name: 'uninstall',
  summary: 'remove the CNI config entry, detach the datapath and unpin its maps',
  usage: [
    'Usage: meshlane uninstall [flags]',
    '',
    "Takes meshlane off this node: the primary CNI config gets its content back",
    '(or only loses the meshlane entry when its CNI rewrote it since), every program',
    'is detached, every pin removed, the kubeconfig deleted. The plugin binary is',
    'removed only when no pod still has an attachment record (their CNI DEL needs it).',
  ],
  flags: UNINSTALL_FLAGS,
  load: async () => (await import('../../install/commands.js')).runUninstall,
});
