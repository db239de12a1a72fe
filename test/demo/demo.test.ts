import { describe, expect, it } from 'vitest';
import { runDemo } from '../../src/demo/demo.ts';
import { silentLog } from '../support/databases.ts';

describe('the demo', () => {
  it('runs its story to the end with readings stored and setpoints verified on batteries', async () => {
    const out: string[] = [];
    const summary = await runDemo({ quick: true, listen: '127.0.0.1:0', out: (t) => out.push(t), redraw: false, log: silentLog });
    expect(summary.sites).toBe(3);
    expect(summary.batteries).toBe(6);
    expect(summary.readings_stored).toBeGreaterThan(30);
    expect(summary.setpoints_verified).toBeGreaterThan(6);
    expect(summary.dispatches).toBeGreaterThanOrEqual(3);
    const text = out.join('');
    expect(text).toContain('[6/6]');
    expect(text).toMatch(/DISPATCH/);
    expect(text).toMatch(/MANUAL/);
    expect(text).toContain('Summary: 3 sites, 6 batteries');
  }, 120_000);
});
