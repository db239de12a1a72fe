import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Two cores: more workers than that only add contention with PostgreSQL.
    maxWorkers: 2,
    // CI's log lists every test by name, so it shows the PostgreSQL tests ran.
    reporters: process.env.CI ? ['verbose'] : ['default'],
  },
});
