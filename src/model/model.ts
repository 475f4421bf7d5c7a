import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { PACKAGE_ROOT } from '../profiles/store.js';
import { FEATURE_NAMES } from './features.js';
import { predict, predictTrees, type CompactForest } from './forest.js';

export const FORESTS_DIR = join(PACKAGE_ROOT, 'models', 'forests');

const errorsSchema = z.object({ smapePaper: z.number(), smape: z.number(), mape: z.number() });
const targetSchema = z.object({
  /** Forests of log2(adapters) treat 16 -> 32 like 128 -> 256, as an operator would. */
  transform: z.enum(['log2', 'none']),
  forest: z.object({ trees: z.array(z.array(z.number())) }),
  cv: errorsSchema,
  permutationImportance: z.record(z.string(), z.number()),
});

export const modelFileSchema = z.object({
  schemaVersion: z.literal(1),
  profile: z.string(),
  twinVersion: z.string(),
  modelVersion: z.string(),
  features: z.array(z.string()),
  featureMedians: z.array(z.number()),
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
  targets: z.object({ concurrent: targetSchema, parallel: targetSchema, throughput: targetSchema }),
});
export type ModelFile = z.infer<typeof modelFileSchema>;
export type TargetName = keyof ModelFile['targets'];

export interface ForestPrediction {
  concurrentAdapters: number;
  parallelAdapters: number;
  throughputTokensPerSecond: number;
  /** Spread of the trees' answers for concurrent adapters, in log2 units (1 = a factor of 2). */
  concurrentSpreadLog2: number;
}

const untransform = (value: number, transform: 'log2' | 'none') =>
  transform === 'log2' ? 2 ** value : value;

export function predictTarget(model: ModelFile, target: TargetName, x: readonly number[]): number {
  const t = model.targets[target];
  return untransform(predict(t.forest as CompactForest, x), t.transform);
}

export function predictWorkload(model: ModelFile, x: readonly number[]): ForestPrediction {
  const per = predictTrees(model.targets.concurrent.forest, x);
  const mean = per.reduce((s, v) => s + v, 0) / per.length;
  const spread = Math.sqrt(per.reduce((s, v) => s + (v - mean) ** 2, 0) / per.length);
  return {
    concurrentAdapters: predictTarget(model, 'concurrent', x),
    parallelAdapters: predictTarget(model, 'parallel', x),
    throughputTokensPerSecond: predictTarget(model, 'throughput', x),
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
  const c = predict(model.targets.concurrent.forest, x);
  const p = predict(model.targets.parallel.forest, x);
  return model.features
    .map((feature, i) => {
      const moved = [...x];
      moved[i] = model.featureMedians[i]!;
      return {
        feature,
        value: x[i]!,
        concurrentLog2Effect: c - predict(model.targets.concurrent.forest, moved),
        parallelLog2Effect: p - predict(model.targets.parallel.forest, moved),
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

const loaded = new Map<string, ModelFile>();

export function modelPath(profile: string, dir = FORESTS_DIR): string {
  return join(dir, `${profile}.json`);
}

/** Loads the shipped forest of a profile (parsed once per process). */
export function loadModel(profile: string, dir = FORESTS_DIR): ModelFile {
  const path = modelPath(profile, dir);
  const hit = loaded.get(path);
  if (hit) return hit;
  if (!existsSync(path))
    throw new ModelUnavailableError(
      `no trained forest for profile ${profile} (expected ${path}); run loraplan train --profile ${profile}`,
    );
  const model = modelFileSchema.parse(JSON.parse(readFileSync(path, 'utf8')));
  if (model.features.join() !== FEATURE_NAMES.join())
    throw new ModelUnavailableError(`${path} was trained on other features`);
  loaded.set(path, model);
  return model;
}
