import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  buildRow,
  DATASET_DURATION_SECONDS,
  datasetPath,
  readDataset,
  sampleWorkload,
  trainableRanks,
  WIDENED_FROM_INDEX,
  type DatasetRow,
} from '../src/model/dataset.js';
import { FEATURE_NAMES, workloadFeatures } from '../src/model/features.js';
import {
  predict,
  predictWithEachFeatureMoved,
  trainForest,
  trainMlForest,
} from '../src/model/forest.js';
import {
  loadModel,
  localExplanation,
  modelFileSchema,
  predictWorkload,
} from '../src/model/model.js';
import { decodePrediction, encodeOptimum } from '../src/model/targets.js';
import { trainModel, type CvResult, type CvTask } from '../src/model/train.js';
import { workerPool } from '../src/runtime/pool.js';
import { loadProfile } from '../src/profiles/store.js';
import type { PointSimulator } from '../src/search/index.js';
import { TWIN_VERSION } from '../src/twin/index.js';
import { kvCacheTokens } from '../src/twin/profile.js';
import { seededStream } from '../src/twin/random.js';
import { stubOutcome } from './helpers.js';
import { scratchDir } from './scratch.js';

// A smooth synthetic target over 10 features, so the forests have something to learn.
function synthetic(n: number, seed: number) {
  const u = seededStream(seed, 9);
  const xs = Array.from({ length: n }, () =>
    Array.from({ length: FEATURE_NAMES.length }, () => u.next() * 10),
  );
  const ys = xs.map((x) => 3 * x[0]! - 2 * x[2]! + (x[4]! > 5 ? 10 : 0));
  return { xs, ys };
}

describe('compact forests', () => {
  const h = { nEstimators: 15, maxFeatures: 0.8, maxDepth: 6, minNumSamples: 3 };
  const { xs, ys } = synthetic(120, 1);

  it('predict exactly what ml-random-forest predicts from the same training', () => {
    const ml = trainMlForest(xs, ys, h, 7);
    const compact = trainForest(xs, ys, h, 7);
    const probe = synthetic(50, 2).xs;
    const expected = ml.predict(probe);
    expect(probe.map((x) => predict(compact, x))).toEqual(expected);
  });

  it('predict the same after a JSON round trip', () => {
    const compact = trainForest(xs, ys, h, 7);
    const restored = JSON.parse(JSON.stringify(compact)) as typeof compact;
    for (const x of synthetic(50, 3).xs) expect(predict(restored, x)).toBe(predict(compact, x));
  });
});

const llama = loadProfile('h100-64gb/llama-3.1-8b-instruct');

/**
 * Dataset rows with optima from a made-up rule (fast), to exercise training end to end: a GPU
 * that serves 9,000 tok/s whatever the mix, so the optimum is 9,000 / offeredTokensPerAdapter
 * adapters up to the grid's top, with a quarter as many slots.
 */
function fakeRows(n: number): DatasetRow[] {
  return Array.from({ length: n }, (_, index) => {
    const workload = sampleWorkload(1, index, llama);
    const features = workloadFeatures(workload, llama);
    const perAdapter = features[FEATURE_NAMES.indexOf('offeredTokensPerAdapter')]!;
    const c = Math.max(8, Math.min(512, Math.round(9000 / perAdapter)));
    return {
      index,
      seed: 1,
      durationSeconds: DATASET_DURATION_SECONDS,
      twinVersion: TWIN_VERSION,
      workload,
      features,
      optimum: {
        concurrentAdapters: c,
        parallelAdapters: Math.max(8, c >> 2),
        throughputTokensPerSecond: 0.95 * c * perAdapter,
      },
      maxLoraRank: 32,
      evaluated: [],
      simulations: 0,
      wallMs: 0,
    };
  });
}

