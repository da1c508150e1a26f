// The plugin's logging settings from its conflist entry (`log_level`, `log_file`).
import { isAbsolute } from 'node:path';
import { CniError, CniErrorCode } from '../cni/errors.js';
import { LOG_LEVELS, isLogLevel, type LogLevel } from '../log/logger.js';

export const DEFAULT_LOG_LEVEL: LogLevel = 'info';
export const DEFAULT_LOG_FILE = '/var/run/meshlane/meshlane.log';

export interface LogConfig {
  level: LogLevel;
  /** undefined: stderr only (log_file set to ""). */
  file: string | undefined;
}

export function parseLogConfig(config: Readonly<Record<string, unknown>>): LogConfig {
  const level = config['log_level'] ?? DEFAULT_LOG_LEVEL;
  if (!isLogLevel(level)) {
    throw new CniError(
      CniErrorCode.InvalidNetworkConfig,
      `invalid log_level ${JSON.stringify(level)}: use one of ${LOG_LEVELS.join(', ')}`,
    );
  }
  const file = config['log_file'] ?? DEFAULT_LOG_FILE;
  if (typeof file !== 'string' || (file !== '' && !isAbsolute(file)) || file.length > 4096 || file.includes('\0')) {
    throw new CniError(
      CniErrorCode.InvalidNetworkConfig,
      `invalid log_file ${JSON.stringify(file)}: use an absolute path, or "" for stderr only`,
    );
  }
  return { level, file: file === '' ? undefined : file };
}
