import { createLogger, terminalLogOutput } from '../logger.ts';
import { appRoleGrants, DEFAULT_APP_ROLE, isSuperuser, ROLE_NAME } from '../storage/app-role.ts';
import { openDatabase, type Database } from '../storage/database.ts';
import { migrate, MIGRATIONS_DIR } from '../storage/migrator.ts';
import { describeTimescaleSetup } from '../storage/timescale-report.ts';
import { CONFIG_FLAGS, CONFIG_FLAGS_HELP, configFromFlags, parseFlags } from './config-flags.ts';
import { UsageError } from './usage.ts';

export const MIGRATE_HELP = `Usage: powerplane migrate [flags]

Applies pending migrations to the configured database and exits. Safe to run while other
replicas start: migrations are applied under an advisory lock, each once. The first run
fixes the number of control shards from POWERPLANE_SHARD_COUNT (default 256).

Where TimescaleDB is installed and preloaded, every run then makes the readings and market
tables hypertables (moving their rows), creates the 5-minute continuous aggregate and the
compression and retention policies, and prints what it changed; where it is installed but
not preloaded, it says what to add to postgresql.conf and leaves plain tables, which a later
run converts.

On PostgreSQL as a superuser (or with --app-role), it then prints the SQL that gives a
separate application role only what 'serve' needs (SELECT and INSERT on the audit tables).
Serve as that role: a superuser or the tables' owner can disable the audit triggers.

Flags:
  --app-role NAME        role to print grants for (default ${DEFAULT_APP_ROLE}); prints them
                         whoever runs the migration
${CONFIG_FLAGS_HELP}`;

const FLAGS = { ...CONFIG_FLAGS, 'app-role': { type: 'string' } } as const;

/** `powerplane migrate`: applies pending migrations, prints what it did and, when due, the application role's grants. */
export async function migrateCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, FLAGS);
  if (values.help) {
    console.log(MIGRATE_HELP);
    return 0;
  }
  const appRole = values['app-role'];
  if (appRole !== undefined && !ROLE_NAME.test(appRole)) {
    throw new UsageError(`--app-role must be a lower-case SQL name of letters, digits and _ (got ${JSON.stringify(appRole)})`);
  }
  const config = configFromFlags(values);
  const log = createLogger(config.logLevel, undefined, terminalLogOutput(config.logFormat, process.stdout));
  const database = await openDatabase(config.database, { log, poolSize: 1 });
  try {
    const result = await migrate(database, log, MIGRATIONS_DIR, { shardCount: config.dispatch.shardCount, retention: config.retention });
    console.log(result.applied.length ? `applied: ${result.applied.join(', ')}` : `up to date at version ${result.current}`);
    for (const line of describeTimescaleSetup(result.timescale)) console.log(line);
    const grants = await grantsToPrint(database, appRole);
    if (grants) console.log(grants);
  } finally {
    await database.close();
  }
  return 0;
}

/**
 * The application role's grants with an explanation, on PostgreSQL when the migration ran
 * as a superuser or `appRole` was given; undefined otherwise. PGlite has one user, the
 * superuser, so there is nothing to print for it.
 */
async function grantsToPrint(database: Database, appRole: string | undefined): Promise<string | undefined> {
  if (database.kind !== 'postgres') return undefined;
  return database.withSession(async (session) => {
    const [{ user }] = (await session.query<{ user: string }>('select current_user as user')) as [{ user: string }];
    const superuser = await isSuperuser(session);
    if (!superuser && appRole === undefined) return undefined;
    const role = appRole ?? DEFAULT_APP_ROLE;
    const { sql } = await appRoleGrants(session, role);
    return [
      superuser
        ? `-- The migrations ran as the superuser ${user}. Do not serve as a superuser or as the tables'`
        : `-- The migrations ran as ${user}. Do not serve as the tables'`,
      '-- owner: either can disable the audit triggers. Serve as a role that owns nothing here, with',
      `-- only the privileges below. Create it once (create role ${role} login password '...'), then run`,
      '-- these statements as a superuser or the owner, again after every migration:',
      sql,
    ].join('\n');
  });
}
