import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/setup.ts'],
    testTimeout: 60_000,
    // Two files at a time on the 2-core machine: much of a file's time is process start-up,
    // module loading and I/O, which the other file's twin work fills (346 s -> 264 s, queue included).
    maxWorkers: 2,
  },
});
