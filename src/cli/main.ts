import { readFileSync } from 'node:fs';
import { ConnectError } from '@connectrpc/connect';
import { InvalidArgumentError } from '../errors.ts';
import { agentCommand, AGENT_HELP } from './agent.command.ts';
import { demoCommand, DEMO_HELP } from './demo.command.ts';
import { devicesCommand, DEVICES_HELP } from './devices.command.ts';
import { CommandError, UsageError } from './usage.ts';
import { migrateCommand, MIGRATE_HELP } from './migrate.command.ts';
import { serveCommand, SERVE_HELP } from './serve.command.ts';
import { simulateCommand, SIMULATE_USAGE } from './simulate.command.ts';
import { tokensCommand, TOKENS_HELP } from './tokens.command.ts';

const HELP = `Usage: powerplane <command> [flags]

Commands:
  serve      run the control plane (default database: embedded PGlite)
  migrate    apply database migrations and exit
  devices    list or add devices through a running control plane
  tokens     create, list or revoke API tokens through a running control plane
  simulate   serve simulated SunSpec batteries and meters over Modbus TCP
  agent      run a site's edge agent: poll Modbus, stream readings, spool while offline
  demo       run the control plane, a simulated fleet, agents and a trading feed together
  version    print the version

Run 'powerplane <command> --help' for a command's flags.`;

type Command = (argv: string[]) => Promise<number>;

const VERSION_HELP = 'Usage: powerplane version\n\nPrints the version of powerplane.';

async function versionCommand(argv: string[]): Promise<number> {
  console.log(argv.includes('--help') || argv.includes('-h') ? VERSION_HELP : `powerplane ${readVersion()}`);
  return 0;
}

const COMMANDS: Record<string, { run: Command; help: string }> = {
  serve: { run: serveCommand, help: SERVE_HELP },
  migrate: { run: migrateCommand, help: MIGRATE_HELP },
  devices: { run: devicesCommand, help: DEVICES_HELP },
  tokens: { run: tokensCommand, help: TOKENS_HELP },
  simulate: { run: simulateCommand, help: SIMULATE_USAGE },
  agent: { run: agentCommand, help: AGENT_HELP },
  demo: { run: demoCommand, help: DEMO_HELP },
  version: { run: versionCommand, help: VERSION_HELP },
};

/** Runs the command line and returns the exit code; errors print one clear line. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(HELP);
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    console.error(`unknown command ${JSON.stringify(name)}\n\n${HELP}`);
    return 2;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    if (err instanceof UsageError || err instanceof RangeError || isParseArgsError(err)) {
      console.error(`${(err as Error).message}\n\n${(err instanceof UsageError && err.help) || command.help}`);
      return 2;
    }
    if (err instanceof InvalidArgumentError || err instanceof ConnectError || err instanceof CommandError) {
      console.error(`powerplane ${name}: ${err.message}`);
      return 1;
    }
    console.error(`powerplane ${name} failed:`, err);
    return 1;
  }
}

function isParseArgsError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS');
}

function readVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}
