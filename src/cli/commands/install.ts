import { INSTALL_FLAGS } from '../../install/options.js';
import { nodeCommand } from './node-command.js';

export const installCommand = nodeCommand({
  name: 'install',
  summary: 'place the plugin, attach the eBPF datapath and chain the CNI config on this node',
  usage: [
    'Usage: meshlane install [flags]',
    '',
    'Puts meshlane on this node and keeps it right: copies this executable into the',
    'CNI bin dir, mounts bpffs when needed, loads and attaches the eBPF datapath',
    '(reusing pinned maps, so registrations survive restarts and upgrades), writes',
    "the settings, the plugin's kubeconfig (in a cluster), and meshlane's entry in",
    'the primary CNI config. Without --once it then watches the CNI config dir and',
    'serves /healthz, /readyz and /metrics until SIGTERM, which leaves everything in',
    'place (an upgrade must not leave pods unintercepted).',
  ],
  flags: INSTALL_FLAGS,
  load: async () => (await import('../../install/commands.js')).runInstall,
});
