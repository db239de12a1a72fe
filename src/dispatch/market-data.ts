import { sql, type Kysely } from 'kysely';
import type { ChangeNotices } from '../cluster/change-notices.ts';
import { InvalidArgumentError } from '../errors.ts';
import { checkJsonBounds, METADATA_BOUNDS } from '../json-bounds.ts';
import { decodePageToken, encodePageToken, pageSize, takePage, type PageBudget } from '../page-token.ts';
import type { JsonObject } from '../registry/registered-device.ts';
import { stableStringify } from '../storage/idempotency.ts';
import type { MarketTables } from './dispatch.table.ts';

/** One market signal as the domain sees it. */
export interface MarketPoint {
  readonly time: Date;
  /** A name from `flux.market_data_types`. */
  readonly type: string;
  readonly value: number;
  readonly metadata?: JsonObject;
}

/** What {@link MarketData.publish} did with each point. */
export interface PublishResult {
  readonly stored: number;
  readonly unchanged: number;
  readonly revised: number;
}

/** Market data: `flux.market_data` with revisions, latest revision wins. */
export interface MarketData {
  publish(points: readonly MarketPoint[]): Promise<PublishResult>;
  /** One page in (time, type) order; with `budget`, a page also ends before the point that would pass its bytes. */
  list(
    filter: { types: readonly string[]; start: Date; end: Date },
    requestedPageSize: number,
    pageToken: string,
    budget?: PageBudget<MarketPoint>,
  ): Promise<{ points: MarketPoint[]; nextPageToken: string }>;
  /**
   * The latest value of each type at or before `at` and younger than `maxAgeMs` (the signal
   * in force then); a type without such a point (unknown, none, or only older ones) is absent.
   */
  latestAt(types: readonly string[], at: Date, maxAgeMs: number): Promise<Map<string, MarketPoint>>;
}

const MAX_POINTS = 10_000;
const float4 = (value: number) => Math.fround(value);
const DAY_MS = 86_400_000;

/** How far from now a published point's time may be, ms. */
export interface MarketDataWindow {
  /** Ahead of now; default 31 days. */
  readonly aheadMs: number;
  /** Behind now; default 731 days. */
  readonly behindMs: number;
}

/** The window of {@link createMarketData} unless configured otherwise. */
export const DEFAULT_MARKET_DATA_WINDOW: MarketDataWindow = Object.freeze({ aheadMs: 31 * DAY_MS, behindMs: 731 * DAY_MS });

/** Dependencies of {@link createMarketData}. */
export interface MarketDataDeps {
  readonly db: Kysely<object>;
  readonly window?: MarketDataWindow;
  readonly now?: () => Date;
  /** Tells every replica that points were stored, in the transaction storing them; without it, no one is told. */
  readonly notices?: ChangeNotices;
}

/**
 * Creates the market-data domain. Type names are resolved through `flux.market_data_types`
 * (read once per call, so types added by other Flux tools are seen). A point identical to
 * the latest stored revision of its (time, type) is a no-op; a changed value or metadata is
 * inserted as a new revision, and every read takes the latest. A point's time must lie in
 * `window` around now (default {@link DEFAULT_MARKET_DATA_WINDOW}). A publish that stored
 * any point tells the replicas (`{k:'market'}`); one that changed nothing does not.
 */
