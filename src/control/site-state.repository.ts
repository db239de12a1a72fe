/**
 * The reads that fill a site's in-memory state (`site-state.ts`): its registry rows, the
 * instructions that may govern it, and the intended sources stored for its batteries. Each
 * is one query, run only when that part of the state is loaded or refreshed, never per period.
 */
import { sql, type Kysely } from 'kysely';
import { commandSourceFromCode } from '../dispatch/command-source.ts';
import { toInstruction } from '../dispatch/dispatch.repository.ts';
import type { DispatchInstructionRow } from '../dispatch/dispatch.table.ts';
import type { Instruction } from '../dispatch/instruction.ts';
import type { Device } from '../registry/registered-device.ts';
import { toDevice } from '../registry/registry.repository.ts';
import type { DeviceRow } from '../registry/registry.table.ts';
import type { StoredSource } from './intended-source.ts';

/** An instruction with who cancelled it, which a departure from it names. */
export type SiteInstruction = Instruction & { readonly cancelledBy?: string };

/** A site's active batteries (ordered by id, with or without a battery specification) and active meters. */
export interface SiteDevices {
  readonly batteries: readonly Device[];
  readonly meterIds: readonly string[];
}

/** The active batteries and meters of `site`, from the registry, in one query. */
export async function findSiteDevices(db: Kysely<object>, site: string): Promise<SiteDevices> {
  const { rows } = await sql<DeviceRow>`
    select * from flux.mg_device_registry
    where site = ${site} and type in ('bess', 'meter') and coalesce(active, true)
    order by id`.execute(db);
  return {
    batteries: rows.filter((r) => r.type === 'bess').map(toDevice),
    meterIds: rows.filter((r) => r.type === 'meter').map((r) => r.id),
  };
}

/**
 * The instructions that govern `site` or one of `deviceIds` at `at` or later (not
 * cancelled, not ended), and the instruction each of those batteries' stored intended
 * source names, whatever its state (a cancelled or ended one explains a departure from it).
 */
export async function findSiteInstructions(
  db: Kysely<object>,
  site: string,
  deviceIds: readonly string[],
  at: Date,
): Promise<SiteInstruction[]> {
  const ids = [...deviceIds];
  const { rows } = await sql<DispatchInstructionRow>`
    select * from powerplane.dispatch_instructions
    where (cancelled_at is null and end_time > ${at} and (site = ${site} or device_id = any(${ids}::uuid[])))
      or id in (select instruction_id from powerplane.command_source_state where device_id = any(${ids}::uuid[]))`.execute(db);
  return rows.map((row) => ({ ...toInstruction(row), ...(row.cancelled_by ? { cancelledBy: row.cancelled_by } : {}) }));
}

/** The intended source stored for each of `deviceIds` that has one. */
export async function findStoredSources(db: Kysely<object>, deviceIds: readonly string[]): Promise<Map<string, StoredSource>> {
  if (deviceIds.length === 0) return new Map();
  const { rows } = await sql<{ device_id: string; source: number | null; instruction_id: string | null; cause: string | null }>`
    select device_id, source, instruction_id, cause from powerplane.command_source_state
    where device_id = any(${[...deviceIds]}::uuid[])`.execute(db);
  return new Map(
    rows.map((row) => {
      const source = commandSourceFromCode(row.source);
      return [
        row.device_id,
        {
          ...(source ? { source } : {}),
          ...(row.instruction_id ? { instructionId: row.instruction_id } : {}),
          ...(row.cause ? { cause: row.cause } : {}),
        },
      ];
    }),
  );
}

/** Every site with an active battery: the sites a control period plans (one row per site, not per device). */
export async function findSitesWithBatteries(db: Kysely<object>): Promise<Set<string>> {
  const { rows } = await sql<{ site: string }>`
    select distinct site from flux.mg_device_registry where type = 'bess' and coalesce(active, true)`.execute(db);
  return new Set(rows.map((r) => r.site));
}
