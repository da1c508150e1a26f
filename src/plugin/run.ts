// Plugin mode: the container runtime runs us with CNI_* in the environment and
// the network configuration on stdin.
import { runCni } from '../cni/skel.js';
import { createLogger } from '../log/logger.js';
import { handlers } from './handlers.js';
import { parseLogConfig } from './log-config.js';

export async function runPlugin(): Promise<number> {
  return runCni({ env: process.env, stdin: process.stdin, stdout: process.stdout }, handlers, {
    createLogger(config, fields) {
      const { level, file } = parseLogConfig(config);
      return createLogger({ level, file, fields: { ...fields } });
    },
  });
}
