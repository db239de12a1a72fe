import { parseLogFormat, readEnv, type Env } from '../config.ts';
import { isLogFormatSetting, LOG_FORMAT_SETTINGS, terminalLogOutput, type LogOutput, type OutputStream } from '../logger.ts';
import { UsageError } from './usage.ts';

/**
 * How a command that takes no server config (`agent`, `demo`) logs, by the same rule as
 * `serve`: `--log-format` (`flag`) over `POWERPLANE_LOG_FORMAT`, `auto` by default, so
 * readable lines on a terminal and JSON lines otherwise. A bad flag is a usage error, a
 * bad variable an error naming it. `stdout` and `env` are parameters for tests.
 */
export function commandLogOutput(flag: string | undefined, stdout: OutputStream = process.stdout, env: Env = readEnv()): LogOutput {
  if (flag !== undefined && !isLogFormatSetting(flag)) {
    throw new UsageError(`--log-format must be one of ${LOG_FORMAT_SETTINGS.join(', ')} (got ${JSON.stringify(flag)})`);
  }
  return terminalLogOutput(parseLogFormat(flag ?? env.logFormat), stdout);
}
