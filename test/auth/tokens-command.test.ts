import { describe, expect, it } from 'vitest';
import { tokensCommand } from '../../src/cli/tokens.command.ts';
import { UsageError } from '../../src/cli/usage.ts';

describe('powerplane tokens create --expires-days', () => {
  // Refused before any call: the server, which refuses the same, is never reached (port 1).
  it.each(['0', '-3', '366', 'soon'])('refuses %s, naming the flag and the limit of 365 days', async (days) => {
    const run = tokensCommand([
      'create',
      '--name',
      'x',
      '--scope',
      'readings:read',
      `--expires-days=${days}`,
      '--server',
      'http://127.0.0.1:1',
      '--token',
      'pp_unused',
    ]);
    await expect(run).rejects.toThrow(UsageError);
    await expect(run).rejects.toThrow(`--expires-days must be a number of days above 0 and at most 365 (got "${days}")`);
  });
});
