// The chance a pair serves (src/model/serves.ts): boosted trees that learn a known rule, an AUC
// computed by hand, features that are the closed-form estimate's own figures, and a `model`
// answer that steps back where that chance is thin.
import { describe, expect, it } from 'vitest';
import { datasetPath, readDataset } from '../src/model/dataset.js';
import { loadModel } from '../src/model/model.js';
import { boostedProbability, trainBoostedClassifier } from '../src/model/boost.js';
import { rocAuc } from '../src/stats/index.js';
import {
  SERVES_BOOSTING,
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
import { NoServingConfigurationError, Recommender } from '../src/recommend/index.js';
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

describe('the boosted trees', () => {
  /** 20,000 rows, x uniform on [-2, 2]^2, labelled with chance 1 / (1 + exp(-(0.5 + 2 x0 - x1))). */
  const drawn = (seed: number) => {
    const u = seededStream(seed, 1);
    const xs: number[][] = [];
    const labels: boolean[] = [];
    const truth: number[] = [];
    for (let i = 0; i < 20_000; i++) {
      const x = [4 * u.next() - 2, 4 * u.next() - 2];
      const chance = 1 / (1 + Math.exp(-(0.5 + 2 * x[0]! - x[1]!)));
      xs.push(x);
      truth.push(chance);
      labels.push(u.next() < chance);
    }
    return { xs, labels, truth };
  };

  it('rank fresh rows about as well as the chance that drew their labels', () => {
    const train = drawn(7);
    const model = trainBoostedClassifier(train.xs, train.labels, SERVES_BOOSTING);
    const test = drawn(8);
    const fitted = rocAuc(
      test.xs.map((x) => boostedProbability(model, x)),
      test.labels,
    );
    const best = rocAuc(test.truth, test.labels);
    expect(fitted).toBeGreaterThan(best - 0.01);
    // And the chances themselves: at x = (1, 0) the drawing chance is 1 / (1 + e^-2.5) = 0.924.
    expect(boostedProbability(model, [1, 0])).toBeGreaterThan(0.85);
    expect(boostedProbability(model, [1, 0])).toBeLessThan(0.97);
  });

  it('stay finite and on the right side on labels one feature separates exactly', () => {
    const xs = Array.from({ length: 100 }, (_, i) => [i / 10]);
    const labels = xs.map(([x]) => x! >= 5);
    const model = trainBoostedClassifier(xs, labels, { ...SERVES_BOOSTING, minLeaf: 5 });
    expect(model.trees.trees.flat().every(Number.isFinite)).toBe(true);
    expect(boostedProbability(model, [1])).toBeLessThan(0.1);
    expect(boostedProbability(model, [8])).toBeGreaterThan(0.9);
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
  const ADAPTERS = SERVES_FEATURES.indexOf('log2 adapters');
  const SLOTS = SERVES_FEATURES.indexOf('log2 slots');
  /**
   * A serving model of one tree per feature named: each a staircase whose leaf for values from
   * one step's threshold on is that step's log-odds (the first leaf is `below`).
   */
  const servesBy = (
    stairs: Array<{ feature: number; below: number; steps: Array<[number, number]> }>,
  ): ServesModel => ({
    features: [...SERVES_FEATURES],
    base: 0,
    trees: {
      trees: stairs.map(({ feature, below, steps }) => {
        // Node k splits at step k's threshold: left is the leaf before it, right the next node.
        const nodes: number[] = [];
        steps.forEach(([threshold], k) => {
          const at = nodes.length / 4;
          nodes.push(
            feature,
            threshold,
            at + 1,
            at + 2,
            -1,
            k === 0 ? below : steps[k - 1]![1],
            0,
            0,
          );
        });
        nodes.push(-1, steps[steps.length - 1]![1], 0, 0);
        return nodes;
      }),
    },
    hyperparameters: { ...SERVES_BOOSTING },
    pairs: 0,
    cv: trainCvOf(5),
  });
  const logOdds = (chance: number) => Math.log(chance / (1 - chance));
  /** The chance of 32, 64, 96 and 128 adapters, whatever the slots. */
  const byAdapters = (c32: number, c64: number, c96: number, c128: number) =>
    servesBy([
      {
        feature: ADAPTERS,
        below: logOdds(c32),
        steps: [
          [5.5, logOdds(c64)],
          [6.3, logOdds(c96)],
          [6.8, logOdds(c128)],
        ],
      },
    ]);
  const answer = (serves: ServesModel, forestAdapters = 128, w: typeof workload = workload) =>
    new Recommender({
      loadProfile: () => llama,
      loadModel: () => ({
        ...constantModel(llama, w, forestAdapters, 32),
        servesAtPair: serves,
      }),
      simulate: () => Promise.reject(new Error('a model answer simulates nothing')),
    }).recommend({
      profile: llama.id,
      workload: w,
      method: 'model',
      search,
      starvationThreshold: 0.1,
      objective: 'paper',
    });
  const chanceAt = (serves: ServesModel, c: number, p: number) =>
    servesProbability(serves, servesFeatures(llama, workload, 16, c, p));

  it('steps back to the neighbour with the most throughput that more likely serves than not', async () => {
    // 128 and 96 adapters more likely starve, and 64 more likely serves.
    const serves = byAdapters(0.99, 0.93, 0.1, 0.01);
    expect(chanceAt(serves, 96, 32)).toBeLessThan(SERVES_STEP_BACK_BELOW);
    expect(chanceAt(serves, 64, 32)).toBeGreaterThanOrEqual(SERVES_STEP_BACK_BELOW);
    const r = await answer(serves);
    expect(r.recommendation.concurrentAdapters).toBe(64);
    expect(r.recommendation.parallelAdapters).toBe(32);
    expect(r.explanation.summary).toContain(
      '128 adapters on 32 slots serve with a chance of 1% and 64 on 32 with 93%, so 64 on 32 are recommended',
    );
    expect(r.vllmArgs).toContain('--max-cpu-loras=64');
    expect(r.recommendation.throughputTokensPerSecond).toBeLessThanOrEqual(
      r.recommendation.offeredTokensPerSecond,
    );
  });

  it('refuses where not even the fewest adapters are likely to serve, naming both chances', async () => {
    // The request's fewest adapters (32, on 16 or 32 slots) are given 30%, under the 70% a pair
    // is recommended from.
    const r = answer(byAdapters(0.3, 0.2, 0.1, 0.01));
    await expect(r).rejects.toBeInstanceOf(NoServingConfigurationError);
    await expect(r).rejects.toThrow(
      /every configuration likely starves: .*even 32 adapter\(s\) on any slot count with at most 30%/,
    );
  });

  it("names the answer's own adapters where it has fewer than the grid's fewest", async () => {
    // Without a grid of its own the forest may answer 4 adapters, fewer than the grid's 8.
    const r = new Recommender({
      loadProfile: () => llama,
      loadModel: () => ({
        ...constantModel(llama, workload, 4, 2),
        servesAtPair: byAdapters(0.3, 0.2, 0.1, 0.01),
      }),
      simulate: () => Promise.reject(new Error('a model answer simulates nothing')),
    }).recommend({
      profile: llama.id,
      workload,
      method: 'model',
      starvationThreshold: 0.1,
      objective: 'paper',
    });
    await expect(r).rejects.toThrow(/even 4 adapter\(s\) on any slot count with at most 30%/);
  });

  it('keeps a pair it is sure of at the top of the candidates', async () => {
    const r = await answer(byAdapters(0.99, 0.99, 0.99, 0.99));
    expect(r.recommendation.concurrentAdapters).toBe(128);
    expect(r.recommendation.parallelAdapters).toBe(32);
    expect(r.explanation.summary).not.toContain('chance');
  });

  it('keeps its slots where a slot neighbour, offering the same load, is only a little surer', async () => {
    // A light load, well under the capacity bound. The chance falls with slots: 128 adapters on
    // 16 slots serve with 98%, on 32 with 95%, on 64 with 88%. All more likely serve than not,
    // and all offer the same tokens, so the forest's slots stay.
    const light = { rates: [0.02], ranks: [16] };
    expect(offeredTokensPerSecond(llama, light, 128)).toBeLessThan(workloadCapacity(llama, light));
    const fewerSlotsSurer = servesBy([
      {
        feature: SLOTS,
        below: logOdds(0.98),
        steps: [
          [4.5, logOdds(0.95)],
          [5.5, logOdds(0.88)],
        ],
      },
    ]);
    const r = await answer(fewerSlotsSurer, 128, light);
    expect([r.recommendation.concurrentAdapters, r.recommendation.parallelAdapters]).toEqual([
      128, 32,
    ]);
    expect(r.explanation.summary).not.toContain('chance');
  });

  it('steps one adapter count up where that pair is given at least 90%', async () => {
    const serves = byAdapters(0.99, 0.99, 0.99, 0.99);
    expect(chanceAt(serves, 96, 32)).toBeGreaterThanOrEqual(SERVES_STEP_UP_FROM);
    const r = await answer(serves, 64);
    expect(r.recommendation.concurrentAdapters).toBe(96);
    expect(r.explanation.summary).toContain('so 96 on 32 are recommended');
    // Priced at its own load as the forest prices any pair (0.95 of what it offers), so the
    // answer does not say it starves.
    expect(r.recommendation.throughputTokensPerSecond).toBeCloseTo(
      0.95 * r.recommendation.offeredTokensPerSecond,
      6,
    );
    expect(r.recommendation.starving).toBe(false);
  });

  it('does not step up where the chance is below 90%', async () => {
    const serves = byAdapters(0.99, 0.95, 0.6, 0.1);
    expect(chanceAt(serves, 96, 32)).toBeLessThan(SERVES_STEP_UP_FROM);
    const r = await answer(serves, 64);
    expect(r.recommendation.concurrentAdapters).toBe(64);
  });
});

function trainCvOf(folds: number): ServesModel['cv'] {
  return { folds, auc: 1, starvingAboveConfidence: 0, pairsAboveConfidence: 0 };
}
