import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    globals: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // End-to-end suites start real server and agent processes; two cores cannot run many of them at once.
    fileParallelism: true,
    maxWorkers: 2,
    pool: 'forks',
  },
});
