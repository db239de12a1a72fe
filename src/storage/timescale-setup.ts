import type { Logger } from '../logger.ts';
import type { Session } from './database.ts';
import type { RetentionDays } from './retention.types.ts';
import { hypertableNames } from './timescale.ts';
import {
  decideTimescale,
  preloadLine,
  readTimescaleFacts,
  TIMESCALE_EXTENSION,
  type TimescaleProbe,
  type TimescaleStatus,
} from './timescale-detect.ts';

/** What one step of {@link setupTimescale} found or did. */
export type TimescaleStepOutcome =
  /** It made the change. */
  | 'applied'
  /** What it makes was already there, as wanted. */
  | 'present'
  /** It could not start: something it needs is missing (a table that is not a hypertable). */
  | 'skipped'
  /** Its statement raised an error, logged; nothing of it was kept. */
  | 'failed';

/** One step's result, e.g. `{ step: 'hypertable flux.market_data', outcome: 'applied' }`. */
export interface TimescaleStepResult {
  readonly step: string;
  readonly outcome: TimescaleStepOutcome;
  /** What was changed to what, why it was skipped, or the error's message. */
  readonly detail?: string;
}

/** What {@link setupTimescale} decided and did; `steps` is empty unless `status` is `usable`. */
export interface TimescaleSetup {
  readonly status: TimescaleStatus;
  readonly steps: readonly TimescaleStepResult[];
}

/** Options of {@link setupTimescale}. */
export interface TimescaleSetupOptions {
  /** Days of readings kept per kind; a kind left out has no retention policy (one there is removed). */
  readonly retention?: RetentionDays;
  /** Where detection looks; tests only. */
  readonly probe?: TimescaleProbe;
}

/** A step: `run` returns what it found or did, or throws, which makes it `failed`. */
interface Step {
  readonly name: string;
  run(session: Session): Promise<{ outcome: Exclude<TimescaleStepOutcome, 'failed'>; detail?: string }>;
}

/**
 * The tables that become hypertables, partitioned on `time` (7-day chunks, TimescaleDB's
 * default), compressed in segments of `segmentBy` once older than 7 days. The readings of
 * datum streams stay a plain table: their retention is the background job's.
 */
const HYPERTABLES = [
  { schema: 'flux', table: 'mg_meter_readings', kind: 'meter', segmentBy: 'device_id' },
  { schema: 'flux', table: 'mg_bess_readings', kind: 'bess', segmentBy: 'device_id' },
  { schema: 'flux', table: 'market_data', kind: 'market', segmentBy: 'type' },
] as const satisfies readonly { schema: string; table: string; kind: keyof RetentionDays; segmentBy: string }[];

type Hypertable = (typeof HYPERTABLES)[number];

/** The Flux 5-minute roll-up of meter readings, as a continuous aggregate. */
const ROLLUP = 'flux.mg_meter_readings_5m_intermediate';

const COMPRESS_AFTER = '7 days';

/**
 * Turns TimescaleDB on where it is usable and brings the database to what Powerplane wants
 * of it, reporting each step: the extension; the readings and market tables as hypertables
 * (rows already there are moved into chunks, `migrate_data`); the Flux 5-minute continuous
 * aggregate (without the toolkit's `counter_agg` columns, which need a separate extension)
 * and its refresh policy; compression of the three tables and its policy; one retention
 * policy per table matching `retention` (added, replaced, or removed when unset).
 *
 * Re-runnable: each step first looks whether its work is there, so a database that a
 * previous version turned into hypertables in its migrations, or that was migrated before
 * TimescaleDB was preloaded, ends in the same state. Each step is one statement (or one
 * transaction) of its own: one that fails is logged and reported and the others still run.
 * Where TimescaleDB is not usable nothing is run and the reason is logged once.
 */
