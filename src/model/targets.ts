import { BUSY_ADAPTER_FRACTION, OFFERED_TOKENS_PER_ADAPTER } from './features.js';

/**
 * What the forests learn, per target. Each is the optimum relative to the load one adapter
 * brings, so what is left to learn varies a few-fold across workloads instead of a
 * hundred-fold (the optimum's adapter count alone spans 8 to 512):
 * - concurrent: log2 of the tokens/s offered at the optimum (adapters x offeredTokensPerAdapter),
 *   about the GPU's serving capacity for that mix;
 * - parallel: log2 of slots per busy adapter (slots / (adapters x busyAdapterFraction));
 * - throughput: the completion ratio at the optimum (throughput / offered), 0.9 to 1.
 */
export const TARGET_ENCODINGS = {
  concurrent: 'log2-offered-tokens-at-optimum',
  parallel: 'log2-slots-per-busy-adapter',
  throughput: 'completion-ratio',
} as const;
export type TargetName = keyof typeof TARGET_ENCODINGS;
export const TARGET_NAMES = Object.keys(TARGET_ENCODINGS) as TargetName[];

export interface Optimum {
  concurrentAdapters: number;
  parallelAdapters: number;
  throughputTokensPerSecond: number;
}

/**
 * One workload's optimum in the forests' terms. `concurrent` is null when the optimum sits at the
 * top of the training grid (`concurrentCeiling`): the true optimum is at least that, so the row
 * says nothing exact about capacity and is left out of that target's fit.
 */
export function encodeOptimum(
  x: readonly number[],
  o: Optimum,
  concurrentCeiling: number,
): { concurrent: number | null; parallel: number; throughput: number } {
  const perAdapter = x[OFFERED_TOKENS_PER_ADAPTER]!;
  const busy = x[BUSY_ADAPTER_FRACTION]!;
  return {
    concurrent:
      o.concurrentAdapters >= concurrentCeiling
        ? null
        : Math.log2(o.concurrentAdapters * perAdapter),
    parallel: Math.log2(o.parallelAdapters / (o.concurrentAdapters * busy)),
    throughput: o.throughputTokensPerSecond / (o.concurrentAdapters * perAdapter),
  };
}

/** Turns the forests' raw outputs for a workload back into an optimum (continuous values). */
export function decodePrediction(
  x: readonly number[],
  raw: Record<TargetName, number>,
  concurrentCeiling: number,
): Optimum {
  const perAdapter = x[OFFERED_TOKENS_PER_ADAPTER]!;
  const busy = x[BUSY_ADAPTER_FRACTION]!;
  const concurrentAdapters = Math.max(
    1,
    Math.min(concurrentCeiling, 2 ** raw.concurrent / perAdapter),
  );
  const parallelAdapters = Math.max(
    1,
    Math.min(concurrentAdapters, concurrentAdapters * busy * 2 ** raw.parallel),
  );
  return {
    concurrentAdapters,
    parallelAdapters,
    throughputTokensPerSecond: raw.throughput * concurrentAdapters * perAdapter,
  };
}
