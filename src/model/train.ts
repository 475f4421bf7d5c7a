import { errorSummary } from '../stats/index.js';
import { seededStream, shuffleInPlace } from '../twin/random.js';
import { DEFAULT_GRID, sortedUnique } from '../search/index.js';
import { DATASET_DURATION_SECONDS, type DatasetRow } from './dataset.js';
import { envelopeOf } from './envelope.js';
import { FEATURE_NAMES } from './features.js';
import { trainForest, type CompactForest, type ForestHyperparameters } from './forest.js';
import { predictRaw, type ModelFile } from './model.js';
import { servesPairsOf, trainServes } from './serves.js';
import type { Profile } from '../twin/index.js';
import {
  decodePrediction,
  encodeOptimum,
  TARGET_ENCODINGS,
  TARGET_NAMES,
  type Optimum,
  type TargetName,
} from './targets.js';

export const HYPERPARAMETER_GRID: ForestHyperparameters[] = [
  { nEstimators: 60, maxFeatures: 0.7, maxDepth: 8, minNumSamples: 3 },
  { nEstimators: 60, maxFeatures: 1.0, maxDepth: 8, minNumSamples: 3 },
  { nEstimators: 60, maxFeatures: 0.7, maxDepth: 14, minNumSamples: 2 },
  { nEstimators: 60, maxFeatures: 1.0, maxDepth: 14, minNumSamples: 2 },
];

/** Deterministic k-fold assignment: a seeded shuffle of row positions, dealt round-robin. */
export function foldsOf(n: number, k: number, seed: number): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  shuffleInPlace(order, seededStream(seed, 200));
  const fold = new Array<number>(n);
  order.forEach((row, i) => (fold[row] = i % k));
  return fold;
}

type Forests = Record<TargetName, { forest: CompactForest; fittedRows: number }>;

/** Fits the three forests on rows `idx` (concurrent skips rows whose optimum is censored). */
function fitForests(
  xs: number[][],
  encoded: Array<Record<TargetName, number | null>>,
  idx: number[],
  h: ForestHyperparameters,
  seed: number,
): Forests {
  const fit = (t: TargetName) => {
    const rows = idx.filter((i) => encoded[i]![t] !== null);
    const forest = trainForest(
      rows.map((i) => xs[i]!),
      rows.map((i) => encoded[i]![t]!),
      h,
      seed,
    );
    return { forest, fittedRows: rows.length };
  };
  return {
    concurrent: fit('concurrent'),
    parallel: fit('parallel'),
    throughput: fit('throughput'),
  };
}

export interface CvResult {
  /** Out-of-fold decoded predictions, one per row, from the fold that held the row out. */
  predictions: Optimum[];
  forests: Forests[];
}

/** One cross-validation to run: the rows, their folds and one set of hyperparameters. */
export interface CvTask {
  xs: number[][];
  encoded: Array<Record<TargetName, number | null>>;
  fold: number[];
  k: number;
  h: ForestHyperparameters;
  seed: number;
  ceiling: number;
}

/** Runs cross-validations, in this thread or in others: the results are the same either way. */
export type CrossValidator = (task: CvTask) => Promise<CvResult>;

export const crossValidateHere: CrossValidator = (t) =>
  Promise.resolve(crossValidate(t.xs, t.encoded, t.fold, t.k, t.h, t.seed, t.ceiling));

export function crossValidate(
  xs: number[][],
  encoded: Array<Record<TargetName, number | null>>,
  fold: number[],
  k: number,
  h: ForestHyperparameters,
  seed: number,
  ceiling: number,
): CvResult {
  const predictions = new Array<Optimum>(xs.length);
  const forests: Forests[] = [];
  for (let f = 0; f < k; f++) {
    const train = xs.map((_, i) => i).filter((i) => fold[i] !== f);
    const forest = fitForests(xs, encoded, train, h, seed + f);
    forests.push(forest);
    xs.forEach((x, i) => {
      if (fold[i] === f) predictions[i] = decodePrediction(x, predictRaw(forest, x), ceiling);
    });
  }
  return { predictions, forests };
}

const OPTIMUM_FIELD: Record<TargetName, keyof Optimum> = {
  concurrent: 'concurrentAdapters',
  parallel: 'parallelAdapters',
  throughput: 'throughputTokensPerSecond',
};

/** Errors of decoded predictions against the twin's optimum, per target. */
function targetErrors(truth: Optimum[], predictions: Optimum[], t: TargetName) {
  const field = OPTIMUM_FIELD[t];
  return errorSummary(truth.map((o, i) => ({ real: o[field], predicted: predictions[i]![field] })));
}

/**
 * Permutation importance on held-out folds: how much each target's out-of-fold paper-SMAPE rises
 * when one feature's column is shuffled (no refits: each row keeps its own fold's forests).
 */
