// The chance a pair serves (src/model/serves.ts): a logistic fit that recovers a known model, an
// AUC computed by hand, features that are the closed-form estimate's own figures, and a `model`
// answer that steps back where that chance is thin.
import { describe, expect, it } from 'vitest';
import { datasetPath, readDataset } from '../src/model/dataset.js';
import { loadModel } from '../src/model/model.js';
import {
  fitServes,
  rocAuc,
  SERVES_FEATURES,
  SERVES_STEP_BACK_BELOW,
  SERVES_STEP_UP_FROM,
  servesFeatures,
  servesPairsOf,
  servesProbability,
  trainServes,
  type ServesModel,
} from '../src/model/serves.js';
import { loadProfile } from '../src/profiles/store.js';
import { Recommender } from '../src/recommend/index.js';
import {
  estimateGpu,
  lengthsFor,
  offeredTokensPerSecond,
  workloadCapacity,
} from '../src/search/index.js';
import { seededStream } from '../src/twin/random.js';
import { kvCacheTokens } from '../src/twin/profile.js';
import { constantModel } from './models.js';

const llama = loadProfile('h100-64gb/llama-3.1-8b-instruct');

describe('the logistic fit', () => {
  it('recovers the coefficients of the model that drew the verdicts', () => {
    // serves with chance 1 / (1 + exp(-(0.5 + 2 x0 - 1 x1))), x uniform on [-2, 2].
    const u = seededStream(7, 1);
    const xs: number[][] = [];
    const serves: boolean[] = [];
    for (let i = 0; i < 20_000; i++) {
      const x = [4 * u.next() - 2, 4 * u.next() - 2];
      xs.push(x);
      serves.push(u.next() < 1 / (1 + Math.exp(-(0.5 + 2 * x[0]! - x[1]!))));
    }
    const fit = fitServes(xs, serves, 0);
    // Back from standardised units: slope_k = b_k / scale_k, intercept = b_0 - sum b_k mean_k / scale_k.
    const slopes = fit.mean.map((_, k) => fit.coefficients[k + 1]! / fit.scale[k]!);
    const intercept = fit.coefficients[0]! - fit.mean.reduce((s, m, k) => s + slopes[k]! * m, 0);
    expect(Math.abs(slopes[0]! - 2)).toBeLessThan(0.15);
    expect(Math.abs(slopes[1]! + 1)).toBeLessThan(0.1);
    expect(Math.abs(intercept - 0.5)).toBeLessThan(0.1);
  });

  it('stays finite on verdicts a feature separates exactly', () => {
    const xs = [[0], [1], [2], [3], [4], [5]];
    const fit = fitServes(xs, [false, false, false, true, true, true]);
    expect(fit.coefficients.every(Number.isFinite)).toBe(true);
    const model = { ...fit, features: ['x'], pairs: 6, cv: trainCvOf(1) };
    expect(servesProbability(model, [0])).toBeLessThan(0.1);
    expect(servesProbability(model, [5])).toBeGreaterThan(0.9);
  });

  it('gives the same model for the same pairs, bit for bit', () => {
    const pairs = Array.from({ length: 200 }, (_, i) => ({
      workloadIndex: i >> 2,
      features: [Math.sin(i), Math.cos(3 * i)],
      serves: Math.sin(i) + 0.3 * Math.cos(7 * i) > 0,
    }));
    expect(JSON.stringify(trainServes(pairs))).toBe(JSON.stringify(trainServes(pairs)));
  });
});

describe("the shipped forest's chance of serving", () => {
  it('is what the fit gives on the shipped training set, and ranks its pairs far better than chance', () => {
    const rows = readDataset(datasetPath(llama.id));
    const fitted = trainServes(servesPairsOf(rows, llama));
    const shipped = loadModel(llama.id).servesAtPair!;
    expect(shipped).toEqual(fitted);
    expect(fitted.pairs).toBe(rows.reduce((n, r) => n + r.evaluated.length, 0));
    expect(fitted.cv.auc).toBeGreaterThan(0.95);
  });
});

describe('the area under the ROC curve', () => {
  it('is the share of (serving, starving) pairs ranked the right way round, ties counted half', () => {
    // Serving scores 0.35 and 0.8 against starving 0.1 and 0.4: 3 of 4 orderings are right.
    expect(rocAuc([0.1, 0.4, 0.35, 0.8], [false, false, true, true])).toBe(0.75);
    expect(rocAuc([0.1, 0.2, 0.3], [false, true, true])).toBe(1);
    expect(rocAuc([0.5, 0.5], [false, true])).toBe(0.5);
  });
});

describe("the estimate's figures at a pair", () => {
  it('are the closed-form steady state of that pair', () => {
    const workload = { rates: [0.3, 0.05], ranks: [16, 8] };
    const [c, p] = [96, 32];
    const x = servesFeatures(llama, workload, 16, c, p);
    expect(x).toHaveLength(SERVES_FEATURES.length);
    const lengths = lengthsFor(llama, { kind: 'sharegpt' });
    // 96 adapters over two groups: 48 of each.
    const e = estimateGpu(llama, lengths, {
      rates: [0.3, 0.05],
      rateCounts: [48, 48],
      maxLoras: p,
      maxLoraRank: 16,
    });
    const ratio = e.throughputTokensPerSecond / e.offeredTokensPerSecond;
    expect(x[0]).toBeCloseTo(Math.log(Math.min(1, ratio)), 12);
    expect(x[1]).toBeCloseTo(Math.log2(e.busyAdapters / p), 12);
    expect(x[2]).toBeCloseTo(
      (e.runningRequests * lengths.kvPerRunningRequest) / kvCacheTokens(llama, p, 16),
      12,
    );
    expect(x[3]).toBeCloseTo(e.offeredTokensPerSecond / workloadCapacity(llama, workload), 12);
    expect(x[4]).toBe(Math.log2(96));
    expect(x[5]).toBe(5);
  });
});

