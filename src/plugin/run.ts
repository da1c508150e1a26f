// Plugin mode: the container runtime runs us with CNI_* in the environment and
// the network configuration on stdin.
import { runCni, type SkelOptions } from '../cni/skel.js';
import { CniError, CniErrorCode } from '../cni/errors.js';
import { createLogger, LogFileRefused } from '../log/logger.js';
import { handlers } from './handlers.js';
import { parseLogConfig } from './log-config.js';
import { stdinFromFd, stdoutToFd } from '../sys/fd-io.js';

/** The logger of one call, from the config's log_level and log_file (stderr off only in tests). */
export function pluginLogger(opts: { stderr?: boolean } = {}): SkelOptions['createLogger'] {
  return (config, fields) => {
    const { level, file } = parseLogConfig(config);
    try {
      return createLogger({ level, file, fields: { ...fields }, stderr: opts.stderr !== false });
    } catch (err) {
      if (!(err instanceof LogFileRefused)) throw err;
      throw new CniError(CniErrorCode.InvalidNetworkConfig, `invalid log_file ${JSON.stringify(file)} in the meshlane plugin config: ${err.message}`, 'use the path of a regular file (it is created when missing), or "" to log to stderr only');
    }
  };
}

export async function runPlugin(): Promise<number> {
  return runCni({ env: process.env, stdin: stdinFromFd(), stdout: stdoutToFd() }, handlers, { createLogger: pluginLogger() });
}
