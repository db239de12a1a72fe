import type { RawBuilder } from 'kysely';
import { notifyExpression } from './cluster-message.ts';
import type { ChangeReason } from './cluster.types.ts';

/**
 * How a domain tells every replica of a change it makes: each method is a `pg_notify(…)`
 * expression to select in the statement (a data-modifying CTE) or transaction that makes
 * the change, so the owner of the site hears of it once it commits, and never of a change
 * that rolled back. Domains without one (unit tests, one replica) make their changes the
 * same way and tell no one.
 */
export interface ChangeNotices {
  /** `site`'s instructions, overrides, settings or batteries changed: its owner plans it at once. */
  change(site: string, reason: ChangeReason): RawBuilder<unknown>;
  /** Market data was published: owners plan their sites that follow market signals. */
  market(): RawBuilder<unknown>;
}

/** Notices sent as replica `replicaId` (the messages' `from`). */
export function createChangeNotices(replicaId: string): ChangeNotices {
  return {
    change: (site, reason) => notifyExpression({ k: 'change', from: replicaId, site, reason }),
    market: () => notifyExpression({ k: 'market', from: replicaId }),
  };
}
