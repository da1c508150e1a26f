import type { CliCommand } from './context.js';

export function helpText(commands: readonly CliCommand[]): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  const lines = commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return [
    'meshlane: Istio sidecar interception with eBPF instead of iptables.',
    '',
    'Usage: meshlane <command> [flags]',
    '',
    'Commands:',
    ...lines,
    '',
    "Run 'meshlane <command> --help' for a command's flags.",
    '',
    'CNI plugin mode: when CNI_COMMAND is set (by the container runtime), meshlane',
    'reads the network configuration on stdin and acts as a chained CNI plugin.',
    '',
  ].join('\n');
}
