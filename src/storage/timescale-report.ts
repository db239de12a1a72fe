import type { TimescaleSetup } from './timescale-setup.ts';

/**
 * What `powerplane migrate` prints about TimescaleDB: nothing where it is not installed
 * (PGlite, plain PostgreSQL) or where every step found its work done; otherwise a line on
 * the status, then one per step that changed something, was skipped or failed (steps that
 * found their work done are counted, not listed).
 */
export function describeTimescaleSetup(setup: TimescaleSetup): string[] {
  switch (setup.status) {
    case 'absent':
      return [];
    case 'not-preloaded':
      return [
        'timescaledb: installed but not preloaded; readings stay plain PostgreSQL tables. Add timescaledb to shared_preload_libraries ' +
          'in postgresql.conf, restart PostgreSQL and run powerplane migrate again to convert them',
      ];
    case 'preload-unknown':
      return [
        'timescaledb: installed, but this role may not read shared_preload_libraries; not turned on. Create the extension as a ' +
          'superuser once it is preloaded, or grant this role pg_read_all_settings, and run powerplane migrate again',
      ];
    case 'created-not-preloaded':
      return [
        'timescaledb: the extension exists in this database but is not preloaded; nothing was changed. Add timescaledb to ' +
          'shared_preload_libraries in postgresql.conf and restart PostgreSQL',
      ];
    case 'usable': {
      if (setup.steps.every((s) => s.outcome === 'present')) return [];
      const count = (outcome: string) => setup.steps.filter((s) => s.outcome === outcome).length;
      const parts = [`${count('applied')} applied`, `${count('present')} already in place`];
      if (count('skipped')) parts.push(`${count('skipped')} skipped`);
      if (count('failed')) parts.push(`${count('failed')} failed (see the log)`);
      const lines = setup.steps
        .filter((s) => s.outcome !== 'present')
        .map((s) => `timescaledb: ${s.step}: ${s.outcome}${s.detail === undefined ? '' : ` (${s.detail})`}`);
      return [`timescaledb: in use; ${parts.join(', ')}`, ...lines];
    }
    default: {
      const never: never = setup.status;
      throw new Error(`unknown TimescaleDB status ${String(never)}`);
    }
  }
}
