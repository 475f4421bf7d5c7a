import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  calibrate,
  calibrationInputsSchema,
  MEASUREMENTS_DIR,
  tablesIn,
} from '../src/calibrate/calibrate.js';
import { ols } from '../src/calibrate/ols.js';
import { knotMoments } from '../src/twin/lengths.js';
import { PACKAGE_ROOT, loadProfile } from '../src/profiles/store.js';

const DATA = MEASUREMENTS_DIR;
const inputs = JSON.parse(
  readFileSync(join(PACKAGE_ROOT, 'models/profiles/h100-64gb/calibration-inputs.json'), 'utf8'),
) as Record<string, unknown>;

describe('calibration', () => {
  const llama = calibrate(
    calibrationInputsSchema.parse(inputs['llama-3.1-8b-instruct']),
    tablesIn(DATA),
  );

  it('recovers an exact line by least squares', () => {
    const fit = ols([[1], [2], [3], [4]], [3, 5, 7, 9]);
    expect(fit.intercept).toBeCloseTo(1, 10);
    expect(fit.coefficients[0]).toBeCloseTo(2, 10);
    expect(fit.r2).toBeCloseTo(1, 10);
  });

  it('fits the shared tables into the shipped profile (everything but the serving fit)', () => {
    const shipped = loadProfile('h100-64gb/llama-3.1-8b-instruct');
    // The KV line of domain.md: ~307,158 - 48.0 x slots x rank.
    expect(llama.kvCache.intercept).toBeCloseTo(307_158, -2);
    expect(llama.kvCache.perSlotRank).toBeCloseTo(48.0, 0);
    for (const key of [
      'kvCache',
      'scheduler',
      'adapterLoad',
      'requestLengths',
      'measurementClientMaxInFlight',
    ] as const) {
      expect(llama[key], key).toEqual(shipped[key]);
    }
    expect(llama.stepTime.base).toEqual(shipped.stepTime.base);
  });

  it('fits request-length knots whose mean and spread match the targets', () => {
    const prompt = knotMoments(llama.requestLengths.prompt);
    const output = knotMoments(llama.requestLengths.output);
    expect(prompt.mean).toBeCloseTo(223.0, 0);
    expect(output.mean).toBeCloseTo(194.1, 0);
    expect(Math.abs(prompt.std - 244.4) / 244.4).toBeLessThan(0.02);
    expect(llama.requestLengths.prompt[1]).toEqual([0.25, 20.4]);
  });
});
