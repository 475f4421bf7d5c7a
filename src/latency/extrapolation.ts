import { z } from 'zod';
import { meanRateOf, type LatencyCase, type LatencyEnvelope } from './envelope.js';

/**
 * How far a case lies outside what a latency model's intervals were measured on, and how much
 * wider its intervals and bounds grow for it. The distance is in natural-log units of the
 * furthest feature beyond its measured range: 0 inside; ln 2 = 0.69 for rates twice the largest
 * measured (or half the smallest), or 512 adapters where 256 were the most. Rates, ranks, adapter
 * and slot counts all act on latency through ratios (queue load, KV per slot, batch mix), so a log
 * scale makes one distance mean the same for each.
 */
export interface EnvelopeDistance {
  /** ln(value / nearest end of the range) of the furthest feature; 0 inside. */
  distance: number;
  /** The feature that sets it (absent inside). */
  feature?: string;
}

/** The numeric envelope features a case can lie beyond, read from the case. */
function featureValues(c: LatencyCase): Array<[keyof LatencyEnvelope, readonly number[]]> {
  const features: Array<[keyof LatencyEnvelope, readonly number[]]> = [
    ['ratePerAdapter', c.rates.filter((r) => r > 0)],
    ['meanRatePerAdapter', [meanRateOf(c.rates)].filter((r) => r > 0)],
    ['adapterRank', c.ranks],
  ];
  if (c.config) {
    features.push(
      ['maxLoraRank', [c.config.maxLoraRank]],
      ['concurrentAdapters', [c.config.maxCpuLoras]],
      ['parallelAdapters', [c.config.maxLoras]],
    );
    if (c.config.maxNumBatchedTokens !== undefined)
      features.push(['maxNumBatchedTokens', [c.config.maxNumBatchedTokens]]);
    if (c.config.maxNumSeqs !== undefined) features.push(['maxNumSeqs', [c.config.maxNumSeqs]]);
  }
  return features;
}

/** ln-distance of `values` beyond [lo, hi] (0 when every value is inside). */
export function logDistance(values: readonly number[], [lo, hi]: readonly [number, number]) {
  let d = 0;
  for (const v of values) {
    if (!(v > 0) || !(lo > 0) || !(hi > 0)) continue;
    if (v > hi) d = Math.max(d, Math.log(v / hi));
    else if (v < lo) d = Math.max(d, Math.log(lo / v));
  }
  return d;
}

/** How far outside the envelope a case lies (request lengths and windows are not distances). */
export function envelopeDistance(envelope: LatencyEnvelope, c: LatencyCase): EnvelopeDistance {
  let best: EnvelopeDistance = { distance: 0 };
  for (const [feature, values] of featureValues(c)) {
    const range = envelope[feature] as [number, number] | undefined;
    if (!range) continue;
    const d = logDistance(values, range);
    if (d > best.distance) best = { distance: d, feature };
  }
  return best;
}

/**
 * Per unit of distance, how much wider (in ln units) an interval's half-width and an SLO bound's
 * quantile grow. Sized by validate:twin from the errors on whole regimes held out of the fit
 * (the lightest and heaviest workloads, the largest adapter counts, each --max-lora-rank): the
 * smallest growth that brings the held-out runs' coverage to the target.
 */
const growthSchema = z.object({
  halfWidthLogPerUnit: z.number().min(0),
  sloQuantileLogPerUnit: z.number().min(0),
  /** Held-out runs outside their fit's envelope that the growth was sized on. */
  runs: z.number().int().min(0),
});
export type Growth = z.infer<typeof growthSchema>;

export const extrapolationSchema = growthSchema.extend({
  /**
   * The growth sized on the held-out runs of one twin regime only, as the widths are: a server
   * the twin says saturates errs beyond the measured runs far more than one that keeps up (held
   * out, p99 ITL under the pooled growth held its bound for 79% of the heaviest workloads' runs
   * and 98% of those that keep up). Present where that regime's runs were enough for the
   * target's conformal quantile; else the pooled growth above applies.
   */
  perRegime: z
    .object({ keepsUp: growthSchema.optional(), saturated: growthSchema.optional() })
    .optional(),
});
export type Extrapolation = z.infer<typeof extrapolationSchema>;

/** The growth for a pair in a twin regime: the regime's own where it was sized, else the pooled. */
export function growthIn(
  growth: Extrapolation | undefined,
  regime: keyof NonNullable<Extrapolation['perRegime']>,
): Growth | undefined {
  return growth?.perRegime?.[regime] ?? growth;
}

/**
 * Where an SLO bound starts outside the envelope: at least the interval's upper end. The one-sided
 * quantile is the fitting runs' balance of real figures above and below the prediction; beyond
 * them that balance is unknown (held out, the lightest workloads' p99 TTFT lay inside its
 * interval for 97% of runs and under its one-sided bound for 63%), while the half-width bounds
 * either sign. Outside, no bound is tighter than the interval it comes with.
 */
export function boundStartOutside(widths: { halfWidthLog: number; sloQuantileLog: number }) {
  return Math.max(0, widths.sloQuantileLog, widths.halfWidthLog);
}

/** The widths at a distance: unchanged inside; outside, grown linearly in the distance. */
export function widened(
  widths: { halfWidthLog: number; sloQuantileLog: number },
  distance: number,
  growth: Growth | undefined,
): { halfWidthLog: number; sloQuantileLog: number } {
  if (!(distance > 0)) return widths;
  return {
    halfWidthLog: widths.halfWidthLog + (growth?.halfWidthLogPerUnit ?? 0) * distance,
    sloQuantileLog: boundStartOutside(widths) + (growth?.sloQuantileLogPerUnit ?? 0) * distance,
  };
}

/** Whether `n` cases give a finite conformal quantile at `coverage` (else there is none to read). */
export const enoughForQuantile = (n: number, coverage: number) =>
  n > 0 && Math.ceil((n + 1) * coverage) <= n;

/**
 * The smallest growth per unit of distance that puts `coverage` of the held-out cases inside
 * their widened width: the conformal quantile of each case's excess over its width, per unit of
 * distance. Cases inside (distance 0) cannot be helped by growth and are left out.
 */
export function growthFor(
  cases: ReadonlyArray<{ excessLog: number; distance: number }>,
  coverage: number,
): number {
  const outside = cases.filter((c) => c.distance > 0);
  if (outside.length === 0) return 0;
  const needed = outside.map((c) => Math.max(0, c.excessLog) / c.distance).sort((a, b) => a - b);
  const k = Math.min(needed.length, Math.ceil((needed.length + 1) * coverage)) - 1;
  return needed[Math.max(0, k)]!;
}
