import { nodeCommand } from './node-command.js';

export const sockmapProbeCommand = nodeCommand({
  name: 'sockmap-probe',
  summary: 'probe this kernel for the known sockmap faults: which --sockmap modes the installer runs here',
  usage: [
    'Usage: meshlane sockmap-probe [--json]',
    '',
    'Runs the probe the installer runs before it enables any sk_msg redirect (its own',
    'sockhash, sk_msg program and loopback sockets, removed before it returns; root),',
    'and prints the faults found and, for --sockmap on and proxy-only, whether the',
    'installer would run that mode or refuse it and run off. Installs nothing. Exit 0.',
  ],
  flags: ['json'],
  load: async () => (await import('../../install/sockmap-command.js')).runSockmapProbe,
});
