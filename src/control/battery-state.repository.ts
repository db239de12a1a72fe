import { sql, type Kysely } from 'kysely';
import type { Device } from '../registry/registered-device.ts';
import { toDevice } from '../registry/registry.repository.ts';
import type { DeviceRow } from '../registry/registry.table.ts';
import { commandSourceFromCode, type Override } from '../dispatch/command-source.ts';
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

interface BatteryStateRow extends DeviceRow {
  reading_time: Date | null;
  soe: number | null;
  target_power: number | null;
  available_inverter_blocks: number | null;
  command_source: number | null;
  override_power_kw: number | null;
  override_expire_time: Date | null;
  override_reason: string | null;
  override_principal: string | null;
  override_released_at: Date | null;
  override_released_by: string | null;
  stored_source: number | null;
  stored_instruction_id: string | null;
  stored_cause: string | null;
  instruction_end_time: Date | null;
  instruction_cancelled_at: Date | null;
  instruction_cancelled_by: string | null;
  instruction_cancel_reason: string | null;
}

/**
 * Every active battery of `site` (ordered by id) with its latest reading, its override, the
 * intended source stored last period and how that source's instruction stands: one query,
 * one consistent snapshot, whatever the site's size. The control loop reads this each
 * period; four separate queries cost it four statements' worth of database and event-loop
 * time, which is most of a lone battery's submit → verified latency.
 */
export async function findBatteryStates(db: Kysely<object>, site: string): Promise<BatteryState[]> {
  const { rows } = await sql<BatteryStateRow>`
    select d.*,
      r.time as reading_time, r.soe, r.target_power, r.available_inverter_blocks, r.command_source,
      o.power_kw as override_power_kw, o.expire_time as override_expire_time, o.reason as override_reason,
      o.principal as override_principal, o.released_at as override_released_at, o.released_by as override_released_by,
      s.source as stored_source, s.instruction_id as stored_instruction_id, s.cause as stored_cause,
      i.end_time as instruction_end_time, i.cancelled_at as instruction_cancelled_at,
      i.cancelled_by as instruction_cancelled_by, i.cancel_reason as instruction_cancel_reason
    from flux.mg_device_registry d
    left join lateral (
      select time, soe, target_power, available_inverter_blocks, command_source
      from flux.mg_bess_readings b where b.device_id = d.id order by b.time desc limit 1
    ) r on true
    left join powerplane.control_overrides o on o.device_id = d.id
    left join powerplane.command_source_state s on s.device_id = d.id
    left join powerplane.dispatch_instructions i on i.id = s.instruction_id
    where d.site = ${site} and d.type = 'bess' and coalesce(d.active, true)
    order by d.id`.execute(db);
  return rows.map(toBatteryState);
}

function toBatteryState(row: BatteryStateRow): BatteryState {
  const device = toDevice(row);
  const source = commandSourceFromCode(row.stored_source);
  return {
    device,
    ...(row.reading_time
      ? {
          reading: {
            device_id: device.id,
            time: row.reading_time,
            soe: row.soe,
            target_power: row.target_power,
            available_inverter_blocks: row.available_inverter_blocks,
            command_source: row.command_source,
          },
        }
      : {}),
    ...(row.override_expire_time
      ? {
          override: {
            powerKw: row.override_power_kw!,
            expireTime: row.override_expire_time,
            reason: row.override_reason!,
            principal: row.override_principal!,
            ...(row.override_released_at ? { releasedAt: row.override_released_at } : {}),
            ...(row.override_released_by ? { releasedBy: row.override_released_by } : {}),
          },
        }
      : {}),
    ...(row.stored_source !== null
      ? {
          stored: {
            ...(source ? { source } : {}),
            ...(row.stored_instruction_id ? { instructionId: row.stored_instruction_id } : {}),
            ...(row.stored_cause ? { cause: row.stored_cause } : {}),
          },
        }
      : {}),
    ...(row.stored_instruction_id && row.instruction_end_time
      ? {
          storedInstruction: {
            id: row.stored_instruction_id,
            endTime: row.instruction_end_time,
            ...(row.instruction_cancelled_at ? { cancelledAt: row.instruction_cancelled_at } : {}),
            ...(row.instruction_cancelled_by ? { cancelledBy: row.instruction_cancelled_by } : {}),
            ...(row.instruction_cancel_reason ? { cancelReason: row.instruction_cancel_reason } : {}),
          },
        }
      : {}),
  };
}
