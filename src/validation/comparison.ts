// One measured run against the twin, as validate:twin writes it (docs/validation/twin-runs.csv)
// and the latency fit reads it: its own module, so the two reports do not import each other.

export interface RunComparison {
  model: string;
  workload: string;
  run: string;
  maxLoras: number;
  maxCpuLoras: number;
  maxLoraRank: number;
  /** The run's workload and batch flags as simulated (space-separated lists): its latency envelope. */
  adapterRates: string;
  adapterRanks: string;
  maxNumBatchedTokens: number;
  maxNumSeqs: number;
  durationSeconds: number;
  requestLengths: string;
  realOk: boolean;
  realFailure: string;
  twinFeasible: boolean;
  realThroughput: number;
  twinThroughput: number;
  publishedThroughput: number;
  publishedItlMs: number;
  realStarving: boolean;
  twinStarving: boolean;
  /** Completion ratios (throughput / offered) behind the two verdicts. */
  realCompletionRatio: number;
  twinCompletionRatio: number;
  realTtftMs: number;
  twinTtftMs: number;
  realItlMs: number;
  twinItlMs: number;
  realTtftP50Ms: number;
  realTtftP99Ms: number;
  realItlP50Ms: number;
  realItlP99Ms: number;
  twinTtftP50Ms: number;
  twinTtftP99Ms: number;
  /** Arrival realisations behind the twin's TTFT figures (src/search/arrivals.ts). */
  twinTtftRealisations: number;
  twinItlP50Ms: number;
  twinItlP99Ms: number;
  twinMeanRunningRequests: number;
  twinWallMs: number;
}
