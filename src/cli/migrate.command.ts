import { createLogger } from '../logger.ts';
import { openDatabase } from '../storage/database.ts';
import { migrate } from '../storage/migrator.ts';
import { CONFIG_FLAGS, CONFIG_FLAGS_HELP, configFromFlags, parseFlags } from './config-flags.ts';

export const MIGRATE_HELP = `Usage: powerplane migrate [flags]

Applies pending migrations to the configured database and exits. Safe to run while other
replicas start: migrations are applied under an advisory lock, each once.

Flags:
${CONFIG_FLAGS_HELP}`;

/** `powerplane migrate`: applies pending migrations and prints what it did. */
export async function migrateCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, CONFIG_FLAGS);
  if (values.help) {
    console.log(MIGRATE_HELP);
    return 0;
  }
  const config = configFromFlags(values);
  const log = createLogger(config.logLevel);
  const database = await openDatabase(config.database, { log, poolSize: 1 });
  try {
    const result = await migrate(database, log);
    console.log(result.applied.length ? `applied: ${result.applied.join(', ')}` : `up to date at version ${result.current}`);
  } finally {
    await database.close();
  }
  return 0;
}
