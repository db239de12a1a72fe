import { readFileSync } from 'node:fs';
import { ConnectError } from '@connectrpc/connect';
import { InvalidArgumentError } from '../errors.ts';
import { CommandError, UsageError } from './usage.ts';

const HELP = `Usage: powerplane <command> [flags]

Commands:
  serve      run the control plane (default database: embedded PGlite)
  migrate    apply database migrations and exit
  devices    list, add, import or export devices through a running control plane
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

/**
 * Each command's module, loaded when the command runs: a client command such as `devices
 * import` then starts without loading (and compiling) the server, the agent and the
 * simulator, which takes seconds on a busy machine.
 */
const COMMANDS: Record<string, () => Promise<{ run: Command; help: string }>> = {
  serve: async () => {
    const m = await import('./serve.command.ts');
    return { run: m.serveCommand, help: m.SERVE_HELP };
  },
  migrate: async () => {
    const m = await import('./migrate.command.ts');
    return { run: m.migrateCommand, help: m.MIGRATE_HELP };
  },
  devices: async () => {
    const m = await import('./devices.command.ts');
    return { run: m.devicesCommand, help: m.DEVICES_HELP };
  },
  tokens: async () => {
    const m = await import('./tokens.command.ts');
    return { run: m.tokensCommand, help: m.TOKENS_HELP };
  },
  simulate: async () => {
    const m = await import('./simulate.command.ts');
    return { run: m.simulateCommand, help: m.SIMULATE_USAGE };
  },
  agent: async () => {
    const m = await import('./agent.command.ts');
    return { run: m.agentCommand, help: m.AGENT_HELP };
  },
  demo: async () => {
    const m = await import('./demo.command.ts');
    return { run: m.demoCommand, help: m.DEMO_HELP };
  },
  version: async () => ({ run: versionCommand, help: VERSION_HELP }),
};

/** Runs the command line and returns the exit code; errors print one clear line. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(HELP);
    return name ? 0 : 2;
  }
  const load = COMMANDS[name];
  if (!load) {
    console.error(`unknown command ${JSON.stringify(name)}\n\n${HELP}`);
    return 2;
  }
  const command = await load();
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