describe('target encoding', () => {
  it('decodes an encoded optimum back to itself', () => {
    const o = { concurrentAdapters: 96, parallelAdapters: 24, throughputTokensPerSecond: 8000 };
    const x = workloadFeatures({ rates: [0.2, 0.05], ranks: [16, 32] }, llama);
    const encoded = encodeOptimum(x, o, 512);
    const decoded = decodePrediction(
      x,
      {
        concurrent: encoded.concurrent!,
        parallel: encoded.parallel,
        throughput: encoded.throughput,
      },
      512,
    );
    expect(decoded.concurrentAdapters).toBeCloseTo(96, 9);
    expect(decoded.parallelAdapters).toBeCloseTo(24, 9);
    expect(decoded.throughputTokensPerSecond).toBeCloseTo(8000, 6);
  });

  it('leaves an optimum at the top of the grid out of the concurrent fit (it is only a bound)', () => {
    const x = workloadFeatures({ rates: [0.005], ranks: [8] }, llama);
    const at = { concurrentAdapters: 512, parallelAdapters: 32, throughputTokensPerSecond: 1000 };
    expect(encodeOptimum(x, at, 512).concurrent).toBeNull();
    // ...and no prediction goes past the top.
    expect(
      decodePrediction(x, { concurrent: 30, parallel: 0, throughput: 1 }, 512).concurrentAdapters,
    ).toBe(512);
  });
});

const TRAIN_OPTIONS = {
  profile: 'h100-64gb/llama-3.1-8b-instruct',
  twinVersion: 'test',
  datasetFile: 'fake.jsonl',
  datasetSeed: 1,
  folds: 3,
  grid: [
    { nEstimators: 10, maxFeatures: 1, maxDepth: 6, minNumSamples: 2 },
    { nEstimators: 10, maxFeatures: 0.5, maxDepth: 4, minNumSamples: 3 },
  ],
};
const model = await trainModel(fakeRows(60), TRAIN_OPTIONS);

describe('trained model files', () => {
  it("trains the same model when the grid's cross-validations run on other threads", async () => {
    const pool = workerPool<CvTask, CvResult>('cv-worker', 2);
    try {
      const pooled = await trainModel(fakeRows(60), {
        ...TRAIN_OPTIONS,
        crossValidate: (task) => pool.run(task),
      });
      expect(pooled).toEqual(model);
    } finally {
      await pool.destroy();
    }
  }, 60_000);

  it('record hyperparameter search, CV errors, importances and medians', () => {
    expect(model.hyperparameterSearch).toHaveLength(2);
    expect(model.trainingSet.rows).toBe(60);
    expect(model.targets.concurrent.fittedRows).toBeLessThan(60); // optima at 512 are bounds
    expect(model.targets.parallel.fittedRows).toBe(60);
    expect(Object.keys(model.targets.parallel.permutationImportance)).toEqual([...FEATURE_NAMES]);
    expect(model.featureMedians).toHaveLength(FEATURE_NAMES.length);
  });

  it('learn an optimum that follows capacity / load from 60 workloads', () => {
    // Adapters span 8 to 512 here; learned relative to each adapter's load, the out-of-fold
    // error stays within a few percent.
    expect(model.targets.concurrent.cv.smapePaper).toBeLessThan(3);
    expect(model.targets.throughput.cv.smapePaper).toBeLessThan(3);
  });

  it('load from disk and predict the same as before saving', () => {
    const dir = scratchDir('loraplan-model-');
    const path = join(dir, 'h100-64gb', 'llama-3.1-8b-instruct.json');
    mkdirSync(join(dir, 'h100-64gb'), { recursive: true });
    writeFileSync(path, JSON.stringify(model));
    const loaded = loadModel('h100-64gb/llama-3.1-8b-instruct', dir);
    expect(modelFileSchema.parse(JSON.parse(readFileSync(path, 'utf8')))).toEqual(loaded);
    for (const row of fakeRows(10))
      expect(predictWorkload(loaded, row.features)).toEqual(predictWorkload(model, row.features));
  });

  it('predict each feature moved to its median exactly as one walk per moved row would', () => {
    const shipped = loadModel('h100-64gb/llama-3.1-8b-instruct');
    const random = seededStream(11, 0);
    const rows = fakeRows(20).map((r) => r.features);
    // Rows off the training workloads too, so paths meet thresholds the samples do not.
    for (const features of [...rows, ...rows.map((r) => r.map((v) => v * (0.5 + random.next())))]) {
      for (const target of ['concurrent', 'parallel'] as const) {
        const forest = shipped.targets[target].forest;
        const { here, moved } = predictWithEachFeatureMoved(
          forest,
          features,
          shipped.featureMedians,
        );
        expect(here).toBe(predict(forest, features));
        shipped.featureMedians.forEach((median, f) => {
          const rowMoved = [...features];
          rowMoved[f] = median;
          expect(moved[f]).toBe(predict(forest, rowMoved));
        });
      }
    }
  });

  it('explain one answer by the features that moved it most', () => {
    const effects = localExplanation(model, fakeRows(1)[0]!.features, 3);
    expect(effects).toHaveLength(3);
    const size = (e: (typeof effects)[number]) =>
      Math.abs(e.concurrentLog2Effect) + Math.abs(e.parallelLog2Effect);
    expect(size(effects[0]!)).toBeGreaterThanOrEqual(size(effects[1]!));
  });
});

