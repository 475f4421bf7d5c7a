import { knotMoments } from '../twin/lengths.js';
import type { LengthDistribution } from '../twin/profile.js';

export interface LengthTargets {
  mean: number;
  std: number;
  quartiles: [number, number];
  min: number;
  max: number;
}

type Knots = Array<[number, number]>;

/**
 * Quantile knots at p = 0, .25, .5, .75, .95, 1 with the known minimum and quartiles held fixed;
 * the median and the 95th percentile are searched so the mean and the standard deviation match
 * the targets (a coarse-to-fine grid: two unknowns, smooth objective). The top knot is twice the
 * 95th percentile, capped at the filter's maximum: only the filter bound is known, and a tail
 * reaching it from p = 0.95 would put ~45 tokens of mean in the last 5% alone.
 */
export function fitLengthKnots(t: LengthTargets): { knots: Knots; mean: number; std: number } {
  const build = (median: number, q95: number): Knots => [
    [0, t.min],
    [0.25, t.quartiles[0]],
    [0.5, median],
    [0.75, t.quartiles[1]],
    [0.95, q95],
    [1, Math.min(t.max, 2 * q95)],
  ];
  const loss = (median: number, q95: number): number => {
    const m = knotMoments(build(median, q95));
    return ((m.mean - t.mean) / t.mean) ** 2 + ((m.std - t.std) / t.std) ** 2;
  };
  let lo = [Math.log(t.quartiles[0]), Math.log(t.quartiles[1])];
  let hi = [Math.log(t.quartiles[1]), Math.log(t.max)];
  let best = {
    median: Math.sqrt(t.quartiles[0] * t.quartiles[1]),
    q95: t.quartiles[1],
    loss: Infinity,
  };
  for (let round = 0; round < 5; round++) {
    const steps = 16;
    for (let i = 0; i <= steps; i++) {
      for (let j = 0; j <= steps; j++) {
        const median = Math.exp(lo[0]! + ((lo[1]! - lo[0]!) * i) / steps);
        const q95 = Math.exp(hi[0]! + ((hi[1]! - hi[0]!) * j) / steps);
        const l = loss(median, q95);
        if (l < best.loss) best = { median, q95, loss: l };
      }
    }
    const wm = (lo[1]! - lo[0]!) / 8;
    const wq = (hi[1]! - hi[0]!) / 8;
    const lm = Math.log(best.median);
    const lq = Math.log(best.q95);
    lo = [Math.max(Math.log(t.quartiles[0]), lm - wm), Math.min(Math.log(t.quartiles[1]), lm + wm)];
    hi = [Math.max(Math.log(t.quartiles[1]), lq - wq), Math.min(Math.log(t.max), lq + wq)];
  }
  const knots = build(best.median, best.q95).map(
    ([p, q]) => [p, Number(q.toFixed(3))] as [number, number],
  );
  return { knots, ...knotMoments(knots) };
}

export function fitLengthDistribution(
  prompt: LengthTargets,
  output: LengthTargets,
  maxTotalTokens: number,
): LengthDistribution {
  return {
    prompt: fitLengthKnots(prompt).knots,
    output: fitLengthKnots(output).knots,
    maxTotalTokens,
    targets: {
      promptMean: prompt.mean,
      outputMean: output.mean,
      promptStd: prompt.std,
      outputStd: output.std,
      promptQuartiles: prompt.quartiles,
      outputQuartiles: output.quartiles,
    },
  };
}
