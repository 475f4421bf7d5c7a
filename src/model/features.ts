import { meanLengths, type RequestLengthSpec } from '../twin/lengths.js';
import type { Profile } from '../twin/profile.js';

/** The published method's eight features, plus the request-length means. */
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
] as const;
export type FeatureName = (typeof FEATURE_NAMES)[number];

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
  return [...stats(workload.rates), ...stats(workload.ranks), lengths.prompt, lengths.output];
}
