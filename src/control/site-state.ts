/**
 * The owner's memory of its sites: each site's registry rows, settings, overrides, the
 * instructions that may govern it and the intended sources stored for its batteries, so a
 * period's plan reads only the latest readings (one query) instead of the registry and
 * dispatch tables again. A part is read again when a change of it is announced
 * ({@link SiteStates.refresh}), and every part of every site once in a number of periods,
 * which catches a change whose announcement was missed. Instructions submitted on this
 * replica are kept as stored, with no read back ({@link SiteStates.submitted}), and a
 * submit may read the latest readings while it stores them ({@link SiteStates.readAhead}).
 */
import type { Kysely } from 'kysely';
import type { ChangeReason } from '../cluster/cluster.types.ts';
import type { Override } from '../dispatch/command-source.ts';
import { findOverrides, type SourceChange } from '../dispatch/dispatch.repository.ts';
import type { Instruction } from '../dispatch/instruction.ts';
import type { SiteConfig, SiteConfigs } from '../dispatch/site-settings.ts';
import type { Device } from '../registry/registered-device.ts';
import { findLatestReadings, type BatteryState, type LatestReadings, type SiteMeterPower } from './battery-state.repository.ts';
import type { StoredSource } from './intended-source.ts';
import { findSiteDevices, findSiteInstructions, findStoredSources, type SiteInstruction } from './site-state.repository.ts';
import { siteShard } from '../cluster/shard.ts';

/** A site's state as the owner holds it between reads. */
export interface SiteState {
  readonly site: string;
  /** The site's active batteries, ordered by id, with or without a battery specification. */
  readonly batteries: readonly Device[];
  readonly meterIds: readonly string[];
  readonly config: SiteConfig;
  /** Each battery's override row, released and expired ones included. */
  readonly overrides: ReadonlyMap<string, Override>;
  /** By id: the instructions that govern the site or its batteries now or later, and those the stored sources name. */
  readonly instructions: ReadonlyMap<string, SiteInstruction>;
  /** The intended source stored for each battery. */
  readonly stored: ReadonlyMap<string, StoredSource>;
}

/** What one period of a site reads: its state from memory with its devices' latest readings. */
export interface SiteReads {
  /** Every active battery of the site, ordered by id (with or without a battery specification). */
  readonly batteries: BatteryState[];
  readonly meters: readonly SiteMeterPower[];
  /** The instructions, not cancelled, that govern the site or one of its batteries now or later. */
  readonly instructions: readonly Instruction[];
  readonly config: SiteConfig;
  /** The next instant after `at` when an instruction of the site or of `deviceIds` starts or ends, or one of their overrides expires. */
  nextBoundary(deviceIds: readonly string[], at: Date): Date | undefined;
}

/** The sites' states of one control loop. */
export interface SiteStates {
  /**
   * The site's state, with every part marked stale read first, and its devices' latest
   * readings: the parts and the readings in one parallel round (a stale registry first).
   * One call per site at a time (the scheduler plans a site once at a time).
   */
  read(site: string, at: Date): Promise<SiteReads>;
  /** The site's settings as last read, when they are in memory and not marked stale; undefined otherwise. */
  knownConfig(site: string): SiteConfig | undefined;
  /** Marks what `reason` changed as stale: the next {@link read} of `site` reads it again. */
  refresh(site: string, reason: ChangeReason): void;
  /** Marks every part of every site as stale (announcements may have been missed). */
  refreshAll(): void;
  /** The mark a submit takes before it stores anything, to hand to {@link submitted}. */
  submitMark(): number;
  /**
   * Keeps in memory instructions just stored for `site` on this replica, as a read of them
   * would find them. When the site's instructions are stale or being read (a read begun
   * before they were stored may miss them), or were marked changed since `since` (a cancel
   * from any replica, which a read finished meanwhile may already hold), they are marked
   * stale instead, so the next read takes them from the database.
   */
  submitted(site: string, instructions: readonly Instruction[], since: number): void;
  /**
   * Starts reading the latest readings of `site`'s devices now (`at`), for the next
   * {@link read} to use instead of reading them again if it begins within
   * {@link READ_AHEAD_MS} and the site's devices are still the same. Does nothing for a
   * site not in memory or whose registry rows are stale.
   */
  readAhead(site: string, at: Date): void;
  /** Keeps in memory the intended sources the controller has just stored for `site`. */
  recorded(site: string, changes: readonly SourceChange[]): void;
  /** Forgets the sites `matches` names (their shard is no longer this replica's): a later read starts afresh. */
  forget(matches: (site: string) => boolean): void;
  /** Counts one control period: a site read whole this many periods ago is read whole again. */
  period(): void;
}

