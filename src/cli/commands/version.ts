import { parseArgs } from 'node:util';
import { COMMIT, VERSION } from '../../build-info.js';
import { SUPPORTED_VERSIONS } from '../../cni/versions.js';
import { UsageError, type CliCommand } from '../context.js';
import { errorMessage } from '../../describe-error.js';

export interface VersionInfo {
  version: string;
  commit: string;
  cniVersions: readonly string[];
  node: string;
}

export function versionInfo(): VersionInfo {
  return { version: VERSION, commit: COMMIT, cniVersions: SUPPORTED_VERSIONS, node: process.version };
}

export const versionCommand: CliCommand = {
  name: 'version',
  summary: 'print the version, commit and supported CNI versions',
  help: [
    'Usage: meshlane version [--json]',
    '',
    'Prints the meshlane version, the commit it was built from, the CNI spec',
    'versions the plugin speaks and the Node.js runtime inside the executable.',
    '',
    'Flags:',
    '  --json   one JSON object, stable for scripts',
    '',
  ].join('\n'),
  async run(args, ctx) {
    let json: boolean;
    try {
      json = parseArgs({ args: [...args], options: { json: { type: 'boolean' } }, allowPositionals: false }).values.json ?? false;
    } catch (err) {
      throw new UsageError(errorMessage(err));
    }
    const info = versionInfo();
    ctx.stdout.write(
      json
        ? `${JSON.stringify(info)}\n`
        : `meshlane ${info.version} (commit ${info.commit})\nCNI versions: ${info.cniVersions.join(', ')}\nNode.js: ${info.node}\n`,
    );
    return 0;
  },
};
