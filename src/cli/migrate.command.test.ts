import { describe, expect, it } from 'vitest';
import { migrateCommand } from './migrate.command.ts';
import { UsageError } from './usage.ts';

describe('powerplane migrate --app-role', () => {
  it.each(['Powerplane', 'app;drop role postgres', 'app-role', '1app', '', 'a'.repeat(64)])(
    'refuses %j naming the flag, before opening any database',
    async (role) => {
      const err = await migrateCommand(['--app-role', role, '--database-url', 'postgres://nobody@127.0.0.1:1/none']).catch(
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(UsageError);
      expect((err as Error).message).toContain('--app-role');
      expect((err as Error).message).toContain(JSON.stringify(role));
    },
  );
});
