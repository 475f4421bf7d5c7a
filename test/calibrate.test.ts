import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  calibrate,
  calibrationInputsSchema,
  MEASUREMENTS_DIR,
  tablesIn,
} from '../src/calibrate/calibrate.js';
import { levenbergMarquardt } from '../src/stats/nls.js';
import { ols } from '../src/stats/ols.js';
import type { ServingRun } from '../src/calibrate/runs.js';
import { fitLoraOnServingRuns, type SimulateMany } from '../src/calibrate/serving-fit.js';
import type { SimulationResult, StepStats } from '../src/twin/index.js';
import { knotMoments } from '../src/twin/lengths.js';
import { PACKAGE_ROOT, loadProfile } from '../src/profiles/store.js';
import { scenario, testProfile } from './helpers.js';

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

  it('fits a design where one row alone carries a feature; only its leave-one-out error is undefined', () => {
    // y = 1 + 2a + 3b, and b is non-zero on the last row only: leaving that row out is singular.
    const xs = [
      [1, 0],
      [2, 0],
      [3, 0],
      [4, 0],
      [5, 0],
      [2, 1],
    ];
    const fit = ols(
      xs,
      xs.map(([a, b]) => 1 + 2 * a! + 3 * b!),
    );
    expect(fit.intercept).toBeCloseTo(1, 10);
    expect(fit.coefficients[0]).toBeCloseTo(2, 10);
    expect(fit.coefficients[1]).toBeCloseTo(3, 10);
    expect(fit.looRmse).toBeNaN();
    // A design singular as a whole is still refused.
    expect(() =>
      ols(
        [
          [1, 2],
          [2, 4],
          [3, 6],
          [4, 8],
        ],
        [1, 2, 3, 4],
      ),
    ).toThrow(/singular/);
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

describe('serving fit of the LoRA step cost', () => {
  // The cost the stand-in server really has, and a stand-in twin whose batch does not depend on
  // its step time, so one round must recover it exactly.
  const truth = {
    intercept: 1,
    perSlot: 0.05,
    perAdapterInBatch: 0.5,
    perBatchedToken: 0.01,
    perBatchedTokenSlot: 0.0002,
  };
  const baseMs = 20;
  const tokensPerStep = 1000;
  type Lora = typeof truth;
  const loraMs = (l: Lora, maxLoras: number, u: number, t: number) =>
    l.intercept +
    l.perSlot * maxLoras +
    l.perAdapterInBatch * u +
    (l.perBatchedToken + l.perBatchedTokenSlot * (maxLoras + 1)) * t;
  const pairs: Array<[maxLoras: number, u: number, t: number, keepsUp: boolean]> = [
    [4, 2, 120, true],
    [8, 5, 300, true],
    [16, 9, 250, true],
    [32, 12, 900, true],
    [64, 20, 600, true],
    [8, 8, 2048, false],
    [16, 16, 1500, false],
    [32, 30, 2048, false],
    [64, 60, 2048, false],
    [128, 100, 1800, false],
  ];
  const runs: ServingRun[] = pairs.map(([maxLoras, u, t, keepsUp], i) => {
    const stepMs = baseMs + loraMs(truth, maxLoras, u, t);
    return {
      row: {
        // A run that falls behind reports a client-side ITL far above its step time (the API
        // server and client lag); only its throughput tells the step time.
        mean_itl_ms: String(keepsUp ? stepMs : 3 * stepMs),
        throughput_vs_ideal: keepsUp ? '1' : '0.5',
        total_tok_s: String((tokensPerStep * 1000) / stepMs),
      },
      model: 'gpu',
      workload: `w${i}`,
      run: `r${i}`,
      ok: true,
      scenario: scenario({
        config: { maxLoras, maxCpuLoras: maxLoras, maxLoraRank: 8 },
        workload: { rates: [1], ranks: [8] },
        durationSeconds: 60,
      }),
    };
  });
  const stats = new Map(runs.map((r, i) => [r.scenario, pairs[i]!]));
  const twin: SimulateMany = (tasks) =>
    Promise.resolve(
      tasks.map(({ scenario: s, profile }) => {
        const [maxLoras, u, t] = stats.get(s)!;
        const lora = loraMs(profile.stepTime.lora, maxLoras, u, t);
        const stepMs = baseMs + lora;
        return {
          feasible: true,
          itlMs: { mean: stepMs },
          throughputTokensPerSecond: (tokensPerStep * 1000) / stepMs,
          stepStats: {
            decodeTokens: 1,
            weightedStepMs: stepMs,
            weightedLoraMs: lora,
            weightedAdapters: u,
            weightedBatchedTokens: t,
          },
        } as unknown as SimulationResult & { stepStats: StepStats };
      }),
    );

  it('recovers the cost from the ITL of runs that keep up and the throughput of runs that fall behind', async () => {
    const { profile } = await fitLoraOnServingRuns(testProfile(), runs, twin, 1);
    const fitted = profile.stepTime.lora;
    for (const key of Object.keys(truth) as Array<keyof Lora>)
      expect(fitted[key], key).toBeCloseTo(truth[key], 6);
  });
});

describe('nonlinear least squares', () => {
  it('recovers y = a e^(b x) from a poor start, and stays put on a parameter nothing feels', () => {
    const xs = Array.from({ length: 20 }, (_, i) => i / 4);
    const ys = xs.map((x) => 3 * Math.exp(-0.7 * x));
    const fit = levenbergMarquardt(
      (p) => xs.map((x, i) => p[0]! * Math.exp(p[1]! * x) - ys[i]!),
      [1, 0],
    );
    expect(fit.parameters[0]).toBeCloseTo(3, 8);
    expect(fit.parameters[1]).toBeCloseTo(-0.7, 8);
    expect(fit.sse).toBeLessThan(1e-16);
    // A third parameter the residuals ignore: a zero Jacobian column, no singular system.
    const idle = levenbergMarquardt(
      (p) => xs.map((x, i) => p[0]! * Math.exp(p[1]! * x) - ys[i]!),
      [1, 0, 5],
    );
    expect(idle.parameters[0]).toBeCloseTo(3, 8);
    expect(idle.parameters[2]).toBe(5);
  });
});
