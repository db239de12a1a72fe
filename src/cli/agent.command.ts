/**
 * `powerplane agent --config site.json`: runs a site's edge agent until SIGINT or SIGTERM.
 */
import { readFile } from 'node:fs/promises';
import { agentInitCommand } from './agent-init.command.ts';
import { parseFlags } from './config-flags.ts';
import { onStopSignal } from './signals.ts';
import { UsageError } from './usage.ts';
import { createLogger, LOG_LEVELS } from '../logger.ts';
import { commandLogOutput } from './log-output.ts';
import { createAgent } from '../agent/agent.ts';
import { parseSiteConfig, SiteConfigError, type SiteConfig } from '../agent/agent-config.ts';

/** The help text of `powerplane agent`. */
export const AGENT_HELP = `Usage: powerplane agent --config site.json [flags]
       powerplane agent init --site S [--out site.json] [flags]   (see agent init --help)

Runs a site's edge agent: polls the site's meters and batteries over Modbus TCP, spools
every batch of readings to disk (fsync'd) before sending it, and streams them to the
control plane over gRPC, deleting them only once acknowledged. In relay mode it writes the
setpoints the control plane sends down the stream to the site's batteries. SIGINT/SIGTERM
stop it, waiting up to --drain-ms for batches in flight; the rest stays spooled.

Flags:
  --config FILE          site config JSON (site, server, devices, spool, batch); required
  --drain-ms MS          on stop, wait this long for acks of batches in flight (default 5000)
  --log-level LEVEL      fatal|error|warn|info|debug|trace|silent (default info)
  --log-format FORMAT    auto|json|pretty (POWERPLANE_LOG_FORMAT, default auto: pretty on a
                         terminal, JSON lines otherwise)
  -h, --help             show this help`;

/**
 * Runs `powerplane agent` (or, with `init` first, `powerplane agent init`); returns the exit code. A bad flag, an unreadable or invalid
 * config, or an unreadable TLS file throws a {@link UsageError} naming it (`main` exits 2).
 */
export async function agentCommand(argv: string[]): Promise<number> {
  if (argv[0] === 'init') return agentInitCommand(argv.slice(1));
  const { values } = parseFlags(argv, {
    config: { type: 'string' },
    'drain-ms': { type: 'string' },
    'log-level': { type: 'string' },
    'log-format': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    console.log(AGENT_HELP);
    return 0;
  }
  if (!values.config) throw new UsageError('--config is required');
  const drainMs = values['drain-ms'] === undefined ? 5000 : Number(values['drain-ms']);
  if (!Number.isInteger(drainMs) || drainMs < 0)
    throw new UsageError(`--drain-ms must be a non-negative integer (got ${JSON.stringify(values['drain-ms'])})`);
  const level = values['log-level'] ?? 'info';
  if (!LOG_LEVELS.includes(level))
    throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')} (got ${JSON.stringify(level)})`);
  // The site config says nothing of logs: the agent logs by the control plane's rule.
  const output = commandLogOutput(values['log-format']);
  const config = await readSiteConfig(values.config);
  const log = createLogger(level, undefined, output);
  const agent = createAgent(config, { log });
  try {
    await agent.start();
  } catch (err) {
    await agent.stop();
    throw err instanceof SiteConfigError ? new UsageError(`${values.config}: ${err.message}`) : err;
  }
  console.error(
    `Powerplane agent for site ${config.site}: ${config.devices.length} devices, streaming to ${config.server.url}, ` +
      `spool in ${config.spool.dir}. Ctrl-C stops it.`,
  );
  await onStopSignal(log).received;
  await agent.stop({ drainMs });
  return 0;
}

/** Reads and checks the site config file; any problem is a usage error naming the file. */
async function readSiteConfig(file: string): Promise<SiteConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  try {
    return parseSiteConfig(JSON.parse(text));
  } catch (err) {
    if (err instanceof SiteConfigError || err instanceof SyntaxError) throw new UsageError(`${file}: ${err.message}`);
    throw err;
  }
}
