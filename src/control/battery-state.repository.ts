import { sql, type Kysely } from 'kysely';
import type { Device } from '../registry/registered-device.ts';
import type { Override } from '../dispatch/command-source.ts';
import type { Departure, StoredSource } from './intended-source.ts';
import type { LatestBessReading } from '../dispatch/dispatch.repository.ts';

/** What the control loop knows of one battery at the start of a period. */
export interface BatteryState {
  readonly device: Device;
  /** The latest battery reading, if any. */
  readonly reading?: LatestBessReading;
  /** The battery's override row, released and expired ones included (see `overrideInForce`). */
  readonly override?: Override;
  /** The intended source the previous period stored. */
  readonly stored?: StoredSource;
  /** How the instruction of {@link stored} stands (cancelled, ended), to explain a departure from it. */
  readonly storedInstruction?: NonNullable<Departure['instruction']>;
}

/** The latest power of one site meter: kW, positive = import. */
export interface SiteMeterPower {
  readonly device_id: string;
  readonly time: Date;
  readonly power_total_active: number | null;
}

/** The latest readings of a site's devices: per battery its latest battery reading, per meter its latest power. */
export interface LatestReadings {
  readonly batteries: ReadonlyMap<string, LatestBessReading>;
  readonly meters: readonly SiteMeterPower[];
}

/**
 * The latest reading of each of `batteryIds` and the latest power of each of `meterIds`:
 * one query, one index probe per device (LATERAL … LIMIT 1 on the (device_id, time)
 * indexes), so the cost does not grow with the readings' history. The only read of a
 * period whose site state is in memory (`site-state.ts`).
 */
export async function findLatestReadings(
  db: Kysely<object>,
  batteryIds: readonly string[],
  meterIds: readonly string[],
): Promise<LatestReadings> {
  if (batteryIds.length === 0 && meterIds.length === 0) return { batteries: new Map(), meters: [] };
  const { rows } = await sql<LatestBessReading & { meter: boolean; power_total_active: number | null }>`
    select false as meter, r.device_id, r.time, r.soe, r.target_power, r.available_inverter_blocks, r.command_source,
      null::real as power_total_active
    from unnest(${[...batteryIds]}::uuid[]) as d(id)
    cross join lateral (
      select device_id, time, soe, target_power, available_inverter_blocks, command_source
      from flux.mg_bess_readings b where b.device_id = d.id order by b.time desc limit 1
    ) r
    union all
    select true, m.device_id, m.time, null, null, null, null, m.power_total_active
    from unnest(${[...meterIds]}::uuid[]) as d(id)
    cross join lateral (
      select device_id, time, power_total_active from flux.mg_meter_readings m where m.device_id = d.id order by m.time desc limit 1
    ) m`.execute(db);
  const batteries = new Map<string, LatestBessReading>();
  const meters: SiteMeterPower[] = [];
  for (const { meter, power_total_active, ...reading } of rows) {
    if (meter) meters.push({ device_id: reading.device_id, time: reading.time, power_total_active });
    else batteries.set(reading.device_id, reading);
  }
  return { batteries, meters };
}
