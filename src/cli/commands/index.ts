import type { CliCommand } from '../context.js';
import { installCommand } from './install.js';
import { sockmapProbeCommand } from './sockmap-probe.js';
import { statusCommand } from './status.js';
import { uninstallCommand } from './uninstall.js';
import { versionCommand } from './version.js';

export const COMMANDS: readonly CliCommand[] = [installCommand, uninstallCommand, statusCommand, sockmapProbeCommand, versionCommand];

export function findCommand(name: string, commands: readonly CliCommand[] = COMMANDS): CliCommand | undefined {
  return commands.find((c) => c.name === name);
}
