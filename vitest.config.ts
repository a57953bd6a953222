import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Starts (or locates) one PostgreSQL server for the whole run; each test
    // then creates its own throw-away database on it, so files may run in parallel.
    globalSetup: ['test/harness/globalSetup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
  },
});