export async function setupTimescale(session: Session, log: Logger, options: TimescaleSetupOptions = {}): Promise<TimescaleSetup> {
  const facts = await readTimescaleFacts(session, options.probe);
  const status = decideTimescale(facts, options.probe?.extension);
  switch (status) {
    case 'usable':
      break;
    case 'absent':
      log.debug('TimescaleDB is not installed; readings are plain PostgreSQL tables');
      return { status, steps: [] };
    case 'not-preloaded':
      log.warn(
        { configFile: facts.configFile, add: preloadLine(facts.preload) },
        'TimescaleDB is installed but not preloaded, so readings stay plain PostgreSQL tables. To use it, set shared_preload_libraries ' +
          'in postgresql.conf as `add` says, restart PostgreSQL and run powerplane migrate again: it then converts the tables',
      );
      return { status, steps: [] };
    case 'preload-unknown':
      log.warn(
        'TimescaleDB is installed but this role may not read shared_preload_libraries, so it is not turned on. To use it, create it ' +
          'as a superuser (create extension timescaledb) once it is preloaded, or grant this role pg_read_all_settings, ' +
          'and run powerplane migrate again',
      );
      return { status, steps: [] };
    case 'created-not-preloaded':
      log.error(
        { configFile: facts.configFile, add: preloadLine(facts.preload) },
        'The timescaledb extension exists in this database but PostgreSQL does not preload it; its functions would end the ' +
          'connection, so none is called. Set shared_preload_libraries as `add` says and restart PostgreSQL',
      );
      return { status, steps: [] };
    default: {
      const never: never = status;
      throw new Error(`unknown TimescaleDB status ${String(never)}`);
    }
  }
  const [extension, ...rest] = timescaleSteps(options.probe?.extension ?? TIMESCALE_EXTENSION, options.retention ?? {});
  const results = [await runStep(session, log, extension!)];
  // Without the extension every other statement fails the same way; say so once.
  if (results[0]!.outcome === 'failed') return { status, steps: results };
  for (const step of rest) results.push(await runStep(session, log, step));
  return { status, steps: results };
}

async function runStep(session: Session, log: Logger, step: Step): Promise<TimescaleStepResult> {
  try {
    const { outcome, detail } = await step.run(session);
    if (outcome === 'applied') log.info({ step: step.name, detail }, 'TimescaleDB step applied');
    return detail === undefined ? { step: step.name, outcome } : { step: step.name, outcome, detail };
  } catch (err) {
    const message = (err as Error).message;
    log.warn({ step: step.name, err: message }, 'TimescaleDB step failed; what it would change stays as it was');
    return { step: step.name, outcome: 'failed', detail: message };
  }
}

/** Every step, in the order they must run. */
function timescaleSteps(extension: string, retention: RetentionDays): Step[] {
  return [
    extensionStep(extension),
    ...HYPERTABLES.map(hypertableStep),
    rollupStep(),
    rollupPolicyStep(),
    ...HYPERTABLES.map(compressionStep),
    ...HYPERTABLES.map(compressionPolicyStep),
    ...HYPERTABLES.map((table) => retentionStep(table, retention[table.kind])),
  ];
}

const qualified = (t: Hypertable) => `${t.schema}.${t.table}`;

function extensionStep(extension: string): Step {
  return {
    name: `extension ${extension}`,
    async run(session) {
      const [row] = await session.query<{ present: boolean }>(`select exists (select 1 from pg_extension where extname = $1) as present`, [
        extension,
      ]);
      if (row?.present) return { outcome: 'present' };
      await session.exec(`create extension if not exists "${extension.replaceAll('"', '""')}"`);
      return { outcome: 'applied' };
    },
  };
}

function hypertableStep(t: Hypertable): Step {
  return {
    name: `hypertable ${qualified(t)}`,
    async run(session) {
      if ((await hypertableNames(session)).has(qualified(t))) return { outcome: 'present' };
      await session.query(`select create_hypertable($1::regclass, 'time'::name, if_not_exists => true, migrate_data => true)`, [
        qualified(t),
      ]);
      return { outcome: 'applied' };
    },
  };
}

/** Skips a step whose table is not a hypertable (its own step failed), with the reason. */
async function notHypertable(session: Session, table: string): Promise<{ outcome: 'skipped'; detail: string } | undefined> {
  if ((await hypertableNames(session)).has(table)) return undefined;
  return { outcome: 'skipped', detail: `${table} is not a hypertable` };
}

function rollupStep(): Step {
  return {
    name: `continuous aggregate ${ROLLUP}`,
    async run(session) {
      const [row] = await session.query<{ present: boolean }>(`select to_regclass($1) is not null as present`, [ROLLUP]);
      if (row?.present) return { outcome: 'present' };
      const skip = await notHypertable(session, 'flux.mg_meter_readings');
      if (skip) return skip;
      await session.exec(`
        create materialized view ${ROLLUP}
        with (timescaledb.continuous) as
        select time_bucket('5 minutes', "time") as time_b, device_id,
          count(*) as reading_count,
          avg(frequency) as frequency_avg,
          avg(voltage_line_average) as voltage_line_average_avg,
          avg(current_phase_average) as current_phase_average_avg,
          avg(power_total_active) as power_total_active_avg,
          avg(power_total_reactive) as power_total_reactive_avg,
          avg(power_factor_total) as power_factor_total_avg,
          min(energy_imported_active) as energy_imported_active_min,
          max(energy_imported_active) as energy_imported_active_max,
          min(energy_exported_active) as energy_exported_active_min,
          max(energy_exported_active) as energy_exported_active_max
        from flux.mg_meter_readings
        group by time_b, device_id
        with no data`);
      return { outcome: 'applied' };
    },
  };
}