function permutationImportance(
  cv: CvResult,
  xs: number[][],
  truth: Optimum[],
  fold: number[],
  seed: number,
  ceiling: number,
): Record<TargetName, Record<string, number>> {
  const base = Object.fromEntries(
    TARGET_NAMES.map((t) => [t, targetErrors(truth, cv.predictions, t).smapePaper]),
  ) as Record<TargetName, number>;
  const out = { concurrent: {}, parallel: {}, throughput: {} } as Record<
    TargetName,
    Record<string, number>
  >;
  FEATURE_NAMES.forEach((name, j) => {
    const column = xs.map((x) => x[j]!);
    shuffleInPlace(column, seededStream(seed + j, 300));
    const permuted = xs.map((x, i) => {
      const moved = x.map((v, jj) => (jj === j ? column[i]! : v));
      return decodePrediction(moved, predictRaw(cv.forests[fold[i]!]!, moved), ceiling);
    });
    for (const t of TARGET_NAMES)
      out[t][name] = Number((targetErrors(truth, permuted, t).smapePaper - base[t]).toFixed(3));
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
  /**
   * The profile the dataset was simulated on: with it, the model also learns the chance that a
   * pair serves from every pair the searches simulated (src/model/serves.ts).
   */
  servingProfile?: Profile;
  /** Where the grid's cross-validations run (default: one after another in this thread). */
  crossValidate?: CrossValidator;
}

/** Chooses hyperparameters by k-fold CV (mean paper-SMAPE over the three targets) and fits the final forests. */
export async function trainModel(rows: DatasetRow[], options: TrainOptions): Promise<ModelFile> {
  const k = options.folds ?? 5;
  const seed = options.seed ?? 1;
  const grid = options.grid ?? HYPERPARAMETER_GRID;
  // The dataset's searches ran on the default grid: an optimum at its top is censored.
  const ceiling = Math.max(...DEFAULT_GRID.concurrent);
  const usable = rows.filter((r) => r.optimum !== null).sort((a, b) => a.index - b.index);
  if (usable.length < k * 4)
    throw new Error(
      `only ${usable.length} workloads have an optimum: too few to train with ${k}-fold CV`,
    );
  const xs = usable.map((r) => r.features);
  const truth = usable.map((r) => r.optimum!);
  const encoded = usable.map((r, i) => encodeOptimum(xs[i]!, truth[i]!, ceiling));
  const fold = foldsOf(usable.length, k, seed);
  const errorsOf = (cv: CvResult) =>
    TARGET_NAMES.map((t) => targetErrors(truth, cv.predictions, t));

  // Every grid entry is cross-validated at once: with a pool of threads they run side by side.
  // The chosen entry's cross-validation is then kept, not run again: it is seeded, so a second
  // run would fit the same forests (a fifth of the training time on the default grid).
  const runs = await Promise.all(
    grid.map((h) =>
      (options.crossValidate ?? crossValidateHere)({ xs, encoded, fold, k, h, seed, ceiling }),
    ),
  );
  let best: { cv: CvResult; mean: number; hyperparameters: ForestHyperparameters } | undefined;
  const search = grid.map((h, i) => {
    const run = runs[i]!;
    const errors = errorsOf(run).map((e) => e.smapePaper);
    const mean = errors.reduce((s, e) => s + e, 0) / errors.length;
    options.onProgress?.(
      `  ${JSON.stringify(h)}: CV paper-SMAPE ${errors.map((e) => e.toFixed(2)).join(' / ')} (mean ${mean.toFixed(2)})`,
    );
    const cvSmapePaper = Number(mean.toFixed(4));
    // The lowest rounded mean, the earliest on a tie.
    if (!best || cvSmapePaper < best.mean)
      best = { cv: run, mean: cvSmapePaper, hyperparameters: h };
    return { hyperparameters: h, cvSmapePaper };
  });
  const { cv, hyperparameters: chosen } = best!;
  const errors = errorsOf(cv);
  // How far the twin's starvation edge lay above each out-of-fold prediction (log2): the edge is
  // between the optimum and the next grid value, taken at their geometric midpoint. Optima at the
  // grid's top have no edge in sight and are left out.
  const concurrentGrid = sortedUnique(DEFAULT_GRID.concurrent);
  const edgeResiduals = truth
    .map((t, i) => {
      const next = concurrentGrid.find((g) => g > t.concurrentAdapters);
      if (next === undefined) return null;
      const edge = Math.sqrt(t.concurrentAdapters * next);
      return Number(Math.log2(edge / cv.predictions[i]!.concurrentAdapters).toFixed(4));
    })
    .filter((r): r is number => r !== null)
    .sort((a, b) => a - b);
  const importance = permutationImportance(cv, xs, truth, fold, seed, ceiling);
  const final = fitForests(
    xs,
    encoded,
    xs.map((_, i) => i),
    chosen,
    seed,
  );
  const target = <T extends TargetName>(t: T, i: number) => ({
    encoding: TARGET_ENCODINGS[t],
    forest: final[t].forest,
    fittedRows: final[t].fittedRows,
    cv: { smapePaper: errors[i]!.smapePaper, smape: errors[i]!.smape, mape: errors[i]!.mape },
    permutationImportance: importance[t],
  });

  const medians = FEATURE_NAMES.map((_, j) => {
    const v = xs.map((x) => x[j]!).sort((a, b) => a - b);
    return v[v.length >> 1]!;
  });
  return {
    schemaVersion: 3,
    profile: options.profile,
    twinVersion: options.twinVersion,
    modelVersion: `${options.profile}@${options.twinVersion}+rows${usable.length}+seed${seed}`,
    features: [...FEATURE_NAMES],
    featureMedians: medians,
    concurrentCeiling: ceiling,
    concurrentEdgeResidualsLog2: edgeResiduals,
    ...(options.servingProfile
      ? { servesAtPair: trainServes(servesPairsOf(rows, options.servingProfile), k) }
      : {}),
    envelope: envelopeOf(usable),
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
    targets: {
      concurrent: target('concurrent', 0),
      parallel: target('parallel', 1),
      throughput: target('throughput', 2),
    },
  };
}
