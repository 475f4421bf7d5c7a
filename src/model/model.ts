import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { PACKAGE_ROOT } from '../profiles/store.js';
import { envelopeSchema } from './envelope.js';
import { servesModelSchema } from './serves.js';
import { FEATURE_NAMES } from './features.js';
import {
  predict,
  predictTrees,
  predictWithEachFeatureMoved,
  type CompactForest,
} from './forest.js';
import { decodePrediction, TARGET_ENCODINGS, type TargetName } from './targets.js';

export const FORESTS_DIR = join(PACKAGE_ROOT, 'models', 'forests');

const errorsSchema = z.object({ smapePaper: z.number(), smape: z.number(), mape: z.number() });
const targetSchema = <E extends string>(encoding: E) =>
  z.object({
    /** What the forest predicts (src/model/targets.ts); errors are on the decoded optimum. */
    encoding: z.literal(encoding),
    forest: z.object({ trees: z.array(z.array(z.number())) }),
    /** Rows the forest was fitted on (concurrent leaves out optima at the grid's top). */
    fittedRows: z.number(),
    cv: errorsSchema,
    permutationImportance: z.record(z.string(), z.number()),
  });

export const modelFileSchema = z.object({
  schemaVersion: z.literal(3),
  profile: z.string(),
  twinVersion: z.string(),
  modelVersion: z.string(),
  features: z.array(z.string()),
  featureMedians: z.array(z.number()),
  /** The largest concurrent value of the training grid: no prediction goes beyond it. */
  concurrentCeiling: z.number(),
  /**
   * Out-of-fold log2(edge / predicted adapters) over the training set, sorted: how often, and by
   * how much, the forest's adapter count overshot the twin's starvation edge. Absent in older files.
   */
  concurrentEdgeResidualsLog2: z.array(z.number()).optional(),
  /** The chance a pair serves, from the closed-form estimate at it (src/model/serves.ts). Absent in older files. */
  servesAtPair: servesModelSchema.optional(),
  /** The ranges of the workloads the forests were trained on (src/model/envelope.ts). */
  envelope: envelopeSchema,
  hyperparameters: z.object({
    nEstimators: z.number(),
    maxFeatures: z.number(),
    maxDepth: z.number(),
    minNumSamples: z.number(),
  }),
  hyperparameterSearch: z.array(
    z.object({ hyperparameters: z.record(z.string(), z.number()), cvSmapePaper: z.number() }),
  ),
  trainingSet: z.object({
    file: z.string(),
    rows: z.number(),
    rowsWithoutOptimum: z.number(),
    seed: z.number(),
    durationSeconds: z.number(),
    folds: z.number(),
  }),
  targets: z.object({
    concurrent: targetSchema(TARGET_ENCODINGS.concurrent),
    parallel: targetSchema(TARGET_ENCODINGS.parallel),
    throughput: targetSchema(TARGET_ENCODINGS.throughput),
  }),
});
export type ModelFile = z.infer<typeof modelFileSchema>;

export interface ForestPrediction {
  concurrentAdapters: number;
  parallelAdapters: number;
  throughputTokensPerSecond: number;
  /** Predicted throughput / offered at the optimum: prices any nearby pair by its offered load. */
  completionRatio: number;
  /** Spread of the trees' answers for concurrent adapters, in log2 units (1 = a factor of 2). */
  concurrentSpreadLog2: number;
}

/** The three forests' raw outputs for one feature row. */
export function predictRaw(
  targets: Record<TargetName, { forest: CompactForest }>,
  x: readonly number[],
): Record<TargetName, number> {
  return {
    concurrent: predict(targets.concurrent.forest, x),
    parallel: predict(targets.parallel.forest, x),
    throughput: predict(targets.throughput.forest, x),
  };
}

