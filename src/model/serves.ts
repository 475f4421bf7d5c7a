// The chance that one (adapters, slots) pair serves a workload in the twin, from the closed-form
// steady state's figures at that pair: gradient-boosted trees fitted on every pair the training
// searches simulated. A `model` answer reads it to step back where the margin is thin, in
// microseconds, without a simulation (src/recommend/model-answer.ts).
import { z } from 'zod';
import {
  estimatePair,
  lengthsFor,
  workloadCapacity,
  type SearchWorkload,
} from '../search/index.js';
import { boostedProbability, trainBoostedClassifier, type BoostHyperparameters } from './boost.js';
import type { DatasetRow } from './dataset.js';
import { rocAuc } from '../stats/index.js';
import { kvCacheTokens, type Profile } from '../twin/index.js';

/** What the model reads at a pair, all from the closed-form estimate (src/search/estimate.ts). */
export const SERVES_FEATURES = [
  'log completion ratio (estimate)',
  'log2 busy adapters per slot',
  'KV cache fill',
  'offered load / capacity bound',
  'log2 adapters',
  'log2 slots',
  'token budget fill',
] as const;

export const servesModelSchema = z.object({
  features: z.array(z.string()),
  /** Log-odds before any tree, and the trees (src/model/boost.ts). */
  base: z.number(),
  trees: z.object({ trees: z.array(z.array(z.number())) }),
  hyperparameters: z.object({
    rounds: z.number(),
    depth: z.number(),
    learningRate: z.number(),
    minLeaf: z.number(),
    bins: z.number(),
    l2: z.number(),
  }),
  pairs: z.number(),
  /** Out-of-fold (by workload) over the training pairs. */
  cv: z.object({
    folds: z.number(),
    auc: z.number(),
    /** Among out-of-fold pairs given at least SERVES_CV_CONFIDENCE, the share that starve. */
    starvingAboveConfidence: z.number(),
    pairsAboveConfidence: z.number(),
  }),
});
export type ServesModel = z.infer<typeof servesModelSchema>;

/**
 * A `model` answer steps back where its pair is given less than this chance of serving, and one
 * adapter step up where that pair is given at least SERVES_STEP_UP_FROM. Both were chosen on
 * workloads of their own (`npm run validate:envelope -- --seed 3`), neither trained on nor the
 * held-out report's: the fewest starving answers at no more mean throughput lost than the
 * closed-form veto's on those workloads, on both profiles (docs/performance.md).
 */
export const SERVES_STEP_BACK_BELOW = 0.7;
export const SERVES_STEP_UP_FROM = 0.95;

/** Out-of-fold pairs given at least this chance are counted in the model's `cv`. */
export const SERVES_CV_CONFIDENCE = 0.9;

/** The estimate's figures at a pair, in SERVES_FEATURES order. Bounded, so no feature runs off. */
export function servesFeatures(
  profile: Profile,
  workload: SearchWorkload,
  maxLoraRank: number,
  concurrentAdapters: number,
  parallelAdapters: number,
): number[] {
  return servesFeaturesOf(profile, workload, maxLoraRank)(concurrentAdapters, parallelAdapters);
}

/**
 * servesFeatures for many pairs of one workload: its lengths and capacity bound are read once,
 * so a pair costs one closed-form estimate (an answer reads five to seven pairs).
 */
export function servesFeaturesOf(
  profile: Profile,
  workload: SearchWorkload,
  maxLoraRank: number,
): (concurrentAdapters: number, parallelAdapters: number) => number[] {
  const lengths = lengthsFor(profile, workload.requestLengths ?? { kind: 'sharegpt' });
  const capacity = workloadCapacity(profile, workload);
  return (concurrentAdapters, parallelAdapters) => {
    const e = estimatePair(
      profile,
      lengths,
      workload.rates,
      concurrentAdapters,
      parallelAdapters,
      maxLoraRank,
    );
    const ratio = e.completionRatio;
    const kv = kvCacheTokens(profile, parallelAdapters, maxLoraRank);
    const kvFill = kv > 0 ? (e.runningRequests * lengths.kvPerRunningRequest) / kv : 3;
    const tokensPerStep = e.runningRequests * (1 + lengths.prompt / Math.max(1, lengths.output));
    return [
      Math.log(Math.max(1e-3, Math.min(1, ratio))),
      Math.log2(Math.max(1e-3, e.busyAdapters / parallelAdapters)),
      Math.min(3, kvFill),
      Math.min(3, capacity > 0 ? e.offeredTokensPerSecond / capacity : 3),
      Math.log2(concurrentAdapters),
      Math.log2(parallelAdapters),
      Math.min(3, tokensPerStep / 2048),
    ];
  };
}

export function servesProbability(model: ServesModel, x: readonly number[]): number {
  return boostedProbability(model, x);
}

/**
 * Small trees, many rounds, a slow rate: the textbook setting, not searched. Out of fold over
 * the training pairs next to a verdict change, these trees rank pairs with an AUC of 0.970 / 0.970
 * (Llama / Qwen) where a logistic regression on the same figures reached 0.938 / 0.939.
 */
export const SERVES_BOOSTING: BoostHyperparameters = {
  rounds: 150,
  depth: 3,
  learningRate: 0.1,
  minLeaf: 20,
  bins: 32,
  l2: 1,
};

/** One simulated pair of a training search, with its verdict. */
export interface TrainingPair {
  workloadIndex: number;
  features: number[];
  serves: boolean;
}

/** Every pair a dataset's searches simulated, with the estimate's figures at it and the twin's verdict. */
export function servesPairsOf(rows: readonly DatasetRow[], profile: Profile): TrainingPair[] {
  return rows.flatMap((r) => {
    const featuresAt = servesFeaturesOf(profile, r.workload, r.maxLoraRank);
    return r.evaluated.map(([concurrent, parallel, , serves]) => ({
      workloadIndex: r.index,
      features: featuresAt(concurrent, parallel),
      serves: serves === 1,
    }));
  });
}

/** The serving model of a profile's training pairs, cross-validated by workload. */
export function trainServes(pairs: readonly TrainingPair[], folds = 5): ServesModel {
  const fit = (rows: readonly TrainingPair[]) =>
    trainBoostedClassifier(
      rows.map((p) => p.features),
      rows.map((p) => p.serves),
      SERVES_BOOSTING,
    );
  const outOfFold = new Array<number>(pairs.length);
  for (let f = 0; f < folds; f++) {
    const model = fit(pairs.filter((p) => p.workloadIndex % folds !== f));
    pairs.forEach((p, i) => {
      if (p.workloadIndex % folds === f) outOfFold[i] = boostedProbability(model, p.features);
    });
  }
  const confident = pairs.filter((_, i) => outOfFold[i]! >= SERVES_CV_CONFIDENCE);
  return {
    ...fit(pairs),
    features: [...SERVES_FEATURES],
    hyperparameters: { ...SERVES_BOOSTING },
    pairs: pairs.length,
    cv: {
      folds,
      auc: rocAuc(
        outOfFold,
        pairs.map((p) => p.serves),
      ),
      starvingAboveConfidence:
        confident.length > 0 ? confident.filter((p) => !p.serves).length / confident.length : 0,
      pairsAboveConfidence: confident.length,
    },
  };
}
