import type { Session } from './database.ts';

/** A privilege the application role holds on a table. */
export type TablePrivilege = 'select' | 'insert' | 'update' | 'delete';

/** The schemas the application uses; every relation in them is listed in {@link APP_TABLE_PRIVILEGES}. */
export const APP_SCHEMAS = ['flux', 'powerplane'] as const;

/**
 * What `powerplane serve` (ingest, queries, dispatch, control loop, tokens, audit) does to
 * each relation of {@link APP_SCHEMAS}, and so the only privileges its role needs. Nothing
 * is ever deleted or truncated but the rows of live replicas and of the agent streams they
 * hold, which end with their replica; readings past their retention are deleted only through
 * `powerplane.delete_expired_readings` (oldest first, in bounded statements), which runs as
 * its owner, so the role holds no DELETE on a readings table. The audit tables (`audit_log`, `setpoint_events`) are
 * SELECT and INSERT only; the migration table is read at start to see that nothing is
 * pending. An empty list is a relation the application never touches (the TimescaleDB
 * continuous aggregate, present only with TimescaleDB). Identity columns need no grant on
 * their sequences, so none is given: the role cannot draw audit ids with `nextval`.
 */
export const APP_TABLE_PRIVILEGES: Readonly<Record<string, readonly TablePrivilege[]>> = {
  'flux.mg_meter_readings': ['select', 'insert'],
  'flux.mg_bess_readings': ['select', 'insert'],
  'flux.mg_device_registry': ['select', 'insert', 'update'],
  'flux.market_data': ['select', 'insert'],
  'flux.market_data_types': ['select'],
  'flux.mg_meter_readings_5m_intermediate': [],
  'powerplane.schema_migrations': ['select'],
  'powerplane.idempotency_keys': ['select', 'insert'],
  'powerplane.datum_streams': ['select', 'insert', 'update'],
  'powerplane.datum_readings': ['select', 'insert'],
  'powerplane.dispatch_instructions': ['select', 'insert', 'update'],
  'powerplane.control_overrides': ['select', 'insert', 'update'],
  'powerplane.command_source_state': ['select', 'insert', 'update'],
  'powerplane.command_source_history': ['select', 'insert'],
  'powerplane.setpoint_events': ['select', 'insert'],
  'powerplane.site_config': ['select', 'insert', 'update'],
  'powerplane.api_tokens': ['select', 'insert', 'update'],
  'powerplane.audit_log': ['select', 'insert'],
  'powerplane.cluster_settings': ['select'],
  'powerplane.replicas': ['select', 'insert', 'update', 'delete'],
  'powerplane.shard_leases': ['select', 'update'],
  'powerplane.agent_streams': ['select', 'insert', 'update', 'delete'],
};

/** The role name `powerplane migrate` prints grants for unless `--app-role` names another. */
export const DEFAULT_APP_ROLE = 'powerplane_app';

/** A role name printed into SQL unquoted: lower case, as PostgreSQL folds unquoted names, at most 63 bytes. */
export const ROLE_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** Whether the session's `current_user` is a PostgreSQL superuser (`rolsuper`). */
export async function isSuperuser(session: Session): Promise<boolean> {
  const [row] = await session.query<{ rolsuper: boolean }>('select rolsuper from pg_roles where rolname = current_user');
  return row?.rolsuper === true;
}

/** What {@link appRoleGrants} found and wrote. */
export interface AppRoleGrants {
  /** The statements, one per line with comments, to run as the superuser or the tables' owner. */
  readonly sql: string;
  /** Relations of {@link APP_SCHEMAS} this version does not know, which get no grant. */
  readonly unknown: readonly string[];
}

/**
 * The statements, in one transaction, that give `role` exactly what the application needs
 * on the current database, read from its catalog (so relations present only with
 * TimescaleDB are covered when they exist): first every table, sequence and function privilege and schema CREATE
 * it may hold is revoked, so running them again after a migration leaves the same set;
 * then CONNECT and TEMPORARY on the database (ingest stages rows in temporary tables),
 * USAGE on the schemas, the table privileges of {@link APP_TABLE_PRIVILEGES}, EXECUTE on
 * the schemas' functions (not trigger functions) and USAGE on any sequence that is not an
 * identity column's. The role must exist; it should not own anything in these schemas nor
 * be a superuser, or it could disable the audit triggers.
 */
export async function appRoleGrants(session: Session, role: string): Promise<AppRoleGrants> {
  if (!ROLE_NAME.test(role)) throw new RangeError(`role must be a lower-case SQL name (got ${JSON.stringify(role)})`);
  const schemas = [...APP_SCHEMAS];
  const [{ database }] = (await session.query<{ database: string }>('select quote_ident(current_database()) as database')) as [
    { database: string },
  ];
  const relations = await session.query<{ name: string }>(
    `select n.nspname || '.' || c.relname as name
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = any($1::text[]) and c.relkind in ('r', 'p', 'v', 'm', 'f')
      order by 1`,
    [schemas],
  );
  const functions = await session.query<{ signature: string }>(
    `select p.oid::regprocedure::text as signature
       from pg_proc p join pg_namespace n on n.oid = p.pronamespace
      where n.nspname = any($1::text[]) and p.prokind = 'f' and p.prorettype <> 'trigger'::regtype
      order by 1`,
    [schemas],
  );
  const sequences = await session.query<{ name: string }>(
    `select n.nspname || '.' || c.relname as name
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = any($1::text[]) and c.relkind = 'S'
        and not exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'i')
      order by 1`,
    [schemas],
  );

  const byPrivileges = new Map<string, string[]>();
  const unknown: string[] = [];
  for (const { name } of relations) {
    const privileges = APP_TABLE_PRIVILEGES[name];
    if (privileges === undefined) {
      unknown.push(name);
      continue;
    }
    if (privileges.length === 0) continue;
    const key = privileges.join(', ');
    byPrivileges.set(key, [...(byPrivileges.get(key) ?? []), name]);
  }

  const inSchemas = schemas.join(', ');
  const lines = [
    // One transaction: a role already serving never sees its privileges half revoked.
    'begin;',
    `revoke all privileges on all tables in schema ${inSchemas} from ${role};`,
    `revoke all privileges on all sequences in schema ${inSchemas} from ${role};`,
    `revoke all privileges on all functions in schema ${inSchemas} from ${role};`,
    `revoke create on schema ${inSchemas} from ${role};`,
    `grant connect, temporary on database ${database} to ${role};`,
    `grant usage on schema ${inSchemas} to ${role};`,
    ...[...byPrivileges].map(([privileges, names]) => `grant ${privileges} on ${names.join(', ')} to ${role};`),
    ...functions.map((f) => `grant execute on function ${f.signature} to ${role};`),
    ...(sequences.length ? [`grant usage on sequence ${sequences.map((s) => s.name).join(', ')} to ${role};`] : []),
    'commit;',
    ...unknown.map((name) => `-- ${name} is not used by this version of Powerplane: no grant`),
  ];
  return { sql: lines.join('\n'), unknown };
}
