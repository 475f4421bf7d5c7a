import { errorSummary } from '../validation/metrics.js';
import { seededStream, shuffleInPlace } from '../twin/random.js';
import { DATASET_DURATION_SECONDS, type DatasetRow } from './dataset.js';
import { FEATURE_NAMES } from './features.js';
import { predict, trainForest, type CompactForest, type ForestHyperparameters } from './forest.js';
import type { ModelFile, TargetName } from './model.js';

export const HYPERPARAMETER_GRID: ForestHyperparameters[] = [
  { nEstimators: 60, maxFeatures: 0.7, maxDepth: 8, minNumSamples: 3 },
  { nEstimators: 60, maxFeatures: 1.0, maxDepth: 8, minNumSamples: 3 },
  { nEstimators: 60, maxFeatures: 0.7, maxDepth: 14, minNumSamples: 2 },
  { nEstimators: 60, maxFeatures: 1.0, maxDepth: 14, minNumSamples: 2 },
];

interface TargetSpec {
  name: TargetName;
  transform: 'log2' | 'none';
  of: (row: DatasetRow) => number;
}
const TARGETS: TargetSpec[] = [
  { name: 'concurrent', transform: 'log2', of: (r) => r.optimum!.concurrentAdapters },
  { name: 'parallel', transform: 'log2', of: (r) => r.optimum!.parallelAdapters },
  { name: 'throughput', transform: 'none', of: (r) => r.optimum!.throughputTokensPerSecond },
];
const forward = (v: number, t: 'log2' | 'none') => (t === 'log2' ? Math.log2(v) : v);
const back = (v: number, t: 'log2' | 'none') => (t === 'log2' ? 2 ** v : v);

/** Deterministic k-fold assignment: a seeded shuffle of row positions, dealt round-robin. */
export function foldsOf(n: number, k: number, seed: number): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  shuffleInPlace(order, seededStream(seed, 200));
  const fold = new Array<number>(n);
  order.forEach((row, i) => (fold[row] = i % k));
  return fold;
}

export interface CvResult {
  predictions: number[]; // on the original scale, one per row, from the fold that held it out
  forests: CompactForest[];
  xs: number[][];
}

/** Out-of-fold predictions of one target for one hyperparameter setting. */
function crossValidate(
  xs: number[][],
  ys: number[],
  fold: number[],
  k: number,
  h: ForestHyperparameters,
  seed: number,
  t: TargetSpec,
): CvResult {
  const predictions = new Array<number>(xs.length);
  const forests: CompactForest[] = [];
  for (let f = 0; f < k; f++) {
    const trainIdx = xs.map((_, i) => i).filter((i) => fold[i] !== f);
    const forest = trainForest(
      trainIdx.map((i) => xs[i]!),
      trainIdx.map((i) => forward(ys[i]!, t.transform)),
      h,
      seed + f,
    );
    forests.push(forest);
    xs.forEach((x, i) => {
      if (fold[i] === f) predictions[i] = back(predict(forest, x), t.transform);
    });
  }
  return { predictions, forests, xs };
}

const paperSmape = (ys: number[], ps: number[]) =>
  errorSummary(ys.map((y, i) => ({ real: y, predicted: ps[i]! }))).smapePaper;

/**
 * Permutation importance on held-out folds: how much the out-of-fold paper-SMAPE rises when one
 * feature's column is shuffled (model refits are not needed: each row keeps its own fold's forest).
 */
function permutationImportance(
  cv: CvResult,
  ys: number[],
  fold: number[],
  t: TargetSpec,
  seed: number,
): Record<string, number> {
  const base = paperSmape(ys, cv.predictions);
  const out: Record<string, number> = {};
  FEATURE_NAMES.forEach((name, j) => {
    const column = cv.xs.map((x) => x[j]!);
    shuffleInPlace(column, seededStream(seed + j, 300));
    const permuted = cv.xs.map((x, i) =>
      back(
        predict(
          cv.forests[fold[i]!]!,
          x.map((v, jj) => (jj === j ? column[i]! : v)),
        ),
        t.transform,
      ),
    );
    out[name] = Number((paperSmape(ys, permuted) - base).toFixed(3));
  });
  return out;
}

export interface TrainOptions {
  profile: string;
  twinVersion: string;
  datasetFile: string;
  datasetSeed: number;
  folds?: number;
  seed?: number;
  grid?: ForestHyperparameters[];
  onProgress?: (message: string) => void;
}

/** Chooses hyperparameters by k-fold CV (mean paper-SMAPE over the three targets) and fits the final forests. */
export function trainModel(rows: DatasetRow[], options: TrainOptions): ModelFile {
  const k = options.folds ?? 5;
  const seed = options.seed ?? 1;
  const grid = options.grid ?? HYPERPARAMETER_GRID;
  const usable = rows.filter((r) => r.optimum !== null).sort((a, b) => a.index - b.index);
  if (usable.length < k * 4)
    throw new Error(
      `only ${usable.length} workloads have an optimum: too few to train with ${k}-fold CV`,
    );
  const xs = usable.map((r) => r.features);
  const fold = foldsOf(usable.length, k, seed);

  const search = grid.map((h) => {
    const errors = TARGETS.map((t) => {
      const ys = usable.map(t.of);
      return paperSmape(ys, crossValidate(xs, ys, fold, k, h, seed, t).predictions);
    });
    const mean = errors.reduce((s, e) => s + e, 0) / errors.length;
    options.onProgress?.(
      `  ${JSON.stringify(h)}: CV paper-SMAPE ${errors.map((e) => e.toFixed(2)).join(' / ')} (mean ${mean.toFixed(2)})`,
    );
    return { hyperparameters: h, cvSmapePaper: Number(mean.toFixed(4)) };
  });
  const chosen = search.reduce((a, b) => (b.cvSmapePaper < a.cvSmapePaper ? b : a)).hyperparameters;

  const targets = Object.fromEntries(
    TARGETS.map((t) => {
      const ys = usable.map(t.of);
      const cv = crossValidate(xs, ys, fold, k, chosen, seed, t);
      const errors = errorSummary(ys.map((y, i) => ({ real: y, predicted: cv.predictions[i]! })));
      const forest = trainForest(
        xs,
        ys.map((y) => forward(y, t.transform)),
        chosen,
        seed,
      );
      return [
        t.name,
        {
          transform: t.transform,
          forest,
          cv: { smapePaper: errors.smapePaper, smape: errors.smape, mape: errors.mape },
          permutationImportance: permutationImportance(cv, ys, fold, t, seed),
        },
      ];
    }),
  ) as ModelFile['targets'];

  const medians = FEATURE_NAMES.map((_, j) => {
    const v = xs.map((x) => x[j]!).sort((a, b) => a - b);
    return v[v.length >> 1]!;
  });
  return {
    schemaVersion: 1,
    profile: options.profile,
    twinVersion: options.twinVersion,
    modelVersion: `${options.profile}@${options.twinVersion}+rows${usable.length}+seed${seed}`,
    features: [...FEATURE_NAMES],
    featureMedians: medians,
    hyperparameters: chosen,
    hyperparameterSearch: search.map((s) => ({
      hyperparameters: { ...s.hyperparameters },
      cvSmapePaper: s.cvSmapePaper,
    })),
    trainingSet: {
      file: options.datasetFile,
      rows: usable.length,
      rowsWithoutOptimum: rows.length - usable.length,
      seed: options.datasetSeed,
      durationSeconds: DATASET_DURATION_SECONDS,
      folds: k,
    },
    targets,
  };
}
