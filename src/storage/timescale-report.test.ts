import { describe, expect, it } from 'vitest';
import { describeTimescaleSetup } from './timescale-report.ts';

describe('reporting the TimescaleDB setup', () => {
  it('counts steps already in place and lists every other one with its detail', () => {
    const lines = describeTimescaleSetup({
      status: 'usable',
      steps: [
        { step: 'extension timescaledb', outcome: 'present' },
        { step: 'hypertable flux.market_data', outcome: 'applied' },
        { step: 'compression flux.market_data', outcome: 'failed', detail: 'boom' },
        { step: 'compression policy flux.market_data', outcome: 'skipped', detail: 'flux.market_data is not a hypertable' },
      ],
    });
    expect(lines).toEqual([
      'timescaledb: in use; 1 applied, 1 already in place, 1 skipped, 1 failed (see the log)',
      'timescaledb: hypertable flux.market_data: applied',
      'timescaledb: compression flux.market_data: failed (boom)',
      'timescaledb: compression policy flux.market_data: skipped (flux.market_data is not a hypertable)',
    ]);
  });

  it('prints nothing where TimescaleDB is not installed or every step found its work done', () => {
    expect(describeTimescaleSetup({ status: 'absent', steps: [] })).toEqual([]);
    expect(describeTimescaleSetup({ status: 'usable', steps: [{ step: 'extension timescaledb', outcome: 'present' }] })).toEqual([]);
  });

  it.each([
    ['not-preloaded', /not preloaded.*shared_preload_libraries.*migrate again/],
    ['preload-unknown', /pg_read_all_settings/],
    ['created-not-preloaded', /nothing was changed/],
  ] as const)('says in one line what %s means for the operator', (status, text) => {
    const lines = describeTimescaleSetup({ status, steps: [] });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(text);
  });
});