describe('a model answer with the chance it serves', () => {
  const workload = { rates: [0.3], ranks: [16] };
  const search = { concurrent: [32, 64, 96, 128], parallel: [16, 32, 64] };
  /** A serving model that reads only log2 adapters: more than `edge` adapters rarely serve. */
  const servesBelow = (edge: number): ServesModel => ({
    features: [...SERVES_FEATURES],
    mean: SERVES_FEATURES.map(() => 0),
    scale: SERVES_FEATURES.map(() => 1),
    // chance 1 / (1 + exp(-8 (log2 edge - log2 c))).
    coefficients: [8 * Math.log2(edge), 0, 0, 0, 0, -8, 0, 0],
    ridge: 0,
    pairs: 0,
    cv: trainCvOf(5),
  });
  const answer = (edge: number, forestAdapters = 128) =>
    new Recommender({
      loadProfile: () => llama,
      loadModel: () => ({
        ...constantModel(llama, workload, forestAdapters, 32),
        servesAtPair: servesBelow(edge),
      }),
      simulate: () => Promise.reject(new Error('a model answer simulates nothing')),
    }).recommend({
      profile: llama.id,
      workload,
      method: 'model',
      search,
      starvationThreshold: 0.1,
      objective: 'paper',
    });

  const chance = (edge: number, c: number) =>
    1 / (1 + Math.exp(-8 * (Math.log2(edge) - Math.log2(c))));

  it('steps back to the neighbour with the most throughput that more likely serves than not', async () => {
    // At an edge of 80 adapters, 128 and 96 more likely starve, and 64 more likely serves.
    expect(chance(80, 96)).toBeLessThan(SERVES_STEP_BACK_BELOW);
    expect(chance(80, 64)).toBeGreaterThanOrEqual(SERVES_STEP_BACK_BELOW);
    const r = await answer(80);
    expect(r.recommendation.concurrentAdapters).toBe(64);
    expect(r.recommendation.parallelAdapters).toBe(32);
    expect(r.explanation.summary).toContain(
      '128 adapters on 32 slots serve with a chance of 0% and 64 on 32 with 93%, so 64 on 32 are recommended',
    );
    expect(r.vllmArgs).toContain('--max-cpu-loras=64');
    expect(r.recommendation.throughputTokensPerSecond).toBeLessThanOrEqual(
      r.recommendation.offeredTokensPerSecond,
    );
  });

  it('keeps a pair it is sure of at the top of the candidates', async () => {
    const r = await answer(1024);
    expect(r.recommendation.concurrentAdapters).toBe(128);
    expect(r.recommendation.parallelAdapters).toBe(32);
    expect(r.explanation.summary).not.toContain('chance');
  });

  it('keeps its slots where a slot neighbour, offering the same load, is only a little surer', async () => {
    // A light load, well under the capacity bound. The chance falls with adapters and with slots:
    // 128 on 32 serve with 95%, 128 on 16 with 98%. Both more likely serve than not, and both
    // offer the same tokens, so the forest's slots stay.
    const light = { rates: [0.02], ranks: [16] };
    expect(offeredTokensPerSecond(llama, light, 128)).toBeLessThan(workloadCapacity(llama, light));
    const fewerSlotsSurer: ServesModel = {
      ...servesBelow(1024),
      // eta = 15 - log2 adapters - log2 slots.
      coefficients: [15, 0, 0, 0, 0, -1, -1, 0],
    };
    const r = await new Recommender({
      loadProfile: () => llama,
      loadModel: () => ({
        ...constantModel(llama, light, 128, 32),
        servesAtPair: fewerSlotsSurer,
      }),
      simulate: () => Promise.reject(new Error('a model answer simulates nothing')),
    }).recommend({
      profile: llama.id,
      workload: light,
      method: 'model',
      search,
      starvationThreshold: 0.1,
      objective: 'paper',
    });
    expect([r.recommendation.concurrentAdapters, r.recommendation.parallelAdapters]).toEqual([
      128, 32,
    ]);
    expect(r.explanation.summary).not.toContain('chance');
  });

  it('steps one adapter count up where that pair is given at least 90%', async () => {
    expect(chance(1024, 96)).toBeGreaterThanOrEqual(SERVES_STEP_UP_FROM);
    const r = await answer(1024, 64);
    expect(r.recommendation.concurrentAdapters).toBe(96);
    expect(r.explanation.summary).toContain('so 96 on 32 are recommended');
    // Claimed no higher than the forest claimed for the pair it started from.
    expect(r.recommendation.throughputTokensPerSecond).toBeLessThanOrEqual(
      0.95 * r.recommendation.offeredTokensPerSecond,
    );
  });

  it('does not step up where the chance is below 90%', async () => {
    // An edge of 100: 96 adapters serve with about 60%, below the step-up's bar.
    expect(chance(100, 96)).toBeLessThan(SERVES_STEP_UP_FROM);
    expect(chance(100, 64)).toBeGreaterThanOrEqual(SERVES_STEP_BACK_BELOW);
    const r = await answer(100, 64);
    expect(r.recommendation.concurrentAdapters).toBe(64);
  });
});

function trainCvOf(folds: number): ServesModel['cv'] {
  return { folds, auc: 1, starvingAboveConfidence: 0, pairsAboveConfidence: 0 };
}