/** Dependencies of {@link createSiteStates}. */
export interface SiteStatesDeps {
  readonly db: Kysely<object>;
  readonly siteConfigs: Pick<SiteConfigs, 'get'>;
  /** A site is read whole once in this many periods, whatever was announced; at least 1. */
  readonly fullRefreshPeriods: number;
}

/**
 * Longest time a read may use readings read ahead of it. Readings read earlier can only
 * miss a newer reading, which makes a battery look older (held sooner), never fresher.
 */
export const READ_AHEAD_MS = 500;

type Part = 'devices' | 'instructions' | 'overrides' | 'sources' | 'config';
const PARTS: readonly Part[] = ['devices', 'instructions', 'overrides', 'sources', 'config'];

/**
 * The parts a change reason makes stale. A registry change may add or move batteries,
 * whose overrides, instructions and sources were never read: every part.
 */
const PARTS_OF: Readonly<Record<ChangeReason, readonly Part[]>> = {
  instruction: ['instructions'],
  override: ['overrides'],
  config: ['config'],
  registry: PARTS,
};

interface Entry {
  state: {
    batteries: readonly Device[];
    meterIds: readonly string[];
    config: SiteConfig;
    overrides: Map<string, Override>;
    instructions: Map<string, SiteInstruction>;
    stored: Map<string, StoredSource>;
  };
  /** Each stale part with the mark that made it so: a part marked again while being read stays stale. */
  stale: Map<Part, number>;
  /** The period at which the site is next read whole. */
  fullAt: number;
  /** The parts being read now. */
  loading: ReadonlySet<Part>;
  /** The mark that last made the instructions stale. */
  instructionsMarkedAt: number;
  /** Latest readings read ahead of the next read, for the devices they were read for. */
  ahead?: { batteries: readonly Device[]; meterIds: readonly string[]; at: number; readings: Promise<LatestReadings> };
}

