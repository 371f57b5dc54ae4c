import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/setup/global.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Integration tests start servers and databases: keep the 2-core box from thrashing.
    maxWorkers: 2,
    fileParallelism: true,
    reporters: ['default'],
  },
});
