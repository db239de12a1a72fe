import type { Kysely } from 'kysely';
import type { ChangeNotices } from '../cluster/change-notices.ts';
import { writeWithNotice } from '../storage/write-with-notice.ts';
import { InvalidArgumentError, NotFoundError } from '../errors.ts';
import type { Dispatch } from './dispatch.ts';
import type { DispatchTables } from './dispatch.table.ts';

/** A site's control settings, as the planner takes them. */
export interface SiteConfig {
  readonly site: string;
  readonly importLimitKw?: number;
  readonly exportLimitKw?: number;
  readonly nivChase?: {
    readonly enabled: boolean;
    readonly nivThresholdMw: number;
    readonly shortPriceThreshold: number;
    readonly longPriceThreshold: number;
    readonly shortTargetSoePercent?: number;
    readonly longTargetSoePercent?: number;
  };
  readonly soeTarget?: { readonly enabled: boolean; readonly soePercent: number; readonly maxPowerKw: number };
  readonly avoidImport: boolean;
  readonly avoidExport: boolean;
}

/** Site settings: validation and storage in `powerplane.site_config`. */
export interface SiteConfigs {
  set(config: SiteConfig, principal: string): Promise<SiteConfig>;
  /** The settings of `site`; defaults (no limits, every component off) when never set. */
  get(site: string): Promise<SiteConfig>;
}

/** Dependencies of {@link createSiteConfigs}. */
export interface SiteConfigsDeps {
  readonly db: Kysely<object>;
  readonly dispatch: Dispatch;
  /** Called after a site's settings changed, to replan it now. */
  readonly onChange: (site: string) => void;
  /** Tells every replica of a change, in the statement that makes it; without it, no one is told. */
  readonly notices?: ChangeNotices;
}

/** Creates the site-settings store. */
export function createSiteConfigs(deps: SiteConfigsDeps): SiteConfigs {
  const db = deps.db.withTables<DispatchTables>();
  return {
    async set(config, principal) {
      validateSiteConfig(config);
      if ((await deps.dispatch.siteBatteries(config.site)).length === 0)
        throw new NotFoundError('site with active batteries', config.site, 'config.site');
      const json = JSON.stringify(config);
      const upsert = db
        .insertInto('powerplane.site_config')
        .values({ site: config.site, config: json, principal })
        .onConflict((oc) => oc.column('site').doUpdateSet({ config: json, principal, updated_at: new Date() }));
      await writeWithNotice(db, upsert.returning('site'), deps.notices?.change(config.site, 'config'));
      deps.onChange(config.site);
      return config;
    },
    async get(site) {
      if (site.trim() === '') throw new InvalidArgumentError('site', site, 'is required');
      const row = await db.selectFrom('powerplane.site_config').select('config').where('site', '=', site).executeTakeFirst();
      return row ? (row.config as unknown as SiteConfig) : { site, avoidImport: false, avoidExport: false };
    },
  };
}

/** Throws INVALID_ARGUMENT naming the first bad field (`config.…`). Pure. */
export function validateSiteConfig(config: SiteConfig): void {
  if (config.site.trim() === '') throw new InvalidArgumentError('config.site', config.site, 'is required');
  nonNegative('config.import_limit_kw', config.importLimitKw);
  nonNegative('config.export_limit_kw', config.exportLimitKw);
  const niv = config.nivChase;
  if (niv) {
    nonNegative('config.niv_chase.niv_threshold_mw', niv.nivThresholdMw);
    finite('config.niv_chase.short_price_threshold', niv.shortPriceThreshold);
    finite('config.niv_chase.long_price_threshold', niv.longPriceThreshold);
    percent('config.niv_chase.short_target_soe_percent', niv.shortTargetSoePercent);
    percent('config.niv_chase.long_target_soe_percent', niv.longTargetSoePercent);
  }
  if (config.soeTarget) {
    percent('config.soe_target.soe_percent', config.soeTarget.soePercent);
    nonNegative('config.soe_target.max_power_kw', config.soeTarget.maxPowerKw);
  }
}

function finite(field: string, value: number): void {
  if (!Number.isFinite(value)) throw new InvalidArgumentError(field, value, 'must be a finite number');
}

function nonNegative(field: string, value: number | undefined): void {
  if (value === undefined) return;
  if (!Number.isFinite(value) || value < 0) throw new InvalidArgumentError(field, value, 'must be a finite number not below 0');
}

function percent(field: string, value: number | undefined): void {
  if (value === undefined) return;
  if (!Number.isFinite(value) || value < 0 || value > 100) throw new InvalidArgumentError(field, value, 'must be between 0 and 100');
}
