import { meanLengths, type RequestLengthSpec } from '../twin/lengths.js';
import type { Profile } from '../twin/profile.js';

/**
 * The published method's eight features, the request-length means, and three that say how much
 * load one adapter brings. Trees cannot divide features by each other, yet the optimum's
 * adapter count follows capacity / (rate x tokens per request): giving them that load directly
 * is what lets a few hundred workloads pin the optimum down (docs/training.md).
 */
export const FEATURE_NAMES = [
  'rateMax',
  'rateMin',
  'rateMean',
  'rateStd',
  'rankMax',
  'rankMin',
  'rankMean',
  'rankStd',
  'promptTokensMean',
  'outputTokensMean',
  'offeredTokensPerAdapter',
  'rateCv',
  'busyAdapterFraction',
] as const;
export type FeatureName = (typeof FEATURE_NAMES)[number];

export const OFFERED_TOKENS_PER_ADAPTER = FEATURE_NAMES.indexOf('offeredTokensPerAdapter');
export const BUSY_ADAPTER_FRACTION = FEATURE_NAMES.indexOf('busyAdapterFraction');

/**
 * A nominal time per output token (s), of the order of the measured inter-token latency: it only
 * sets the scale of busyAdapterFraction, so its exact value matters little to the trees.
 */
const NOMINAL_SECONDS_PER_OUTPUT_TOKEN = 0.02;

export interface FeatureWorkload {
  rates: number[];
  ranks: number[];
  requestLengths?: RequestLengthSpec;
}

const stats = (v: number[]) => {
  const mean = v.reduce((s, x) => s + x, 0) / v.length;
  const std = Math.sqrt(v.reduce((s, x) => s + (x - mean) ** 2, 0) / v.length);
  return [Math.max(...v), Math.min(...v), mean, std];
};

/** Features over the workload's rate and rank groups (adapters cycle through them evenly). */
export function workloadFeatures(workload: FeatureWorkload, profile: Profile): number[] {
  const lengths = meanLengths(
    workload.requestLengths ?? { kind: 'sharegpt' },
    profile.requestLengths,
  );
  const rateStats = stats(workload.rates);
  const rateMean = rateStats[2]!;
  // The chance an adapter of each group has a request in flight (Poisson arrivals over a
  // request's nominal lifetime), averaged over groups: how many slots its adapters keep busy.
  const requestSeconds = lengths.output * NOMINAL_SECONDS_PER_OUTPUT_TOKEN;
  const busy =
    workload.rates.reduce((s, rate) => s + (1 - Math.exp(-rate * requestSeconds)), 0) /
    workload.rates.length;
  return [
    ...rateStats,
    ...stats(workload.ranks),
    lengths.prompt,
    lengths.output,
    rateMean * (lengths.prompt + lengths.output),
    rateMean > 0 ? rateStats[3]! / rateMean : 0, // all-zero rates: no spread to speak of
    busy,
  ];
}