export function predictWorkload(model: ModelFile, x: readonly number[]): ForestPrediction {
  // The concurrent forest predicts log2 of offered tokens: per adapter that is a fixed shift, so
  // the trees' spread is directly a spread of log2(adapters). Its mean is summed from the same
  // walks, in the order `predict` sums them.
  const per = predictTrees(model.targets.concurrent.forest, x);
  const raw = {
    concurrent: per.reduce((s, v) => s + v, 0) / per.length,
    parallel: predict(model.targets.parallel.forest, x),
    throughput: predict(model.targets.throughput.forest, x),
  };
  const spread = Math.sqrt(per.reduce((s, v) => s + (v - raw.concurrent) ** 2, 0) / per.length);
  return {
    ...decodePrediction(x, raw, model.concurrentCeiling),
    completionRatio: raw.throughput,
    concurrentSpreadLog2: spread,
  };
}

export interface FeatureEffect {
  feature: string;
  value: number;
  /** Change in predicted concurrent and parallel adapters (log2 units) when this feature is at its training median instead. */
  concurrentLog2Effect: number;
  parallelLog2Effect: number;
}

/**
 * Which features moved this workload's answer most: each feature in turn is set to its training
 * median and the change of the prediction is measured (a one-at-a-time attribution).
 */
export function localExplanation(model: ModelFile, x: readonly number[], top = 3): FeatureEffect[] {
  // Only adapters and slots are explained: the throughput forest is not consulted (a third fewer
  // tree walks on a path every model-method request takes).
  const { featureMedians: medians, concurrentCeiling: ceiling } = model;
  const concurrent = predictWithEachFeatureMoved(model.targets.concurrent.forest, x, medians);
  const parallel = predictWithEachFeatureMoved(model.targets.parallel.forest, x, medians);
  const answer = (row: readonly number[], c: number, p: number) =>
    decodePrediction(row, { concurrent: c, parallel: p, throughput: 0 }, ceiling);
  const here = answer(x, concurrent.here, parallel.here);
  return model.features
    .map((feature, i) => {
      const moved = [...x];
      moved[i] = medians[i]!;
      const there =
        moved[i] === x[i] ? here : answer(moved, concurrent.moved[i]!, parallel.moved[i]!);
      return {
        feature,
        value: x[i]!,
        concurrentLog2Effect: Math.log2(here.concurrentAdapters / there.concurrentAdapters),
        parallelLog2Effect: Math.log2(here.parallelAdapters / there.parallelAdapters),
      };
    })
    .sort(
      (a, b) =>
        Math.abs(b.concurrentLog2Effect) +
        Math.abs(b.parallelLog2Effect) -
        (Math.abs(a.concurrentLog2Effect) + Math.abs(a.parallelLog2Effect)),
    )
    .slice(0, top);
}

export class ModelUnavailableError extends Error {}

/**
 * A profile that was not measured (derived or calibrated) has no forest until one is trained
 * for it: asking for one is a request the service cannot answer as asked (HTTP 422), not an
 * outage, and another profile's forest never answers in its place.
 */
export class ForestNotBuiltError extends ModelUnavailableError {}

/** Forests by path, and the files that could not be read (remembered too: a process reads each once). */
const loaded = new Map<string, ModelFile | ModelUnavailableError>();

export function modelPath(profile: string, dir = FORESTS_DIR): string {
  return join(dir, `${profile}.json`);
}

/** Loads the shipped forest of a profile (read once per process, whether it loads or not). */
export function loadModel(profile: string, dir = FORESTS_DIR): ModelFile {
  const path = modelPath(profile, dir);
  let entry = loaded.get(path);
  if (!entry) {
    entry = readModel(profile, path);
    loaded.set(path, entry);
  }
  if (entry instanceof ModelUnavailableError) throw entry;
  return entry;
}

function readModel(profile: string, path: string): ModelFile | ModelUnavailableError {
  if (!existsSync(path))
    return new ModelUnavailableError(
      `no trained forest for profile ${profile} (expected ${path}); run loraplan train --profile ${profile}`,
    );
  const parsed = modelFileSchema.safeParse(JSON.parse(readFileSync(path, 'utf8')));
  if (!parsed.success)
    return new ModelUnavailableError(
      `${path} is not a forest this version reads (trained by an older loraplan?); run loraplan train --profile ${profile}`,
    );
  if (parsed.data.features.join() !== FEATURE_NAMES.join())
    return new ModelUnavailableError(`${path} was trained on other features`);
  return parsed.data;
}