/** The `config` of the policy job `proc` on `schema.name`, or undefined when it has none. */
async function policyConfig(session: Session, proc: string, schema: string, name: string): Promise<Record<string, unknown> | undefined> {
  const [row] = await session.query<{ config: Record<string, unknown> | null }>(
    `select config from timescaledb_information.jobs
     where proc_name = $1 and hypertable_schema = $2 and hypertable_name = $3 order by job_id limit 1`,
    [proc, schema, name],
  );
  return row ? (row.config ?? {}) : undefined;
}

function rollupPolicyStep(): Step {
  return {
    name: `refresh policy ${ROLLUP}`,
    async run(session) {
      const [schema, name] = ROLLUP.split('.') as [string, string];
      if (await policyConfig(session, 'policy_refresh_continuous_aggregate', schema, name)) return { outcome: 'present' };
      const [row] = await session.query<{ present: boolean }>(`select to_regclass($1) is not null as present`, [ROLLUP]);
      if (!row?.present) return { outcome: 'skipped', detail: `${ROLLUP} does not exist` };
      await session.query(
        `select add_continuous_aggregate_policy($1::regclass, start_offset => interval '3 days', end_offset => interval '5 minutes',
           schedule_interval => interval '5 minutes', if_not_exists => true)`,
        [ROLLUP],
      );
      return { outcome: 'applied' };
    },
  };
}

function compressionStep(t: Hypertable): Step {
  return {
    name: `compression ${qualified(t)}`,
    async run(session) {
      const skip = await notHypertable(session, qualified(t));
      if (skip) return skip;
      const [row] = await session.query<{ enabled: boolean }>(
        `select compression_enabled as enabled from timescaledb_information.hypertables
         where hypertable_schema = $1 and hypertable_name = $2`,
        [t.schema, t.table],
      );
      if (row?.enabled) return { outcome: 'present' };
      await session.exec(
        `alter table ${qualified(t)} set (timescaledb.compress,
           timescaledb.compress_segmentby = '${t.segmentBy}', timescaledb.compress_orderby = '"time" desc')`,
      );
      return { outcome: 'applied', detail: `segments by ${t.segmentBy}` };
    },
  };
}

function compressionPolicyStep(t: Hypertable): Step {
  return {
    name: `compression policy ${qualified(t)}`,
    async run(session) {
      if (await policyConfig(session, 'policy_compression', t.schema, t.table)) return { outcome: 'present' };
      const skip = await notHypertable(session, qualified(t));
      if (skip) return skip;
      await session.query(`select add_compression_policy($1::regclass, compress_after => $2::interval, if_not_exists => true)`, [
        qualified(t),
        COMPRESS_AFTER,
      ]);
      return { outcome: 'applied', detail: `after ${COMPRESS_AFTER}` };
    },
  };
}

/**
 * Makes the table's retention policy drop chunks older than `days` (TimescaleDB drops whole
 * chunks, so a reading may outlive it by up to a chunk's 7 days), or removes the policy when
 * `days` is undefined. A policy with another age is replaced in one transaction, so a
 * failure keeps the old one.
 */
function retentionStep(t: Hypertable, days: number | undefined): Step {
  return {
    name: `retention policy ${qualified(t)}`,
    async run(session) {
      const skip = await notHypertable(session, qualified(t));
      if (skip)
        return days === undefined
          ? { outcome: 'present', detail: 'none; kept forever' }
          : { ...skip, detail: `${skip.detail}; the retention job deletes its old rows` };
      const config = await policyConfig(session, 'policy_retention', t.schema, t.table);
      const current = config?.drop_after;
      if (days === undefined) {
        if (!config) return { outcome: 'present', detail: 'none; kept forever' };
        await session.query(`select remove_retention_policy($1::regclass, if_exists => true)`, [qualified(t)]);
        return { outcome: 'applied', detail: `removed (was ${String(current)}); kept forever` };
      }
      const wanted = `${days} days`;
      if (config) {
        const [same] = await session.query<{ same: boolean }>(`select $1::text::interval = $2::interval as same`, [
          String(current),
          wanted,
        ]);
        if (same?.same) return { outcome: 'present', detail: `drops after ${wanted}` };
      }
      await session.exec('begin');
      try {
        if (config) await session.query(`select remove_retention_policy($1::regclass, if_exists => true)`, [qualified(t)]);
        await session.query(`select add_retention_policy($1::regclass, drop_after => $2::interval)`, [qualified(t), wanted]);
        await session.exec('commit');
      } catch (err) {
        await session.exec('rollback');
        throw err;
      }
      return { outcome: 'applied', detail: config ? `drops after ${wanted} (was ${String(current)})` : `drops after ${wanted}` };
    },
  };
}
