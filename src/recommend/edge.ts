import type { VerdictRun } from '../profiles/verdicts.js';

/**
 * How likely a pair the twin puts at completion ratio `ratio` is to starve in reality: among the
 * measured runs the twin called serving, the share whose twin ratio overstated the real one by more
 * than this pair's distance above the line. No runs, no evidence of error: 0.
 */
export function starveProbability(
  runs: readonly VerdictRun[],
  ratio: number,
  starvationThreshold: number,
): number {
  const line = 1 - starvationThreshold;
  if (ratio < line) return 1;
  const serving = runs.filter((r) => r.twinRatio >= line);
  if (serving.length === 0) return 0;
  const overstated = serving.filter((r) => r.twinRatio - r.realRatio > ratio - line).length;
  return overstated / serving.length;
}

/**
 * The throughput an answer is expected to deliver when a starving answer is counted as worth
 * nothing: an orchestrator that acts on it gets a queue that grows all hour.
 */
export function expectedServedThroughput(
  runs: readonly VerdictRun[],
  point: { throughputTokensPerSecond: number; offeredTokensPerSecond: number },
  starvationThreshold: number,
): number {
  const ratio =
    point.offeredTokensPerSecond > 0
      ? point.throughputTokensPerSecond / point.offeredTokensPerSecond
      : 1;
  return (
    (1 - starveProbability(runs, ratio, starvationThreshold)) * point.throughputTokensPerSecond
  );
}