describe('dataset builder', () => {
  const profile = llama;
  // A stand-in twin: starves past 100 adapters; enough to exercise the search and the rows.
  const fake: PointSimulator = async (scenario) =>
    stubOutcome({
      throughputTokensPerSecond: scenario.config.maxCpuLoras * 10 - scenario.config.maxLoras * 0.01,
      offeredTokensPerSecond: scenario.config.maxCpuLoras * 10,
      starving: scenario.config.maxCpuLoras > 100,
    });

  it('draws each workload from its own stream, so rows can be rebuilt in any order', () => {
    expect(sampleWorkload(1, 5, llama)).toEqual(sampleWorkload(1, 5, llama));
    expect(sampleWorkload(1, 5, llama)).not.toEqual(sampleWorkload(1, 6, llama));
    expect(sampleWorkload(2, 5, llama)).not.toEqual(sampleWorkload(1, 5, llama));
  });

  it('keeps the committed rows drawable: widening the space changed no earlier workload', () => {
    const rows = readDataset(datasetPath(llama.id));
    for (const row of rows.filter((r) => r.index < WIDENED_FROM_INDEX))
      expect(sampleWorkload(row.seed, row.index, llama)).toEqual(row.workload);
  });

  it('draws wide workloads with every length kind and ranks that leave room for one sequence', () => {
    const wide = Array.from({ length: 400 }, (_, i) =>
      sampleWorkload(1, WIDENED_FROM_INDEX + i, llama),
    );
    const kinds = new Set(wide.map((w) => w.requestLengths?.kind));
    expect([...kinds].sort()).toEqual(['empirical', 'fixed', 'sharegpt']);
    const ranks = new Set(wide.flatMap((w) => w.ranks));
    expect(Math.max(...ranks)).toBe(Math.max(...trainableRanks(llama)));
    for (const r of ranks)
      expect(kvCacheTokens(llama, 8, r)).toBeGreaterThanOrEqual(llama.maxModelLen);
    for (const w of wide) {
      const lengths = w.requestLengths;
      if (lengths?.kind === 'fixed')
        expect(lengths.input + lengths.output).toBeLessThanOrEqual(llama.maxModelLen);
    }
  });

  it('labels each workload with the search optimum', async () => {
    const row = await buildRow(profile, 1, 3, fake, () => 0);
    expect(row.optimum).toEqual({
      concurrentAdapters: 96,
      parallelAdapters: 8,
      throughputTokensPerSecond: 959.92,
    });
    expect(row.evaluated.length).toBe(row.simulations);
    expect(row.twinVersion).toBe(TWIN_VERSION);
  });

  it("refuses to resume or train on rows another twin labelled: their optimum is that twin's", async () => {
    const row = await buildRow(profile, 1, 3, fake, () => 0);
    const dir = scratchDir('loraplan-dataset-');
    const file = join(dir, 'set.jsonl');
    writeFileSync(file, `${JSON.stringify(row)}\n`);
    expect(readDataset(file, 1).map((r) => r.index)).toEqual([3]);
    writeFileSync(
      file,
      `${JSON.stringify(row)}\n${JSON.stringify({ ...row, index: 4, twinVersion: '0.9.0' })}\n`,
    );
    expect(() => readDataset(file, 1)).toThrow(
      /workload 4 was labelled by twin 0\.9\.0; this build runs twin/,
    );
    const old: Partial<DatasetRow> = { ...row };
    delete old.twinVersion;
    writeFileSync(file, `${JSON.stringify(old)}\n`);
    expect(() => readDataset(file, 1)).toThrow(/labelled by twin \(unrecorded\)/);
  });
});
