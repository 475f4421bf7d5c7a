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
