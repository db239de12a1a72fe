/**
 * `powerplane agent --config site.json`: runs a site's edge agent until SIGINT or SIGTERM.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { createLogger } from '../logger.ts';
import { createAgent } from './agent.ts';
import { parseSiteConfig, SiteConfigError } from './site-config.ts';

/** The help text of `powerplane agent`. */
export const AGENT_HELP = `Usage: powerplane agent --config site.json [flags]

Runs a site's edge agent: polls the site's meters and batteries over Modbus TCP, spools
every batch of readings to disk (fsync'd) before sending it, and streams them to the
control plane over gRPC, deleting them only once acknowledged. In relay mode it writes the
setpoints the control plane sends down the stream to the site's batteries. SIGINT/SIGTERM
stop it, waiting up to --drain-ms for batches in flight; the rest stays spooled.

Flags:
  --config FILE          site config JSON (site, server, devices, spool, batch); required
  --drain-ms MS          on stop, wait this long for acks of batches in flight (default 5000)
  --log-level LEVEL      fatal|error|warn|info|debug|trace|silent (default info)
  -h, --help             show this help`;

/** Runs `powerplane agent`; returns the exit code (2 for a usage or config error). */
export async function agentCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { config: { type: 'string' }, 'drain-ms': { type: 'string' }, 'log-level': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
  });
  if (values.help) {
    console.log(AGENT_HELP);
    return 0;
  }
  if (!values.config) {
    console.error(`--config is required\n\n${AGENT_HELP}`);
    return 2;
  }
  const drainMs = values['drain-ms'] === undefined ? 5000 : Number(values['drain-ms']);
  if (!Number.isInteger(drainMs) || drainMs < 0) {
    console.error(`--drain-ms must be a non-negative integer (got ${JSON.stringify(values['drain-ms'])})`);
    return 2;
  }
  const level = values['log-level'] ?? 'info';
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(level)) {
    console.error(`--log-level must be one of fatal, error, warn, info, debug, trace, silent (got ${JSON.stringify(level)})`);
    return 2;
  }
  let text: string;
  try {
    text = await readFile(values.config, 'utf8');
  } catch (err) {
    console.error(`powerplane agent: cannot read ${values.config}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    return 2;
  }
  let config;
  try {
    config = parseSiteConfig(JSON.parse(text));
  } catch (err) {
    if (err instanceof SiteConfigError || err instanceof SyntaxError) {
      console.error(`powerplane agent: ${values.config}: ${err.message}`);
      return 2;
    }
    throw err;
  }
  const log = createLogger(level);
  const agent = createAgent(config, { log });
  await agent.start();
  console.error(`Powerplane agent for site ${config.site}: ${config.devices.length} devices, streaming to ${config.server.url}, spool in ${config.spool.dir}. Ctrl-C stops it.`);
  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      log.info({ signal }, 'signal received');
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      resolve();
    };
    const onInt = (): void => stop('SIGINT');
    const onTerm = (): void => stop('SIGTERM');
    process.once('SIGINT', onInt);
    process.once('SIGTERM', onTerm);
  });
  await agent.stop({ drainMs });
  return 0;
}
