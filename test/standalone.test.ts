import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MEASUREMENTS_DIR } from '../src/calibrate/calibrate.js';
import { PACKAGE_ROOT } from '../src/profiles/store.js';

const filesUnder = (dir: string): string[] =>
  readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });

describe('the repository stands alone', () => {
  it('keeps the measurement tables it calibrates and validates on inside itself', () => {
    expect(relative(PACKAGE_ROOT, MEASUREMENTS_DIR).startsWith('..')).toBe(false);
    for (const table of [
      'validation_runs.csv',
      'kv_cache_profile.csv',
      'published_twin_vs_real.csv',
      'README.md',
      'calibration/decode_step_latency.csv',
      'calibration/scheduler_overhead.csv',
    ])
      expect(existsSync(join(MEASUREMENTS_DIR, table)), table).toBe(true);
  });

  it('has no code, script or CI step that reads a folder beside the clone', () => {
    const sources = [
      ...filesUnder(join(PACKAGE_ROOT, 'src')),
      ...filesUnder(join(PACKAGE_ROOT, 'test')),
      join(PACKAGE_ROOT, 'package.json'),
      join(PACKAGE_ROOT, '.ci', 'run'),
      join(PACKAGE_ROOT, 'Dockerfile'),
    ];
    const outside = /\.\.\/shared|'\.\.',\s*'shared'/;
    const offenders = sources.filter(
      (f) => !f.endsWith('standalone.test.ts') && outside.test(readFileSync(f, 'utf8')),
    );
    expect(offenders).toEqual([]);
  });
});
