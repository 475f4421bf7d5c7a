/**
 * Order statistics shared by the search, the fits, the validation reports and the benches: one
 * definition each, so a median in a report is computed as the service computes it.
 */

const sorted = (values: readonly number[]) => [...values].sort((a, b) => a - b);

/** The median (the mean of the middle two for an even count); NaN for no values. */
export function median(values: readonly number[]): number {
  const s = sorted(values);
  if (s.length === 0) return NaN;
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * The q-quantile by nearest rank: the sorted value at floor(q * n), the largest for q = 1; NaN for
 * no values. What the benches report as p90 and p99 of their timings.
 */
export function nearestRankQuantile(values: readonly number[], q: number): number {
  const s = sorted(values);
  if (s.length === 0) return NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.floor(q * s.length)))]!;
}

/** Error summaries used to compare predictions with real measurements. */
export interface ErrorSummary {
  n: number;
  /** mean |p - y| / |y|, in percent */
  mape: number;
  /** the published method's SMAPE: mean |p - y| / (|y| + |p|), in percent (no factor 2) */
  smapePaper: number;
  /** conventional SMAPE: mean 2|p - y| / (|y| + |p|), in percent */
  smape: number;
  /** mean (p - y) / y, in percent */
  bias: number;
  /** largest |p - y| / |y|, in percent */
  maxApe: number;
}

export function errorSummary(pairs: Array<{ real: number; predicted: number }>): ErrorSummary {
  const usable = pairs.filter(
    (p) => Number.isFinite(p.real) && Number.isFinite(p.predicted) && p.real !== 0,
  );
  const n = usable.length;
  if (n === 0) return { n: 0, mape: NaN, smapePaper: NaN, smape: NaN, bias: NaN, maxApe: NaN };
  let ape = 0;
  let sp = 0;
  let bias = 0;
  let maxApe = 0;
  for (const { real, predicted } of usable) {
    const a = Math.abs(predicted - real) / Math.abs(real);
    ape += a;
    maxApe = Math.max(maxApe, a);
    const denom = Math.abs(real) + Math.abs(predicted);
    sp += denom > 0 ? Math.abs(predicted - real) / denom : 0;
    bias += (predicted - real) / real;
  }
  return {
    n,
    mape: (100 * ape) / n,
    smapePaper: (100 * sp) / n,
    smape: (200 * sp) / n,
    bias: (100 * bias) / n,
    maxApe: 100 * maxApe,
  };
}

/** Area under the ROC curve of scores for the positives (serves) against the negatives. */
export function rocAuc(scores: readonly number[], positive: readonly boolean[]): number {
  const order = scores.map((_, i) => i).sort((a, b) => scores[a]! - scores[b]!);
  let positives = 0;
  let rankSum = 0;
  // Tied scores share their mean rank.
  for (let start = 0; start < order.length;) {
    let end = start;
    while (end + 1 < order.length && scores[order[end + 1]!] === scores[order[start]!]) end++;
    const rank = (start + end) / 2 + 1;
    for (let k = start; k <= end; k++)
      if (positive[order[k]!]) {
        positives++;
        rankSum += rank;
      }
    start = end + 1;
  }
  const negatives = order.length - positives;
  return (rankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
}