export function createMarketData(deps: MarketDataDeps): MarketData {
  const db = deps.db.withTables<MarketTables>();
  const window = deps.window ?? DEFAULT_MARKET_DATA_WINDOW;
  const now = deps.now ?? (() => new Date());

  async function typeIds(): Promise<Map<string, number>> {
    const rows = await db.selectFrom('flux.market_data_types').select(['id', 'name']).execute();
    return new Map(rows.map((r) => [r.name, r.id]));
  }

  function latestRevisions(trx: Kysely<MarketTables>, typeIdList: number[], start: Date, end: Date) {
    return trx
      .selectFrom('flux.market_data')
      .select(['time', 'type', 'value', 'metadata'])
      .distinctOn(['type', 'time'])
      .where('type', 'in', typeIdList)
      .where('time', '>=', start)
      .where('time', '<=', end)
      .orderBy('type')
      .orderBy('time')
      .orderBy('created_at', 'desc')
      .execute();
  }

  return {
    async publish(points) {
      if (points.length === 0 || points.length > MAX_POINTS) {
        throw new InvalidArgumentError('points', points.length, `must hold 1 to ${MAX_POINTS} points`);
      }
      const ids = await typeIds();
      const byKey = new Map<string, { time: Date; type: number; value: number; metadata: JsonObject | null }>();
      const at = now().getTime();
      points.forEach((p, i) => {
        const type = ids.get(p.type);
        if (type === undefined)
          throw new InvalidArgumentError(`points[${i}].type`, p.type, `must be one of ${[...ids.keys()].join(' | ')}`);
        if (!Number.isFinite(p.value)) throw new InvalidArgumentError(`points[${i}].value`, p.value, 'must be a finite number');
        const time = p.time.getTime();
        if (Number.isNaN(time)) throw new InvalidArgumentError(`points[${i}].time`, undefined, 'is required');
        if (time > at + window.aheadMs)
          throw new InvalidArgumentError(`points[${i}].time`, p.time.toISOString(), `must be at most ${days(window.aheadMs)} ahead of now`);
        if (time < at - window.behindMs)
          throw new InvalidArgumentError(`points[${i}].time`, p.time.toISOString(), `must be at most ${days(window.behindMs)} before now`);
        if (p.metadata) checkJsonBounds(`points[${i}].metadata`, p.metadata, METADATA_BOUNDS);
        byKey.set(`${type}|${p.time.getTime()}`, { time: p.time, type, value: float4(p.value), metadata: p.metadata ?? null });
      });
      const wanted = [...byKey.values()];
      const times = wanted.map((p) => p.time.getTime());
      return db.transaction().execute(async (trx) => {
        const latest = await latestRevisions(
          trx,
          [...new Set(wanted.map((p) => p.type))],
          new Date(Math.min(...times)),
          new Date(Math.max(...times)),
        );
        const stored = new Map(latest.map((r) => [`${r.type}|${r.time.getTime()}`, r]));
        let unchanged = 0;
        let revised = 0;
        const inserts: typeof wanted = [];
        for (const [key, point] of byKey) {
          const previous = stored.get(key);
          if (
            previous &&
            float4(previous.value) === point.value &&
            stableStringify(previous.metadata ?? null) === stableStringify(point.metadata)
          ) {
            unchanged++;
            continue;
          }
          if (previous) revised++;
          inserts.push(point);
        }
        if (inserts.length > 0) {
          await trx
            .insertInto('flux.market_data')
            .values(
              inserts.map((p) => ({
                time: p.time,
                type: p.type,
                value: p.value,
                metadata: p.metadata ? JSON.stringify(p.metadata) : null,
                // clock_timestamp, not now(): revisions in one transaction still order.
                created_at: sql<Date>`clock_timestamp()`,
              })),
            )
            .execute();
          if (deps.notices) await sql`select ${deps.notices.market()}`.execute(trx);
        }
        return { stored: inserts.length - revised, unchanged, revised };
      });
    },

    async list(filter, requestedPageSize, pageToken, budget) {
      if (filter.end <= filter.start) throw new InvalidArgumentError('end_time', filter.end.toISOString(), 'must be after start_time');
      const limit = pageSize(requestedPageSize, 1_000, 10_000);
      const after = decodePageToken<[number, number]>(pageToken, { ...filter, start: filter.start.getTime(), end: filter.end.getTime() }, [
        'millis',
        'int32',
      ]);
      const ids = await typeIds();
      const names = new Map([...ids].map(([name, id]) => [id, name]));
      for (const [i, type] of filter.types.entries()) {
        if (!ids.has(type)) throw new InvalidArgumentError(`types[${i}]`, type, `must be one of ${[...ids.keys()].join(' | ')}`);
      }
      const typeIdList = filter.types.length ? filter.types.map((t) => ids.get(t)!) : [...ids.values()];
      let query = db
        .selectFrom((eb) =>
          eb
            .selectFrom('flux.market_data')
            .select(['time', 'type', 'value', 'metadata'])
            .distinctOn(['time', 'type'])
            .where('type', 'in', typeIdList)
            .where('time', '>=', filter.start)
            .where('time', '<', filter.end)
            .orderBy('time')
            .orderBy('type')
            .orderBy('created_at', 'desc')
            .as('latest'),
        )
        .selectAll();
      if (after) query = query.where((eb) => eb(eb.refTuple('time', 'type'), '>', eb.tuple(new Date(after[0]), after[1])));
      const rows = await query
        .orderBy('time')
        .orderBy('type')
        .limit(limit + 1)
        .execute();
      const points = rows.map((r) => ({
        typeId: r.type,
        time: r.time,
        type: names.get(r.type) ?? String(r.type),
        value: r.value,
        ...(r.metadata ? { metadata: r.metadata } : {}),
      }));
      const { page, more } = takePage(points, limit, budget);
      const last = page.at(-1);
      const nextPageToken =
        more && last
          ? encodePageToken([last.time.getTime(), last.typeId], { ...filter, start: filter.start.getTime(), end: filter.end.getTime() })
          : '';
      return { points: page.map(({ typeId: _, ...point }) => point), nextPageToken };
    },

    async latestAt(types, at, maxAgeMs) {
      const result = new Map<string, MarketPoint>();
      if (types.length === 0) return result;
      // One query for every type: the latest revision of the latest point of each, within the age.
      const rows = await db
        .selectFrom('flux.market_data as m')
        .innerJoin('flux.market_data_types as t', 't.id', 'm.type')
        .select(['t.name', 'm.time', 'm.value'])
        .distinctOn('m.type')
        .where('t.name', 'in', [...types])
        .where('m.time', '<=', at)
        .where('m.time', '>', new Date(at.getTime() - maxAgeMs))
        .orderBy('m.type')
        .orderBy('m.time', 'desc')
        .orderBy('m.created_at', 'desc')
        .execute();
      for (const row of rows) result.set(row.name, { time: row.time, type: row.name, value: row.value });
      return result;
    },
  };
}

function days(ms: number): string {
  const n = ms / DAY_MS;
  return n === 1 ? '1 day' : `${n} days`;
}
