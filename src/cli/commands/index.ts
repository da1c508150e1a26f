import type { CliCommand } from '../context.js';
import { plannedCommand } from './planned.js';
import { versionCommand } from './version.js';

export const COMMANDS: readonly CliCommand[] = [
  plannedCommand('install', 'place the plugin, attach the eBPF datapath and chain the CNI config on this node'),
  plannedCommand('uninstall', 'remove the CNI config entry, detach the datapath and unpin its maps'),
  plannedCommand('status', 'show the datapath, the registered pods and the counters of this node'),
  versionCommand,
];

export function findCommand(name: string): CliCommand | undefined {
  return COMMANDS.find((c) => c.name === name);
}
