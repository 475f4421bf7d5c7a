import type { Envelope } from '../src/model/envelope.js';
import {
  BUSY_ADAPTER_FRACTION,
  FEATURE_NAMES,
  OFFERED_TOKENS_PER_ADAPTER,
  workloadFeatures,
  type FeatureWorkload,
} from '../src/model/features.js';
import type { ModelFile } from '../src/model/model.js';
import { TARGET_ENCODINGS } from '../src/model/targets.js';
import type { Profile } from '../src/twin/profile.js';

/** An envelope every test workload lies inside, unless a test narrows it. */
export const WIDE_ENVELOPE: Envelope = {
  features: Object.fromEntries(FEATURE_NAMES.map((f) => [f, [-1e12, 1e12]])),
  rateGroups: [1, 1024],
  lengthKinds: ['empirical', 'fixed', 'sharegpt'],
};

/**
 * A model file whose forests are single leaves: for `workload` it answers `concurrent` x
 * `parallel` at `completionRatio` (other workloads get the same encoded targets).
 */
export function constantModel(
  profile: Profile,
  workload: FeatureWorkload,
  concurrent: number,
  parallel: number,
  completionRatio = 0.95,
  envelope: Envelope = WIDE_ENVELOPE,
): ModelFile {
  const x = workloadFeatures(workload, profile);
  const leaf = (value: number) => ({ trees: [[-1, value, 0, 0]] });
  const target = <E extends string>(encoding: E, value: number) => ({
    encoding,
    forest: leaf(value),
    fittedRows: 1,
    cv: { smapePaper: 0, smape: 0, mape: 0 },
    permutationImportance: {},
  });
  return {
    schemaVersion: 3,
    profile: profile.id,
    twinVersion: 'test',
    modelVersion: 'test',
    features: [...FEATURE_NAMES],
    featureMedians: x.map((v) => v * 2),
    concurrentCeiling: 512,
    envelope,
    hyperparameters: { nEstimators: 1, maxFeatures: 1, maxDepth: 1, minNumSamples: 1 },
    hyperparameterSearch: [],
    trainingSet: {
      file: '',
      rows: 1,
      rowsWithoutOptimum: 0,
      seed: 1,
      durationSeconds: 3600,
      folds: 5,
    },
    targets: {
      concurrent: target(
        TARGET_ENCODINGS.concurrent,
        Math.log2(concurrent * x[OFFERED_TOKENS_PER_ADAPTER]!),
      ),
      parallel: target(
        TARGET_ENCODINGS.parallel,
        Math.log2(parallel / (concurrent * x[BUSY_ADAPTER_FRACTION]!)),
      ),
      throughput: target(TARGET_ENCODINGS.throughput, completionRatio),
    },
  };
}