/** Creates the sites' states; a site is read whole on its first {@link SiteStates.read}. */
export function createSiteStates(deps: SiteStatesDeps): SiteStates {
  const every = Math.max(1, Math.floor(deps.fullRefreshPeriods));
  const entries = new Map<string, Entry>();
  let periods = 0;
  let marks = 0;

  const mark = (entry: Entry, part: Part) => {
    entry.stale.set(part, ++marks);
    if (part === 'instructions') entry.instructionsMarkedAt = marks;
  };
  const markAll = (entry: Entry) => PARTS.forEach((part) => mark(entry, part));

  function entryOf(site: string): Entry {
    let entry = entries.get(site);
    if (!entry) {
      entry = {
        state: {
          batteries: [],
          meterIds: [],
          config: { site, avoidImport: false, avoidExport: false },
          overrides: new Map(),
          instructions: new Map(),
          stored: new Map(),
        },
        stale: new Map(),
        // Sites are spread over the periods, so their whole reads do not all fall in one.
        fullAt: periods + 1 + siteShard(site, every),
        loading: new Set(),
        instructionsMarkedAt: 0,
      };
      markAll(entry);
      entries.set(site, entry);
    }
    return entry;
  }

  async function load(site: string, entry: Entry, at: Date): Promise<LatestReadings> {
    const marked = new Map(entry.stale);
    const state = entry.state;
    const ahead = entry.ahead;
    entry.ahead = undefined;
    entry.loading = new Set(marked.keys());
    try {
      if (marked.has('devices')) Object.assign(state, await findSiteDevices(deps.db, site));
      const ids = state.batteries.map((b) => b.id);
      const readAhead =
        ahead &&
        ahead.batteries === state.batteries &&
        ahead.meterIds === state.meterIds &&
        at.getTime() >= ahead.at &&
        at.getTime() - ahead.at <= READ_AHEAD_MS;
      const [readings] = await Promise.all([
        readAhead
          ? ahead.readings.catch(() => findLatestReadings(deps.db, ids, state.meterIds))
          : findLatestReadings(deps.db, ids, state.meterIds),
        marked.has('instructions') &&
          findSiteInstructions(deps.db, site, ids, at).then((list) => (state.instructions = new Map(list.map((i) => [i.id, i])))),
        marked.has('overrides') &&
          findOverrides(deps.db.withTables(), ids).then(
            (list) => (state.overrides = new Map(list.map(({ deviceId, ...o }) => [deviceId, o]))),
          ),
        marked.has('sources') && findStoredSources(deps.db, ids).then((stored) => (state.stored = stored)),
        marked.has('config') && deps.siteConfigs.get(site).then((config) => (state.config = config)),
      ]);
      for (const [part, mark] of marked) if (entry.stale.get(part) === mark) entry.stale.delete(part);
      return readings;
    } finally {
      entry.loading = new Set();
    }
  }

  return {
    async read(site, at) {
      const entry = entryOf(site);
      if (periods >= entry.fullAt) {
        markAll(entry);
        entry.fullAt = periods + every;
      }
      const readings = await load(site, entry, at);
      return siteReads({ site, ...entry.state }, readings);
    },
    knownConfig(site) {
      const entry = entries.get(site);
      return entry && !entry.stale.has('config') ? entry.state.config : undefined;
    },
    refresh(site, reason) {
      const entry = entries.get(site);
      if (entry) for (const part of PARTS_OF[reason]) mark(entry, part);
    },
    refreshAll() {
      for (const entry of entries.values()) markAll(entry);
    },
    submitMark: () => marks,
    submitted(site, instructions, since) {
      const entry = entries.get(site);
      if (!entry) return;
      if (entry.stale.has('instructions') || entry.loading.has('instructions') || entry.instructionsMarkedAt > since) {
        mark(entry, 'instructions');
        return;
      }
      for (const i of instructions) entry.state.instructions.set(i.id, i);
    },
    readAhead(site, at) {
      const entry = entries.get(site);
      if (!entry || entry.stale.has('devices') || entry.loading.has('devices')) return;
      const { batteries, meterIds } = entry.state;
      const readings = findLatestReadings(
        deps.db,
        batteries.map((b) => b.id),
        meterIds,
      );
      // Awaited by the read that uses it, which reads again if it failed; unused, it is dropped.
      readings.catch(() => undefined);
      entry.ahead = { batteries, meterIds, at: at.getTime(), readings };
    },
    recorded(site, changes) {
      const stored = entries.get(site)?.state.stored;
      if (!stored) return;
      for (const c of changes) {
        stored.set(c.deviceId, { source: c.source, cause: c.cause, ...(c.instructionId ? { instructionId: c.instructionId } : {}) });
      }
    },
    forget(matches) {
      for (const site of entries.keys()) if (matches(site)) entries.delete(site);
    },
    period() {
      periods++;
    },
  };
}

/** A period's reads from a site's state and its devices' latest readings. Pure. */
export function siteReads(state: SiteState, readings: LatestReadings): SiteReads {
  const ids = new Set(state.batteries.map((b) => b.id));
  const governs = (i: Instruction) => ('site' in i.target ? i.target.site === state.site : ids.has(i.target.deviceId));
  const instructions = [...state.instructions.values()].filter((i) => !i.cancelledAt && governs(i));
  return {
    batteries: state.batteries.map((device) => batteryState(state, device, readings)),
    meters: readings.meters,
    instructions,
    config: state.config,
    nextBoundary(deviceIds, at) {
      const of = new Set(deviceIds);
      let next = Infinity;
      const consider = (t: Date) => {
        if (t > at && t.getTime() < next) next = t.getTime();
      };
      for (const i of instructions) {
        if ('site' in i.target || of.has(i.target.deviceId)) [i.startTime, i.endTime].forEach(consider);
      }
      for (const [deviceId, o] of state.overrides) if (of.has(deviceId)) consider(o.expireTime);
      return next === Infinity ? undefined : new Date(next);
    },
  };
}

function batteryState(state: SiteState, device: Device, readings: LatestReadings): BatteryState {
  const reading = readings.batteries.get(device.id);
  const override = state.overrides.get(device.id);
  const stored = state.stored.get(device.id);
  const i = stored?.instructionId ? state.instructions.get(stored.instructionId) : undefined;
  return {
    device,
    ...(reading ? { reading } : {}),
    ...(override ? { override } : {}),
    ...(stored ? { stored } : {}),
    ...(i
      ? {
          storedInstruction: {
            id: i.id,
            endTime: i.endTime,
            ...(i.cancelledAt ? { cancelledAt: i.cancelledAt } : {}),
            ...(i.cancelledBy ? { cancelledBy: i.cancelledBy } : {}),
            ...(i.cancelReason ? { cancelReason: i.cancelReason } : {}),
          },
        }
      : {}),
  };
}
